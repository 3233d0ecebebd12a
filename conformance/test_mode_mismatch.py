"""Each mode's request sent to a server of the other mode is refused with a 4xx (each test runs in its own
mode: POOL-IO-013 against a plugin server, POOL-IO-014 against a tensor-to-tensor server)."""

from __future__ import annotations

import json

import pytest

from geopool import wire
from geopool.conformance import recipes
from geopool.conformance.io_support import io_post
from geopool.conformance.support import body_for
from geopool.geotiff import io_request


@pytest.mark.requirement("POOL-IO-013")
def test_a_tensor_request_to_a_plugin_server_is_a_4xx(target, io_guard, checks):
    body = json.dumps(body_for(target, wire.seed_inputs(target.contract))).encode()
    with target.client() as client:
        response = client.post_raw("/pooling", body)
    checks.that("POOL-IO-013", 400 <= response.status_code < 500,
                f"a tensor-to-tensor request was answered {response.status_code}", server_message=response.text[:300])
    io_guard.survives(checks, "POOL-IO-013", "a tensor-to-tensor request", case="survives")


@pytest.mark.requirement("POOL-IO-014")
def test_an_image_to_image_request_to_a_tensor_server_is_a_4xx(target, guard, checks):
    result = io_post(target, io_request(target.model, "/nonexistent/geopool-input.tif"))
    checks.that("POOL-IO-014", 400 <= result.status < 500, f"an image-to-image request was answered {result.status}",
                expect=recipes.rejection("status"), **result.evidence())
    guard.survives(checks, "POOL-IO-014", "an image-to-image request")
