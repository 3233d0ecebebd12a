"""Exact statistics of a run, computed from its per-request records (never from Locust's buckets).

- Percentiles: numpy's linear interpolation over every latency after warm-up.
- Corrected latency (open loop) runs from the *intended* send time, uncorrected from the actual one;
  in a closed loop there is no schedule, so both are the same and are labelled so.
- Sample sufficiency: MLPerf LoadGen's early-stopping rule (confidence 99 %, tolerance 0).
- Steady state: perf_analyzer's rule — the last 3 windows (of ``window_requests`` completions each)
  have throughput and mean latency within ``stability_tolerance`` (10 %, as perf_analyzer's -s: max/min ≤ 1.10).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geopool.load.judge.verify import HTTP_ERROR, OK, TRANSPORT_ERROR, UNFINISHED, VERIFY_FAILED
from geopool.load.records import Record
from geopool.load.scenario import STABILITY, Scenario

__all__ = ["PERCENTILES", "early_stopping_check", "measured_latencies_ms", "measured_ok_records", "min_samples",
           "summarize", "under_latency_needed"]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
CONFIDENCE = 0.99
STABLE_WINDOWS = 3


@functools.lru_cache(maxsize=4096)
def under_latency_needed(overs: int, percentile: float, confidence: float = CONFIDENCE) -> int:
    """LoadGen's h(t): fewest under-bound samples that, with ``overs`` over it, show the percentile holds.

    Smallest h with I_p(h, t+1) ≤ 1 − confidence (I = regularized incomplete beta).
    """
    from scipy.special import betainc  # here: scipy is slow to import, and only this estimate needs it

    p = percentile / 100.0
    low, high = 1, 2
    while betainc(high, overs + 1, p) > 1 - confidence:
        high *= 2
    while low < high:
        middle = (low + high) // 2
        if betainc(middle, overs + 1, p) <= 1 - confidence:
            high = middle
        else:
            low = middle + 1
    return low


def min_samples(percentile: float) -> int:
    """Fewest samples for which LoadGen reports any early-stopping estimate of ``percentile``."""
    return under_latency_needed(1, percentile) + 1


def early_stopping_estimate(latencies: Sequence[float], percentile: float) -> float | None:
    """LoadGen's single-stream estimate: the latency at sorted index q − t, t the most overs q allows."""
    ordered = np.sort(np.asarray(latencies, dtype=float))
    q = len(ordered)
    overs = 0
    while under_latency_needed(overs + 1, percentile) + overs + 1 <= q:
        overs += 1
    if overs == 0:
        return None
    return float(ordered[q - overs])


def early_stopping_check(latencies: Sequence[float], percentile: float, bound: float) -> dict[str, Any]:
    """LoadGen's server-scenario rule for "percentile ≤ bound": ``met``, ``breached`` or ``insufficient``."""
    values = np.asarray(latencies, dtype=float)
    overs = int((values > bound).sum())
    needed = under_latency_needed(overs, percentile) + overs
    observed = float(np.percentile(values, percentile)) if len(values) else math.nan
    if len(values) >= needed:
        state = "met"
    elif len(values) and observed > bound:
        state = "breached"
    else:
        state = "insufficient"
    return {"state": state, "samples": len(values), "over_bound": overs, "needed": needed, "observed": observed}


def _distribution(values_s: np.ndarray) -> dict[str, Any]:
    if not len(values_s):
        return {"count": 0}
    ms = values_s * 1000.0
    out: dict[str, Any] = {"count": len(ms), "mean": float(ms.mean()), "min": float(ms.min()), "max": float(ms.max())}
    for p in PERCENTILES:
        out[_pname(p)] = float(np.percentile(ms, p))
    return out


def _pname(p: float) -> str:
    return f"p{p:g}"


def start_of(record: Record) -> float | None:
    """When a request counts from: its intended send time (open loop), else when it was sent (None: never)."""
    return record.intended if record.intended is not None else record.sent


def measured_records(records: Sequence[Record], scenario: Scenario, t0: float) -> list[Record]:
    """Every request sent (or due) after warm-up, whatever its outcome, in the order given."""
    measure_from = t0 + scenario.warmup_s
    return [r for r in records if (start := start_of(r)) is not None and start >= measure_from]


def summarize(records: Sequence[Record], scenario: Scenario, t0: float) -> dict[str, Any]:
    """Every client-side figure of a run: counts, rates, latencies, sufficiency, steady state, validity."""
    measure_from = t0 + scenario.warmup_s
    measured = measured_records(records, scenario, t0)
    verdicts = [r.verdict for r in measured]
    counts = {name: verdicts.count(value) for name, value in [
        ("ok", OK), ("http_errors", HTTP_ERROR), ("transport_errors", TRANSPORT_ERROR),
        ("verification_failures", VERIFY_FAILED), ("unfinished", UNFINISHED)]}
    finished = len(measured) - counts["unfinished"]
    # a wrong answer is wrong in warm-up too: the correctness bound counts these as well
    warmup_wrong = sum(1 for r in records if r.verdict == VERIFY_FAILED) - counts["verification_failures"]
    counts.update(total=len(records), warmup_excluded=len(records) - len(measured), measured=len(measured),
                  finished=finished, warmup_verification_failures=warmup_wrong)
    ok = sorted((r for r in measured if r.verdict == OK), key=lambda r: r.done)
    done = np.array([r.done for r in ok], dtype=float)
    sent = np.array([r.sent for r in ok], dtype=float)
    first = np.array([r.first_byte for r in ok], dtype=float)
    intended = np.array([start_of(r) for r in ok], dtype=float)
    uncorrected, corrected, ttfb = done - sent, done - intended, first - sent
    ends = [r.done for r in measured if r.done is not None]
    span = (max(ends) - measure_from) if ends else 0.0
    late = np.array([r.sent - r.intended for r in measured if r.intended is not None and r.sent])
    late_threshold = scenario.late_threshold_ms / 1000.0
    summary: dict[str, Any] = {
        "requests": counts,
        "error_rate": (counts["http_errors"] + counts["transport_errors"]) / finished if finished else None,
        "verification_failure_rate": counts["verification_failures"] / finished if finished else None,
        "measured_seconds": span,
        "throughput_rps": len(ok) / span if span > 0 else 0.0,
        "finished_rps": finished / span if span > 0 else 0.0,
        "latency_ms": {
            "corrected": _distribution(corrected),
            "uncorrected": _distribution(uncorrected),
            "time_to_first_byte": _distribution(ttfb),
            "corrected_means": "intended send time → body read" if scenario.open_loop
            else "closed loop: no schedule, corrected = uncorrected",
        },
        "late_sends": {
            "threshold_ms": scenario.late_threshold_ms,
            "count": int((late > late_threshold).sum()) if len(late) else 0,
            "of": len(late),
            "max_ms": float(late.max() * 1000) if len(late) else 0.0,
            "p99_ms": float(np.percentile(late, 99) * 1000) if len(late) else 0.0,
        },
    }
    main_latency = corrected if scenario.open_loop else uncorrected
    summary["sufficiency"] = {
        _pname(p): {"samples": len(ok), "needed": min_samples(p), "enough": len(ok) >= min_samples(p),
                    "early_stopping_estimate_ms": (None if (e := early_stopping_estimate(main_latency, p)) is None
                                                   else e * 1000.0)}
        for p in PERCENTILES
    }
    summary["steady_state"] = steady_state(done, main_latency, measure_from, scenario.window_requests,
                                           scenario.stability_tolerance)
    reasons = []
    if not ok:
        reasons.append("no successful request after warm-up")
    if not summary["steady_state"]["reached"]:
        reasons.append(f"no steady state: {summary['steady_state']['reason']}")
    summary["invalid_reasons"] = reasons
    summary["valid"] = not reasons
    return summary


def measured_ok_records(records: Sequence[Record], scenario: Scenario, t0: float) -> list[Record]:
    """The successful requests sent (or due) after warm-up, in the order given: the measured sample."""
    return [r for r in measured_records(records, scenario, t0) if r.verdict == OK]


def measured_latencies_ms(records: Sequence[Record], scenario: Scenario, t0: float) -> dict[str, np.ndarray]:
    """Corrected and uncorrected latencies (ms) of the successful requests after warm-up."""
    ok = measured_ok_records(records, scenario, t0)
    done = np.array([r.done for r in ok], dtype=float)
    intended = np.array([start_of(r) for r in ok], dtype=float)
    sent = np.array([r.sent for r in ok], dtype=float)
    return {"corrected": (done - intended) * 1000.0, "uncorrected": (done - sent) * 1000.0}


def steady_state(done: np.ndarray, latency_s: np.ndarray, measure_from: float, size: int,
                 tolerance: float = STABILITY) -> dict[str, Any]:
    """Windows of ``size`` completions: throughput and mean latency of each; stable if the last 3 agree."""
    windows = []
    previous_end = measure_from
    for start in range(0, len(done) - size + 1, size):
        end = float(done[start + size - 1])
        span = max(end - previous_end, 1e-9)
        windows.append({"end": end, "throughput_rps": size / span,
                        "mean_latency_ms": float(latency_s[start:start + size].mean() * 1000)})
        previous_end = end
    result: dict[str, Any] = {"window_requests": size, "windows": windows, "tolerance": tolerance}
    if len(windows) < STABLE_WINDOWS:
        result.update(reached=False, reason=f"{len(windows)} complete window(s) of {size} requests; "
                                            f"{STABLE_WINDOWS} are needed (run longer or lower window_requests)")
        return result
    last = windows[-STABLE_WINDOWS:]
    spreads = {}
    for key in ("throughput_rps", "mean_latency_ms"):
        values = [w[key] for w in last]
        spreads[key] = max(values) / min(values) - 1 if min(values) > 0 else math.inf
    result["spread"] = spreads
    unstable = [f"{key} varies {spread:.0%} over the last {STABLE_WINDOWS} windows"
                for key, spread in spreads.items() if spread > tolerance]
    result.update(reached=not unstable, reason="; ".join(unstable))
    return result
