"""Scheduling of the project's slowest test: the plain conformance run shares the machine with the
fault matrix instead of queueing behind it.

The plain run (``pytest conformance/`` with no URL: the suite starts its own server and restarts it
after each of the inputs that kill vLLM 0.32) is ~9 minutes, nearly all of it vLLM start-ups, each
on one core; the fault matrix is ~6 minutes of requests to another server. Both judge verdicts, not
timings, so the matrix module starts the plain run in the background, and the plain run's test,
moved to the end of the session, waits for it. Run on its own, the test starts it itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from geopool import wire
from geopool.client import PROBE_TIMEOUT, PoolingClient
from geopool.resources import DATA_PACKAGES, suite_dir
from geopool.server import EmbeddedServer

PLAIN_RUN_TEST = "test_plain_run_against_the_embedded_server"


def suite_command(*args: str) -> list[str]:
    """``pytest conformance/`` as a user runs it from the checkout."""
    return [sys.executable, "-m", "pytest", str(suite_dir()), "-p", "no:cacheprovider", *args]


class BackgroundSuiteRun:
    """One plain conformance run in a child process, started once, waited for once."""

    def __init__(self, folder: Path) -> None:
        self.report = folder / "conformance.json"
        self.junit = folder / "junit.xml"
        self._stdout, self._stderr = folder / "stdout.txt", folder / "stderr.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self.started: float | None = None

    def start(self) -> None:
        if self._process is not None:
            return
        self.started = time.monotonic()
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self._process = subprocess.Popen(
                suite_command("--conformance-report", str(self.report), "--junitxml", str(self.junit)),
                stdout=out, stderr=err, cwd=self.report.parent)  # its reports/ (logs, killers) of its own

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
            self._process.terminate()  # the suite stops its server on SIGTERM (fixture teardown)
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
