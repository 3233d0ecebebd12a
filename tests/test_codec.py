"""Property tests of geopool.codec: round trips for every dtype/format/endianness, typed errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geopool import codec
from geopool.contract import SEN1FLOODS11
from geopool.errors import CodecError, MalformedResponseError

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
VIEW_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.float16}

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
values = st.floats(width=32, allow_nan=True, allow_infinity=True)


def server_bytes(array: np.ndarray, embed_dtype: str, endianness: str) -> bytes:
    """What vLLM 0.32's tensor2binary writes (utils/serial_utils.py), reproduced with torch."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    raw = tensor.to(TORCH_DTYPES[embed_dtype]).flatten().contiguous().view(VIEW_DTYPES[embed_dtype]).numpy()
    if endianness == "big":
        raw = raw.byteswap()
    return raw.tobytes()


def expected_values(array: np.ndarray, embed_dtype: str) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.to(TORCH_DTYPES[embed_dtype]).to(torch.float32).numpy()


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    embed_dtype=st.sampled_from(codec.EMBED_DTYPES),
    endianness=st.sampled_from(codec.ENDIANNESSES),
)
def test_base64_response_round_trip(array, embed_dtype, endianness):
    wire_order = "big" if endianness == "big" else "little"
    text = base64.b64encode(server_bytes(array, embed_dtype, wire_order)).decode()
    body = {"data": [{"index": 0, "object": "pooling", "data": text}]}
    decoded = codec.decode_json_response(body, array.shape, embed_dtype=embed_dtype, endianness=endianness)
    assert decoded.dtype == np.float32 and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, expected_values(array, embed_dtype))


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    embed_dtype=st.sampled_from(codec.EMBED_DTYPES),
    endianness=st.sampled_from(["big", "little"]),
    batch_dim=st.booleans(),
)
def test_bytes_response_round_trip(array, embed_dtype, endianness, batch_dim):
    raw = server_bytes(array, embed_dtype, endianness)
    prefix = b"\x00" * 8  # metadata start/end must be honoured, not assumed 0/len
    metadata = json.dumps({"data": [{"index": 0, "embed_dtype": embed_dtype, "endianness": endianness,
                                     "start": 8, "end": 8 + len(raw), "shape": list(array.shape)}]})
    shape = (1, *array.shape) if batch_dim else array.shape
    decoded = codec.decode_bytes_response(prefix + raw, metadata, shape)
    np.testing.assert_array_equal(decoded, expected_values(array, embed_dtype).reshape(shape))


@given(
    array=shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=values)),
    dtype=st.sampled_from(codec.EMBED_DTYPES),
    fmt=st.sampled_from(codec.INPUT_FORMATS),
)
def test_input_serialization_round_trip(array, dtype, fmt):
    if fmt == "npy" and dtype == "bfloat16":
        with pytest.raises(CodecError, match="bfloat16"):
            codec.serialize_array(array, dtype=dtype, fmt=fmt)
        return
    data = base64.b64decode(codec.encode_array(array, dtype=dtype, fmt=fmt))
    assert data.startswith(b"\x93NUMPY") == (fmt == "npy")
    loaded = codec.load_tensor_bytes(data)
    np.testing.assert_array_equal(loaded, expected_values(array, dtype))
    if fmt == "torch":
        tensor = torch.load(__import__("io").BytesIO(data), weights_only=True)
        assert tensor.dtype == TORCH_DTYPES[dtype]


def test_full_size_seed_request_matches_the_seed_encoding():
    """The seed client's own bytes for pixel_values (torch.save of a float16 tensor of ones)."""
    import io

    buffer = io.BytesIO()
    torch.save(torch.full((6, 512, 512), 1.0, dtype=torch.float16), buffer)
    inputs = codec.seed_inputs(SEN1FLOODS11)
    ours = base64.b64decode(codec.encode_array(inputs["pixel_values"], dtype="float16"))
    loaded = torch.load(io.BytesIO(ours), weights_only=True)
    seed = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert loaded.dtype == seed.dtype and torch.equal(loaded, seed)
    body = codec.pooling_request("m", {"pixel_values": "AA==", "location_coords": "AA=="})
    assert body["messages"][0]["content"][0]["type"] == "image_embeds"
    assert set(body["messages"][0]["content"][0]["image_embeds"]) == {"pixel_values", "location_coords"}
    assert "embed_dtype" not in body and "endianness" not in body
    assert codec.pooling_request("m", {}, embed_dtype="float16", endianness="big")["embed_dtype"] == "float16"


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
        codec.decode_json_response(body, (2, 3))


@given(
    raw=st.binary(max_size=64),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    embed_dtype=st.sampled_from(codec.EMBED_DTYPES),
)
def test_any_wrong_byte_count_raises(raw, shape, embed_dtype):
    expected = int(np.prod(shape)) * (4 if embed_dtype == "float32" else 2)
    body = {"data": [{"data": base64.b64encode(raw).decode()}]}
    if len(raw) == expected:
        assert codec.decode_json_response(body, shape, embed_dtype=embed_dtype).shape == shape
    else:
        with pytest.raises(MalformedResponseError, match=f"expected {expected} bytes"):
            codec.decode_json_response(body, shape, embed_dtype=embed_dtype)


@given(text=st.text(max_size=40))
@settings(max_examples=200)
def test_arbitrary_text_never_escapes_the_typed_error(text):
    try:
        codec.decode_json_response({"data": [{"data": text}]}, (2,))
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
        codec.decode_bytes_response(b"\x00" * 24, metadata, (1, 2, 3))


BAD_ARGUMENTS = {
    "embed_dtype": lambda: codec.decode_values(b"", (0,), embed_dtype="float64"),
    "endianness": lambda: codec.decode_values(b"", (0,), endianness="middle"),
    "input dtype": lambda: codec.serialize_array(np.zeros(2), dtype="int8"),
    "input format": lambda: codec.serialize_array(np.zeros(2), dtype="float32", fmt="pickle"),
}


@pytest.mark.parametrize("call", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_misuse_names_the_argument(call):
    with pytest.raises(CodecError, match="is not supported; choose one of"):
        call()
