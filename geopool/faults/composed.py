"""Faults stacked like layers: ``A+B`` puts A in front of B in front of the upstream.

A request meets A first: if A answers it (:meth:`Fault.intercept`), nothing behind A sees it. Otherwise
B may answer it, and A edits B's answer; otherwise the upstream answers, and B then A edit that. So
``die-on-killer+repair-validate`` is a validating gateway whose engine dies on the inputs that kill
vLLM 0.32, and ``truncate+repair-float`` a float-answering server whose outputs lose their tail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from geopool.contract import ModelContract
from geopool.faults.base import Exchange, Fault


class Composed(Fault):
    """The layers of a ``+`` spec, outermost first."""

    name, summary = "+", "faults stacked: A+B puts A in front of B (A sees B's answers)"

    def __init__(self, layers: list[Fault]) -> None:
        super().__init__()
        self.layers = layers
        self.name = "+".join(layer.name for layer in layers)

    def bind(self, contract: ModelContract | None) -> None:
        for layer in self.layers:
            layer.bind(contract)
        self.contract = contract

    async def intercept(self, exchange: Exchange) -> bool:
        for depth, layer in enumerate(self.layers):
            if await layer.intercept(exchange):
                await self._answer_outwards(self.layers[:depth], exchange)
                return True
        return False

    async def response(self, exchange: Exchange) -> None:
        await self._answer_outwards(self.layers, exchange)

    @contextlib.asynccontextmanager
    async def forwarding(self, exchange: Exchange) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for layer in self.layers:
                await stack.enter_async_context(layer.forwarding(exchange))
            yield

    @staticmethod
    async def _answer_outwards(layers: list[Fault], exchange: Exchange) -> None:
        for layer in reversed(layers):
            await layer.response(exchange)
