"""geopool.wire.tensors: inputs serialize and load back in every dtype and format; torch loads are safe."""

from __future__ import annotations

import base64
import io
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geopool import wire
from geopool.contract import SEN1FLOODS11
from geopool.errors import CodecError

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
values = st.floats(width=32, allow_nan=True, allow_infinity=True)


def expected_values(array: np.ndarray, embed_dtype: str) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.to(TORCH_DTYPES[embed_dtype]).to(torch.float32).numpy()


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    dtype=st.sampled_from(wire.EMBED_DTYPES),
    fmt=st.sampled_from(wire.INPUT_FORMATS),
)
def test_input_serialization_round_trip(array, dtype, fmt):
    if fmt == "npy" and dtype == "bfloat16":
        with pytest.raises(CodecError, match="bfloat16"):
            wire.serialize_array(array, dtype=dtype, fmt=fmt)
        return
    data = base64.b64decode(wire.encode_array(array, dtype=dtype, fmt=fmt))
    assert data.startswith(b"\x93NUMPY") == (fmt == "npy")
    loaded = wire.load_tensor_bytes(data)
    np.testing.assert_array_equal(loaded, expected_values(array, dtype))
    if fmt == "torch":
        tensor = torch.load(io.BytesIO(data), weights_only=True)
        assert tensor.dtype == TORCH_DTYPES[dtype]


def test_full_size_seed_request_matches_the_seed_encoding():
    """The seed client's own bytes for pixel_values (torch.save of a float16 tensor of ones)."""
    buffer = io.BytesIO()
    torch.save(torch.full((6, 512, 512), 1.0, dtype=torch.float16), buffer)
    inputs = wire.seed_inputs(SEN1FLOODS11)
    ours = base64.b64decode(wire.encode_array(inputs["pixel_values"], dtype="float16"))
    loaded = torch.load(io.BytesIO(ours), weights_only=True)
    seed = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert loaded.dtype == seed.dtype and torch.equal(loaded, seed)
    body = wire.pooling_request("m", {"pixel_values": "AA==", "location_coords": "AA=="})
    assert body["messages"][0]["content"][0]["type"] == "image_embeds"
    assert set(body["messages"][0]["content"][0]["image_embeds"]) == {"pixel_values", "location_coords"}
    assert "embed_dtype" not in body and "endianness" not in body
    assert wire.pooling_request("m", {}, embed_dtype="float16", endianness="big")["embed_dtype"] == "float16"




class _Canary:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_torch_load_refuses_code_running_pickles():
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        wire.torch_load(wire.torch_save_bytes(_Canary()))
    assert torch.equal(wire.torch_load(wire.torch_save_bytes(torch.ones(2))), torch.ones(2))


def test_without_torch_inputs_go_as_npy(monkeypatch):
    import importlib.util

    from geopool import wire

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert wire.default_input_format() == "npy"
    body = wire.request_body("m", {"x": np.ones((2, 2), np.float32)}, dtype="float32")
    assert wire.base64_bytes(wire.image_embeds(body)["x"]).startswith(b"\x93NUMPY")
    monkeypatch.undo()
    assert wire.default_input_format() == "torch"
