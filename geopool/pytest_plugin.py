"""pytest fixtures for suites that need the embedded server: ``pytest_plugins = ["geopool.pytest_plugin"]``.

Options: ``--embedded-model`` (fixture name or folder), ``--embedded-dtype`` and ``--embedded-device``,
the same rows as ``geopool serve``'s (:mod:`geopool.options`), declared only in a run that asks for geopool
(:mod:`geopool.pytest_asked`); the server is started once per session, on first use, and stopped at the end
of the session (also on Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geopool import options
from geopool.pytest_asked import declare_if_listed, declare_when_asked
from geopool.server import EmbeddedServer

#: Whether this run declared the options (it asked for geopool: :mod:`geopool.pytest_asked`).
DECLARED = pytest.StashKey[bool]()


def _declare(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("geopool", "geopool embedded vLLM server")
    options.add_pytest(group, options.PYTEST_EMBEDDED)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    declare_when_asked(DECLARED, _declare, parser, pluginmanager)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    declare_if_listed(DECLARED, plugin, manager)


@pytest.fixture(scope="session")
def embedded_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    """A running embedded vLLM server, shared by the whole session (the table's defaults where the run
    declared no option of geopool's)."""
    config = request.config
    server = EmbeddedServer(config.getoption("embedded_model", options.EMBEDDED_MODEL.default),
                            dtype=config.getoption("embedded_dtype", options.EMBEDDED_DTYPE.default),
                            device=config.getoption("embedded_device", options.DEVICE.default))
    with server:
        yield server
