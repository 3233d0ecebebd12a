"""Shared fixtures of the project's tests, and the scheduling of its two longest live runs.

The whole conformance suite is judged against the session's embedded server twice over, at the cost of
few vLLM start-ups:

- the fault matrix's baseline (:func:`matrix_baseline`): every tensor-mode test through the fault proxy's
  ``die-on-killer`` with ``--destructive``: the inputs that kill vLLM 0.32's engine get the 500 and the
  death it gives them (a restart each, ~50 s, if they were sent), everything else reaches the real server;
- the plain gate (:class:`BackgroundSuiteRun`): ``geopool gate`` with no URL, as a user runs it, selecting
  what only an owned server shows: one real engine kill of each kind (its restart included), the API-key,
  canary-file and keep-alive checks; then the load phase starts another server.

Both judge verdicts, not timings, so the baseline's module starts the plain run in the background first,
and the plain run's test, a unit of work of its own placed where the run has ended, waits for it on whichever
worker it lands (the run's files are in a folder every worker sees). Run on its own, the test starts it itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from selections import (  # tests/ is on sys.path
    BASELINE_SELECTION,
    PLAIN_RUN_TEST,
    PLAIN_RUN_TIMEOUT_S,
    REAL_KILLS_SELECTION,
    waive_every_must,
)

from geopool import wire
from geopool.client import PROBE_TIMEOUT, PoolingClient
from geopool.modes import IMAGE_TO_IMAGE
from geopool.resources import DATA_PACKAGES, suite_dir
from geopool.server import EmbeddedServer

#: vLLM's CPU build: the cores its inference threads are bound to.
SERVER_CORE_ENV = "VLLM_CPU_OMP_THREADS_BIND"
MATRIX_SESSION = Path(__file__).parent / "proxy" / "matrix_session.py"
#: The gate's load phase in the project's tests: the gate scenario, shorter, with windows and a tolerance
#: a 2-user loop on 2 busy cores meets (window means drift by 50-100 % and more while the other test
#: workers' servers compute; steadiness is not what these runs judge). It ends after 60 requests (~10 s on
#: idle cores) or 30 s (a busy box), whichever comes first: what these runs judge needs a few windows.
CI_GATE_SCENARIO = """
[scenario.ci-gate]
description = "the gate scenario, short, with a steady-state tolerance for 2 busy cores"
mode = "closed"
users = 2
duration_s = 30
max_requests = 60
warmup_s = 5
window_requests = 5
stability_tolerance = 10
"""


def gate_command(folder: Path, *args: str) -> list[str]:
    """``geopool gate`` as a user runs it, reporting into ``folder``, with the tests' load scenario."""
    scenario_file = folder.parent / "ci-gate-scenario.toml"
    scenario_file.write_text(CI_GATE_SCENARIO)
    return [sys.executable, "-m", "geopool.cli", "gate", "--report-dir", str(folder),
            "--scenario-file", str(scenario_file), "--scenario", "ci-gate", *args]


class BackgroundSuiteRun:
    """One plain gate run (no URL: the embedded server) in a child process, started once per test run (by the
    first worker to ask) and waited for by any worker: its files, and its exit code (``returncode``, written
    when it ends), are in a folder every worker sees."""

    def __init__(self, folder: Path) -> None:
        self.root = folder
        self.folder = folder / "gate"
        self.report = self.folder / "conformance" / "conformance.json"
        self.junit = self.folder / "conformance" / "junit.xml"
        self._stdout, self._stderr = folder / "stdout.txt", folder / "stderr.txt"
        self._started_file, self._code_file = folder / "started", folder / "returncode"
        self._process: subprocess.Popen[bytes] | None = None  # only in the worker that started it

    @property
    def started(self) -> float:
        """When it started (``time.time()``)."""
        return float(self._started_file.read_text())

    @property
    def seconds(self) -> float:
        """How long it ran (once it ended)."""
        return self._code_file.stat().st_mtime - self.started

    def start(self) -> None:
        self.root.mkdir(exist_ok=True)
        with FileLock(self.root / "start.lock", timeout=60):
            if self._started_file.is_file():
                return
            waivers = waive_every_must(self.root / "waivers.toml", "the fault matrix's baseline checks the rest "
                                       "of the suite")
            with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
                self._process = subprocess.Popen(gate_command(self.folder, "--waivers", str(waivers), "--",
                                                              "-k", REAL_KILLS_SELECTION), stdout=out, stderr=err,
                                                 cwd=self.root,  # its reports/ (logs, killers) of its own
                                                 env={**os.environ, SERVER_CORE_ENV: cpu_core_for_servers(1)})
            self._started_file.write_text(str(time.time()))
        process = self._process
        threading.Thread(target=lambda: self._code_file.write_text(str(process.wait())), daemon=True).start()

    def result(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait (starting it if nobody did) and return what it printed; past ``timeout`` seconds from its
        start, stop it (if this worker started it) and fail."""
        self.start()
        deadline = self.started + timeout
        while not self._code_file.is_file():
            if time.time() > deadline:
                self.stop()
                pytest.fail(f"the plain gate run did not end within {timeout:.0f} s:\n"
                            + self._stdout.read_text(errors="replace")[-3000:])
            time.sleep(1)
        code = int(self._code_file.read_text())
        return subprocess.CompletedProcess(["geopool", "gate"], code, self._stdout.read_text(errors="replace"),
                                           self._stderr.read_text(errors="replace"))

    def finish(self, timeout: float) -> None:
        """At the end of the starting worker's session: let the run end (another worker's test may be waiting
        for it) within ``timeout`` seconds of its start, then stop it."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=max(1.0, self.started + timeout - time.time()))
        self.stop()

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


#: Environment variables that would point a conformance run at a target, or change how pytest loads plugins.
TARGET_ENVIRONMENT = ("PYTEST_BASE_URL", "GEOPOOL_API_KEY", "CI", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


@pytest.fixture
def no_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's in-process or pytester runs see no target, key or plugin settings from the caller's shell."""
    for name in TARGET_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


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
    run = BackgroundSuiteRun(run_wide_folder(tmp_path_factory) / "plain-conformance-run")
    yield run
    run.finish(PLAIN_RUN_TIMEOUT_S)


class MatrixSession:
    """This worker's fault-matrix process (tests/proxy/matrix_session.py), started on first use: it runs rows
    (conformance runs through the fault proxy in front of ``server``) on request, one plan at a time."""

    def __init__(self, server: EmbeddedServer, folder: Path) -> None:
        self.server, self.folder = server, folder
        self._child: subprocess.Popen[str] | None = None
        self._plans = 0

    def run(self, rows: list[dict], timeout_s: float = 1800) -> dict[str, dict]:
        """Run ``rows`` (each given a report path here); row → its result. Fails the test if the process
        stops or answers nothing within ``timeout_s``."""
        self._plans += 1
        folder = self.folder / f"plan-{self._plans}"
        folder.mkdir()
        for index, row in enumerate(rows):
            row["report"] = str(folder / f"{index}.json")
        plan = {"upstream": self.server.url, "dtype": self.server.dtype, "model": self.server.model_name,
                "served_dir": str(self.server.served_dir), "out": str(folder / "results.jsonl"), "rows": rows}
        (folder / "plan.json").write_text(json.dumps(plan))
        child = self._started()
        assert child.stdin is not None
        child.stdin.write(f"{folder / 'plan.json'}\n")
        child.stdin.flush()
        done = self._wait_for(f"MATRIX-DONE {folder / 'plan.json'}", timeout_s)
        finished = folder / "results.jsonl"
        lines = finished.read_text().splitlines() if finished.is_file() else []
        results = {line["row"]: line for line in map(json.loads, lines)}
        if not done or len(results) != len(rows):
            missing = [row["row"] for row in rows if row["row"] not in results]
            self.close()
            pytest.fail(f"the matrix process stopped or took over {timeout_s:.0f} s before rows {missing}:\n"
                        + self._log_tail())
        return results

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=30)

    def _started(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            log = (self.folder / "matrix-session.log").open("a")
            self._child = subprocess.Popen([sys.executable, str(MATRIX_SESSION)], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=log, text=True, cwd=suite_dir().parent)
            log.close()
        return self._child

    def _wait_for(self, line: str, timeout_s: float) -> bool:
        """Read the process's stdout until ``line`` (True) or its end or the deadline (False)."""
        child = self._child
        assert child is not None and child.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(timeout=min(left, 30)):
                    continue
                got = child.stdout.readline()
                if not got:  # the process ended
                    return False
                if got.rstrip("\n") == line:
                    return True
        return False

    def _log_tail(self) -> str:
        log = self.folder / "matrix-session.log"
        return log.read_text(errors="replace")[-4000:] if log.is_file() else ""


def _expectations_file(row: str) -> str:
    from geopool.conformance.matrix import options_of
    from geopool.conformance.registry import EXPECTATIONS_DIR

    stem = options_of(row).expectations
    return "none" if stem == "none" else str(EXPECTATIONS_DIR / f"{stem}.toml")


@pytest.fixture(scope="session")
def matrix_session(embedded_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixSession]:
    session = MatrixSession(embedded_server, tmp_path_factory.mktemp("matrix"))
    yield session
    session.close()


@pytest.fixture(scope="session")
def matrix_baseline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fault matrix's baseline: the whole tensor-mode suite through ``die-on-killer``, ``--destructive``,
    vLLM 0.32's expectations (its result, report path included). Run once per test run: by the first worker
    to ask (the baseline's own unit, at the start); a worker that asks later (the client install's unit, which
    compares with it) waits for that result and reads it."""
    shared = run_wide_folder(tmp_path_factory) / "matrix-baseline.json"
    with FileLock(shared.with_suffix(".lock"), timeout=3600):  # the others wait, then read
        if shared.is_file():
            return json.loads(shared.read_text())
        row = {"row": "baseline", "fault": "die-on-killer", "selection": [""], "destructive": True,
               "extra": list(BASELINE_SELECTION), "expectations": _expectations_file("baseline")}
        result = request.getfixturevalue("matrix_session").run([row])["baseline"]
        shared.write_text(json.dumps(result))
        return result


def run_wide_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this run sees (each worker's base temp is a child of the run's)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture
def matrix_row(matrix_session: MatrixSession) -> Callable[[str], dict]:
    """Run one fault-matrix row (or positive control) through this worker's matrix process: its result."""
    from geopool.conformance.matrix import CONTROLS, MATRIX, options_of

    def run(row: str) -> dict:
        selection, _ = {**MATRIX, **CONTROLS}[row]
        spec = {"row": row, "selection": list(selection), "destructive": options_of(row).destructive,
                "expectations": _expectations_file(row)}
        return matrix_session.run([spec], timeout_s=900)[row]

    return run


#: `./run test` runs the tests on several xdist workers: each module is one unit of work (its module
#: fixtures run once), and these groups of modules share a session fixture costlier than the embedded
#: server (which each worker starts once), so each group is one unit too (:func:`pytest_xdist_make_scheduler`).
SHARED_FIXTURE_GROUPS = {
    "proxy/test_matrix_baseline.py": "baseline", "conformance/test_suite_runs.py": "baseline",
    "conformance/test_io_suite_live.py": "image-to-image", "load/test_io_load_live.py": "image-to-image",
    "proxy/test_io_shift_fault.py": "image-to-image", "test_io_reference.py": "image-to-image",
    "live/test_float16_target.py": "float16", "live/test_seed_client.py": "float16",
    # not shared fixtures: the load runs that measure latency, in two units that run last (TIMING_LAST), each
    # with the unit tests of its command: a unit of one test lets its worker take the next unit before it
    # starts that test (xdist hands a worker more work when one test is left), and both units went to one worker
    "load/test_compare_live.py": "latency-compare", "load/test_sweep_live.py": "latency-sweep",
    "load/test_compare_units.py": "latency-compare", "load/test_sweep_units.py": "latency-sweep",
}
#: Tests of those modules that judge no latency a busy box could move (a bound far from what any box shows: a
#: breach from the first request; a 500 ms delay found within 250-900 ms): units of their own, among the
#: others, so that the last units are no longer than they need to be.
REGRESSION_RUN = "test_requests_behind_a_500_ms_delay_are_a_regression_of_about_500_ms"
JUDGED_ON_A_BUSY_BOX = ("test_a_breaching_run_stops_early_with_exit_10", REGRESSION_RUN)
#: The longest units first (measured wall time on 2 cores), so that no worker starts one near the end. The
#: client install compares with the baseline, which :func:`matrix_baseline` shares between the workers.
LONGEST_FIRST = ("baseline", "fault-matrix-0", "image-to-image", "fault-matrix-1", "load/test_load_faults_live.py",
                 "live/test_ci_recipes_live.py", "test_client_install.py", "conformance/test_io_plugins_live.py",
                 "load/test_load_live.py", "load/test_distributed_netns.py", "plain-gate",
                 "live/test_server_lifecycle.py", "gate/test_gate_live.py",
                 f"load/test_compare_live.py::{REGRESSION_RUN}", "float16", "test_compat.py",
                 "live/test_numeric_oracle.py", "proxy/test_reproducer_live.py",
                 "conformance/test_expectations_live.py")
#: Then everything else, in collection order; last, the live load runs that measure latency, on two workers
#: (each worker's server computes on a core of its own), so that they share the machine with as little
#: else as the schedule allows; the longer of the two first (the sweep: 2 steps of 22 s; compare: one run of 45 s).
TIMING_LAST = ("latency-sweep", "latency-compare")


#: The fault matrix's tests are split into this many units (``fault-matrix-N``, rows dealt in turn), so
#: that its rows run on as many workers at once, each worker in its own matrix process.
MATRIX_UNITS = 2
MATRIX_MODULE = "proxy/test_fault_matrix.py"


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its module's group, else its module (path under tests/); a
    fault-matrix test, its share of the matrix."""
    module = nodeid.split("::", 1)[0].removeprefix("tests/")
    if module == MATRIX_MODULE:
        from geopool.conformance.matrix import CONTROLS, MATRIX

        rows = list({**MATRIX, **CONTROLS})
        row = nodeid.partition("[")[2].removesuffix("]")
        return f"fault-matrix-{rows.index(row) % MATRIX_UNITS if row in rows else 0}"
    if nodeid.endswith(f"::{PLAIN_RUN_TEST}"):
        return "plain-gate"  # its run starts with the baseline; by its place in the order, it has ended
    if nodeid.endswith(tuple(f"::{name}" for name in JUDGED_ON_A_BUSY_BOX)):
        return nodeid.removeprefix("tests/")
    return SHARED_FIXTURE_GROUPS.get(module, module)


def cpu_core_for_servers(offset: int = 0) -> str:
    """The core this worker's vLLM servers compute on (vLLM's CPU build binds inference to one core, core 0
    unless told): the workers' servers spread over the cores instead of all sharing core 0."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return str((int(worker.removeprefix("gw") or 0) + offset) % (os.cpu_count() or 1))


def pytest_configure(config: pytest.Config) -> None:
    if "PYTEST_XDIST_WORKER" in os.environ:
        os.environ.setdefault(SERVER_CORE_ENV, cpu_core_for_servers())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {unit: index for index, unit in enumerate(LONGEST_FIRST)}
    rank |= {unit: len(rank) + 1 + index for index, unit in enumerate(TIMING_LAST)}
    # stable within a rank; the baseline's module first in its unit: it starts the plain gate's run
    items.sort(key=lambda item: (rank.get(work_unit(item.nodeid), len(LONGEST_FIRST)),
                                 "test_matrix_baseline.py" != item.path.name))


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: unknown to a run with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With ``--dist loadscope`` (``./run test``): xdist's loadscope scheduling with :func:`work_unit` as the
    scope (xdist's own loadgroup marks do not reach the node ids on pytest 9), in collection order (run
    with ``--no-loadscope-reorder``). Any other ``--dist``: xdist's own."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _reschedule(self, node) -> None:
            # xdist hands a worker its next unit when 2 of its tests are left; a worker runs a test only once
            # it knows the next one, so 1 is the least that keeps it going. With units of many minutes, the
            # next unit then goes to a worker that is about to be free, not to one with a long test ahead.
            if not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) > 1:
                return
            super()._reschedule(node)

    return WorkUnitScheduling(config, log)


#: Set to a file path, ``./run test`` writes there one JSON line per test phase (worker, node id, phase,
#: start, stop, outcome): what each worker did when, to see where a run's wall time goes.
TIMELINE_ENV = "GEOPOOL_TEST_TIMELINE"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get(TIMELINE_ENV)
    if not path or "PYTEST_XDIST_WORKER" in os.environ:  # written once, by the process that sees every worker
        return
    node = getattr(report, "node", None)
    worker = getattr(getattr(node, "gateway", None), "id", "main")
    with open(path, "a") as timeline:
        timeline.write(json.dumps({"worker": worker, "test": report.nodeid, "phase": report.when,
                                   "start": report.start, "stop": report.stop, "outcome": report.outcome}) + "\n")
