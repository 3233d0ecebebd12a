"""Timing and transport faults: a slow tail, every Nth request slow, a stall, a rate limit, 503s and connection
resets mid-body."""

from __future__ import annotations

import asyncio
import time

from geopool.errors import FaultSpecError
from geopool.faults.base import Exchange, Fault
from geopool.faults.error_answers import proxy_error


class _Sampled(Fault):
    """Applies to a fraction (param 0, percent [100]) of pooling requests, chosen by a seeded RNG."""

    def chosen(self, exchange: Exchange) -> bool:
        return exchange.pooling and self.random.random() * 100 < self._float(0, 100.0)


class SlowTail(_Sampled):
    name, summary = "slow-tail", "PERCENT % of pooling requests delayed by SECONDS (params: percent [10], seconds [2])"

    async def intercept(self, exchange):
        if exchange.pooling and self.random.random() * 100 < self._float(0, 10.0):
            await asyncio.sleep(self._float(1, 2.0))
        return False


class SlowEvery(Fault):
    name, summary = ("slow-every", "every Nth pooling request (the Nth, 2Nth, ...) delayed by SECONDS: one user's "
                                  "closed loop alternates delayed and prompt answers (params: n [2], seconds [0.1])")

    def __init__(self, *params):
        super().__init__(*params)
        self.every, self.seen = self._every(0, 2), 0

    async def intercept(self, exchange):
        if exchange.pooling:
            self.seen += 1
            if self.seen % self.every == 0:
                await asyncio.sleep(self._float(1, 0.1))
        return False


class Stall(Fault):
    name, summary = ("stall", "a server stall: pooling requests arriving from AT s after the first one, for SECONDS s, "
                             "are held until the stall ends (params: at [5], seconds [5])")

    def __init__(self, *params):
        super().__init__(*params)
        self.first: float | None = None

    async def intercept(self, exchange):
        if not exchange.pooling:
            return False
        now = time.monotonic()
        if self.first is None:
            self.first = now
        start = self.first + self._float(0, 5.0)
        end = start + self._float(1, 5.0)
        if start <= now < end:
            await asyncio.sleep(end - now)
        return False


class RateLimit(Fault):
    name, summary = ("rate-limit", "at most RATE pooling requests per second forwarded, 1/RATE s apart; the rest "
                                  "wait their turn, so latency grows without bound above RATE (param: rate [1])")

    def __init__(self, *params):
        super().__init__(*params)
        if not self._float(0, 1.0) > 0:
            raise FaultSpecError(f"fault {self.name}: the rate must be > 0 requests per second, got {params[0]!r}")
        self.next_slot: float | None = None

    async def intercept(self, exchange):
        # each pooling request takes the next free slot on a 1/RATE grid (no lock held while forwarding:
        # the upstream may still overlap two requests, but they start at most RATE per second)
        if not exchange.pooling:
            return False
        now = time.monotonic()
        slot = now if self.next_slot is None else max(now, self.next_slot)
        self.next_slot = slot + 1.0 / self._float(0, 1.0)
        if slot > now:
            await asyncio.sleep(slot - now)
        return False


class Unavailable(_Sampled):
    name, summary = "503", "PERCENT % of pooling requests answered 503 (param: percent [100])"

    async def intercept(self, exchange):
        if self.chosen(exchange):
            exchange.status, exchange.body = 503, proxy_error(503, "proxy fault: service unavailable")
            exchange.headers = {"content-type": "application/json"}
            return True
        return False


class ResetMidBody(_Sampled):
    name, summary = "reset", "PERCENT % of pooling answers cut off mid-body by a connection reset (param [100])"

    async def response(self, exchange):
        if self.chosen(exchange):
            exchange.reset = True
