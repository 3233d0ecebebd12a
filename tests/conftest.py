"""Shared fixtures: one embedded vLLM server (float32, tiny model) for every live test of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geopool.server import EmbeddedServer


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server
