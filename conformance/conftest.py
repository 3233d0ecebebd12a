"""Fixtures of the conformance suite (its plugin, geopool.conformance.plugin, is loaded by the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from geopool import wire
from geopool.client import PoolingClient, PoolingResponse
from geopool.conformance.support import body_for, send
from geopool.conformance.target import Target


@pytest.fixture(scope="session")
def client(target: Target) -> Iterator[PoolingClient]:
    with target.client() as client:
        yield client


@pytest.fixture(scope="session")
def seed_arrays(target: Target) -> dict[str, np.ndarray]:
    """The seed client's inputs (all ones) in the contract's shapes."""
    return wire.seed_inputs(target.contract)


@pytest.fixture(scope="session")
def baseline_response(target: Target, client: PoolingClient, seed_arrays) -> PoolingResponse:
    """The seed request answered with encoding_format base64, float32, little-endian."""
    return send(client, body_for(target, seed_arrays, embed_dtype="float32", endianness="little"), "POOL-ENV-001")


@pytest.fixture(scope="session")
def baseline(target: Target, baseline_response: PoolingResponse) -> np.ndarray:
    return wire.decode_json_response(baseline_response.json(), target.contract.output_shape)
