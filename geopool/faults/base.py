"""The fault interface: an :class:`Exchange` (one request and its answer, all editable) and :class:`Fault`,
whose two hooks a fault overrides — :meth:`Fault.intercept` answers instead of the upstream,
:meth:`Fault.response` edits the upstream's answer."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from collections.abc import AsyncIterator
from typing import Any

from geopool.contract import ModelContract
from geopool.errors import FaultSpecError

__all__ = ["Exchange", "Fault"]


@dataclasses.dataclass
class Exchange:
    """One request through the proxy and (after the upstream answered) its answer, all editable."""

    method: str
    path: str
    request_body: bytes
    request_json: Any = None
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # send half the body, then drop the connection
    #: Per-exchange state a fault keeps between its hooks (e.g. that it rewrote the request).
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pooling(self) -> bool:
        return self.path == "/pooling" and self.method == "POST"

    @property
    def ok_json(self) -> bool:
        return self.pooling and self.status == 200 and "json" in self.headers.get("content-type", "")

    def option(self, name: str, default: str) -> str:
        return str((self.request_json or {}).get(name) or default) if isinstance(self.request_json, dict) else default

    def set_json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()


class Fault:
    """Pass-through; subclasses override one or both hooks."""

    name = "none"
    summary = "forward everything unchanged"
    #: Whether the parameters are text (a field name, a version), not numbers checked when parsed.
    text_params = False
    #: Whether the fault judges requests against the model contract (the proxy must be given one).
    needs_contract = False

    def __init__(self, *params: str) -> None:
        self.params = params
        self.random = random.Random(0)
        self.contract: ModelContract | None = None

    def bind(self, contract: ModelContract | None) -> None:
        """Give the fault the served model's contract (the proxy calls this once, before serving)."""
        if self.needs_contract and contract is None:
            raise FaultSpecError(f"fault {self.name}: needs the model contract; give the proxy the served model's "
                                 "config.json (geopool proxy --model-config PATH --input-dtype DTYPE)")
        self.contract = contract

    @contextlib.asynccontextmanager
    async def forwarding(self, exchange: Exchange) -> AsyncIterator[None]:
        """Held while the proxy forwards ``exchange`` upstream (e.g. to serialize requests)."""
        yield

    async def intercept(self, exchange: Exchange) -> bool:
        """Answer instead of the upstream (fill ``exchange``) and return True; or return False."""
        return False

    async def response(self, exchange: Exchange) -> None:
        """Edit the upstream's answer in place."""

    def _every(self, index: int, default: int) -> int:
        """An "every Nth" parameter: a whole N >= 1."""
        n = self._float(index, default)
        if not (n >= 1 and n == int(n)):
            raise FaultSpecError(f"fault {self.name}: every Nth needs a whole N >= 1, got {self.params[index]!r}")
        return int(n)

    def _float(self, index: int, default: float) -> float:
        try:
            return float(self.params[index]) if len(self.params) > index else default
        except ValueError as exc:
            raise FaultSpecError(f"fault {self.name}: parameter {self.params[index]!r} is not a number") from exc
