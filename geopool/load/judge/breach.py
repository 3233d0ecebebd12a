"""Stop on breach: end a run as soon as an SLO bound is breached beyond doubt (``--stop-on-breach``).

The master asks :func:`breach_beyond_doubt` every :data:`CHECK_INTERVAL_S` with the records so far,
selected as the final statistics select them (after warm-up; latencies of verified answers). A bound
is breached beyond doubt when

- **latency percentile**, either of:

  * *certain*: the run's remaining request budget is known (``max_requests``, or an open loop's
    schedule), and even if every remaining request were under the bound, the final percentile
    (numpy's linear interpolation, as the report computes it) would still lie between two samples
    over the bound. No statistics: the final verdict cannot be anything else.
  * *significant*: a one-sided binomial test rejects "the percentile is within the bound" (at most a
    share 1 − p of requests over it) at 99 % confidence, Bonferroni-corrected for the number of
    looks the run can take (its duration / the check interval), so that checking every second does
    not multiply the chance of stopping a run that would have passed. This is the mirror image of
    LoadGen's early-stopping rule the final verdict uses (:func:`geopool.load.judge.stats.early_stopping_check`),
    which shows with 99 % confidence that a percentile *holds*; its ``breached`` state (observed over
    the bound) is not enough on its own to stop: one slow first request would do it.

- **verification failures** over ``max_verification_failures``: a count that can only grow.

Throughput and error-rate bounds never stop a run early: a rate can recover, and until the run ends
neither is beyond doubt. A stopped run is reported as breached (exit 10), with summary.json's
``stopped_early`` = ``{"at_s", "bound", "why"}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geopool.load.judge import slo as slo_module
from geopool.load.judge.stats import measured_latencies_ms, measured_ok_records, measured_records
from geopool.load.judge.verify import VERIFY_FAILED
from geopool.load.records import Record

__all__ = ["CHECK_INTERVAL_S", "CONFIDENCE", "breach_beyond_doubt", "latency_breach", "remaining_requests"]

CHECK_INTERVAL_S = 1.0
CONFIDENCE = 0.99


def certainly_over(unders: int, overs: int, remaining: int, percentile: float) -> bool:
    """Would the percentile of the final sample lie over the bound even if all ``remaining`` were under it?

    Sorted, the final sample has ``unders + remaining`` values under the bound, then the overs; numpy's
    percentile interpolates between indices floor(h) and ceil(h), h = (N − 1)·p/100: over the bound for
    sure when floor(h) already indexes an over."""
    total = unders + overs + remaining
    if overs == 0:
        return False
    return math.floor((total - 1) * percentile / 100.0) >= unders + remaining


def significantly_over(samples: int, overs: int, percentile: float, looks: int,
                       confidence: float = CONFIDENCE) -> tuple[bool, float]:
    """One-sided binomial test of "P(latency > bound) ≤ 1 − p" (the percentile holds), Bonferroni over
    ``looks``: (rejected, p-value)."""
    from scipy.stats import binom

    if samples == 0 or overs == 0:
        return False, 1.0
    p_value = float(binom.sf(overs - 1, samples, 1 - percentile / 100.0))
    return p_value <= (1 - confidence) / max(looks, 1), p_value


def latency_breach(latencies_ms: Sequence[float], percentile: float, bound: float, *, remaining: int | None,
                   looks: int) -> str | None:
    """Why the ``percentile`` ≤ ``bound`` check is breached beyond doubt, or None."""
    values = np.asarray(latencies_ms, dtype=float)
    overs = int((values > bound).sum())
    unders = len(values) - overs
    if remaining is not None and certainly_over(unders, overs, remaining, percentile):
        return (f"{overs} of {len(values)} requests over {bound:g} ms: even if all {remaining} remaining requests "
                f"were under it, p{percentile:g} would stay over")
    rejected, p_value = significantly_over(len(values), overs, percentile, looks)
    if rejected:
        return (f"{overs} of {len(values)} requests over {bound:g} ms: p{percentile:g} is over it "
                f"(one-sided binomial test, p = {p_value:.2g} < {(1 - CONFIDENCE) / max(looks, 1):.2g}: "
                f"{CONFIDENCE:.0%} over {looks} looks)")
    return None


def remaining_requests(max_requests: int, answered: int, scheduled: int | None = None) -> int:
    """Requests whose outcome is still open: of the ``max_requests`` budget (or the open-loop schedule, the
    smaller), all but the ``answered`` ones — requests in flight included, as they may still come in under."""
    budget = max_requests if scheduled is None else min(max_requests, scheduled)
    return max(budget - answered, 0)


def breach_beyond_doubt(spec: slo_module.Slo, scenario: Any, records: Sequence[Record], t0: float, *,
                        remaining: int | None, looks: int) -> dict[str, str] | None:
    """The first bound breached beyond doubt, as ``{"bound", "why"}``; None while every bound can still hold."""
    measured = measured_records(records, scenario, t0)
    failures = sum(1 for r in measured if r.verdict == VERIFY_FAILED)
    if failures > spec.max_verification_failures:
        return {"bound": f"verification failures <= {spec.max_verification_failures}",
                "why": f"{failures} responses failed verification"}
    latencies = measured_latencies_ms(measured_ok_records(records, scenario, t0), scenario, t0)
    for kind, bounds in spec.latency_ms.items():
        for key, bound in bounds.items():
            why = latency_breach(latencies[kind], float(key[1:]), bound, remaining=remaining, looks=looks)
            if why:
                return {"bound": f"latency.{kind}.{key} <= {bound:g} ms", "why": why}
    return None
