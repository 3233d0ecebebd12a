"""LOOPBACK CANNED RESPONDER — a benchmark instrument only, never a stand-in for vLLM in a test.

    .venv/bin/python benchmarks/canned_responder.py --port 8199 [--processes 1] [--metrics-file captured.txt]

It answers every ``POST /pooling`` at once with one canned, valid 1×2×512×512 float32 reply, built at start
(random normal values): ``encoding_format: "bytes"`` in the request body gets the raw values with vLLM's
``metadata`` header, anything else the base64 JSON answer of vLLM 0.32. It reads each request body in full
(as a server must) but parses only enough of it to find ``"encoding_format":"bytes"``. ``/health``,
``/version``, ``/v1/models`` answer like vLLM's; ``/metrics`` serves ``--metrics-file`` (a capture of a real
vLLM's ``/metrics``, so the load suite's scraper does its real parsing work) or 404.

What it is for: measuring a load *generator's* own ceiling (benchmarks/bench_generator_ceiling.py), with a
server that costs as little as possible. ``--processes N`` runs N aiohttp processes on one port
(SO_REUSEPORT) so the responder is less of a bottleneck; on a 2-core machine it still competes with the
generator for CPU, and the benchmark says so.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
from aiohttp import web

MODEL = "canned-responder"
SHAPE = (1, 2, 512, 512)


def canned_values(seed: int = 0) -> bytes:
    """The reply's raw little-endian float32 values: finite, the shape the prithvi fixtures answer."""
    return np.random.default_rng(seed).normal(0.0, 1.0, SHAPE).astype("<f4").tobytes()


def build_app(metrics_text: str | None) -> web.Application:
    raw = canned_values()
    json_reply = json.dumps({
        "id": "pooling-canned", "object": "list", "created": int(time.time()), "model": MODEL,
        "data": [{"index": 0, "object": "pooling", "data": base64.b64encode(raw).decode("ascii")}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1, "completion_tokens": 0,
                  "prompt_tokens_details": None, "completion_tokens_details": None},
    }, separators=(",", ":")).encode()  # compact, as vLLM's JSONResponse writes it
    metadata = json.dumps({
        "id": "pooling-canned", "created": int(time.time()), "model": MODEL,
        "data": [{"index": 0, "embed_dtype": "float32", "endianness": "little", "start": 0, "end": len(raw),
                  "shape": list(SHAPE[1:])}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    async def pooling(request: web.Request) -> web.Response:
        body = await request.read()
        head = body[:512]  # the bodies geopool and the benchmarks send put encoding_format before the inputs
        if b'"encoding_format":"bytes"' in head.replace(b" ", b""):
            return web.Response(body=raw, content_type="application/octet-stream", headers={"metadata": metadata})
        return web.Response(body=json_reply, content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"version": "canned-responder"})

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def metrics(_: web.Request) -> web.Response:
        if metrics_text is None:
            return web.Response(status=404, text="no metrics (canned responder)")
        return web.Response(text=metrics_text, content_type="text/plain")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post("/pooling", pooling), web.get("/health", health), web.get("/version", version),
                    web.get("/v1/models", models), web.get("/metrics", metrics)])
    return app


def serve(port: int, metrics_text: str | None) -> None:
    web.run_app(build_app(metrics_text), host="127.0.0.1", port=port, reuse_port=True, print=None,
                access_log=None, handle_signals=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="LOOPBACK CANNED RESPONDER (benchmark instrument only)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1, help="aiohttp processes on the port [1]")
    parser.add_argument("--metrics-file", type=Path, help="text served at /metrics (a real vLLM capture)")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be >= 1, got {args.processes}")
    text = args.metrics_file.read_text() if args.metrics_file else None
    children = [multiprocessing.Process(target=serve, args=(args.port, text), daemon=True)
                for _ in range(args.processes - 1)]
    for child in children:
        child.start()

    def stop(*_: object) -> None:
        for child in children:
            if child.pid:
                os.kill(child.pid, signal.SIGTERM)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(args.port, text)
    finally:
        for child in children:
            child.terminate()


if __name__ == "__main__":
    main()
