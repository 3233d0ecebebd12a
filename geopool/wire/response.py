"""``/pooling`` answers → arrays: ``encoding_format`` base64 (JSON) and bytes (raw body + header).

A base64 answer is JSON whose ``data[i].data`` is base64 of the raw output values; a bytes answer is
the raw values themselves, with a ``metadata`` header (JSON) giving each item's slice, dtype, byte
order and shape. Both decode to float32 arrays of the contract's output shape through
:func:`geopool.wire.values.decode_values`. Anything malformed raises MalformedResponseError.
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

__all__ = ["decode_bytes_response", "decode_json_response"]


def decode_json_response(
    body: Any,
    shape: tuple[int, ...],
    *,
    embed_dtype: str = "float32",
    endianness: str = "little",
    index: int = 0,
) -> np.ndarray:
    """Decode ``data[index].data`` of a base64 ``/pooling`` JSON response (already parsed, or text)."""
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
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
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponseError(f"response data[{index}].data is not valid base64: {exc}") from exc
    return decode_values(raw, shape, embed_dtype=embed_dtype, endianness=endianness)


def decode_bytes_response(
    content: bytes, metadata: str | None, shape: tuple[int, ...], *, index: int = 0
) -> np.ndarray:
    """Decode an ``encoding_format: "bytes"`` response: raw body plus the ``metadata`` header's JSON.

    The dtype, byte order and slice come from the header; its ``shape`` must match ``shape``
    without the leading batch dimension (vLLM reports ``[2, 512, 512]`` for ``(1, 2, 512, 512)``).
    """
    if metadata is None:
        raise MalformedResponseError("bytes response has no 'metadata' header")
    try:
        meta = json.loads(metadata)
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
    return decode_values(content[start:end], shape, embed_dtype=embed_dtype, endianness=endianness)
