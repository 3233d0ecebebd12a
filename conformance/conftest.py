"""Fixtures of the conformance suite (its plugin, geopool.conformance.plugin, is loaded by the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from geopool import wire
from geopool.client import PoolingClient, PoolingResponse
from geopool.conformance import recipes
from geopool.conformance.support import body_for, send
from geopool.conformance.target import Target


class RecordingClient(PoolingClient):
    """The suite's client: notes each request it sends, so a failing check's reproducer can rebuild it."""

    def pool(self, body: dict, *, request_id: str | None = None) -> PoolingResponse:
        recipes.sent(body)
        return super().pool(body, request_id=request_id)

    def post_raw(self, path: str, content: bytes, **options) -> httpx.Response:
        recipes.sent(content, path=path)
        return super().post_raw(path, content, **options)


@pytest.fixture(scope="session")
def client(target: Target) -> Iterator[PoolingClient]:
    with RecordingClient(target.endpoint) as client:
        yield client


@pytest.fixture(scope="session")
def seed_arrays(target: Target) -> dict[str, np.ndarray]:
    """The seed client's inputs (all ones) in the contract's shapes."""
    return wire.seed_inputs(target.contract)


@pytest.fixture(scope="session")
def baseline_body(target: Target, seed_arrays) -> dict:
    """The seed request, asking for encoding_format base64, float32, little-endian."""
    return body_for(target, seed_arrays, embed_dtype="float32", endianness="little")


@pytest.fixture(scope="session")
def baseline_response(client: PoolingClient, baseline_body: dict) -> PoolingResponse:
    """The seed request's answer, which other answers are compared with."""
    return send(client, baseline_body, "POOL-ENV-001")


@pytest.fixture(scope="session")
def baseline(target: Target, baseline_response: PoolingResponse) -> np.ndarray:
    return wire.decode_json_response(baseline_response.json(), target.contract.output_shape)


@pytest.fixture(scope="session")
def io_valid_input(target: Target):
    """A valid 512×512 6-band GeoTIFF in the folder the server reads (image-to-image runs)."""
    from geopool.conformance.io_support import write_input
    from geopool.geotiff import RasterSpec

    if target.io_input_dir is None:
        pytest.skip("not checked: no folder shared with the server (pass --io-input-dir)")
    return write_input(target, RasterSpec(seed=1), "valid-512.tif")


@pytest.fixture(scope="session")
def io_guard(request: pytest.FixtureRequest, target: Target, io_valid_input):
    """The survival guard of image-to-image runs (a valid GeoTIFF must still get a correct answer)."""
    from geopool.conformance.io_support import IOServerGuard
    from geopool.conformance.plugin import GUARD_KEY, LAST_TEST_KEY

    found = IOServerGuard(target, io_valid_input)
    found.last_test = request.config.stash.get(LAST_TEST_KEY, False)
    request.config.stash[GUARD_KEY] = found
    return found


@pytest.fixture(scope="session")
def io_reads_files(target: Target, io_valid_input) -> bool:
    """Whether the server answers a valid GeoTIFF at all: a server that reads no file (D8) refuses every
    path alike and names none, which says nothing about existence oracles or paths in messages."""
    from geopool.conformance.io_support import io_post
    from geopool.geotiff import io_request

    return io_post(target, io_request(target.model, str(io_valid_input))).status == 200
