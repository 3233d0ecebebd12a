"""Served-vs-offline spread (not a test): the figures geopool.numerics.CRITERIA are set from.

Sends varied inputs to an embedded server (or ``--url``) and compares each answer with the offline
reference pass in the server's dtype, printing per input the relative L2 error, max abs diff and class
agreement, then the worst and the median, and the ratio of the worst to the current bounds.

    .venv/bin/python benchmarks/numeric_spread.py [--dtype float32] [--inputs 30] [--url URL --reference DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import numpy as np

from geopool import wire
from geopool.client import PoolingClient
from geopool.contract import ModelContract, load_contract
from geopool.fixture_models import prepare_model, resolve_model_dir
from geopool.numerics import CRITERIA, difference_figures
from geopool.reference import ReferenceModel
from geopool.server import EmbeddedServer
from geopool.strategies import DISTRIBUTIONS, PayloadRecipe, TensorRecipe

#: Input magnitudes covering the conformance payloads (values up to ±1e4) and normalized reflectance.
MAGNITUDES = (1e-2, 1.0, 3.0, 100.0, 1e4)


def varied_inputs(contract: ModelContract, count: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The seed input, then recipes cycling distributions and magnitudes, coordinates in range."""
    rng = np.random.default_rng(2026)
    inputs = [("seed (all ones)", wire.seed_inputs(contract))]
    for number in range(count - 1):
        distribution = DISTRIBUTIONS[number % len(DISTRIBUTIONS)]
        magnitude = MAGNITUDES[(number // len(DISTRIBUTIONS)) % len(MAGNITUDES)]
        low = float(np.float32(-magnitude * rng.uniform(0, 1)))
        high = float(np.float32(magnitude * rng.uniform(0, 1)))
        tensors = []
        for spec in contract.inputs:
            if spec.name == "location_coords":
                lat, lon = float(np.float32(rng.uniform(-90, 90))), float(np.float32(rng.uniform(-180, 180)))
                tensors.append((spec.name, TensorRecipe(0, "gradient", lat, lon)))
            else:
                tensors.append((spec.name, TensorRecipe(int(rng.integers(2**32)), distribution, low, high)))
        recipe = PayloadRecipe(tuple(tensors))
        inputs.append((f"{distribution} ±{magnitude:g}", recipe.arrays(contract)))
    return inputs


def measure(url: str, model: str, contract: ModelContract, reference: ReferenceModel, count: int) -> list[dict]:
    rows = []
    with PoolingClient(url, timeout=600) as client:
        for label, arrays in varied_inputs(contract, count):
            started = time.monotonic()
            body = wire.request_body(model, arrays, dtype=contract.input_dtype)
            served = wire.decode_json_response(client.pool(body).json(), contract.output_shape)
            offline = reference(arrays)
            figures = dataclasses.asdict(difference_figures(served, offline))
            rows.append({"input": label, **figures, "rms_offline": float(np.sqrt(np.mean(offline ** 2))),
                         "seconds": time.monotonic() - started})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict], dtype: str) -> str:
    """Median and worst of each figure, and how far the worst stays inside its bound."""
    criterion = CRITERIA[dtype]
    parts = [f"{dtype}, {len(rows)} inputs"]
    relative = [row["relative_error"] for row in rows]
    parts.append(f"relative_error median {statistics.median(relative):.3g} max {max(relative):.3g} "
                 f"(bound {criterion.max_relative_error:.3g}, bound/max "
                 f"{criterion.max_relative_error / max(max(relative), 1e-300):.0f})")
    agreement = [row["agreement"] for row in rows]
    ratio = (1 - criterion.min_agreement) / max(1e-12, 1 - min(agreement))
    parts.append(f"agreement median {statistics.median(agreement):.6f} min {min(agreement):.6f} "
                 f"(bound {criterion.min_agreement}, disagreement bound/max {ratio:.1f})")
    rms = [row["rms_offline"] for row in rows]
    parts.append(f"max_abs_diff max {max(row['max_abs_diff'] for row in rows):.3g}; "
                 f"rms of the offline answers {min(rms):.3g}..{max(rms):.3g}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prithvi-tiny-tl", help="fixture name (embedded) or served model name")
    parser.add_argument("--dtype", default="float32", choices=sorted(CRITERIA))
    parser.add_argument("--inputs", type=int, default=30)
    parser.add_argument("--url", help="an already running server (needs --reference)")
    parser.add_argument("--reference", help="the served folder (config.json + .pt); default: the fixture's")
    args = parser.parse_args()
    folder = args.reference or prepare_model(args.model)
    contract = load_contract(resolve_model_dir(folder), input_dtype=args.dtype)
    reference = ReferenceModel(folder, args.dtype)
    if args.url:
        rows = measure(args.url, args.model, contract, reference, args.inputs)
    else:
        with EmbeddedServer(args.model, dtype=args.dtype) as server:
            rows = measure(server.url, server.model_name, contract, reference, args.inputs)
    print(summary(rows, args.dtype))


if __name__ == "__main__":
    main()
