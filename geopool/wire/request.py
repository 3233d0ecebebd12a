"""``/pooling`` request bodies: the seed's body, the way arrays become one, and where its inputs live.

The seed body is one user message whose one content part has type ``image_embeds`` and maps input
names to base64 tensors (``messages[0].content[0].image_embeds``). :func:`request_body` is the one
path from arrays to such a body; :func:`image_embeds` is the one place that knows where the inputs
sit, for code that edits a body (the negative and security suites).

>>> body = pooling_request("m", {"pixel_values": "AA=="}, embed_dtype="float16")
>>> image_embeds(body)
{'pixel_values': 'AA=='}
>>> body["embed_dtype"], "endianness" in body
('float16', False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from geopool.contract import ModelContract
from geopool.wire.tensors import InputFormat, encode_array

__all__ = [
    "IMAGE_EMBEDS",
    "encode_inputs",
    "image_embeds",
    "image_part",
    "pooling_request",
    "request_body",
    "seed_inputs",
    "seed_request",
    "set_image_embed",
]

#: The content part type, and its key, that carries tensor inputs.
IMAGE_EMBEDS = "image_embeds"


def seed_inputs(contract: ModelContract, fill: float = 1.0) -> dict[str, np.ndarray]:
    """The seed client's inputs: every input of the contract filled with ``fill``."""
    return {spec.name: np.full(spec.shape, fill, dtype=np.float32) for spec in contract.inputs}


def pooling_request(
    model: str,
    encoded_inputs: Mapping[str, Any],
    *,
    encoding_format: str = "base64",
    embed_dtype: str | None = None,
    endianness: str | None = None,
) -> dict[str, Any]:
    """The seed's ``/pooling`` body: one user message with one ``image_embeds`` part.

    ``encoded_inputs`` maps input names to base64 text (see :func:`encode_inputs`). ``embed_dtype`` and
    ``endianness`` are only sent when given, so the server's defaults can be tested too.
    """
    body: dict[str, Any] = {
        "model": model,
        # Ignored by vLLM 0.32 (unknown fields are allowed) but sent by the seed client; kept so the
        # body is byte-for-byte the documented one.
        "additional_data": {"prompt_token_ids": [1]},
        "encoding_format": encoding_format,
        "messages": [{"role": "user", "content": [{"type": IMAGE_EMBEDS, IMAGE_EMBEDS: dict(encoded_inputs)}]}],
    }
    if embed_dtype is not None:
        body["embed_dtype"] = embed_dtype
    if endianness is not None:
        body["endianness"] = endianness
    return body


def encode_inputs(arrays: Mapping[str, np.ndarray], *, dtype: str, fmt: InputFormat | None = None) -> dict[str, str]:
    """Every array cast to ``dtype`` (the server's input dtype) and encoded as base64 ``fmt`` bytes."""
    return {name: encode_array(value, dtype=dtype, fmt=fmt) for name, value in arrays.items()}


def request_body(
    model: str,
    arrays: Mapping[str, np.ndarray],
    *,
    dtype: str,
    fmt: InputFormat | None = None,
    encoding_format: str = "base64",
    embed_dtype: str | None = None,
    endianness: str | None = None,
) -> dict[str, Any]:
    """Arrays → encoded inputs → the seed-shaped body: the one way geopool builds a valid request.

    ``dtype`` is the dtype the server was loaded with (``ModelContract.input_dtype``); ``fmt`` None is
    :func:`~geopool.wire.tensors.default_input_format`; the other options are :func:`pooling_request`'s.
    """
    return pooling_request(model, encode_inputs(arrays, dtype=dtype, fmt=fmt), encoding_format=encoding_format,
                           embed_dtype=embed_dtype, endianness=endianness)


def seed_request(model: str, contract: ModelContract) -> dict[str, Any]:
    """The seed client's request for ``model``: every input filled with 1.0, in the server's input dtype."""
    return request_body(model, seed_inputs(contract), dtype=contract.input_dtype)


def image_part(body: dict[str, Any]) -> dict[str, Any]:
    """``messages[0].content[0]``: the content part that carries the inputs (KeyError/IndexError/TypeError
    when the body has another structure)."""
    return body["messages"][0]["content"][0]


def image_embeds(body: dict[str, Any]) -> dict[str, Any]:
    """``messages[0].content[0].image_embeds`` of ``body`` — the body's own dict, so assigning or deleting
    an item edits the body."""
    return image_part(body)[IMAGE_EMBEDS]


def set_image_embed(body: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """Put ``value`` (base64 text, or anything else for a negative test) in input ``name``; returns ``body``."""
    image_embeds(body)[name] = value
    return body
