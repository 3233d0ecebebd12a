"""Property tests of geopool.wire.response: answers of every dtype/endianness decode; malformed ones raise."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geopool import wire
from geopool.errors import MalformedResponseError

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
values = st.floats(width=32, allow_nan=True, allow_infinity=True)


def server_bytes(array: np.ndarray, embed_dtype: str, endianness: str) -> bytes:
    """What vLLM writes: its own ``tensor2binary`` (vllm/utils/serial_utils.py), imported, not copied
    (here, not at the top: importing vLLM costs each test worker ~5 CPU-s at collection)."""
    from vllm.utils.serial_utils import tensor2binary

    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor2binary(tensor, embed_dtype, endianness)


def expected_values(array: np.ndarray, embed_dtype: str) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.to(TORCH_DTYPES[embed_dtype]).to(torch.float32).numpy()


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    embed_dtype=st.sampled_from(wire.EMBED_DTYPES),
    endianness=st.sampled_from(wire.ENDIANNESSES),
)
def test_base64_response_round_trip(array, embed_dtype, endianness):
    text = base64.b64encode(server_bytes(array, embed_dtype, endianness)).decode()
    body = {"data": [{"index": 0, "object": "pooling", "data": text}]}
    decoded = wire.decode_json_response(body, array.shape, embed_dtype=embed_dtype, endianness=endianness)
    assert decoded.dtype == np.float32 and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, expected_values(array, embed_dtype))


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    embed_dtype=st.sampled_from(wire.EMBED_DTYPES),
    endianness=st.sampled_from(["big", "little"]),
    batch_dim=st.booleans(),
)
def test_bytes_response_round_trip(array, embed_dtype, endianness, batch_dim):
    raw = server_bytes(array, embed_dtype, endianness)
    prefix = b"\x00" * 8  # metadata start/end must be honoured, not assumed 0/len
    metadata = json.dumps({"data": [{"index": 0, "embed_dtype": embed_dtype, "endianness": endianness,
                                     "start": 8, "end": 8 + len(raw), "shape": list(array.shape)}]})
    shape = (1, *array.shape) if batch_dim else array.shape
    decoded = wire.decode_bytes_response(prefix + raw, metadata, shape)
    np.testing.assert_array_equal(decoded, expected_values(array, embed_dtype).reshape(shape))


def _good_body(shape=(2, 3)) -> dict:
    raw = np.zeros(shape, "<f4").tobytes()
    return {"data": [{"index": 0, "object": "pooling", "data": base64.b64encode(raw).decode()}]}


def _replace_data(text):
    body = _good_body()
    body["data"][0]["data"] = text
    return body


MALFORMED_JSON = {
    "not json text": "{oops",
    "a list": [1, 2],
    "no data": {"id": "x"},
    "data not list": {"data": {"0": 1}},
    "data empty": {"data": []},
    "entry not object": {"data": ["abc"]},
    "entry without data": {"data": [{"index": 0}]},
    "data a list of floats": _replace_data([[0.0, 1.0]]),
    "not base64": _replace_data("@@@@"),
    "bad padding": _replace_data("AAA"),
    "too short": _replace_data(base64.b64encode(b"\x00" * 20).decode()),
    "too long": _replace_data(base64.b64encode(b"\x00" * 28).decode()),
    "truncated base64 of valid data": _replace_data(_good_body()["data"][0]["data"][:-4]),
}


@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_responses_raise_the_typed_error(body):
    with pytest.raises(MalformedResponseError):
        wire.decode_json_response(body, (2, 3))


@given(
    raw=st.binary(max_size=64),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    embed_dtype=st.sampled_from(wire.EMBED_DTYPES),
)
def test_any_wrong_byte_count_raises(raw, shape, embed_dtype):
    expected = int(np.prod(shape)) * (4 if embed_dtype == "float32" else 2)
    body = {"data": [{"data": base64.b64encode(raw).decode()}]}
    if len(raw) == expected:
        assert wire.decode_json_response(body, shape, embed_dtype=embed_dtype).shape == shape
    else:
        with pytest.raises(MalformedResponseError, match=f"expected {expected} bytes"):
            wire.decode_json_response(body, shape, embed_dtype=embed_dtype)


@given(text=st.text(max_size=40))
@settings(max_examples=200)
def test_arbitrary_text_never_escapes_the_typed_error(text):
    try:
        wire.decode_json_response({"data": [{"data": text}]}, (2,))
    except MalformedResponseError:
        pass


def _meta(**changes) -> str:
    item = {"index": 0, "embed_dtype": "float32", "endianness": "little", "start": 0, "end": 24, "shape": [2, 3]}
    item.update(changes)
    return json.dumps({"data": [item]})


MALFORMED_BYTES = {
    "no header": None,
    "header not json": "{",
    "no data list": json.dumps({"id": 1}),
    "no shape": json.dumps({"data": [{"embed_dtype": "float32", "endianness": "little", "start": 0, "end": 24}]}),
    "wrong shape": _meta(shape=[3, 2, 1]),
    "slice past end": _meta(end=48),
    "negative start": _meta(start=-4),
    "unknown dtype": _meta(embed_dtype="fp8_e4m3"),
    "unknown endianness": _meta(endianness="middle"),
    "slice wrong length": _meta(start=4),
}


@pytest.mark.parametrize("metadata", MALFORMED_BYTES.values(), ids=MALFORMED_BYTES.keys())
def test_malformed_bytes_responses_raise_the_typed_error(metadata):
    with pytest.raises(MalformedResponseError):
        wire.decode_bytes_response(b"\x00" * 24, metadata, (1, 2, 3))
