"""geopool.conformance.io_support without a server: io_post's one client per target, its headers and the
error message it keeps."""

from __future__ import annotations

import datetime

import httpx

from geopool.conformance.io_support import io_post
from geopool.conformance.target import Target
from geopool.contract import SEN1FLOODS11


def test_io_post_sends_every_request_through_the_targets_one_client():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response = httpx.Response(400, json={"error": {"message": "no such file", "type": "BadRequestError",
                                                       "param": None, "code": 400}})
        response.elapsed = datetime.timedelta(seconds=0.25)  # a mock transport's answer has no time of its own
        return response

    target = Target("http://server.test", "m", SEN1FLOODS11, "0.32.0", api_key="sekrit")
    client = target._http = httpx.Client(transport=httpx.MockTransport(answer))  # the client http() would make
    first = io_post(target, {"model": "m"}, request_id="geopool-one")
    second = io_post(target, {"model": "m"}, timeout=5.0)
    assert target.http() is client and len(seen) == 2
    assert {str(request.url) for request in seen} == {"http://server.test/pooling"}
    assert seen[0].headers["authorization"] == "Bearer sekrit" and seen[0].headers["connection"] == "close"
    assert seen[0].headers["x-request-id"] == "geopool-one" and second.request_id.startswith("geopool-")
    assert (first.status, first.message, first.elapsed_s) == (400, "no such file", 0.25)
    assert first.evidence() == {"status": 400, "server_message": "no such file", "request_id": "geopool-one"}
    target.close()
    assert client.is_closed and target._http is None


def test_a_target_makes_its_client_once_and_only_when_asked():
    target = Target("http://server.test", "m", SEN1FLOODS11, "0.32.0")
    assert target._http is None
    assert target.http() is target.http()
    target.close()
    target.close()  # closing twice is harmless (a session's cleanup and a test's)
