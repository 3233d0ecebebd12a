"""pytest fixtures for suites that need the embedded server: ``pytest_plugins = ["geopool.pytest_plugin"]``.

Options: ``--embedded-model`` (fixture name or folder) and ``--embedded-dtype``; the server is started
once per session, on first use, and stopped at the end of the session (also on Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geopool.contract import INPUT_DTYPES
from geopool.fixture_models import DEFAULT_MODEL
from geopool.server import DEFAULT_DTYPE, EmbeddedServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("geopool", "geopool embedded vLLM server")
    group.addoption("--embedded-model", default=DEFAULT_MODEL,
                    help=f"fixture name or TerraTorch model folder for the embedded server [{DEFAULT_MODEL}]")
    group.addoption("--embedded-dtype", default=DEFAULT_DTYPE, choices=INPUT_DTYPES,
                    help=f"vLLM --dtype of the embedded server [{DEFAULT_DTYPE}]")


@pytest.fixture(scope="session")
def embedded_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    """A running embedded vLLM server, shared by the whole session."""
    server = EmbeddedServer(request.config.getoption("embedded_model"),
                            dtype=request.config.getoption("embedded_dtype"))
    with server:
        yield server
