"""The payload pool: request bodies encoded before the run, so the hot path only sends bytes.

Item ``k`` of a pool is built from the conformance suite's tensor recipes with seed ``(seed, k)``,
so every process of a distributed run, and every rerun, sends the same bodies. ``payload = "seed"``
sends the seed client's constant input instead. With ``verify = "reference"`` each item also keeps
the offline reference output of its own input.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from geopool import wire
from geopool.contract import ModelContract
from geopool.errors import ConfigError
from geopool.load.scenario import Scenario
from geopool.strategies import PayloadRecipe, TensorRecipe

__all__ = ["PayloadItem", "build_pool", "COORDINATE_INPUTS"]

COORDINATE_INPUTS = ("location_coords",)


@dataclasses.dataclass(frozen=True)
class PayloadItem:
    index: int
    body: bytes
    expected: np.ndarray | None = None


def item_recipe(contract: ModelContract, seed: int, index: int) -> PayloadRecipe:
    """Item ``index``: normal target values around 0 (normalized reflectance), coordinates in ±60°."""
    tensors = []
    for number, spec in enumerate(contract.inputs):
        item_seed = (seed * 1_000_003 + index) * 31 + number
        if spec.name in COORDINATE_INPUTS:
            tensors.append((spec.name, TensorRecipe(item_seed, "uniform", -60.0, 60.0)))
        else:
            tensors.append((spec.name, TensorRecipe(item_seed, "normal", -2.0, 2.0)))
    return PayloadRecipe(tuple(tensors), "torch")


def build_pool(scenario: Scenario, contract: ModelContract, model: str,
               reference_dir: str | Path | None = None) -> list[PayloadItem]:
    """The scenario's pool, encoded (and with reference outputs when it verifies against them)."""
    if scenario.payload == "seed":
        inputs = [wire.seed_inputs(contract)]
    else:
        inputs = [item_recipe(contract, scenario.seed, k).arrays(contract) for k in range(scenario.pool_size)]
    reference = None
    if scenario.verify == "reference":
        from geopool.reference import ReferenceModel

        if reference_dir is None:
            raise ConfigError("verify = 'reference' needs the served model folder (--reference-checkpoint)")
        reference = ReferenceModel(reference_dir, contract.input_dtype)
    items = []
    for index, arrays in enumerate(inputs):
        body = json.dumps(wire.request_body(model, arrays, dtype=contract.input_dtype,
                                            encoding_format=scenario.response_encoding)).encode()
        expected = reference(arrays) if reference is not None else None
        items.append(PayloadItem(index, body, expected))
    return items
