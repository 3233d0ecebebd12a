"""Load-generator benchmark (not a test): geopool vs plain Locust vs ``vllm bench serve``, one server, one run.

    .venv/bin/python benchmarks/bench_load.py [--users 1,4,16] [--duration 60]     # starts the embedded server
    .venv/bin/python benchmarks/bench_load.py --base-url http://127.0.0.1:8123 \\
        --model-config ~/.cache/geopool/models/prithvi-tiny-tl-*/config.json --users 4 --duration 30

The generators run one after another against the same server at the same concurrency (each value of ``--users``
in turn), each for about ``--duration`` seconds, with the server drained and idle for ``--gap`` seconds between them:

* ``geopool``      geopool's locustfile (closed scenario): pre-encoded bodies, every answer decoded and verified.
* ``geopool-bytes`` the same with ``--response-encoding bytes``: answers are raw values plus a metadata header.
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
* ``http ms``: mean ``http_request_duration_seconds{handler="/pooling"}`` over the same scrapes: the server's whole
  handling of a request (request JSON, base64, ``torch.load``, engine, answer serialization);
  ``ovh http`` = client ms - http ms: what the client and the loopback add on top — the right clock for
  comparing clients (``overhead ms`` above also counts the server's JSON work).
* ``cpu vs plain``: cpu ms/req divided by plain Locust's at the same concurrency, measured in the same run.

Results are printed as a table with ratios versus geopool and written to ``reports/bench_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench_load_generators import GENERATORS, ROOT, Result, Setup, measure, scrape

from geopool import wire
from geopool.client import PROBE_TIMEOUT, Endpoint, PoolingClient
from geopool.contract import load_contract
from geopool.errors import GeopoolError


# ------------------------------------------------------------------------------------------ output
def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def cpu_vs_plain(results: list[Result], r: Result) -> float | None:
    """``r``'s CPU per request over plain Locust's at the same concurrency (same run)."""
    plain = next((p for p in results if p.generator == "locust-plain" and p.ok and p.users == r.users), None)
    if plain is None or not r.ok or not r.cpu_ms_per_req or not plain.cpu_ms_per_req:
        return None
    return r.cpu_ms_per_req / plain.cpu_ms_per_req


def print_table(results: list[Result]) -> None:
    head = (f"{'users':>5} {'generator':<14}{'ok':>6}{'wall s':>7}{'req/s':>7}{'cpu s':>7}{'cpu tot':>8}"
            f"{'cpu ms/req':>11}{'cpu vs plain':>13}{'client ms':>10}{'server ms':>10}{'ovh e2e':>8}"
            f"{'http ms':>8}{'http n':>7}{'ovh http':>9}")
    print(head)
    print("-" * len(head))
    for r in results:
        if not r.ok:
            print(f"{r.users or '':>5} {r.generator:<14}  FAILED: {r.error}")
            continue
        print(f"{r.users:>5} {r.generator:<14}{r.completed:>6}{_f(r.window_s, '7.1f')}{_f(r.rate_rps, '7.2f')}"
              f"{_f(r.cpu_window_s, '7.2f')}{_f(r.cpu_total_s, '8.2f')}{_f(r.cpu_ms_per_req, '11.2f')}"
              f"{_f(cpu_vs_plain(results, r), '12.2f')}x{_f(r.client_mean_ms, '10.1f')}"
              f"{_f(r.server_mean_ms, '10.1f')}{_f(r.overhead_ms, '8.1f')}{_f(r.server_http_mean_ms, '8.1f')}"
              f"{_f(r.server_http_count, '7d')}{_f(r.overhead_http_ms, '9.1f')}")


def ratios(results: list[Result]) -> dict[str, dict[str, float | None]]:
    """Per ``<generator>@<users>``: rate, requests per CPU-second and overhead against geopool (base64) at the
    same concurrency, and CPU per request against plain Locust."""
    out: dict[str, dict[str, float | None]] = {}
    for r in results:
        base = next((b for b in results if b.generator == "geopool" and b.ok and b.users == r.users), None)
        if not r.ok:
            continue
        if base is None or r is base:
            out[f"{r.generator}@{r.users}"] = {"cpu_vs_plain": cpu_vs_plain(results, r)}
            continue
        out[f"{r.generator}@{r.users}"] = {
            "cpu_vs_plain": cpu_vs_plain(results, r),
            "rate_ratio": r.rate_rps / base.rate_rps if r.rate_rps and base.rate_rps else None,
            "req_per_cpu_s_ratio": (r.req_per_cpu_s / base.req_per_cpu_s
                                    if r.req_per_cpu_s and base.req_per_cpu_s else None),
            "overhead_diff_ms": (r.overhead_ms - base.overhead_ms
                                 if r.overhead_ms is not None and base.overhead_ms is not None else None),
        }
    return out


# -------------------------------------------------------------------------------------------- main
@contextmanager
def target(args: argparse.Namespace) -> Iterator[tuple[Endpoint, str, str | None]]:
    """(endpoint, served model name, model config path) of the server under test."""
    if args.base_url:
        endpoint = Endpoint(args.base_url)
        try:
            with PoolingClient(endpoint, timeout=PROBE_TIMEOUT) as client:
                names = client.models()
        except GeopoolError as exc:
            raise SystemExit(f"error: cannot list models at {endpoint.url('/v1/models')}: {exc}") from None
        model = args.model or (names[0] if names else None)
        if model not in names:
            raise SystemExit(f"error: model {model!r} is not served at {endpoint.base_url} (served: {names})")
        yield endpoint, model, args.model_config
        return
    from geopool.server import EmbeddedServer

    started = time.monotonic()
    print("starting the embedded vLLM server ...", flush=True)
    with EmbeddedServer(args.model or "prithvi-tiny-tl") as server:
        print(f"  {server!r} up in {time.monotonic() - started:.0f} s", flush=True)
        yield Endpoint(server.url), server.model_name, args.model_config or str(server.served_dir / "config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="existing vLLM server (default: start the embedded one)")
    parser.add_argument("--model-config", help="TerraTorch config.json of the served model "
                                               "(default: the embedded server's; with --base-url: Sen1Floods11)")
    parser.add_argument("--model", help="served model name (with --base-url; default: the first /v1/models lists) "
                                        "or fixture to start (default prithvi-tiny-tl)")
    parser.add_argument("--users", default="4", help="concurrency of every generator; a comma list runs each [4]")
    parser.add_argument("--duration", type=int, default=60, help="seconds per generator [60]")
    parser.add_argument("--num-prompts", type=int, help="vllm bench requests [geopool's rate × duration]")
    parser.add_argument("--gap", type=float, default=5.0, help="idle seconds between generators [5]")
    parser.add_argument("--skip", action="append", default=[], choices=GENERATORS, help="skip a generator")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_load.json", help="JSON results")
    args = parser.parse_args()
    try:
        args.users = [int(part) for part in str(args.users).split(",")]
    except ValueError:
        parser.error(f"--users must be a comma list of integers, got {args.users!r}")
    if min(args.users) < 1:
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

    with target(args) as (endpoint, model, model_config), tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        url = endpoint.base_url
        try:
            contract = load_contract(model_config)
        except GeopoolError as exc:
            raise SystemExit(f"error: {exc}") from None
        body = wire.request_body(model, wire.seed_inputs(contract), dtype=contract.input_dtype)
        workdir = Path(tmp)
        setup = Setup(endpoint=endpoint, model=model, model_config=model_config, users=args.users[0],
                      duration=args.duration, workdir=workdir, body_path=workdir / "body.json",
                      dataset_path=workdir / "dataset.jsonl", env=dict(os.environ, PYTHONUNBUFFERED="1"),
                      input_dtype=contract.input_dtype)
        setup.body_path.write_text(json.dumps(body))
        # vllm-pooling sends {"model": ..., "truncate_prompt_tokens": -1} | prompt when "prompt" is a dict.
        setup.dataset_path.write_text(json.dumps({"prompt": {k: v for k, v in body.items() if k != "model"}}) + "\n")
        print(f"server {url}  model {model}  config {model_config or '(Sen1Floods11 contract)'}  "
              f"users {args.users}  duration {args.duration} s  body {setup.body_path.stat().st_size:,} bytes",
              flush=True)
        if scrape(endpoint)["busy"]:
            print("warning: the server is busy before the benchmark (someone else's load?)", flush=True)

        results: list[Result] = []
        for users in args.users:
            here = replace(setup, users=users, workdir=workdir / f"u{users}")
            here.workdir.mkdir()
            for name in todo:
                kw: dict[str, Any] = {}
                if name == "vllm-bench":
                    rated = next((r for r in results if r.ok and r.rate_rps and r.users == users), None)
                    kw["num_prompts"] = args.num_prompts or max(
                        users, round((rated.rate_rps if rated else 2.0) * args.duration))
                    print(f"    vllm bench: {kw['num_prompts']} prompts", flush=True)
                result = measure(name, here, args.gap, **kw)
                result.users = users
                results.append(result)

    print()
    print_table(results)
    rel = ratios(results)
    if rel:
        print("\nvs geopool (same users):  rate ratio | req-per-CPU-second ratio | overhead (e2e) difference")
        for name, r in rel.items():
            if "rate_ratio" in r:
                print(f"  {name:<20} {_f(r['rate_ratio'], '8.2f')}x | {_f(r['req_per_cpu_s_ratio'], '8.2f')}x"
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
