"""Foundation benchmark (not a test): server start-up, single-request latency, client-side codec cost.

    .venv/bin/python benchmarks/bench_foundation.py [--requests 20] [--model prithvi-tiny-tl]

Prints measured figures only. Client-side costs are timed in this process with the server idle;
latency is wall time of sequential requests on one keep-alive connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import timeit

import numpy as np

from geopool import wire
from geopool.client import PoolingClient
from geopool.server import EmbeddedServer


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def _best_of(func, repeat: int = 7) -> float:
    return min(timeit.repeat(func, number=1, repeat=repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--model", default="prithvi-tiny-tl")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    started = time.monotonic()
    with EmbeddedServer(args.model, dtype=args.dtype) as server:
        print(f"server start-up (launch → /health 200): {time.monotonic() - started:6.1f} s  [{server!r}]")
        contract = server.contract
        inputs = wire.seed_inputs(contract)
        encode = {fmt: (lambda fmt=fmt: wire.encode_inputs(inputs, dtype=contract.input_dtype, fmt=fmt))
                  for fmt in wire.INPUT_FORMATS}
        body = wire.request_body(server.model_name, inputs, dtype=contract.input_dtype)
        with PoolingClient(server.url) as client:
            client.pool(body)  # warm-up
            latencies = [client.pool(body).elapsed_s for _ in range(args.requests)]
            response = client.pool(body)
        text = response.content
        parsed = json.loads(text)

        latencies.sort()
        print(f"single-request latency over {args.requests} sequential requests: "
              f"median {_ms(statistics.median(latencies))}, p90 {_ms(latencies[int(0.9 * (len(latencies) - 1))])}, "
              f"min {_ms(latencies[0])}, max {_ms(latencies[-1])}")
        print(f"request body: {len(json.dumps(body)):,} bytes; response body: {len(text):,} bytes")
        print("client-side cost (best of 7):")
        for fmt, func in encode.items():
            print(f"  encode inputs ({fmt:5s}: serialize + base64)      {_ms(_best_of(func))}")
        print(f"  json.dumps of the request body                   {_ms(_best_of(lambda: json.dumps(body)))}")
        print(f"  json.loads of the response                       {_ms(_best_of(lambda: json.loads(text)))}")
        decode = lambda: wire.decode_json_response(parsed, contract.output_shape)  # noqa: E731
        print(f"  decode data[0] (wire.decode_json_response)       {_ms(_best_of(decode))}")
        assert np.isfinite(decode()).all()


if __name__ == "__main__":
    main()
