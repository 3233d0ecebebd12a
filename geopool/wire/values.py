"""Output values ↔ bytes: vLLM's ``embed_dtype`` and ``endianness``, and base64 text.

A ``/pooling`` answer carries its output as raw values: ``embed_dtype`` float32 (4 bytes), float16 or
bfloat16 (2 bytes) in ``endianness`` little, big or native (the server's; taken as little, as on x86
and ARM). :func:`decode_values` reads them — only ever with ``numpy.frombuffer``, never unpickled — and
:func:`encode_values` writes them back, as vLLM does (the fault proxy edits outputs in place with it).

>>> raw = encode_values(np.array([1.0, -2.5], np.float32), "bfloat16", "big")
>>> raw.hex()
'3f80c020'
>>> decode_values(raw, (2,), embed_dtype="bfloat16", endianness="big").tolist()
[1.0, -2.5]
"""

from __future__ import annotations

import base64

import numpy as np

from geopool import numpy_payloads
from geopool.errors import CodecError, MalformedResponseError

__all__ = [
    "EMBED_DTYPES",
    "ENCODING_FORMATS",
    "ENDIANNESSES",
    "FP8_FORMATS",
    "WIDTHS",
    "base64_bytes",
    "base64_text",
    "byteswap",
    "decode_fp8",
    "decode_values",
    "encode_values",
    "width",
]

#: The embed dtypes geopool decodes (vLLM 0.32 also accepts fp8_e4m3 / fp8_e5m2, see :data:`WIDTHS`).
EMBED_DTYPES = ("float32", "float16", "bfloat16")
ENDIANNESSES = ("little", "big", "native")
ENCODING_FORMATS = ("base64", "bytes")
#: Bytes per output value of every embed dtype vLLM 0.32 accepts, including the 1-byte fp8 ones that
#: geopool does not decode (a byte-level edit of such an answer still needs the width).
WIDTHS = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise CodecError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise CodecError(f"{name}={value!r} is not supported; choose one of {choices}")


def width(embed_dtype: str, default: int = 4) -> int:
    """Bytes per value of ``embed_dtype``; ``default`` for a name vLLM does not know."""
    return WIDTHS.get(embed_dtype, default)


def decode_values(
    raw: bytes, shape: tuple[int, ...] | None = None, *, embed_dtype: str = "float32", endianness: str = "little"
) -> np.ndarray:
    """Raw output bytes → float32 array of ``shape`` (float16 and bfloat16 widen exactly).

    ``shape=None`` gives every value, flat. A byte count that does not fill ``shape`` (or, without a
    shape, is not a whole number of values) raises MalformedResponseError. Little-endian float32 in a
    ``bytearray`` (what the fast base64 decoder returns) is viewed in place, not copied: the array shares
    that buffer.
    """
    check_choice("embed_dtype", embed_dtype, EMBED_DTYPES)
    check_choice("endianness", endianness, ENDIANNESSES)
    size = WIDTHS[embed_dtype]
    if shape is None:
        if len(raw) % size:
            raise MalformedResponseError(f"{len(raw)} bytes are not a whole number of {size}-byte {embed_dtype} values")
        count = len(raw) // size
    else:
        count = int(np.prod(shape))
        expected = count * size
        if len(raw) != expected:
            raise MalformedResponseError(
                f"expected {expected} bytes ({count} {embed_dtype} values for shape {tuple(shape)}), got {len(raw)}"
            )
    if isinstance(raw, bytearray) and embed_dtype == "float32" and endianness != "big":
        values = np.frombuffer(raw, "<f4")  # writable already: a copy would only cost time
    else:
        values = numpy_payloads.values_from_bytes(raw, embed_dtype, endianness)
    return values.reshape(
        shape if shape is not None else (count,))


def encode_values(values: np.ndarray, embed_dtype: str = "float32", endianness: str = "little") -> bytes:
    """``values`` as the raw bytes vLLM sends for ``embed_dtype`` / ``endianness``: the inverse of
    :func:`decode_values`.

    The cast rounds to nearest even and overflows to ±inf, as torch's does, so the bytes are vLLM's own;
    only a NaN's payload may differ (bfloat16 NaN is written as ``0x7FC0``).
    """
    check_choice("embed_dtype", embed_dtype, EMBED_DTYPES)
    check_choice("endianness", endianness, ENDIANNESSES)
    return numpy_payloads.values_to_bytes(values, embed_dtype, endianness)


def byteswap(raw: bytes, embed_dtype: str) -> bytes:
    """``raw`` with every value's bytes reversed: the same values in the other byte order (a name vLLM
    does not know is taken as 4 bytes wide; a trailing partial value raises ValueError)."""
    return np.frombuffer(raw, f"u{width(embed_dtype)}").byteswap().tobytes()


def base64_text(data: bytes) -> str:
    """``data`` as base64 text: an ``image_embeds`` value, or a base64 answer's ``data[i].data``."""
    return base64.b64encode(data).decode("ascii")


def base64_bytes(text: str | bytes, *, validate: bool = False) -> bytes:
    """The bytes of base64 ``text``. Lenient unless ``validate`` (then a character outside the alphabet
    raises ``binascii.Error``); :func:`geopool.wire.decode_json_response` validates and translates errors."""
    return base64.b64decode(text, validate=validate)


#: The 1-byte embed dtypes vLLM 0.32 also accepts (``torch.float8_e4m3fn`` / ``torch.float8_e5m2`` bits):
#: ``(exponent bits, mantissa bits, exponent bias)``. Decoded by :func:`decode_fp8` only.
FP8_FORMATS = {name: numpy_payloads.fp8_format(name) for name in ("fp8_e4m3", "fp8_e5m2")}


def decode_fp8(raw: bytes, shape: tuple[int, ...] | None = None, *, embed_dtype: str) -> np.ndarray:
    """1-byte fp8 output values → float32 array of ``shape`` (exact: every fp8 value is a float32).

    >>> decode_fp8(bytes([0x38, 0xC0, 0x7F]), embed_dtype="fp8_e4m3").tolist()[:2]
    [1.0, -2.0]
    >>> decode_fp8(bytes([0x3C, 0x7C]), embed_dtype="fp8_e5m2").tolist()
    [1.0, inf]
    """
    check_choice("embed_dtype", embed_dtype, tuple(FP8_FORMATS))
    count = len(raw) if shape is None else int(np.prod(shape))
    if len(raw) != count:
        raise MalformedResponseError(f"expected {count} bytes ({count} {embed_dtype} values for shape "
                                     f"{tuple(shape or ())}), got {len(raw)}")
    values = numpy_payloads.fp8_values(raw, embed_dtype)
    return values.reshape(shape if shape is not None else (count,))
