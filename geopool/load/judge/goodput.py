"""Goodput and per-stage figures, computed from a run's per-request records.

Goodput (vLLM RFC #8782): the requests that verified *and* finished within the SLO's per-request
latency bound — ``good`` of ``of`` finished requests after warm-up, as a share and as a rate over the
measured span. The latency is the run's main one: corrected in an open loop, uncorrected in a closed one.

Stages: a staged scenario (``step``, ``spike``, ``ramp``, a sweep) changes its rate or users
mid-run, so run-wide percentiles mix figures of different loads. Each stage gets its own figures,
from the requests whose intended send time (open loop; the actual one in a closed loop) falls in
the stage, after a settle time of :data:`SETTLE_FRACTION` of the stage (at most
:data:`SETTLE_MAX_S`): requests sent just after a change still feel the previous rate's queue.
The run's warm-up also applies (a first stage starts measuring after it). A stage is valid by the
load suite's rules: a successful request, a steady state within the stage, and — with an SLO — no
bound left ``insufficient`` by too few samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geopool.load.judge import slo, stats
from geopool.load.judge.verify import OK, UNFINISHED
from geopool.load.records import Record
from geopool.load.scenario import Scenario

__all__ = ["SETTLE_FRACTION", "SETTLE_MAX_S", "effective_latencies_ms", "goodput_figures", "stage_summaries"]

SETTLE_FRACTION = 0.1
SETTLE_MAX_S = 5.0


def effective_latencies_ms(records: Sequence[Record], scenario: Scenario, measure_from: float,
                           until: float = math.inf) -> np.ndarray:
    """The main latency (ms) of every finished request started in [measure_from, until); a request that
    did not verify counts as infinitely late, so "share >= s" is "s-quantile <= bound"."""
    values = []
    for record in records:
        start = stats.start_of(record)
        if start is None or not measure_from <= start < until or record.verdict == UNFINISHED:
            continue
        if record.verdict != OK:
            values.append(math.inf)
            continue
        begin = start if scenario.open_loop else record.sent
        values.append((record.done - begin) * 1000.0)
    return np.asarray(values, dtype=float)


def goodput_figures(effective_ms: np.ndarray, max_latency_ms: float, span_s: float,
                    open_loop: bool) -> dict[str, Any]:
    """summary.json's ``goodput``: the bound, which latency, good of finished, the share and the rate."""
    good = int((effective_ms <= max_latency_ms).sum())
    finished = len(effective_ms)
    return {"max_latency_ms": max_latency_ms, "latency": "corrected" if open_loop else "uncorrected",
            "good": good, "of": finished, "share": good / finished if finished else None,
            "rps": good / span_s if span_s > 0 else 0.0}


def stage_summaries(records: Sequence[Record], scenario: Scenario, t0: float,
                    slo_spec: slo.Slo | None) -> list[dict[str, Any]]:
    """summary.json's ``stages``: one entry per stage of ``scenario`` (none without stages)."""
    result = []
    begin = 0.0
    for index, stage in enumerate(scenario.stages):
        until = min(stage.until_s, scenario.end_s)
        if until <= begin:
            break
        settle = min(SETTLE_FRACTION * (until - begin), SETTLE_MAX_S)
        measure_from = max(t0 + begin + settle, t0 + scenario.warmup_s)
        inside = [r for r in records if (start := stats.start_of(r)) is not None and start < t0 + until]
        result.append(_stage_entry(index, begin, until, stage, inside, scenario, t0 + begin, measure_from,
                                   slo_spec))
        begin = until
    return result


def _stage_entry(index: int, begin: float, until: float, stage: Any, records: Sequence[Record],
                 scenario: Scenario, stage_t0: float, measure_from: float, slo_spec: slo.Slo | None) -> dict[str, Any]:
    # summarize() measures from t0 + warmup_s: the stage's start plus its settle (and the run's warm-up)
    settle_s = max(measure_from - stage_t0, 0.0)
    sub = _with_warmup(scenario, settle_s)
    summary = stats.summarize(records, sub, stage_t0)
    entry: dict[str, Any] = {
        "index": index, "from_s": begin, "until_s": until, "settle_s": settle_s,
        **({"rate": stage.rate} if scenario.open_loop else {"users": stage.users}),
        "requests": summary["requests"]["measured"], "ok": summary["requests"]["ok"],
        "throughput_rps": summary["throughput_rps"], "error_rate": summary["error_rate"],
        "latency_ms": summary["latency_ms"],
    }
    reasons = list(summary["invalid_reasons"])
    if slo_spec is not None:
        latencies = stats.measured_latencies_ms(records, sub, stage_t0)
        if slo_spec.goodput is not None:
            effective = effective_latencies_ms(records, scenario, measure_from, stage_t0 + (until - begin))
            latencies["goodput"] = effective
            summary["goodput"] = entry["goodput"] = goodput_figures(
                effective, slo_spec.goodput.max_latency_ms, summary["measured_seconds"], scenario.open_loop)
        checks = slo.evaluate(slo_spec, summary, latencies)
        entry["slo_checks"] = checks
        reasons += [f"too few samples for {check['bound']}" for check in checks if check["state"] == "insufficient"]
        entry["slo_breached"] = any(check["state"] == "breached" for check in checks)
    entry.update(valid=not reasons, invalid_reasons=reasons)
    return entry


def _with_warmup(scenario: Scenario, warmup_s: float) -> Scenario:
    """The scenario with ``warmup_s`` as its warm-up (kept below duration_s, which summarize never reads)."""
    return scenario.with_overrides(warmup_s=warmup_s, duration_s=max(scenario.duration_s, warmup_s + 1.0))
