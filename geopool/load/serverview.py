"""The server's own view of a run, from vLLM's Prometheus ``/metrics`` scraped before, during and after.

vLLM 0.32 (verified on the embedded server) exports histograms ``vllm:e2e_request_latency_seconds``,
``vllm:request_queue_time_seconds``, ``vllm:request_inference_time_seconds`` and
``vllm:iteration_tokens_total`` (tokens per engine step; each pooling request is one prompt token, so
this is the batch size), and gauges ``vllm:num_requests_running`` / ``vllm:num_requests_waiting``.
Figures for a window are differences of the cumulative counters between two scrapes; a server
percentile is only known to a bucket, so it is reported as the bucket's upper bound ("at most"),
unlike the client's exact ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from geopool.client import Endpoint
from geopool.load.records import clock

__all__ = ["HISTOGRAMS", "scrape", "server_summary"]

HISTOGRAMS = {
    "e2e": "vllm:e2e_request_latency_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "inference": "vllm:request_inference_time_seconds",
    "batch": "vllm:iteration_tokens_total",
}
GAUGES = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting"}


def scrape(endpoint: Endpoint, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """One scrape of ``/metrics`` as a flat sample; ``error`` says why when it failed."""
    sample: dict[str, Any] = {"t": clock()}
    headers = endpoint.headers()
    try:
        response = httpx.get(endpoint.url("/metrics"), timeout=timeout_s, headers=headers)
        response.raise_for_status()
        families = {family.name: family for family in text_string_to_metric_families(response.text)}
    except (httpx.HTTPError, ValueError) as exc:
        sample["error"] = f"{type(exc).__name__}: {exc}"[:200]
        return sample
    for key, name in GAUGES.items():
        family = families.get(name)
        sample[key] = sum(s.value for s in family.samples) if family else None
    for key, name in HISTOGRAMS.items():
        family = families.get(name)
        if family is None:
            sample[key] = None
            continue
        totals: dict[str, float] = {"sum": 0.0, "count": 0.0}
        buckets: dict[str, float] = {}
        for s in family.samples:
            if s.name.endswith("_sum"):
                totals["sum"] += s.value
            elif s.name.endswith("_count"):
                totals["count"] += s.value
            elif s.name.endswith("_bucket"):
                buckets[s.labels["le"]] = buckets.get(s.labels["le"], 0.0) + s.value
        sample[key] = {**totals, "buckets": buckets}
    return sample


def _delta(first: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any] | None:
    if not first or not last:
        return None
    buckets = {le: last["buckets"].get(le, 0.0) - first["buckets"].get(le, 0.0) for le in last["buckets"]}
    return {"sum": last["sum"] - first["sum"], "count": last["count"] - first["count"], "buckets": buckets}


def bucket_quantile(buckets: dict[str, float], q: float) -> float | None:
    """Upper bound of the ``le`` bucket holding quantile ``q``: the q-quantile is at most this.

    (Interpolating inside the bucket, as PromQL does, invents values: queue times of ~0 s in a
    [0, 0.3] bucket would read as 0.15 s.) None without observations, inf past the last bound.
    """
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    for upper, count in bounds:
        if count >= rank:
            return upper
    return math.inf


def server_summary(samples: Sequence[dict[str, Any]], measure_from: float) -> dict[str, Any]:
    """Server figures over the measured window, plus the running/waiting series of the whole run."""
    good = [s for s in samples if "error" not in s]
    failed = len(samples) - len(good)
    result: dict[str, Any] = {"scrapes": len(samples), "failed_scrapes": failed}
    if len(good) < 2:
        result["available"] = False
        result["reason"] = "fewer than 2 successful /metrics scrapes"
        return result
    before = [s for s in good if s["t"] <= measure_from]
    first = before[-1] if before else good[0]
    last = good[-1]
    result.update(available=True, window_seconds=last["t"] - first["t"])
    for key in ("e2e", "queue", "inference"):
        delta = _delta(first.get(key), last.get(key))
        if not delta or delta["count"] <= 0:
            result[key] = None
            continue
        result[key] = {
            "count": int(delta["count"]),
            "mean_ms": delta["sum"] / delta["count"] * 1000,
            **{f"p{q:g}_ms_at_most": (None if (v := bucket_quantile(delta["buckets"], q / 100)) is None else v * 1000)
               for q in (50, 90, 99)},
        }
    batch = _delta(first.get("batch"), last.get("batch"))
    if batch and batch["count"] > 0:
        result["batch"] = {"engine_steps": int(batch["count"]), "mean_size": batch["sum"] / batch["count"],
                           "buckets": batch["buckets"]}
    else:
        result["batch"] = None
    result["series"] = [{"t": s["t"], "running": s.get("running"), "waiting": s.get("waiting")} for s in good]
    return result
