"""Micro-benchmark (not a test): CPU per verified answer of the load suite's hot path, fast vs reference decode.

    .venv/bin/python benchmarks/bench_verify.py [--repeat 200]

Builds one canned, valid 1×2×512×512 float32 answer (base64 JSON and bytes) and times, per answer:
``verify_response`` as the load suite runs it (msgspec + pybase64 where installed), the same with the fast
path switched off (``json`` + ``base64``), and the pieces (JSON parse, base64 decode, finiteness check).
Figures are process CPU ms per call (``time.process_time``), so other load on the machine matters little.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable

import numpy as np

from geopool.contract import load_contract
from geopool.load.judge.verify import verify_response
from geopool.resources import fixture_models_dir
from geopool.wire import response


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    start = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    contract = load_contract(fixture_models_dir() / "prithvi-tiny-tl" / "config.json")
    raw = np.random.default_rng(0).normal(size=contract.output_shape).astype("<f4").tobytes()
    body = json.dumps({"id": "x", "object": "list", "data": [{"index": 0, "object": "pooling",
                                                             "data": base64.b64encode(raw).decode()}]},
                      separators=(",", ":")).encode()  # compact, as vLLM writes it
    rows = []
    fast = response.FAST_DECODE
    rows.append(("verify_response base64 (fast path)",
                 cpu_ms(lambda: verify_response(200, body, contract), args.repeat)))
    rows.append(("verify_response bytes (fast path)",
                 cpu_ms(lambda: verify_response(200, raw, contract, encoding="bytes", metadata=METADATA), args.repeat)))
    response.FAST_DECODE = False
    try:
        rows.append(("verify_response base64 (json + base64)",
                     cpu_ms(lambda: verify_response(200, body, contract), args.repeat)))
    finally:
        response.FAST_DECODE = fast
    import msgspec
    import pybase64

    text = json.loads(body)["data"][0]["data"]
    array = np.frombuffer(raw, "<f4")
    rows += [("  json.loads", cpu_ms(lambda: json.loads(body), args.repeat)),
             ("  msgspec.json.decode", cpu_ms(lambda: msgspec.json.decode(body), args.repeat)),
             ("  base64.b64decode(validate=True)", cpu_ms(lambda: base64.b64decode(text, validate=True), args.repeat)),
             ("  pybase64.b64decode_as_bytearray(validate=True)",
              cpu_ms(lambda: pybase64.b64decode_as_bytearray(text, validate=True), args.repeat)),
             ("  np.isfinite(a).all()", cpu_ms(lambda: np.isfinite(array).all(), args.repeat))]
    print(f"answer: {len(body):,} bytes of JSON, {len(raw):,} bytes raw; fast path available: {fast}")
    for name, ms in rows:
        print(f"{name:<52}{ms:8.3f} ms CPU")


METADATA = json.dumps({"data": [{"index": 0, "embed_dtype": "float32", "endianness": "little", "start": 0,
                                 "end": 2 * 512 * 512 * 4, "shape": [2, 512, 512]}]})

if __name__ == "__main__":
    main()
