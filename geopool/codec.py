"""Payload encoding and response decoding for vLLM's ``/pooling`` tensor-to-tensor mode.

The one place where arrays become request bodies and response bytes become arrays; both suites
import it. Server bytes are only ever read with ``numpy.frombuffer`` (never unpickled), and tensors
are only loaded with ``torch.load(..., weights_only=True)``.

Request side: each input is serialized as ``torch.save`` bytes (needs torch) or ``.npy`` bytes (numpy
only; vLLM sniffs the ``\\x93NUMPY`` magic) and base64-encoded into one chat ``image_embeds`` part.

Response side: ``encoding_format`` ``base64`` (JSON, ``data[i].data`` is base64 of raw values) or
``bytes`` (raw body, a ``metadata`` header with JSON). Values are ``embed_dtype`` float32, float16 or
bfloat16 in ``endianness`` little, big or native (the server's; taken as little, as on x86 and ARM).
Decoded arrays are always float32 of the contract's output shape: float16 and bfloat16 widen exactly.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from geopool.contract import ModelContract
from geopool.errors import CodecError, MalformedResponseError, import_optional

__all__ = [
    "EMBED_DTYPES",
    "ENCODING_FORMATS",
    "ENDIANNESSES",
    "INPUT_FORMATS",
    "decode_bytes_response",
    "decode_json_response",
    "decode_values",
    "encode_array",
    "load_tensor_bytes",
    "pooling_request",
    "seed_inputs",
    "serialize_array",
]

EMBED_DTYPES = ("float32", "float16", "bfloat16")
ENDIANNESSES = ("little", "big", "native")
ENCODING_FORMATS = ("base64", "bytes")
INPUT_FORMATS = ("torch", "npy")

InputFormat = Literal["torch", "npy"]

_ITEM_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise CodecError(f"{name}={value!r} is not supported; choose one of {choices}")


# ---------------------------------------------------------------------------------------- request


def serialize_array(array: np.ndarray, *, dtype: str, fmt: InputFormat = "torch") -> bytes:
    """``array`` cast to ``dtype`` and serialized as ``torch.save`` or ``.npy`` bytes.

    bfloat16 has no numpy dtype, so it needs ``fmt="torch"``.
    """
    _check_choice("dtype", dtype, EMBED_DTYPES)
    _check_choice("fmt", fmt, INPUT_FORMATS)
    buffer = io.BytesIO()
    if fmt == "npy":
        if dtype == "bfloat16":
            raise CodecError("dtype='bfloat16' cannot be sent as .npy (numpy has no bfloat16); use fmt='torch'")
        with np.errstate(over="ignore"):  # out-of-range values become ±inf, as torch's cast does
            np.save(buffer, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
        return buffer.getvalue()
    torch = import_optional("torch", "sending inputs in torch.save format", "pip install 'geopool[torch]'")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(getattr(torch, dtype))
    torch.save(tensor, buffer)
    return buffer.getvalue()


def encode_array(array: np.ndarray, *, dtype: str, fmt: InputFormat = "torch") -> str:
    """Base64 text of :func:`serialize_array` — what goes into an ``image_embeds`` value."""
    return base64.b64encode(serialize_array(array, dtype=dtype, fmt=fmt)).decode("ascii")


def load_tensor_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`serialize_array` (float32 result), loading ``torch.save`` bytes safely."""
    if data.startswith(b"\x93NUMPY"):
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
    torch = import_optional("torch", "reading torch.save bytes", "pip install 'geopool[torch]'")
    tensor = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    return tensor.to(torch.float32).numpy()


def seed_inputs(contract: ModelContract, fill: float = 1.0) -> dict[str, np.ndarray]:
    """The seed client's inputs: every input of the contract filled with ``fill``."""
    return {spec.name: np.full(spec.shape, fill, dtype=np.float32) for spec in contract.inputs}


def pooling_request(
    model: str,
    encoded_inputs: Mapping[str, str],
    *,
    encoding_format: str = "base64",
    embed_dtype: str | None = None,
    endianness: str | None = None,
) -> dict[str, Any]:
    """The seed's ``/pooling`` body: one user message with one ``image_embeds`` part.

    ``encoded_inputs`` maps input names to base64 text (see :func:`encode_array`). ``embed_dtype`` and
    ``endianness`` are only sent when given, so the server's defaults can be tested too.
    """
    body: dict[str, Any] = {
        "model": model,
        # Ignored by vLLM 0.32 (unknown fields are allowed) but sent by the seed client; kept so the
        # body is byte-for-byte the documented one.
        "additional_data": {"prompt_token_ids": [1]},
        "encoding_format": encoding_format,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_embeds", "image_embeds": dict(encoded_inputs)}],
            }
        ],
    }
    if embed_dtype is not None:
        body["embed_dtype"] = embed_dtype
    if endianness is not None:
        body["endianness"] = endianness
    return body


# --------------------------------------------------------------------------------------- response


def decode_values(
    raw: bytes, shape: tuple[int, ...], *, embed_dtype: str = "float32", endianness: str = "little"
) -> np.ndarray:
    """Raw output bytes → float32 array of ``shape``; a wrong byte count raises MalformedResponseError."""
    _check_choice("embed_dtype", embed_dtype, EMBED_DTYPES)
    _check_choice("endianness", endianness, ENDIANNESSES)
    order = ">" if endianness == "big" else "<"
    count = int(np.prod(shape))
    expected = count * _ITEM_SIZE[embed_dtype]
    if len(raw) != expected:
        raise MalformedResponseError(
            f"expected {expected} bytes ({count} {embed_dtype} values for shape {tuple(shape)}), "
            f"got {len(raw)}"
        )
    if embed_dtype == "bfloat16":
        # bfloat16 is the top half of a float32: widen the 16 bits into the high half.
        bits = np.frombuffer(raw, dtype=f"{order}u2").astype(np.uint32) << 16
        values = bits.view(np.float32)
    else:
        values = np.frombuffer(raw, dtype=f"{order}{'f4' if embed_dtype == 'float32' else 'f2'}")
        values = values.astype(np.float32)
    return values.reshape(shape)


def decode_json_response(
    body: Any,
    shape: tuple[int, ...],
    *,
    embed_dtype: str = "float32",
    endianness: str = "little",
    index: int = 0,
) -> np.ndarray:
    """Decode ``data[index].data`` of a base64 ``/pooling`` JSON response (already parsed, or text)."""
    if isinstance(body, (str, bytes)):
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
