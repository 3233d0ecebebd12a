"""The server's own view of a run, from vLLM's Prometheus ``/metrics`` scraped before, during and after.

vLLM 0.32 (verified on the embedded server) exports histograms ``vllm:e2e_request_latency_seconds``,
``vllm:request_queue_time_seconds``, ``vllm:request_inference_time_seconds`` and
``vllm:iteration_tokens_total`` (tokens per engine step; each pooling request is one prompt token, so
this is the batch size), and gauges ``vllm:num_requests_running`` / ``vllm:num_requests_waiting``.
The HTTP layer's own histogram ``http_request_duration_seconds{handler="/pooling"}`` (every request the
server answered, from the first byte read to the last written, JSON, base64 and ``torch.load`` included)
gives :func:`overhead`: what the client adds on top of the server's whole handling.
Figures for a window are differences of the cumulative counters between two scrapes; a server
percentile is only known to a bucket, so it is reported as the bucket's upper bound ("at most"),
unlike the client's exact ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geopool import wire
from geopool.client import PROBE_TIMEOUT, Endpoint, PoolingClient
from geopool.errors import GeopoolError
from geopool.load.records import Record, clock

__all__ = ["GAUGE_EVIDENCE_SCRAPES", "HISTOGRAMS", "HTTP_POOLING", "UNMEASURED", "Scraper", "gauge_movement",
           "overhead", "scrape", "server_summary"]

HISTOGRAMS = {
    "e2e": "vllm:e2e_request_latency_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "inference": "vllm:request_inference_time_seconds",
    "batch": "vllm:iteration_tokens_total",
}
GAUGES = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting"}
#: The HTTP layer's latency histogram (prometheus-fastapi-instrumentator in vLLM) and the handler label of /pooling.
HTTP_DURATION, HTTP_POOLING = "http_request_duration_seconds", {"handler": "/pooling"}
#: Only these families are parsed: vLLM exports hundreds of lines, and the scrape runs every second.
FAMILIES = (*GAUGES.values(), *HISTOGRAMS.values(), HTTP_DURATION)
OVERHEAD_SOURCE = ('client mean (done - sent) minus the server\'s mean http_request_duration_seconds'
                   '{handler="/pooling"}, both over the requests between the first and last /metrics scrape')


def scrape(endpoint: Endpoint, *, client: PoolingClient | None = None) -> dict[str, Any]:
    """One scrape of ``/metrics`` (headers and auth from ``endpoint``, the probe timeout; ``client``: a kept
    one) as a flat sample: ``t``, the gauges and histograms above and ``http_pooling`` (None when not
    exported); ``error`` says why when it failed."""
    sample: dict[str, Any] = {"t": clock()}
    try:
        if client is None:
            with PoolingClient(endpoint, timeout=PROBE_TIMEOUT) as client:
                text = client.metrics()
        else:
            text = client.metrics()
        families = wire.read_metrics(text, only=FAMILIES)
    except (GeopoolError, ValueError) as exc:  # ValueError: the text is not Prometheus format
        sample["error"] = f"{type(exc).__name__}: {exc}"[:200]
        return sample
    for key, name in GAUGES.items():
        sample[key] = wire.gauge(families, name)
    for key, name in HISTOGRAMS.items():
        sample[key] = wire.histogram(families, name)
    sample["http_pooling"] = wire.histogram(families, HTTP_DURATION, **HTTP_POOLING)
    return sample


class Scraper:
    """:func:`scrape` over one kept client per endpoint, for a run's scrape every second: a new httpx client
    per scrape cost ~25 ms of the generator's CPU (its TLS context loads the CA bundle). :meth:`close` at the end."""

    def __init__(self) -> None:
        self._endpoint: Endpoint | None = None
        self._client: PoolingClient | None = None

    def __call__(self, endpoint: Endpoint) -> dict[str, Any]:
        if self._client is None or endpoint != self._endpoint:
            self.close()
            self._endpoint, self._client = endpoint, PoolingClient(endpoint, timeout=PROBE_TIMEOUT)
        return scrape(endpoint, client=self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def overhead(samples: Sequence[dict[str, Any]], records: Sequence[Record]) -> dict[str, Any]:
    """summary.json's ``overhead_ms``: client mean latency minus the server's mean HTTP handling time of
    ``/pooling``, both over the requests between the first and the last successful scrape.

    The client side counts every request the server answered (any HTTP status: the server's histogram
    counts those too); ``{"unavailable": why}`` when the server does not export the histogram or no
    request fell between two scrapes."""
    good = [s for s in samples if "error" not in s]
    if len(good) < 2:
        return {"unavailable": "fewer than 2 successful /metrics scrapes"}
    first, last = good[0], good[-1]
    if not first.get("http_pooling") or not last.get("http_pooling"):
        return {"unavailable": f'the server exports no {HTTP_DURATION}{{handler="/pooling"}} histogram '
                               "(vLLM's HTTP metrics are off, or another server)"}
    count = last["http_pooling"]["count"] - first["http_pooling"]["count"]
    answered = [r.done - r.sent for r in records
                if r.status and r.sent is not None and r.done is not None
                and first["t"] <= r.sent and r.done <= last["t"]]
    if count <= 0 or not answered:
        return {"unavailable": f"no /pooling request between the first and last scrape (server {int(count)}, "
                               f"client {len(answered)})"}
    client_mean = sum(answered) / len(answered) * 1000
    server_mean = (last["http_pooling"]["sum"] - first["http_pooling"]["sum"]) / count * 1000
    return {"client_mean_ms": client_mean, "server_http_mean_ms": server_mean,
            "overhead_mean_ms": client_mean - server_mean, "requests_server": int(count),
            "requests_client": len(answered), "source": OVERHEAD_SOURCE}


#: Scrapes taken while the run had requests in flight that ``vllm:num_requests_running`` must be seen above 0
#: in before its series counts as a measurement. vLLM 0.32's embedded CPU server stayed at 0 in all 46 of a
#: 0.8 req/s run's (its requests take ~0.3 s, the engine ~0.1 s of it: a working gauge shows one in a few).
GAUGE_EVIDENCE_SCRAPES = 8
#: The gauge states whose series is no measurement (:func:`gauge_movement`).
UNMEASURED = ("flat", "absent")


def gauge_movement(samples: Sequence[dict[str, Any]], records: Sequence[Record]) -> dict[str, Any]:
    """Whether the server's queue gauges measure anything: ``vllm:num_requests_running`` seen above 0 while
    this run had requests in flight (``moved``), never above 0 in :data:`GAUGE_EVIDENCE_SCRAPES` or more such
    scrapes (``flat``: a gauge that never moves is not a measurement), too few such scrapes to tell
    (``unknown``), or not exported (``absent``). ``line`` says it in words."""
    good = [s for s in samples if "error" not in s]
    sent = np.sort([r.sent for r in records if r.sent is not None])
    done = np.sort([r.done for r in records if r.sent is not None and r.done is not None])
    times = np.asarray([s["t"] for s in good], dtype=float)
    in_flight = np.searchsorted(sent, times, side="right") - np.searchsorted(done, times, side="left")
    loaded = [sample for sample, count in zip(good, in_flight, strict=True) if count > 0]
    values = [sample.get("running") for sample in loaded]
    result: dict[str, Any] = {"gauge": GAUGES["running"], "loaded_scrapes": len(loaded),
                              "max_in_flight": int(in_flight.max()) if len(in_flight) else 0}
    if good and all(sample.get("running") is None for sample in good):
        return {**result, "state": "absent", "line": f"the server exports no {GAUGES['running']}"}
    if any((value or 0) > 0 for value in values):
        return {**result, "state": "moved", "line": f"{GAUGES['running']} moved under this run's load"}
    if len(loaded) >= GAUGE_EVIDENCE_SCRAPES:
        return {**result, "state": "flat",
                "line": f"not measurable: {GAUGES['running']} stayed 0 at all {len(loaded)} scrapes taken while up "
                        f"to {result['max_in_flight']} of this run's requests were in flight"}
    return {**result, "state": "unknown",
            "line": f"{GAUGES['running']} not seen above 0 in {len(loaded)} scrapes under load (too few to tell)"}


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
