"""geopool.wire.metrics on a literal vLLM /metrics sample, and serverview.scrape reading it through the client."""

from __future__ import annotations

import httpx
import pytest

from geopool import wire
from geopool.client import Endpoint, PoolingClient
from geopool.load.judge import serverview

# Trimmed from vLLM 0.32's /metrics (two engines for the histogram, to check the sums over label sets).
SAMPLE = """\
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="prithvi"} 7.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="prithvi"} 1.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="other"} 100.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="prithvi"} 2.0
vllm:num_requests_running{engine="1",model_name="prithvi"} 1.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="prithvi"} 4.5
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="prithvi"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.5",model_name="prithvi"} 6.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="prithvi"} 8.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="prithvi"} 8.0
vllm:e2e_request_latency_seconds_sum{engine="1",model_name="prithvi"} 0.5
vllm:e2e_request_latency_seconds_bucket{engine="1",le="0.3",model_name="prithvi"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="1",le="0.5",model_name="prithvi"} 2.0
vllm:e2e_request_latency_seconds_bucket{engine="1",le="+Inf",model_name="prithvi"} 2.0
vllm:e2e_request_latency_seconds_count{engine="1",model_name="prithvi"} 2.0
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/pooling",method="POST",status="2xx"} 10.0
http_requests_total{handler="/pooling",method="POST",status="4xx"} 3.0
http_requests_total{handler="/health",method="GET",status="2xx"} 50.0
"""


@pytest.fixture(scope="module")
def families():
    return wire.read_metrics(SAMPLE)


def test_counter_total_sums_matching_label_sets(families):
    assert wire.counter_total(families, "vllm:request_success", model_name="prithvi") == 8.0
    assert wire.counter_total(families, "vllm:request_success_total", model_name="prithvi") == 8.0
    assert wire.counter_total(families, "vllm:request_success") == 108.0
    assert wire.counter_total(families, "http_requests_total", handler="/pooling") == 13.0
    assert wire.counter_total(families, "vllm:request_success", model_name="nobody") == 0.0
    assert wire.counter_total(families, "vllm:no_such_counter") is None


def test_gauge_sums_engines(families):
    assert wire.gauge(families, "vllm:num_requests_running") == 3.0
    assert wire.gauge(families, "vllm:num_requests_running", engine="1") == 1.0
    assert wire.gauge(families, "vllm:num_requests_waiting") is None


def test_histogram_sums_and_cumulative_buckets(families):
    assert wire.histogram(families, "vllm:e2e_request_latency_seconds") == {
        "sum": 5.0, "count": 10.0, "buckets": {"0.3": 2.0, "0.5": 8.0, "+Inf": 10.0}}
    assert wire.histogram(families, "vllm:e2e_request_latency_seconds", engine="1")["count"] == 2.0
    assert wire.histogram(families, "vllm:request_queue_time_seconds") is None


def test_garbage_is_a_value_error():
    with pytest.raises(ValueError):
        wire.read_metrics("vllm:request_success_total{{{ not prometheus\n")


def _serving(monkeypatch, handler) -> Endpoint:
    """serverview.scrape with its client on httpx.MockTransport(handler); returns the endpoint to scrape."""
    def client(endpoint, *, timeout):
        return PoolingClient(endpoint, timeout=timeout, transport=httpx.MockTransport(handler))
    monkeypatch.setattr(serverview, "PoolingClient", client)
    return Endpoint("http://server.test", api_key="secret")


def test_scrape_reads_metrics_through_the_client(monkeypatch):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["path"], seen["auth"] = request.url.path, request.headers.get("authorization")
        return httpx.Response(200, text=SAMPLE)

    sample = serverview.scrape(_serving(monkeypatch, handler))
    assert seen == {"path": "/metrics", "auth": "Bearer secret"}
    assert set(sample) == {"t", "running", "waiting", "http_pooling", *serverview.HISTOGRAMS}
    assert sample["running"] == 3.0 and sample["waiting"] is None and sample["queue"] is None
    assert sample["e2e"] == {"sum": 5.0, "count": 10.0, "buckets": {"0.3": 2.0, "0.5": 8.0, "+Inf": 10.0}}


@pytest.mark.parametrize("answer, error", [
    (httpx.Response(500, text="boom"), "PoolingHTTPError"),
    (httpx.Response(200, text="{{{ not prometheus\n"), "ValueError"),
], ids=["http-500", "garbage"])
def test_a_failed_scrape_is_a_sample_with_an_error(monkeypatch, answer, error):
    sample = serverview.scrape(_serving(monkeypatch, lambda request: answer))
    assert set(sample) == {"t", "error"} and sample["error"].startswith(error)
