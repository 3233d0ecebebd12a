"""Faults that edit the output values of successful pooling answers, in whatever embed_dtype and byte
order the request asked for (read and written with :mod:`geopool.wire.values`), so the client sees
exactly one planted defect."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from geopool import wire
from geopool.faults.base import Exchange, Fault


class _OutputFault(Fault):
    """Edits the output values of successful pooling answers (base64 JSON and bytes)."""

    def edit(self, values: np.ndarray, exchange: Exchange) -> np.ndarray:
        return values

    def edit_raw(self, raw: bytes, exchange: Exchange) -> bytes:
        dtype, order = exchange.option("embed_dtype", "float32"), exchange.option("endianness", "little")
        values = wire.decode_values(raw, embed_dtype=dtype, endianness=order).copy()
        return wire.encode_values(self.edit(values, exchange), dtype, order)

    async def response(self, exchange: Exchange) -> None:
        if not (exchange.pooling and exchange.status == 200):
            return
        if exchange.ok_json:
            body = json.loads(exchange.body)
            for entry in body.get("data", []):
                if isinstance(entry.get("data"), str):
                    entry["data"] = wire.base64_text(self.edit_raw(wire.base64_bytes(entry["data"]), exchange))
                elif isinstance(entry.get("data"), list):  # encoding_format float (e.g. behind repair-float)
                    entry["data"] = self._edit_numbers(entry["data"], exchange)
            exchange.set_json(body)
        elif exchange.option("encoding_format", "") == "bytes":
            exchange.body = self.edit_raw(exchange.body, exchange)


    def _edit_numbers(self, data: list, exchange: Exchange) -> list:
        """Nested float numbers, edited as their float32 little-endian bytes would be."""
        values = np.asarray(data, dtype=np.float32)
        raw = self.edit_raw(wire.encode_values(values.ravel(), "float32", "little"),
                            dataclasses.replace(exchange, request_json={"embed_dtype": "float32"}))
        edited = wire.decode_values(raw[: len(raw) // 4 * 4], embed_dtype="float32", endianness="little")
        return (edited.reshape(values.shape) if edited.size == values.size else edited).tolist()


class Layout(_OutputFault):
    name, summary = "layout", "outputs in H×W×C order instead of C×H×W (same byte count); param: classes [2]"

    def edit(self, values, exchange):
        classes = int(self._float(0, 2))
        return values.reshape(classes, -1).T.reshape(-1)


class Float16Bytes(_OutputFault):
    name, summary = "float16-bytes", "float32 answers carry float16 bytes instead (half the byte count)"

    def edit_raw(self, raw, exchange):
        if exchange.option("embed_dtype", "float32") != "float32":
            return raw
        values = wire.decode_values(raw, embed_dtype="float32", endianness=exchange.option("endianness", "little"))
        return wire.encode_values(values, "float16", "little")


class ByteSwap(_OutputFault):
    name, summary = "byteswap", "every output value byte-swapped"

    def edit_raw(self, raw, exchange):
        return wire.byteswap(raw, exchange.option("embed_dtype", "float32"))


class IgnoreEndianness(_OutputFault):
    name, summary = "ignore-endianness", "answers to endianness big carry little-endian bytes (the option is ignored)"

    def edit_raw(self, raw, exchange):
        if exchange.option("endianness", "little") != "big":
            return raw
        return wire.byteswap(raw, exchange.option("embed_dtype", "float32"))


class NonFinite(_OutputFault):
    name, summary = "nan", "one output element (param: index [0]) set to NaN"
    value = float("nan")

    def edit(self, values, exchange):
        values[int(self._float(0, 0)) % values.size] = self.value
        return values


class Infinite(NonFinite):
    name, summary, value = "inf", "one output element (param: index [0]) set to +inf", float("inf")


class Truncate(_OutputFault):
    name, summary = "truncate", "the output loses its last elements (param: how many [4]); still valid base64"

    def edit_raw(self, raw, exchange):
        width = wire.width(exchange.option("embed_dtype", "float32"))
        return raw[: max(0, len(raw) - width * int(self._float(0, 4)))]


class Noise(_OutputFault):
    name, summary = "noise", ("Gaussian noise on every value (params: sigma [1e-3], every Nth answer [1]: with 2 "
                              "one user's answers alternate noisy and exact), new noise each answer")

    def __init__(self, *params):
        super().__init__(*params)
        self.every, self.answers = self._every(1, 1), 0

    def edit(self, values, exchange):
        self.answers += 1
        if self.answers % self.every:
            return values
        sigma = self._float(0, 1e-3)
        return values + np.random.default_rng(self.random.getrandbits(32)).normal(0, sigma, values.size)


class HalfPrecisionNoise(Noise):
    name, summary = "half-noise", "noise (param: sigma [0.05]) only on float16/bfloat16 answers"

    def edit(self, values, exchange):
        if exchange.option("embed_dtype", "float32") == "float32":
            return values
        return values + np.random.default_rng(1).normal(0, self._float(0, 0.05), values.size)
