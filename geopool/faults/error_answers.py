"""Faults in how rejections are answered: status, error body, and a server that dies after one."""

from __future__ import annotations

import asyncio
import json

from geopool import wire
from geopool.faults.base import Fault


def proxy_error(status: int, message: str) -> bytes:
    """vLLM's error body for an answer the proxy makes up itself."""
    return wire.error_json(message, type="ProxyFault", code=status)


class ServerErrorForClientError(Fault):
    name, summary = "5xx-for-4xx", "every 4xx answer becomes a 500 with the same body"

    async def response(self, exchange):
        if 400 <= exchange.status < 500:
            exchange.status = 500


class OutOfVocabulary(Fault):
    name, summary = ("out-of-vocab", "every pooling request refused 400 \"Token id 1 is out of vocabulary\", as vLLM "
                                     "0.33 is read to refuse TerraTorch requests (docs/vllm-versions.md)")

    async def intercept(self, exchange):
        if not exchange.pooling:
            return False
        exchange.status = 400
        exchange.body = wire.error_json("Token id 1 is out of vocabulary (0 tokens)", type="BadRequestError",
                                        code=400)
        exchange.headers = {"content-type": "application/json"}
        return True


class AcceptBad(Fault):
    name, summary = "accept-bad", "rejected pooling requests get 200 and an all-zero output instead"

    def __init__(self, *params):
        super().__init__(*params)
        self.template: bytes | None = None

    async def response(self, exchange):
        if exchange.ok_json and self.template is None:
            self.template = exchange.body
        elif exchange.pooling and 400 <= exchange.status < 500 and self.template:
            body = json.loads(self.template)
            for entry in body["data"]:
                entry["data"] = wire.base64_text(bytes(len(wire.base64_bytes(entry["data"]))))
            exchange.status, exchange.body = 200, json.dumps(body).encode()
            exchange.headers["content-type"] = "application/json"


class FlatErrors(Fault):
    name, summary = "flat-errors", "error bodies in the pre-0.10 flat shape {object, message, ...}"

    async def response(self, exchange):
        if exchange.status >= 400 and exchange.body.startswith(b"{"):
            exchange.set_json({"object": "error", **(wire.parse_error(exchange.body) or {})})


class BlankErrors(Fault):
    name, summary = "blank-errors", "error messages are emptied"

    async def response(self, exchange):
        if exchange.status >= 400 and exchange.body.startswith(b"{"):
            body = json.loads(exchange.body)
            error = wire.parse_error(body)  # the body's own dict: emptied in place
            if error is not None:
                error["message"] = ""
                exchange.set_json(body)


class DieAfterBad(Fault):
    name, summary = "die-after-bad", "after any 4xx, every request gets 503 for a while (param: seconds [3])"

    def __init__(self, *params):
        super().__init__(*params)
        self.dead_until = 0.0

    async def intercept(self, exchange):
        if asyncio.get_running_loop().time() < self.dead_until:
            exchange.status, exchange.body = 503, proxy_error(503, "proxy fault: server is down")
            exchange.headers = {"content-type": "application/json"}
            return True
        return False

    async def response(self, exchange):
        if 400 <= exchange.status < 500 and exchange.pooling:
            self.dead_until = asyncio.get_running_loop().time() + self._float(0, 3.0)
