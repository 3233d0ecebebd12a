"""fp8 decoding (geopool.wire.decode_fp8) against torch's own float8 types, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geopool import wire
from geopool.errors import CodecError, MalformedResponseError


@pytest.mark.parametrize(("embed_dtype", "torch_name"), [("fp8_e4m3", "float8_e4m3fn"), ("fp8_e5m2", "float8_e5m2")])
def test_every_byte_decodes_as_torch_reads_it(embed_dtype, torch_name):
    expected = torch.arange(256, dtype=torch.uint8).view(getattr(torch, torch_name)).to(torch.float32).numpy()
    assert np.array_equal(wire.decode_fp8(bytes(range(256)), embed_dtype=embed_dtype), expected, equal_nan=True)


def test_shape_and_errors():
    assert wire.decode_fp8(bytes([0x38] * 6), (1, 2, 3), embed_dtype="fp8_e4m3").shape == (1, 2, 3)
    with pytest.raises(MalformedResponseError, match="expected 6 bytes"):
        wire.decode_fp8(bytes(5), (2, 3), embed_dtype="fp8_e5m2")
    with pytest.raises(CodecError, match="embed_dtype='float16'"):
        wire.decode_fp8(bytes(2), embed_dtype="float16")
