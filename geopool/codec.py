"""Deprecated alias of :mod:`geopool.wire`, kept for one release: import ``geopool.wire`` instead.

Every name this module had (``encode_array``, ``pooling_request``, ``decode_json_response``, …) is
re-exported unchanged from :mod:`geopool.wire`, where the wire format now lives.
"""

from __future__ import annotations

import warnings

from geopool.wire import (
    EMBED_DTYPES,
    ENCODING_FORMATS,
    ENDIANNESSES,
    INPUT_FORMATS,
    InputFormat,
    decode_bytes_response,
    decode_json_response,
    decode_values,
    encode_array,
    load_tensor_bytes,
    pooling_request,
    seed_inputs,
    serialize_array,
)

__all__ = [
    "EMBED_DTYPES",
    "ENCODING_FORMATS",
    "ENDIANNESSES",
    "INPUT_FORMATS",
    "InputFormat",
    "decode_bytes_response",
    "decode_json_response",
    "decode_values",
    "encode_array",
    "load_tensor_bytes",
    "pooling_request",
    "seed_inputs",
    "serialize_array",
]

warnings.warn("geopool.codec is deprecated; import geopool.wire", DeprecationWarning, stacklevel=2)
