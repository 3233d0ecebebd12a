"""The ``rate-limit:R`` fault: pooling requests start at most R per second, 1/R apart; others pass at once."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from geopool.errors import FaultSpecError
from geopool.faults import Exchange, parse_fault


async def _release_times(fault, exchanges):
    start = time.monotonic()

    async def one(exchange):
        assert await fault.intercept(exchange) is False  # it only delays: the upstream answers
        return time.monotonic() - start

    return await asyncio.gather(*(one(exchange) for exchange in exchanges))


def test_pooling_requests_are_spaced_one_over_rate_and_others_are_not_held():
    # Bounds in slots, not in wall time a busy 2-core box sets: a 200 ms grid, and "not held" = within half a slot.
    fault = parse_fault("rate-limit:5")
    pooling = [Exchange("POST", "/pooling", b"{}") for _ in range(4)]
    released = sorted(asyncio.run(_release_times(fault, pooling)))
    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    # slots lie on a fixed grid, so a late wake-up delays one release without shifting the next
    assert all(gap >= 0.15 for gap in gaps) and 0.55 <= released[-1] - released[0] < 2.0, gaps
    other = asyncio.run(_release_times(fault, [Exchange("GET", "/health", b"") for _ in range(4)]))
    assert max(other) < 0.1


@pytest.mark.parametrize("spec", ["rate-limit:0", "rate-limit:-1", "rate-limit:fast"])
def test_a_bad_rate_is_named(spec):
    with pytest.raises(FaultSpecError, match="rate-limit"):
        parse_fault(spec)
