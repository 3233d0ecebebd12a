"""Faults of the service endpoints: /metrics, /version, /v1/models, /openapi.json, /health, and the
bytes answers' metadata header."""

from __future__ import annotations

import json

from geopool.errors import FaultSpecError
from geopool.faults.base import Exchange, Fault


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


class VersionAs(_ReplaceEndpoint):
    """``version:X.Y.Z``: the server claims another vLLM version (to check which expectations apply)."""

    name, summary, path = "version", "/version answers {\"version\": PARAM} (e.g. version:0.33.0)", "/version"
    text_params = True

    def __init__(self, *params):
        super().__init__(*params)
        if len(params) != 1 or not params[0].strip():
            raise FaultSpecError(f"fault version: needs the version to claim, e.g. version:0.33.0; got {params!r}")

    def replacement(self, exchange):
        return 200, "application/json", json.dumps({"version": self.params[0]}).encode()


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


class BytesNoMetadata(Fault):
    name, summary = "bytes-no-metadata", "bytes answers lose their metadata header"

    async def response(self, exchange):
        if exchange.pooling:
            exchange.headers.pop("metadata", None)


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
