"""The loopback listener of the URL checks, driven with httpx: served bodies, 404s, holds that close()
releases at once, the record of requests and connections, and a closed port that refuses."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from geopool.errors import InvalidArgument
from geopool.geotiff.listener import LoopbackListener, closed_port_url

TIMEOUT = httpx.Timeout(10.0)


def test_a_served_path_answers_its_body_and_status_and_is_recorded():
    with LoopbackListener() as listener:
        url = listener.serve("/tile.tif", b"GEOTIFF-BYTES")
        listener.serve("/gone.tif", b"no", status=410)
        assert url == f"http://127.0.0.1:{listener.port}/tile.tif"
        answer = httpx.get(url, timeout=TIMEOUT)
        assert (answer.status_code, answer.content) == (200, b"GEOTIFF-BYTES")
        assert httpx.get(listener.url("/gone.tif"), timeout=TIMEOUT).status_code == 410
        seen = listener.requests()
        assert [(s.method, s.path) for s in seen] == [("GET", "/tile.tif"), ("GET", "/gone.tif")]
        assert seen[0].at <= seen[1].at <= time.monotonic()
        assert listener.connections == 2


def test_an_unset_path_answers_404_and_a_fresh_listener_has_seen_nothing():
    with LoopbackListener() as listener:
        assert listener.requests() == [] and listener.connections == 0
        assert httpx.get(listener.url("/missing.tif?x=1"), timeout=TIMEOUT).status_code == 404
        assert [s.path for s in listener.requests()] == ["/missing.tif?x=1"]


def test_a_hold_sends_nothing_until_close_releases_it_at_once():
    listener = LoopbackListener().start()
    url = listener.hold("/slow.tif", seconds=300)
    outcome: list[object] = []

    def fetch() -> None:
        try:
            outcome.append(httpx.get(url, timeout=httpx.Timeout(60.0)))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    fetcher = threading.Thread(target=fetch, daemon=True)
    fetcher.start()
    deadline = time.monotonic() + 10
    while not listener.requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [s.path for s in listener.requests()] == ["/slow.tif"]
    fetcher.join(timeout=0.5)
    assert fetcher.is_alive(), f"the held request ended before close: {outcome}"
    closed_at = time.monotonic()
    listener.close()
    fetcher.join(timeout=5)
    released_after = time.monotonic() - closed_at
    assert not fetcher.is_alive() and released_after < 3, released_after
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.RemoteProtocolError), outcome


def test_a_short_hold_closes_the_connection_without_an_answer_by_itself():
    with LoopbackListener() as listener:
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(listener.hold("/brief.tif", seconds=0.3), timeout=TIMEOUT)
        assert 0.25 <= time.monotonic() - started < 5


def test_a_connection_without_a_request_is_counted_but_not_recorded_as_a_request():
    with LoopbackListener() as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
            deadline = time.monotonic() + 5
            while listener.connections == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert listener.connections == 1 and listener.requests() == []


def test_the_closed_port_url_is_loopback_and_refuses():
    url = closed_port_url()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/nothing.tif")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=TIMEOUT)


@pytest.mark.parametrize(("call", "message"), [
    (lambda listener: listener.serve("tile.tif", b""), "path='tile.tif'"),
    (lambda listener: listener.serve("/x", b"", status=42), "status=42"),
    (lambda listener: listener.hold("/x", seconds=-1), "seconds=-1"),
    (lambda listener: listener.hold("/x", seconds=10_000), "seconds=10000"),
], ids=["relative-path", "bad-status", "negative-hold", "endless-hold"])
def test_misuse_is_refused_naming_the_argument(call, message):
    with LoopbackListener() as listener, pytest.raises(InvalidArgument, match=message):
        call(listener)


def test_a_listener_not_started_has_no_port():
    with pytest.raises(InvalidArgument, match="not started"):
        LoopbackListener().url("/x")
