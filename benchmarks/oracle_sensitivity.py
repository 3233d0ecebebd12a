"""Oracle sensitivity (not a test): the smallest ``scale:F`` and ``fixed-noise:SIGMA`` each numeric oracle
catches, found by bisection through the fault proxy in front of a real server.

Oracles: the reference comparison (conformance POOL-NUM-002 case ``reference`` and load's ``--verify
reference``: one function, geopool.numerics.compare_to_reference) on the seed input and on load pool
item 0, and the golden check (POOL-NUM-002 case ``golden``) on the seed input.

    .venv/bin/python benchmarks/oracle_sensitivity.py [--url URL --reference DIR] [--dtype float32]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from geopool import wire
from geopool.client import PoolingClient
from geopool.contract import ModelContract, load_contract
from geopool.fixture_models import DEFAULT_MODEL, prepare_model
from geopool.golden import load_golden
from geopool.load.run.payloads import item_recipe
from geopool.numerics import compare_to_reference
from geopool.proxy import FaultProxy
from geopool.reference import ReferenceModel
from geopool.server import EmbeddedServer

#: (fault, the parameter that is clean, one that is surely caught): bisected on a log scale.
FAULTS = {"scale": (1.0, 1.05), "fixed-noise": (0.0, 5e-3)}


def served(url: str, model: str, contract: ModelContract, arrays: dict) -> np.ndarray:
    with PoolingClient(url, timeout=600) as client:
        body = wire.request_body(model, arrays, dtype=contract.input_dtype)
        return wire.decode_json_response(client.pool(body).json(), contract.output_shape)


def smallest_caught(caught: Callable[[float], bool], clean: float, dirty: float, steps: int = 12) -> float:
    """Bisect the distance from ``clean`` (geometric mean of the distances) to the smallest caught one."""
    low, high = 1e-7, dirty - clean  # distances: low not caught (assumed), high caught (checked)
    if not caught(clean + high):
        return float("nan")
    for _ in range(steps):
        middle = (low * high) ** 0.5
        low, high = (low, middle) if caught(clean + middle) else (middle, high)
    return clean + high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--url", help="an already running server serving the fixture model (needs --reference)")
    parser.add_argument("--reference", help="the served folder (config.json + .pt)")
    args = parser.parse_args()
    folder = args.reference or prepare_model(DEFAULT_MODEL)
    contract = load_contract(folder, input_dtype=args.dtype)
    reference = ReferenceModel(folder, args.dtype)
    inputs = {"seed": wire.seed_inputs(contract), "load item 0": item_recipe(contract, 0, 0).arrays(contract)}
    offline = {name: reference(arrays) for name, arrays in inputs.items()}
    golden = load_golden(DEFAULT_MODEL, args.dtype)
    server = None if args.url else EmbeddedServer(DEFAULT_MODEL, dtype=args.dtype).start()
    url = args.url or server.url
    try:
        for fault, (clean, dirty) in FAULTS.items():
            def answer(parameter: float, name: str, fault: str = fault) -> np.ndarray:
                with FaultProxy(url, f"{fault}:{parameter!r}") as proxy:
                    return served(proxy.url, DEFAULT_MODEL, contract, inputs[name])

            for name in inputs:
                found = smallest_caught(lambda p, name=name: not compare_to_reference(
                    answer(p, name), offline[name], args.dtype).passed, clean, dirty)
                print(f"reference on {name}: smallest {fault} caught {found:.6g}", flush=True)
            if golden is not None:
                found = smallest_caught(lambda p: not golden.check(answer(p, "seed")).passed, clean, dirty)
                print(f"golden on seed: smallest {fault} caught {found:.6g}", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
