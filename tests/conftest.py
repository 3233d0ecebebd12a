"""Scheduling of the project's slowest test: the plain gate run shares the machine with the fault
matrix instead of queueing behind it.

The plain run is ``geopool gate`` with no URL, as a user runs it: the conformance suite starts its own
server and restarts it after each of the inputs that kill vLLM 0.32 (~9 minutes, nearly all of it vLLM
start-ups, each on one core), then the load phase starts another and runs a minute of load. The
fault matrix is ~6 minutes of requests to another server. Both judge verdicts, not timings, so the
matrix module starts the plain run in the background, and the plain run's test, moved to the end of
the session, waits for it. Run on its own, the test starts it itself.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from geopool import wire
from geopool.client import PROBE_TIMEOUT, PoolingClient
from geopool.modes import IMAGE_TO_IMAGE
from geopool.resources import DATA_PACKAGES, suite_dir
from geopool.server import EmbeddedServer

PLAIN_RUN_TEST = "test_plain_gate_against_the_embedded_server"


#: The gate's load phase in the project's tests: the gate scenario with the tolerance the load tests use
#: (window means of 20 requests drift up to ~15 % on 2 cores shared with the server and other tests).
CI_GATE_SCENARIO = """
[scenario.ci-gate]
description = "the gate scenario, with a steady-state tolerance for 2 busy cores"
mode = "closed"
users = 2
duration_s = 60
warmup_s = 10
stability_tolerance = 0.25
"""


def gate_command(folder: Path, *args: str) -> list[str]:
    """``geopool gate`` as a user runs it, reporting into ``folder``, with the tests' load scenario."""
    scenario_file = folder.parent / "ci-gate-scenario.toml"
    scenario_file.write_text(CI_GATE_SCENARIO)
    return [sys.executable, "-m", "geopool.cli", "gate", "--report-dir", str(folder),
            "--scenario-file", str(scenario_file), "--scenario", "ci-gate", *args]


class BackgroundSuiteRun:
    """One plain gate run (no URL: the embedded server) in a child process, started once, waited for once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "gate"
        self.report = self.folder / "conformance" / "conformance.json"
        self.junit = self.folder / "conformance" / "junit.xml"
        self._stdout, self._stderr = folder / "stdout.txt", folder / "stderr.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self.started: float | None = None

    def start(self) -> None:
        if self._process is not None:
            return
        self.started = time.monotonic()
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self._process = subprocess.Popen(gate_command(self.folder), stdout=out, stderr=err,
                                             cwd=self.folder.parent)  # its reports/ (logs, killers) of its own

    def result(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait (starting it if nobody did) and return what it printed; kill it past ``timeout``."""
        self.start()
        assert self._process is not None and self.started is not None
        try:
            code = self._process.wait(timeout=max(1.0, timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return subprocess.CompletedProcess(self._process.args, code, self._stdout.read_text(errors="replace"),
                                           self._stderr.read_text(errors="replace"))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # the gate stops its phases, which stop their servers
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def count_pooling_requests(url: str) -> float:
    """``/pooling`` requests the server has answered so far (its own ``http_requests_total``)."""
    with PoolingClient(url, timeout=PROBE_TIMEOUT) as client:
        families = wire.read_metrics(client.metrics())
    return wire.counter_total(families, "http_requests_total", handler="/pooling") or 0.0


@pytest.fixture(scope="session")
def gate_command_for() -> Callable[..., list[str]]:
    """:func:`gate_command`, for test modules outside this folder."""
    return gate_command


@pytest.fixture(scope="session")
def pooling_requests() -> Callable[[str], float]:
    """``pooling_requests(url)``: how many ``/pooling`` requests that server has answered."""
    return count_pooling_requests


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """geopool's wheel, built once from a clean copy of the source (an in-tree build/ could carry stale files)."""
    repo = suite_dir().parent
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    for folder in ("geopool", *DATA_PACKAGES.values()):
        shutil.copytree(repo / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (found,) = out.glob("geopool-*.whl")
    return found


@pytest.fixture(scope="session")
def float16_server() -> Iterator[EmbeddedServer]:
    """An embedded server loaded with --dtype float16 (the seed client's dtype), shared by the session."""
    with EmbeddedServer(dtype="float16") as server:
        yield server


@pytest.fixture(scope="session")
def io_server() -> Iterator[EmbeddedServer]:
    """An image-to-image embedded server (geopool's plugin, float32), shared by the session."""
    with EmbeddedServer(mode=IMAGE_TO_IMAGE, plugin="geopool") as server:
        yield server


@pytest.fixture(scope="session")
def plain_conformance_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundSuiteRun]:
    run = BackgroundSuiteRun(tmp_path_factory.mktemp("plain-conformance-run"))
    yield run
    run.stop()


@pytest.fixture(scope="module")
def plain_conformance_run_alongside(request: pytest.FixtureRequest) -> None:
    """Used by a module whose tests may share the machine with the plain run: starts it, if selected."""
    if any(item.name == PLAIN_RUN_TEST for item in request.session.items):
        request.getfixturevalue("plain_conformance_run").start()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    plain = [item for item in items if item.name == PLAIN_RUN_TEST]
    for item in plain:  # last: it waits for the background run the fault matrix started
        items.remove(item)
        items.append(item)
