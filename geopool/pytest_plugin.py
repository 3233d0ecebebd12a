"""pytest fixtures for suites that need the embedded server: ``pytest_plugins = ["geopool.pytest_plugin"]``.

Options: ``--embedded-model`` (fixture name or folder), ``--embedded-dtype`` and ``--embedded-device``,
the same rows as ``geopool serve``'s (:mod:`geopool.options`); the server is started once per session,
on first use, and stopped at the end of the session (also on Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geopool import options
from geopool.server import EmbeddedServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("geopool", "geopool embedded vLLM server")
    options.add_pytest(group, options.PYTEST_EMBEDDED)


@pytest.fixture(scope="session")
def embedded_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    """A running embedded vLLM server, shared by the whole session."""
    server = EmbeddedServer(request.config.getoption("embedded_model"),
                            dtype=request.config.getoption("embedded_dtype"),
                            device=request.config.getoption("embedded_device"))
    with server:
        yield server
