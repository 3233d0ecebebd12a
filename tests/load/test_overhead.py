"""summary.json's ``overhead_ms`` from two scrapes of a real vLLM 0.32 ``/metrics`` (captured from the embedded
server, tests/load/data/) and the run's records: client mean minus the server's mean HTTP handling of /pooling."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool.client import Endpoint, PoolingClient
from geopool.load.judge import serverview

DATA = Path(__file__).with_name("data")
BEFORE = (DATA / "vllm032_metrics_before.txt").read_text()
AFTER = (DATA / "vllm032_metrics_after.txt").read_text()


def pooling_figure(text: str, suffix: str) -> float:
    """The capture's own ``http_request_duration_seconds_<suffix>{handler="/pooling"}``, read with a regex."""
    line = re.search(r'^http_request_duration_seconds_' + suffix + r'\{handler="/pooling",method="POST"\} (\S+)$',
                     text, re.M)
    return float(line.group(1))


def scraped(texts: list[str]) -> list[dict]:
    """serverview's samples of ``texts`` served in turn, through one kept client (serverview.Scraper)."""
    answers = iter(texts)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=next(answers)))
    endpoint = Endpoint("http://server.test")
    with PoolingClient(endpoint, transport=transport) as client:
        return [serverview.scrape(endpoint, client=client) for _ in texts]


def test_overhead_is_client_mean_minus_the_http_histogram_delta():
    first, last = scraped([BEFORE, AFTER])
    last = {**last, "t": first["t"] + 10.0}  # the scrapes' own times, a few ms apart, must not decide the window
    requests = pooling_figure(AFTER, "count") - pooling_figure(BEFORE, "count")
    server_ms = (pooling_figure(AFTER, "sum") - pooling_figure(BEFORE, "sum")) / requests * 1000
    assert requests == 1 and 2000 < server_ms < 2300  # what the capture holds: one 2.1 s request
    inside = [record(first["t"] + 0.001, first["t"] + 0.002),
              record(first["t"] + 0.001, first["t"] + 0.005, status=503)]
    outside = [record(first["t"] - 1, first["t"] + 0.001), record(first["t"] + 0.001, last["t"] + 1),
               record(first["t"] + 0.001, first["t"] + 0.002, status=0)]  # transport error: no answer
    overhead = serverview.overhead([first, last], inside + outside)
    assert overhead["requests_server"] == 1 and overhead["requests_client"] == 2
    assert overhead["server_http_mean_ms"] == pytest.approx(server_ms)
    assert overhead["client_mean_ms"] == pytest.approx(2.5, abs=1e-3)
    assert overhead["overhead_mean_ms"] == pytest.approx(2.5 - server_ms, abs=1e-3)
    assert "http_request_duration_seconds" in overhead["source"]


def test_only_the_needed_families_are_parsed_from_the_real_text():
    sample = scraped([AFTER])[0]
    assert sample["http_pooling"]["count"] == pooling_figure(AFTER, "count")
    assert sample["e2e"]["count"] > 0 and sample["running"] == 0.0 and sample["batch"]["count"] > 0


def test_without_the_http_histogram_overhead_says_why():
    stripped = "\n".join(line for line in AFTER.splitlines() if "http_request_duration_seconds" not in line)
    first, last = scraped([stripped, stripped])
    overhead = serverview.overhead([first, last], [record(first["t"], first["t"])])
    assert set(overhead) == {"unavailable"} and "http_request_duration_seconds" in overhead["unavailable"]


@pytest.mark.parametrize("samples, why", [
    ([], "fewer than 2 successful /metrics scrapes"),
    ([{"t": 1.0, "error": "ConnectError"}, {"t": 2.0, "error": "ConnectError"}], "fewer than 2 successful"),
], ids=["no-scrape", "failed-scrapes"])
def test_overhead_needs_two_scrapes(samples, why):
    assert why in serverview.overhead(samples, [])["unavailable"]


def test_no_request_between_the_scrapes_is_unavailable():
    first, last = scraped([AFTER, AFTER])
    assert "no /pooling request" in serverview.overhead([first, last], [])["unavailable"]
