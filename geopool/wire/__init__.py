"""Everything geopool knows about vLLM's ``/pooling`` wire format, each piece in exactly one module.

=================  =====================================================================================
module             what it knows
=================  =====================================================================================
``values``         output values ↔ bytes: embed dtypes and their widths, endianness, ``decode_values`` /
                   ``encode_values``, base64 text
``tensors``        input tensors ↔ bytes: ``torch.save`` / ``.npy`` (``serialize_array``, ``encode_array``,
                   ``load_tensor_bytes``) and the one ``torch.load`` (``weights_only=True``)
``request``        request bodies: ``pooling_request`` (the seed body), ``request_body`` (arrays → body),
                   ``seed_inputs``, and where the inputs sit (``image_embeds``)
``response``       answers → arrays: ``decode_json_response`` (base64) and ``decode_bytes_response`` (bytes)
``error_body``     vLLM's ``{"error": {...}}`` body: ``error_json`` builds it, ``parse_error`` finds it,
                   ``error_message`` reads its message
``metrics``        the Prometheus ``/metrics`` reader: ``read_metrics``, ``counter_total``, ``gauge``,
                   ``histogram``
=================  =====================================================================================

Server bytes are only ever read with ``numpy.frombuffer`` and tensors only loaded with
``torch.load(..., weights_only=True)``; nothing is unpickled. Every name is importable from
``geopool.wire`` itself.
"""

from __future__ import annotations

from geopool.wire.error_body import error_body, error_json, error_message, parse_error, well_formed_error
from geopool.wire.metrics import counter_total, gauge, histogram, read_metrics
from geopool.wire.request import (
    IMAGE_EMBEDS,
    encode_inputs,
    image_embeds,
    image_part,
    pooling_request,
    request_body,
    seed_inputs,
    seed_request,
    set_image_embed,
)
from geopool.wire.response import decode_bytes_response, decode_json_response
from geopool.wire.tensors import (
    INPUT_FORMATS,
    InputFormat,
    default_input_format,
    encode_array,
    load_tensor_bytes,
    serialize_array,
    torch_available,
    torch_load,
    torch_save_bytes,
)
from geopool.wire.values import (
    EMBED_DTYPES,
    ENCODING_FORMATS,
    ENDIANNESSES,
    FP8_FORMATS,
    WIDTHS,
    base64_bytes,
    base64_text,
    byteswap,
    decode_fp8,
    decode_values,
    encode_values,
    width,
)

__all__ = [
    "EMBED_DTYPES",
    "ENCODING_FORMATS",
    "ENDIANNESSES",
    "FP8_FORMATS",
    "IMAGE_EMBEDS",
    "INPUT_FORMATS",
    "WIDTHS",
    "InputFormat",
    "base64_bytes",
    "base64_text",
    "byteswap",
    "counter_total",
    "decode_bytes_response",
    "decode_fp8",
    "decode_json_response",
    "decode_values",
    "default_input_format",
    "torch_available",
    "encode_array",
    "encode_inputs",
    "encode_values",
    "error_body",
    "error_json",
    "error_message",
    "gauge",
    "histogram",
    "image_embeds",
    "image_part",
    "load_tensor_bytes",
    "parse_error",
    "pooling_request",
    "read_metrics",
    "request_body",
    "seed_inputs",
    "seed_request",
    "serialize_array",
    "set_image_embed",
    "torch_load",
    "torch_save_bytes",
    "well_formed_error",
    "width",
]
