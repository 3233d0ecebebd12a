"""The survival guard restarts a killed server the suite owns, except after the session's last test."""

from __future__ import annotations

import numpy as np
import pytest

from geopool.conformance.guard import ServerGuard
from geopool.conformance.target import Target
from geopool.contract import load_contract
from geopool.fixture_models import resolve_model_dir
from geopool.server import free_port


class CountingServer:
    """Stands in for the owned EmbeddedServer's restart (no vLLM here: what is tested is the guard's choice)."""

    def __init__(self) -> None:
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1


@pytest.fixture
def dead_owned_server() -> Target:
    contract = load_contract(resolve_model_dir("prithvi-tiny-tl"), input_dtype="float32")
    # nothing listens on the port: /health does not answer, as after an engine death
    return Target(url=f"http://127.0.0.1:{free_port()}", model="m", contract=contract, version=None,
                  server=CountingServer())  # type: ignore[arg-type]


@pytest.mark.parametrize(("last_test", "restarts"), [(False, 1), (True, 0)])
def test_a_dead_owned_server_is_restarted_unless_no_test_follows(dead_owned_server, last_test, restarts):
    guard = ServerGuard(dead_owned_server, {}, np.zeros(1))
    guard.last_test = last_test
    guard.recover()
    assert dead_owned_server.server.restarts == guard.restarts == restarts


def test_a_url_is_never_restarted(dead_owned_server):
    server, dead_owned_server.server = dead_owned_server.server, None
    ServerGuard(dead_owned_server, {}, np.zeros(1)).recover()
    assert server.restarts == 0
