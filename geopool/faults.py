"""Faults the proxy plants in a real server's answers, one per run: ``NAME[:param[:param]]``.

Each fault edits what passes through (:meth:`Fault.response`) or answers instead of the upstream
(:meth:`Fault.intercept`). Edits of pooling outputs work on the raw values, in whatever embed_dtype and
byte order the request asked for, so the client sees exactly one planted defect.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from geopool.errors import FaultSpecError

__all__ = ["Exchange", "Fault", "FAULTS", "parse_fault", "describe_faults"]


@dataclasses.dataclass
class Exchange:
    """One request through the proxy and (after the upstream answered) its answer, all editable."""

    method: str
    path: str
    request_body: bytes
    request_json: Any = None
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # send half the body, then drop the connection

    @property
    def pooling(self) -> bool:
        return self.path == "/pooling" and self.method == "POST"

    @property
    def ok_json(self) -> bool:
        return self.pooling and self.status == 200 and "json" in self.headers.get("content-type", "")

    def option(self, name: str, default: str) -> str:
        return str((self.request_json or {}).get(name) or default) if isinstance(self.request_json, dict) else default

    def set_json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()


class Fault:
    """Pass-through; subclasses override one or both hooks."""

    name = "none"
    summary = "forward everything unchanged"

    def __init__(self, *params: str) -> None:
        self.params = params
        self.random = random.Random(0)

    async def intercept(self, exchange: Exchange) -> bool:
        """Answer instead of the upstream (fill ``exchange``) and return True; or return False."""
        return False

    async def response(self, exchange: Exchange) -> None:
        """Edit the upstream's answer in place."""

    def _float(self, index: int, default: float) -> float:
        try:
            return float(self.params[index]) if len(self.params) > index else default
        except ValueError as exc:
            raise FaultSpecError(f"fault {self.name}: parameter {self.params[index]!r} is not a number") from exc


# ------------------------------------------------------------------------------- output editing


_WIDTH = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}


def _values(raw: bytes, embed_dtype: str, endianness: str) -> np.ndarray:
    """Raw output bytes as float32 (bfloat16 widened), in host order."""
    order = ">" if endianness == "big" else "<"
    if embed_dtype == "bfloat16":
        return (np.frombuffer(raw, f"{order}u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, f"{order}{'f2' if embed_dtype == 'float16' else 'f4'}").astype(np.float32)


def _raw(values: np.ndarray, embed_dtype: str, endianness: str) -> bytes:
    order = ">" if endianness == "big" else "<"
    if embed_dtype == "bfloat16":
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(f"{order}u2").tobytes()
    return values.astype(f"{order}{'f2' if embed_dtype == 'float16' else 'f4'}").tobytes()


class _OutputFault(Fault):
    """Edits the output values of successful pooling answers (base64 JSON and bytes)."""

    def edit(self, values: np.ndarray, exchange: Exchange) -> np.ndarray:
        return values

    def edit_raw(self, raw: bytes, exchange: Exchange) -> bytes:
        dtype, order = exchange.option("embed_dtype", "float32"), exchange.option("endianness", "little")
        return _raw(self.edit(_values(raw, dtype, order).copy(), exchange), dtype, order)

    async def response(self, exchange: Exchange) -> None:
        if not (exchange.pooling and exchange.status == 200):
            return
        if exchange.ok_json:
            body = json.loads(exchange.body)
            for entry in body.get("data", []):
                if isinstance(entry.get("data"), str):
                    entry["data"] = base64.b64encode(self.edit_raw(base64.b64decode(entry["data"]), exchange)).decode()
            exchange.set_json(body)
        elif exchange.option("encoding_format", "") == "bytes":
            exchange.body = self.edit_raw(exchange.body, exchange)


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
        return _values(raw, "float32", exchange.option("endianness", "little")).astype("<f2").tobytes()


class ByteSwap(_OutputFault):
    name, summary = "byteswap", "every output value byte-swapped"

    def edit_raw(self, raw, exchange):
        width = _WIDTH.get(exchange.option("embed_dtype", "float32"), 4)
        return np.frombuffer(raw, f"u{width}").byteswap().tobytes()


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
        width = _WIDTH.get(exchange.option("embed_dtype", "float32"), 4)
        return raw[: max(0, len(raw) - width * int(self._float(0, 4)))]


class Noise(_OutputFault):
    name, summary = "noise", "Gaussian noise on every value (param: sigma [1e-3]), new noise each answer"

    def edit(self, values, exchange):
        sigma = self._float(0, 1e-3)
        return values + np.random.default_rng(self.random.getrandbits(32)).normal(0, sigma, values.size)


class HalfPrecisionNoise(Noise):
    name, summary = "half-noise", "noise (param: sigma [0.05]) only on float16/bfloat16 answers"

    def edit(self, values, exchange):
        if exchange.option("embed_dtype", "float32") == "float32":
            return values
        return values + np.random.default_rng(1).normal(0, self._float(0, 0.05), values.size)


# ----------------------------------------------------------------------------- envelope editing


class _EnvelopeFault(Fault):
    def edit(self, body: dict, exchange: Exchange) -> None:
        raise NotImplementedError

    async def response(self, exchange):
        if exchange.ok_json:
            body = json.loads(exchange.body)
            self.edit(body, exchange)
            exchange.set_json(body)


class ExtraData(_EnvelopeFault):
    name, summary = "extra-data", "data[] gets a second copy of its entry"

    def edit(self, body, exchange):
        body["data"].append(dict(body["data"][0], index=1))


class MissingData(_EnvelopeFault):
    name, summary = "missing-data", "data[] is empty"

    def edit(self, body, exchange):
        body["data"] = []


class WrongIndex(_EnvelopeFault):
    name, summary = "wrong-index", "data[0].index is 1"

    def edit(self, body, exchange):
        body["data"][0]["index"] = 1


class DropField(_EnvelopeFault):
    name, summary = "drop-field", "an envelope field is removed (param: field [id]; usage.total_tokens allowed)"

    def edit(self, body, exchange):
        path = (self.params[0] if self.params else "id").split(".")
        parent = body
        for key in path[:-1]:
            parent = parent.get(key, {})
        parent.pop(path[-1], None)


class RetypeField(_EnvelopeFault):
    name, summary = "retype-field", "an envelope field becomes a string (param: field [created])"

    def edit(self, body, exchange):
        path = (self.params[0] if self.params else "created").split(".")
        parent = body
        for key in path[:-1]:
            parent = parent.get(key, {})
        if path[-1] in parent:
            parent[path[-1]] = str(parent[path[-1]]) + "x"


class WrongModel(_EnvelopeFault):
    name, summary = "wrong-model", "the answer names another model"

    def edit(self, body, exchange):
        body["model"] = f"{body.get('model')}-other"


class DropRequestId(_EnvelopeFault):
    name, summary = "drop-request-id", "the answer's id ignores X-Request-Id"

    def edit(self, body, exchange):
        body["id"] = f"pooling-{self.random.getrandbits(64):016x}"


# ------------------------------------------------------------------------------ answer swapping


class IgnoreInput(Fault):
    name, summary = "ignore-input", "every pooling answer is the first one's output"

    def __init__(self, *params):
        super().__init__(*params)
        self.first: bytes | None = None

    async def response(self, exchange):
        if exchange.ok_json:
            self.first = self.first or exchange.body
            exchange.body = _with_envelope_of(exchange.body, self.first)


class Stale(Fault):
    name, summary = "stale", "every pooling answer carries the previous request's output"

    def __init__(self, *params):
        super().__init__(*params)
        self.previous: bytes | None = None

    async def response(self, exchange):
        if exchange.ok_json:
            current, exchange.body = exchange.body, _with_envelope_of(exchange.body, self.previous or exchange.body)
            self.previous = current


class Swap(Fault):
    name, summary = "swap", "answers of concurrent pooling requests are exchanged (window param: seconds [1])"

    def __init__(self, *params):
        super().__init__(*params)
        self.waiting: tuple[Exchange, asyncio.Future] | None = None

    async def response(self, exchange):
        if not exchange.ok_json:
            return
        if self.waiting is None:
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            self.waiting = (exchange, future)
            try:
                exchange.body = await asyncio.wait_for(asyncio.shield(future), self._float(0, 1.0))
            except TimeoutError:
                pass
            finally:
                if self.waiting and self.waiting[0] is exchange:
                    self.waiting = None
        else:
            partner, future = self.waiting
            self.waiting = None
            mine = exchange.body
            exchange.body = _with_envelope_of(mine, partner.body)
            future.set_result(_with_envelope_of(partner.body, mine))


def _with_envelope_of(envelope: bytes, outputs: bytes) -> bytes:
    """``envelope``'s answer carrying ``outputs``' data[]."""
    body, donor = json.loads(envelope), json.loads(outputs)
    body["data"] = donor.get("data", body.get("data"))
    return json.dumps(body).encode()


# ---------------------------------------------------------------------------- error behaviour


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "ProxyFault", "param": None, "code": status}}).encode()


class ServerErrorForClientError(Fault):
    name, summary = "5xx-for-4xx", "every 4xx answer becomes a 500 with the same body"

    async def response(self, exchange):
        if 400 <= exchange.status < 500:
            exchange.status = 500


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
                entry["data"] = base64.b64encode(bytes(len(base64.b64decode(entry["data"])))).decode()
            exchange.status, exchange.body = 200, json.dumps(body).encode()
            exchange.headers["content-type"] = "application/json"


class FlatErrors(Fault):
    name, summary = "flat-errors", "error bodies in the pre-0.10 flat shape {object, message, ...}"

    async def response(self, exchange):
        if exchange.status >= 400 and exchange.body.startswith(b"{"):
            error = json.loads(exchange.body).get("error", {})
            exchange.set_json({"object": "error", **error})


class BlankErrors(Fault):
    name, summary = "blank-errors", "error messages are emptied"

    async def response(self, exchange):
        if exchange.status >= 400 and exchange.body.startswith(b"{"):
            body = json.loads(exchange.body)
            if isinstance(body.get("error"), dict):
                body["error"]["message"] = ""
                exchange.set_json(body)


class DieAfterBad(Fault):
    name, summary = "die-after-bad", "after any 4xx, every request gets 503 for a while (param: seconds [3])"

    def __init__(self, *params):
        super().__init__(*params)
        self.dead_until = 0.0

    async def intercept(self, exchange):
        if asyncio.get_running_loop().time() < self.dead_until:
            exchange.status, exchange.body = 503, _error(503, "proxy fault: server is down")
            exchange.headers = {"content-type": "application/json"}
            return True
        return False

    async def response(self, exchange):
        if 400 <= exchange.status < 500 and exchange.pooling:
            self.dead_until = asyncio.get_running_loop().time() + self._float(0, 3.0)


# --------------------------------------------------------------------------- other endpoints


class _ReplaceEndpoint(Fault):
    path = ""

    def replacement(self, exchange: Exchange) -> tuple[int, str, bytes] | None:
        raise NotImplementedError

    async def response(self, exchange):
        if exchange.path == self.path and (found := self.replacement(exchange)):
            exchange.status, exchange.headers["content-type"], exchange.body = found


class MetricsFrozen(_ReplaceEndpoint):
    name, summary, path = "metrics-frozen", "/metrics always answers its first scrape", "/metrics"

    def __init__(self, *params):
        super().__init__(*params)
        self.first: bytes | None = None

    def replacement(self, exchange):
        self.first = self.first or exchange.body
        return exchange.status, exchange.headers.get("content-type", "text/plain"), self.first


class MetricsGarbage(_ReplaceEndpoint):
    name, summary, path = "metrics-garbage", "/metrics answers text that is not Prometheus format", "/metrics"

    def replacement(self, exchange):
        return 200, "text/plain", b"vllm:request_success_total{{{ not prometheus\n"


class VersionGarbage(_ReplaceEndpoint):
    name, summary, path = "version-garbage", "/version answers a non-JSON text", "/version"

    def replacement(self, exchange):
        return 200, "text/plain", b"version unknown"


class ModelsEmpty(_ReplaceEndpoint):
    name, summary, path = "models-empty", "/v1/models lists no model", "/v1/models"

    def replacement(self, exchange):
        return 200, "application/json", b'{"object": "list", "data": []}'


class OpenapiStrip(_ReplaceEndpoint):
    name, summary, path = "openapi-strip", "/openapi.json no longer documents /pooling", "/openapi.json"

    def replacement(self, exchange):
        spec = json.loads(exchange.body)
        spec.get("paths", {}).pop("/pooling", None)
        return 200, "application/json", json.dumps(spec).encode()


class OpenapiNarrow(_ReplaceEndpoint):
    name, summary, path = "openapi-narrow", "/openapi.json documents a /pooling body that needs an 'input' field", \
        "/openapi.json"

    def replacement(self, exchange):
        spec = json.loads(exchange.body)
        operation = spec.get("paths", {}).get("/pooling", {}).get("post", {})
        operation["requestBody"] = {"content": {"application/json": {"schema": {
            "type": "object", "required": ["input"], "properties": {"input": {"type": "string"}}}}}}
        return 200, "application/json", json.dumps(spec).encode()


class BytesMetadata(Fault):
    name, summary = "bytes-metadata", "bytes answers report a wrong shape in their metadata header"

    async def response(self, exchange):
        if exchange.pooling and "metadata" in exchange.headers:
            meta = json.loads(exchange.headers["metadata"])
            for item in meta.get("data", []):
                item["shape"] = list(reversed(item.get("shape", [])))
            exchange.headers["metadata"] = json.dumps(meta)


class HealthFlap(Fault):
    name, summary = "health-flap", "/health answers 503 after its first answer, while pooling still works"

    def __init__(self, *params):
        super().__init__(*params)
        self.calls = 0

    async def intercept(self, exchange):
        if exchange.path != "/health":
            return False
        self.calls += 1
        if self.calls <= 1:
            return False
        exchange.status, exchange.headers, exchange.body = 503, {"content-type": "text/plain"}, b""
        return True


# ------------------------------------------------------------------------ timing and transport


class _Sampled(Fault):
    """Applies to a fraction (param 0, percent [100]) of pooling requests, chosen by a seeded RNG."""

    def chosen(self, exchange: Exchange) -> bool:
        return exchange.pooling and self.random.random() * 100 < self._float(0, 100.0)


class SlowTail(_Sampled):
    name, summary = "slow-tail", "PERCENT % of pooling requests delayed by SECONDS (params: percent [10], seconds [2])"

    async def intercept(self, exchange):
        if exchange.pooling and self.random.random() * 100 < self._float(0, 10.0):
            await asyncio.sleep(self._float(1, 2.0))
        return False


class Stall(Fault):
    name, summary = ("stall", "a server stall: pooling requests arriving from AT s after the first one, for SECONDS s, "
                             "are held until the stall ends (params: at [5], seconds [5])")

    def __init__(self, *params):
        super().__init__(*params)
        self.first: float | None = None

    async def intercept(self, exchange):
        if not exchange.pooling:
            return False
        now = time.monotonic()
        if self.first is None:
            self.first = now
        start = self.first + self._float(0, 5.0)
        end = start + self._float(1, 5.0)
        if start <= now < end:
            await asyncio.sleep(end - now)
        return False


class Unavailable(_Sampled):
    name, summary = "503", "PERCENT % of pooling requests answered 503 (param: percent [100])"

    async def intercept(self, exchange):
        if self.chosen(exchange):
            exchange.status, exchange.body = 503, _error(503, "proxy fault: service unavailable")
            exchange.headers = {"content-type": "application/json"}
            return True
        return False


class ResetMidBody(_Sampled):
    name, summary = "reset", "PERCENT % of pooling answers cut off mid-body by a connection reset (param [100])"

    async def response(self, exchange):
        if self.chosen(exchange):
            exchange.reset = True


FAULTS: dict[str, Callable[..., Fault]] = {cls.name: cls for cls in [
    Fault, Layout, Float16Bytes, ByteSwap, NonFinite, Infinite, Truncate, Noise, HalfPrecisionNoise,
    ExtraData, MissingData, WrongIndex, DropField, RetypeField, WrongModel, DropRequestId,
    IgnoreInput, Stale, Swap, ServerErrorForClientError, AcceptBad, FlatErrors, BlankErrors, DieAfterBad,
    MetricsFrozen, MetricsGarbage, VersionGarbage, ModelsEmpty, OpenapiStrip, OpenapiNarrow, BytesMetadata, HealthFlap,
    SlowTail, Stall, Unavailable, ResetMidBody,
]}


def parse_fault(spec: str) -> Fault:
    """``NAME[:param...]`` → a Fault; an unknown name raises FaultSpecError listing the known ones."""
    name, *params = spec.split(":")
    if name not in FAULTS:
        raise FaultSpecError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    fault = FAULTS[name](*params)
    for index in range(len(params)):  # validate numeric params eagerly, with the fault's own message
        if name not in ("drop-field", "retype-field"):
            fault._float(index, 0.0)
    return fault


def describe_faults() -> list[tuple[str, str]]:
    return [(name, cls.summary) for name, cls in sorted(FAULTS.items())]
