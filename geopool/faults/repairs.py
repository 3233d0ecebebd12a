"""Positive controls besides the validating gateway: the proxy repairs one vLLM 0.32 defect, so the
requirement it breaks can be seen passing on a server that answers as a conforming one would.

``repair-float``      a request for the default encoding (float) is sent upstream as base64 and its
                      answer returned as nested numbers of the output's shape (POOL-ENC-007)
``repair-openapi``    /openapi.json documents the 200 answer of POST /pooling (POOL-EP-007)
``repair-serialize``  one model request upstream at a time, so no engine batch mixes two requests'
                      location_coords (POOL-DET-003)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from geopool import wire
from geopool.faults.base import Exchange, Fault
from geopool.faults.gateway import MODEL_PATHS

__all__ = ["RepairFloat", "RepairOpenapi", "RepairSerialize", "POOLING_RESPONSE_SCHEMA"]


class RepairFloat(Fault):
    name, summary = "repair-float", ("positive control: encoding_format float (the default) is answered with "
                                     "nested numbers, built from the server's base64 answer")
    needs_contract = True

    async def intercept(self, exchange):
        body = exchange.request_json
        if not (exchange.pooling and isinstance(body, dict) and body.get("encoding_format", "float") == "float"):
            return False
        try:
            target = wire.image_embeds(body)[self.contract.target]
            height, width = wire.load_tensor_bytes(wire.base64_bytes(target)).shape[-2:]
        except (KeyError, IndexError, TypeError, ValueError):
            return False  # not a well-formed request: the server's own answer is the verdict
        exchange.notes["float-shape"] = (self.contract.num_classes, int(height), int(width))
        body = dict(body, encoding_format="base64", embed_dtype="float32", endianness="little")
        exchange.request_body, exchange.request_json = json.dumps(body).encode(), body
        return False

    async def response(self, exchange):
        shape = exchange.notes.get("float-shape")
        if shape is None or not exchange.ok_json:
            return
        answer = json.loads(exchange.body)
        for entry in answer.get("data", []):
            values = wire.decode_values(wire.base64_bytes(entry["data"]), embed_dtype="float32", endianness="little")
            entry["data"] = values.reshape(shape).tolist()
        exchange.set_json(answer)


#: The 200 answer of POST /pooling in tensor mode (vLLM's PoolingResponse).
POOLING_RESPONSE_SCHEMA = {
    "type": "object", "required": ["id", "object", "created", "model", "data", "usage"],
    "properties": {
        "id": {"type": "string", "minLength": 1}, "object": {"const": "list"}, "created": {"type": "integer"},
        "model": {"type": "string"},
        "data": {"type": "array", "items": {
            "type": "object", "required": ["index", "object", "data"],
            "properties": {"index": {"type": "integer", "minimum": 0}, "object": {"type": "string"},
                           "data": {"anyOf": [{"type": "string"}, {"type": "array"}]}}}},
        "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"],
                  "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
                                 "completion_tokens": {"type": ["integer", "null"]}}},
    },
}


class RepairOpenapi(Fault):
    name, summary = "repair-openapi", "positive control: /openapi.json documents the 200 answer of POST /pooling"

    async def response(self, exchange):
        if exchange.path != "/openapi.json" or exchange.status != 200:
            return
        spec = json.loads(exchange.body)
        operation = spec.setdefault("paths", {}).setdefault("/pooling", {}).setdefault("post", {})
        spec.setdefault("components", {}).setdefault("schemas", {})["GeopoolPoolingResponse"] = POOLING_RESPONSE_SCHEMA
        answer = operation.setdefault("responses", {}).setdefault("200", {})
        answer.setdefault("description", "Successful Response")
        answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/GeopoolPoolingResponse"}}}
        exchange.set_json(spec)


class RepairSerialize(Fault):
    name, summary = "repair-serialize", ("positive control: one model request upstream at a time, so no engine "
                                         "batch mixes two requests")

    def __init__(self, *params):
        super().__init__(*params)
        self.lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def forwarding(self, exchange: Exchange) -> AsyncIterator[None]:
        if exchange.method != "POST" or exchange.path not in MODEL_PATHS:
            yield
            return
        async with self.lock:
            yield
