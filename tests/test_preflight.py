"""The preflight's rule (geopool/preflight.py) on hand-made answers: a 4xx to the seed request makes the target
unusable, with the answer quoted; a 2xx, a 5xx or no answer at all leave the judging to the suites. The live
runs through a refusing proxy are in tests/gate/test_gate_live.py."""

from __future__ import annotations

import json

import httpx
import pytest

from geopool import wire
from geopool.client import Endpoint
from geopool.contract import load_contract
from geopool.preflight import refusal

CONTRACT = load_contract(None, input_dtype="float32")


def _answering(status: int, message: str = "no", seen: list | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        if status >= 600:
            raise httpx.ConnectError("connection refused", request=request)
        if status == 200:
            return httpx.Response(200, json={"id": "p", "object": "list", "data": []})
        return httpx.Response(status, content=wire.error_json(message, type="BadRequestError", code=status))

    return httpx.MockTransport(handle)


def test_the_seed_request_is_sent_to_the_named_model_in_the_contract_dtype():
    seen: list = []
    assert refusal(Endpoint("http://server"), CONTRACT, "prithvi", transport=_answering(200, seen=seen)) is None
    body, = seen
    assert body["model"] == "prithvi" and set(wire.image_embeds(body)) == {spec.name for spec in CONTRACT.inputs}


@pytest.mark.parametrize(("status", "hint"), [(400, "docs/vllm-versions.md"), (401, "--api-key"), (404, "--model")])
def test_a_refused_seed_request_is_one_line_quoting_the_answer(status, hint):
    line = refusal(Endpoint("http://server"), CONTRACT, "m",
                   transport=_answering(status, "Token id 1 is out of vocabulary"))
    assert line is not None and "\n" not in line
    assert f"HTTP {status}: 'Token id 1 is out of vocabulary'" in line and hint in line


@pytest.mark.parametrize("status", [408, 429, 500, 503, 600])
def test_a_server_failure_or_a_rate_limit_is_left_to_the_requirements(status):
    assert refusal(Endpoint("http://server"), CONTRACT, "m", transport=_answering(status)) is None
