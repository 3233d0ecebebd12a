"""The client-mistake requests of geopool.invalid: what each sends (nothing is sent here)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from geopool import wire
from geopool.contract import SEN1FLOODS11
from geopool.errors import InvalidArgument
from geopool.invalid import client_mistakes, device_saved_payload

CONTRACT = SEN1FLOODS11.with_overrides(input_dtype="float16")
VALID = wire.request_body("m", wire.seed_inputs(CONTRACT), dtype="float16", fmt="npy")
CASES = {case.name: case for case in client_mistakes()}


def _sent(name: str) -> dict:
    return json.loads(CASES[name].body(VALID, CONTRACT))


def test_float64_npy_is_numpy_default_for_every_input():
    embeds = wire.image_embeds(_sent("float64-npy"))
    for spec in CONTRACT.inputs:
        array = np.load(io.BytesIO(wire.base64_bytes(embeds[spec.name])), allow_pickle=False)
        assert array.dtype == np.float64 and array.shape == spec.shape


def test_leading_batch_dim_and_completion_bodies():
    pixels = wire.load_tensor_bytes(wire.base64_bytes(wire.image_embeds(_sent("leading-batch-dim"))["pixel_values"]))
    assert pixels.shape == (1, 6, 512, 512)
    assert set(_sent("input-text")) == {"model", "input", "encoding_format"}
    assert isinstance(_sent("prompt")["prompt"], dict)
    token_ids = _sent("input-token-ids")
    assert token_ids["input"] == [1] and "messages" not in token_ids and "pixel_values" in token_ids["image_embeds"]
    assert {case.name for case in CASES.values() if case.destructive} == {"float64-npy", "leading-batch-dim",
                                                                          "input-token-ids"}


def test_device_saved_payload_names_cuda_and_loads_with_a_map_location():
    raw = wire.base64_bytes(device_saved_payload(np.arange(6.0).reshape(2, 3), dtype="float32"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(raw), weights_only=True)
    assert wire.torch_load(raw).tolist() == [[0, 1, 2], [3, 4, 5]]  # map_location="cpu"
    with pytest.raises(InvalidArgument, match="device='cpu'"):
        device_saved_payload(np.ones(2), dtype="float32", device="cpu")


def test_torch_load_tells_the_device_a_tensor_was_saved_on_and_the_gateway_names_it():
    from geopool.faults.gateway import _read_tensor, _Refused

    raw = wire.base64_bytes(device_saved_payload(np.arange(6.0).reshape(2, 3), dtype="float32"))
    saved_on: list[str] = []
    assert wire.torch_load(raw, saved_on=saved_on).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert saved_on == ["cuda:0"]
    with pytest.raises(_Refused, match="saved on device cuda:0"):
        _read_tensor(raw)
    cpu_saved = wire.serialize_array(np.ones((2, 3), np.float32), dtype="float32", fmt="torch")
    assert _read_tensor(cpu_saved)[:2] == ("float32", (2, 3))
