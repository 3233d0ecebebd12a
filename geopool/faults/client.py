"""Faults around the client mistakes (POOL-CLI-*): a server that takes a completion-shaped body, one
that ends the connection after every error, and one that spoils the raw and 1-byte encodings the
output faults leave alone."""

from __future__ import annotations

import json

from geopool import wire
from geopool.faults.base import Exchange, Fault
from geopool.faults.error_answers import AcceptBad


class AcceptCompletion(AcceptBad):
    name, summary = ("accept-completion", "pooling bodies without messages (completion-style) that the server "
                     "rejects get 200 and an all-zero output instead")

    async def response(self, exchange):
        request = exchange.request_json
        if exchange.ok_json or (isinstance(request, dict) and "messages" not in request):
            await super().response(exchange)


class CloseAfterError(Fault):
    name, summary = "close-after-error", "every 4xx and 5xx answer says Connection: close (the client reconnects)"

    async def response(self, exchange):
        if exchange.status >= 400:
            exchange.headers["connection"] = "close"


class LowBit(Fault):
    name, summary = ("low-bit", "bytes_only and fp8 (fp8_e4m3, fp8_e5m2) answers get the lowest bit of every "
                     "value flipped: the encodings the output faults do not edit")

    async def response(self, exchange):
        if not (exchange.pooling and exchange.status == 200):
            return
        embed_dtype = exchange.option("embed_dtype", "float32")
        encoding = exchange.option("encoding_format", "")
        if embed_dtype in wire.FP8_FORMATS or encoding == "bytes_only":
            self._flip(exchange, wire.width(embed_dtype), exchange.option("endianness", "little") == "big")

    @staticmethod
    def _flip(exchange: Exchange, width: int, big_endian: bool) -> None:
        low = width - 1 if big_endian else 0  # the byte holding each value's lowest mantissa bit

        def flipped(raw: bytes) -> bytes:
            edited = bytearray(raw)
            for start in range(low, len(edited), width):
                edited[start] ^= 1
            return bytes(edited)

        if exchange.ok_json:
            body = json.loads(exchange.body)
            for entry in body.get("data", []):
                if isinstance(entry.get("data"), str):
                    entry["data"] = wire.base64_text(flipped(wire.base64_bytes(entry["data"])))
            exchange.set_json(body)
        else:
            exchange.body = flipped(exchange.body)
