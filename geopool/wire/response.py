"""``/pooling`` answers → arrays: ``encoding_format`` base64 (JSON) and bytes (raw body + header).

A base64 answer is JSON whose ``data[i].data`` is base64 of the raw output values; a bytes answer is
the raw values themselves, with a ``metadata`` header (JSON) giving each item's slice, dtype, byte
order and shape. Both decode to float32 arrays of the contract's output shape through
:func:`geopool.wire.values.decode_values`. Anything malformed raises MalformedResponseError.

The load suite decodes every answer, so this is a hot path: where msgspec and pybase64 import (both in
the client install; both vLLM dependencies too) the JSON and base64 are read with them (~10× faster than
``json`` + ``base64`` on a 2.8 MB answer), into a writable buffer that numpy views without a copy. Whatever
they reject is decoded again by the standard library, which then decides: the fast path accepts and
returns exactly what the reference path does, and fails with the same messages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from geopool.errors import MalformedResponseError
from geopool.wire.values import EMBED_DTYPES, ENDIANNESSES, decode_values

try:  # the fast path; the standard library stands in where they are missing (results are the same)
    import msgspec
    import pybase64
except ImportError:  # pragma: no cover - both are core dependencies
    msgspec = pybase64 = None

__all__ = ["FAST_DECODE", "decode_bytes_response", "decode_json_response"]

#: Whether msgspec + pybase64 decode answers (else ``json`` + ``base64`` alone).
FAST_DECODE = msgspec is not None and pybase64 is not None


def _parse_json(text: str | bytes) -> Any:
    """``json.loads(text)``'s result; msgspec first, and ``json`` itself for anything msgspec rejects."""
    if FAST_DECODE:
        try:
            return msgspec.json.decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass  # json reads more (UTF-16 bytes, lone surrogates) or fails with its own message
    return json.loads(text)


def _base64_values(text: str) -> bytes | bytearray:
    """``base64.b64decode(text, validate=True)``'s bytes (as a writable bytearray on the fast path)."""
    if FAST_DECODE:
        try:
            return pybase64.b64decode_as_bytearray(text, validate=True)
        except (binascii.Error, ValueError):
            pass  # the standard library decides, with its own message
    return base64.b64decode(text, validate=True)


#: Where vLLM's compact JSON puts an answer's base64 text, and what stands in for it while the rest is parsed.
_FIELD, _STAND_IN = b'"data":"', b"#geopool-base64-cut#"
#: vLLM writes the base64 text after a few short fields; searching the whole 2.8 MB costs more than it saves.
_FIELD_WITHIN = 4096


def _fast_base64_field(body: bytes | bytearray, index: int) -> bytearray | None:
    """The decoded ``data[index].data`` of a well-formed answer without making a 2.8 MB ``str`` of it;
    None: let the reference path decide (it then also gives the error message).

    The base64 text is cut out (no quote or backslash in it, so it is one JSON string token wherever it
    sits), the rest is parsed with a stand-in text found nowhere else in the body, and the cut is used
    only if the parsed answer's ``data[index].data`` is that stand-in: then the reference path would
    read exactly the cut text, and base64 validation (ASCII alphabet only) makes it valid JSON too."""
    start = body.find(_FIELD, 0, _FIELD_WITHIN)
    if start < 0 or index < 0:
        return None
    start += len(_FIELD)
    end = body.find(b'"', start)
    if end < 0 or body.find(b"\\", start, end) >= 0:
        return None
    head, tail = body[:start], body[end:]
    if _STAND_IN in head or _STAND_IN in tail:
        return None
    try:
        skeleton = msgspec.json.decode(head + _STAND_IN + tail)
        if skeleton["data"][index]["data"] != _STAND_IN.decode() or not isinstance(skeleton["data"], list):
            return None
        return pybase64.b64decode_as_bytearray(memoryview(body)[start:end], validate=True)
    except (msgspec.DecodeError, LookupError, TypeError, binascii.Error, ValueError):
        return None


def decode_json_response(
    body: Any,
    shape: tuple[int, ...],
    *,
    embed_dtype: str = "float32",
    endianness: str = "little",
    index: int = 0,
) -> np.ndarray:
    """Decode ``data[index].data`` of a base64 ``/pooling`` JSON response (already parsed, or text)."""
    if FAST_DECODE and isinstance(body, bytes | bytearray):
        raw = _fast_base64_field(body, index)
        if raw is not None:
            return decode_values(raw, shape, embed_dtype=embed_dtype, endianness=endianness)
    if isinstance(body, str | bytes | bytearray):
        try:
            body = _parse_json(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(f"response body is not JSON: {exc}") from exc
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"response body must be a JSON object, got {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, list):
        raise MalformedResponseError(f"response field 'data' must be a list, got {data!r:.80}")
    if not 0 <= index < len(data):
        raise MalformedResponseError(f"response 'data' has {len(data)} entries; entry {index} is missing")
    entry = data[index]
    if not isinstance(entry, Mapping) or "data" not in entry:
        raise MalformedResponseError(f"response data[{index}] has no 'data' field: {entry!r:.80}")
    text = entry["data"]
    if not isinstance(text, str):
        raise MalformedResponseError(
            f"response data[{index}].data must be a base64 string, got {type(text).__name__}"
        )
    try:
        raw = _base64_values(text)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponseError(f"response data[{index}].data is not valid base64: {exc}") from exc
    return decode_values(raw, shape, embed_dtype=embed_dtype, endianness=endianness)


def decode_bytes_response(
    content: bytes, metadata: str | None, shape: tuple[int, ...], *, index: int = 0, embed_dtype: str | None = None
) -> np.ndarray:
    """Decode an ``encoding_format: "bytes"`` response: raw body plus the ``metadata`` header's JSON.

    The dtype, byte order and slice come from the header; its ``shape`` must match ``shape``
    without the leading batch dimension (vLLM reports ``[2, 512, 512]`` for ``(1, 2, 512, 512)``).
    ``embed_dtype``: the one the request asked for, which the header must name (None: any it names).
    """
    asked = embed_dtype
    if metadata is None:
        raise MalformedResponseError("bytes response has no 'metadata' header")
    try:
        meta = _parse_json(metadata)
        item = meta["data"][index]
        start, end = int(item["start"]), int(item["end"])
        embed_dtype, endianness = str(item["embed_dtype"]), str(item["endianness"])
        reported = tuple(int(d) for d in item["shape"])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedResponseError(f"bytes response metadata header is malformed ({exc!r}): {metadata!r:.200}") \
            from exc
    if reported not in (tuple(shape), tuple(shape[1:])):
        raise MalformedResponseError(f"metadata reports shape {list(reported)}, the contract says {list(shape)}")
    if not 0 <= start <= end <= len(content):
        raise MalformedResponseError(f"metadata slice [{start}:{end}] is outside the {len(content)}-byte body")
    if embed_dtype not in EMBED_DTYPES or endianness not in ENDIANNESSES:
        raise MalformedResponseError(f"metadata has unsupported embed_dtype/endianness {embed_dtype!r}/{endianness!r}")
    if asked is not None and embed_dtype != asked:
        raise MalformedResponseError(f"metadata says embed_dtype {embed_dtype!r}; the request asked for {asked!r}")
    values = content if (start, end) == (0, len(content)) else memoryview(content)[start:end]  # no copy
    return decode_values(values, shape, embed_dtype=embed_dtype, endianness=endianness)
