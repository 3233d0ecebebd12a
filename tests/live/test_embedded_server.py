"""Live tests against the real embedded vLLM server (float32, prithvi-tiny-tl)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from geopool import wire
from geopool.client import AsyncPoolingClient, PoolingClient
from geopool.errors import PoolingHTTPError

pytestmark = pytest.mark.live


def _body(server, fill_coords: float = 1.0, fmt: wire.InputFormat = "torch", **kwargs) -> dict:
    contract = server.contract
    inputs = wire.seed_inputs(contract)
    inputs["location_coords"] = np.full(contract.input_shape("location_coords"), fill_coords, np.float32)
    encoded = {k: wire.encode_array(v, dtype=contract.input_dtype, fmt=fmt) for k, v in inputs.items()}
    return wire.pooling_request(server.model_name, encoded, **kwargs)


@pytest.fixture(scope="module")
def client(embedded_server):
    with PoolingClient(embedded_server.url) as client:
        yield client


@pytest.fixture(scope="module")
def seed_output(embedded_server, client) -> np.ndarray:
    response = client.pool(_body(embedded_server))
    assert response.status == 200
    return wire.decode_json_response(response.json(), embedded_server.contract.output_shape)


def test_seed_request_decodes_to_the_contract_shape(embedded_server, seed_output):
    assert embedded_server.contract.output_shape == (1, 2, 512, 512)
    assert seed_output.shape == (1, 2, 512, 512) and seed_output.dtype == np.float32
    assert np.isfinite(seed_output).all()
    assert seed_output.std() > 0, "a random-weight model should not answer a constant tensor"


def test_same_request_twice_is_identical(embedded_server, client, seed_output):
    again = wire.decode_json_response(client.pool(_body(embedded_server)).json(), seed_output.shape)
    np.testing.assert_array_equal(again, seed_output)


def test_location_coords_change_the_output(embedded_server, client, seed_output):
    other = wire.decode_json_response(client.pool(_body(embedded_server, fill_coords=-40.0)).json(),
                                       seed_output.shape)
    assert np.abs(other - seed_output).max() > 1e-4


def test_npy_inputs_and_bytes_output_agree_with_the_seed(embedded_server, client, seed_output):
    response = client.pool(_body(embedded_server, fmt="npy", encoding_format="bytes"))
    assert response.headers["content-type"].startswith("application/octet-stream")
    decoded = wire.decode_bytes_response(response.content, response.metadata, seed_output.shape)
    np.testing.assert_array_equal(decoded, seed_output)


@pytest.mark.parametrize("embed_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("endianness", ["big", "little"])
def test_reduced_precision_outputs_match_float32(embedded_server, client, seed_output, embed_dtype, endianness):
    response = client.pool(_body(embedded_server, embed_dtype=embed_dtype, endianness=endianness))
    decoded = wire.decode_json_response(response.json(), seed_output.shape,
                                         embed_dtype=embed_dtype, endianness=endianness)
    relative = {"float16": 2**-11, "bfloat16": 2**-8}[embed_dtype]
    np.testing.assert_allclose(decoded, seed_output, rtol=relative, atol=1e-6)


def test_service_endpoints(embedded_server, client):
    assert client.health() is True
    assert client.version() == "0.32.0"
    assert client.models() == [embedded_server.model_name]
    assert "vllm:" in client.metrics()
    assert "/pooling" in client.openapi()["paths"]


def test_unknown_model_is_a_typed_404(embedded_server, client):
    body = _body(embedded_server)
    body["model"] = "no-such-model"
    with pytest.raises(PoolingHTTPError) as info:
        client.pool(body)
    assert info.value.status == 404 and "no-such-model" in info.value.error["message"]


async def test_async_client_concurrent_requests(embedded_server, seed_output):
    async with AsyncPoolingClient(embedded_server.url) as client:
        responses = await asyncio.gather(*(client.pool(_body(embedded_server)) for _ in range(3)))
    for response in responses:
        decoded = wire.decode_json_response(response.json(), seed_output.shape)
        # Batched CPU results are close but not bitwise equal to a lone request (measured: 2.2e-7).
        np.testing.assert_allclose(decoded, seed_output, atol=1e-5)


def test_geopool_request_against_a_running_server(embedded_server):
    from click.testing import CliRunner

    from geopool.cli import main

    result = CliRunner().invoke(main, ["request", "--base-url", embedded_server.url, "--input-dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert "→ 200" in result.output and "shape (1, 2, 512, 512), dtype float32, finite True" in result.output
