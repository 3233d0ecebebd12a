"""geopool.wire.values: encode_values and decode_values are inverses and agree with vLLM's own bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geopool import wire
from geopool.errors import CodecError, MalformedResponseError

EDGES = np.array([0.0, -0.0, 1.0, -2.5, 1e-45, 1.1754944e-38, 65504.0, 65520.0, 3.4e38, -3.4e38,
                  np.inf, -np.inf, np.nan], np.float32)

arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(width=32, allow_nan=False, allow_infinity=True))


def vllm_bytes(array: np.ndarray, embed_dtype: str, endianness: str) -> bytes:
    """What vLLM writes: its own ``tensor2binary`` (vllm/utils/serial_utils.py), imported, not copied
    (here, not at the top: importing vLLM costs each test worker ~5 CPU-s at collection)."""
    from vllm.utils.serial_utils import tensor2binary

    return tensor2binary(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), embed_dtype, endianness)


@pytest.mark.parametrize("endianness", wire.ENDIANNESSES)
@pytest.mark.parametrize("embed_dtype", wire.EMBED_DTYPES)
def test_encode_then_decode_is_the_identity_on_representable_values(embed_dtype, endianness):
    representable = wire.decode_values(wire.encode_values(EDGES, embed_dtype), embed_dtype=embed_dtype)
    raw = wire.encode_values(representable, embed_dtype, endianness)
    assert len(raw) == wire.width(embed_dtype) * EDGES.size
    decoded = wire.decode_values(raw, EDGES.shape, embed_dtype=embed_dtype, endianness=endianness)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, representable)
    assert np.signbit(decoded[1]), "-0.0 keeps its sign"
    assert wire.encode_values(decoded, embed_dtype, endianness) == raw


@pytest.mark.parametrize("endianness", ["little", "big"])
@pytest.mark.parametrize("embed_dtype", wire.EMBED_DTYPES)
def test_encode_values_writes_what_vllm_writes(embed_dtype, endianness):
    numbers = EDGES[~np.isnan(EDGES)]
    assert wire.encode_values(numbers, embed_dtype, endianness) == vllm_bytes(numbers, embed_dtype, endianness)
    nan = wire.encode_values(np.array([np.nan], np.float32), embed_dtype, endianness)  # NaN payloads may differ
    assert np.isnan(wire.decode_values(nan, embed_dtype=embed_dtype, endianness=endianness)).all()


@given(array=arrays, embed_dtype=st.sampled_from(wire.EMBED_DTYPES), endianness=st.sampled_from(["little", "big"]))
def test_encode_values_matches_vllm_on_any_finite_or_infinite_array(array, embed_dtype, endianness):
    assert wire.encode_values(array, embed_dtype, endianness) == vllm_bytes(array, embed_dtype, endianness)


def test_native_is_little_endian_and_byteswap_flips_the_order():
    for embed_dtype in wire.EMBED_DTYPES:
        little = wire.encode_values(EDGES, embed_dtype, "little")
        assert wire.encode_values(EDGES, embed_dtype, "native") == little
        assert wire.byteswap(little, embed_dtype) == wire.encode_values(EDGES, embed_dtype, "big")


def test_decode_without_a_shape_is_flat_and_needs_whole_values():
    assert wire.decode_values(wire.encode_values(np.ones((2, 3)), "float16"), embed_dtype="float16").shape == (6,)
    with pytest.raises(MalformedResponseError, match="not a whole number of 4-byte float32 values"):
        wire.decode_values(b"\x00" * 6)


def test_widths_cover_every_embed_dtype():
    assert {name: wire.width(name) for name in wire.EMBED_DTYPES} == {"float32": 4, "float16": 2, "bfloat16": 2}
    assert wire.width("fp8_e4m3") == 1 and wire.width("unknown") == 4


def test_base64_text_round_trip():
    assert wire.base64_bytes(wire.base64_text(b"\x00\xff")) == b"\x00\xff"


BAD_ARGUMENTS = {
    "embed_dtype": lambda: wire.decode_values(b"", (0,), embed_dtype="float64"),
    "endianness": lambda: wire.decode_values(b"", (0,), endianness="middle"),
    "input dtype": lambda: wire.serialize_array(np.zeros(2), dtype="int8"),
    "input format": lambda: wire.serialize_array(np.zeros(2), dtype="float32", fmt="pickle"),
}


@pytest.mark.parametrize("call", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_misuse_names_the_argument(call):
    with pytest.raises(CodecError, match="is not supported; choose one of"):
        call()
