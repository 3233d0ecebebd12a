"""Input tensors ↔ bytes: ``torch.save`` or ``.npy``, and the one safe way to load them.

vLLM 0.32 takes each ``image_embeds`` input as base64 of ``torch.save`` bytes, or of ``.npy`` bytes
(it sniffs the ``\\x93NUMPY`` magic), so inputs can be sent without torch. bfloat16 has no numpy dtype
and needs torch. Loading goes through :func:`torch_load`, which always passes ``weights_only=True``:
nothing geopool reads is ever unpickled.
"""

from __future__ import annotations

import importlib.util
import io
from typing import IO, Any, Literal

import numpy as np

from geopool import numpy_payloads
from geopool.errors import CodecError, import_optional
from geopool.wire.values import EMBED_DTYPES, base64_text, check_choice

__all__ = [
    "INPUT_FORMATS",
    "InputFormat",
    "encode_array",
    "load_tensor_bytes",
    "serialize_array",
    "torch_load",
    "torch_save_bytes",
]

INPUT_FORMATS = ("torch", "npy")
InputFormat = Literal["torch", "npy"]

_TORCH_HINT = "pip install 'geopool[reference]'"


def torch_available() -> bool:
    """Whether torch is installed (the ``[reference]`` extra); found without importing it."""
    return importlib.util.find_spec("torch") is not None


def default_input_format() -> InputFormat:
    """``torch`` (the seed's ``torch.save``) where torch is installed, else ``npy``, which vLLM also reads:
    the client install (no torch) can still send every float32 or float16 input."""
    return "torch" if torch_available() else "npy"


def serialize_array(array: np.ndarray, *, dtype: str, fmt: InputFormat | None = None) -> bytes:
    """``array`` cast to ``dtype`` and serialized as ``torch.save`` or ``.npy`` bytes (``fmt`` None:
    :func:`default_input_format`).

    bfloat16 has no numpy dtype, so it needs ``fmt="torch"``.
    """
    fmt = fmt or default_input_format()
    check_choice("dtype", dtype, EMBED_DTYPES)
    check_choice("fmt", fmt, INPUT_FORMATS)
    if fmt == "npy":
        if dtype == "bfloat16":
            raise CodecError("dtype='bfloat16' cannot be sent as .npy (numpy has no bfloat16); use fmt='torch'")
        return numpy_payloads.npy_bytes(array, dtype)
    torch = import_optional("torch", "sending inputs in torch.save format", _TORCH_HINT)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(getattr(torch, dtype))
    return torch_save_bytes(tensor)


def encode_array(array: np.ndarray, *, dtype: str, fmt: InputFormat | None = None) -> str:
    """Base64 text of :func:`serialize_array` — what goes into an ``image_embeds`` value."""
    return base64_text(serialize_array(array, dtype=dtype, fmt=fmt))


def torch_save_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes (tensors, and the hostile objects of the negative suite)."""
    torch = import_optional("torch", "writing torch.save bytes", _TORCH_HINT)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_load(source: str | bytes | IO[bytes] | Any, *, saved_on: list[str] | None = None) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU: ``source`` is bytes, a path or a file.

    ``saved_on``, if given, receives the location tag of every storage as saved (``cpu``, ``cuda:0``, ...):
    the tensors are loaded onto the CPU whatever the device they were saved from.
    """
    torch = import_optional("torch", "reading torch.save bytes", _TORCH_HINT)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)

    def onto_the_cpu(storage: Any, location: str) -> Any:
        if saved_on is not None:
            saved_on.append(location)
        return storage  # deserialized in CPU memory already

    return torch.load(source, weights_only=True, map_location=onto_the_cpu)


def load_tensor_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`serialize_array` (float32 result), loading ``torch.save`` bytes safely."""
    if data.startswith(b"\x93NUMPY"):
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
    torch = import_optional("torch", "reading torch.save bytes", _TORCH_HINT)
    return torch_load(data).to(torch.float32).numpy()
