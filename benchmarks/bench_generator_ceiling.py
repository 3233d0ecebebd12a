"""Generator ceiling benchmark (not a test): verified requests per second per generator process, against a
LOOPBACK CANNED RESPONDER — a benchmark instrument only (benchmarks/canned_responder.py), never a stand-in for vLLM.

    .venv/bin/python benchmarks/bench_generator_ceiling.py [--duration 20] [--users 8] [--responder-processes 1] \\
        [--metrics-file captured-vllm-metrics.txt]

The responder answers every ``/pooling`` request at once with one canned, valid 1×2×512×512 float32 reply
(base64 JSON, or raw bytes with vLLM's ``metadata`` header), so what limits the rate is the generator: how many
verified requests per second one load-generating process sustains — the figure that says how many generator
cores a GPU server answering tens of tiles per second needs. Rows, each alone for ``--duration`` s, closed loop
with ``--users`` users: geopool (base64 and bytes answers, every answer verified), plain Locust ``FastHttpUser``
(nothing verified) with 1 and 2 processes (Locust's ``--processes``), and ``vllm bench serve`` (one asyncio
process; it has no multi-process mode, so its 2-process row is not run).

On a 2-core machine the responder (``--responder-processes`` aiohttp processes on one port) competes with the
generator for the same cores, and so do other programs: the req/s figures are a floor of the generator's
ceiling, not the ceiling; CPU ms per request (the generator's own process tree) is the steadier figure.
``--metrics-file`` (a capture of a real vLLM's ``/metrics``) is what the responder serves at ``/metrics``, so
geopool's once-a-second scrape does its real parsing work.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench_load_generators import ROOT, Result, Setup, free_port, measure

from geopool import wire
from geopool.client import Endpoint
from geopool.contract import load_contract
from geopool.resources import fixture_models_dir

RESPONDER = Path(__file__).resolve().parent / "canned_responder.py"
MODEL = "canned-responder"


def start_responder(port: int, processes: int, metrics_file: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(RESPONDER), "--port", str(port), "--processes", str(processes),
           "--metrics-file", str(metrics_file)]
    popen = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return popen
        except OSError:
            time.sleep(0.2)
    popen.kill()
    raise SystemExit(f"error: the canned responder did not start (log: {log})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds per row [20]")
    parser.add_argument("--users", type=int, default=8, help="closed-loop users per row [8]")
    parser.add_argument("--responder-processes", type=int, default=1, help="canned responder processes [1]")
    parser.add_argument("--metrics-file", type=Path, help="/metrics text the responder serves "
                                                          "[a minimal one: no scrape parsing cost]")
    parser.add_argument("--gap", type=float, default=1.0, help="idle seconds between rows [1]")
    parser.add_argument("--processes", default="1,2", help="generator process counts to run [1,2]")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_generator_ceiling.json")
    args = parser.parse_args()
    for name in ("duration", "users", "responder_processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.metrics_file and not args.metrics_file.is_file():
        parser.error(f"--metrics-file {args.metrics_file}: no such file")

    config = fixture_models_dir() / "prithvi-tiny-tl" / "config.json"
    contract = load_contract(config)
    body = wire.request_body(MODEL, wire.seed_inputs(contract), dtype=contract.input_dtype)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench_ceiling-") as tmp:
        workdir = Path(tmp)
        metrics_file = args.metrics_file or workdir / "metrics.txt"
        if not args.metrics_file:
            metrics_file.write_text("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n")
        responder = start_responder(port, args.responder_processes, metrics_file, workdir / "responder.log")
        try:
            setup = Setup(endpoint=Endpoint(f"http://127.0.0.1:{port}"), model=MODEL, model_config=str(config),
                          users=args.users, duration=args.duration, workdir=workdir,
                          body_path=workdir / "body.json", dataset_path=workdir / "dataset.jsonl",
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), input_dtype=contract.input_dtype)
            setup.body_path.write_text(json.dumps(body))
            setup.dataset_path.write_text(json.dumps({"prompt": {k: v for k, v in body.items() if k != "model"}})
                                          + "\n")
            print(f"LOOPBACK CANNED RESPONDER (benchmark instrument) on port {port}, "
                  f"{args.responder_processes} process(es); {args.users} users, {args.duration} s per row",
                  flush=True)
            rows: list[tuple[str, int, Result]] = []
            for processes in [int(part) for part in args.processes.split(",")]:
                for name in ("geopool", "geopool-bytes", "locust-plain", "vllm-bench"):
                    if name == "vllm-bench" and processes > 1:
                        continue
                    here = replace(setup, processes=processes, workdir=workdir / f"{name}-{processes}p")
                    here.workdir.mkdir()
                    fastest = max((r.rate_rps or 0.0 for _, _, r in rows if r.ok), default=50.0)
                    kw = {"num_prompts": round(fastest * args.duration)} if name == "vllm-bench" else {}
                    rows.append((name, processes, measure(name, here, args.gap, **kw)))
        finally:
            responder.terminate()
            try:
                responder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                responder.kill()

    print()
    head = (f"{'generator':<15}{'procs':>6}{'ok':>7}{'failed':>7}{'wall s':>8}{'verified req/s':>15}"
            f"{'req/s per proc':>15}{'cpu ms/req':>11}{'cpu vs plain':>13}")
    print(head)
    print("-" * len(head))
    plain = {p: r for n, p, r in rows if n == "locust-plain" and r.ok}
    for name, processes, r in rows:
        if not r.ok:
            print(f"{name:<15}{processes:>6}  FAILED: {r.error}")
            continue
        base = plain.get(processes)
        versus = (f"{r.cpu_ms_per_req / base.cpu_ms_per_req:12.2f}x"
                  if base and base.cpu_ms_per_req and r.cpu_ms_per_req else f"{'-':>13}")
        print(f"{name:<15}{processes:>6}{r.completed:>7}{r.failed:>7}{r.window_s:8.1f}{r.rate_rps:15.1f}"
              f"{r.rate_rps / processes:15.1f}{r.cpu_ms_per_req:11.2f}{versus}")
    print("\nnotes: LOOPBACK CANNED RESPONDER (a benchmark instrument, not vLLM); geopool verifies every answer, plain")
    print("       Locust and vllm bench only count HTTP 200s (vllm bench sends a fixed count: the fastest row's rate")
    print("       × duration). 2 cores: the responder and the generator share them, so req/s is a floor of the")
    print("       ceiling; cpu ms/req is the generator's own process tree.")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"users": args.users, "duration_s": args.duration,
                                       "responder_processes": args.responder_processes,
                                       "rows": [{"generator": n, "processes": p, **asdict(r)} for n, p, r in rows]},
                                      indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
