"""The server's other endpoints: /health, /version, /v1/models, /metrics, /openapi.json."""

from __future__ import annotations

import jsonschema
import pytest

from geopool import wire
from geopool.conformance.support import body_for, evidence_of, send
from geopool.errors import GeopoolError

SUCCESS_COUNTER = "vllm:request_success"


def _successes(client, model: str) -> float | None:
    return wire.counter_total(wire.read_metrics(client.metrics()), SUCCESS_COUNTER, model_name=model)


@pytest.mark.requirement("POOL-EP-001", "POOL-EP-002", "POOL-EP-003")
def test_health_version_models(target, client, checks):
    checks.that("POOL-EP-001", client.health(), "/health did not answer 200")
    try:
        version = client.get("/version").json()
        checks.that("POOL-EP-002", isinstance(version, dict) and isinstance(version.get("version"), str)
                    and version["version"], f"/version answered {version!r}")
    except (GeopoolError, ValueError) as exc:
        checks.fail("POOL-EP-002", f"/version is not JSON: {exc}")
    listing = client.get("/v1/models").json()
    ids = [entry.get("id") for entry in listing.get("data", [])] if isinstance(listing, dict) else []
    checks.that("POOL-EP-003", isinstance(listing, dict) and listing.get("object") == "list",
                f"/v1/models object is {listing.get('object') if isinstance(listing, dict) else listing!r}")
    checks.that("POOL-EP-003", target.model in ids, f"/v1/models lists {ids}, not {target.model!r}")
    checks.that("POOL-EP-003", all(e.get("object") == "model" for e in listing.get("data", [])),
                "an entry's object is not 'model'")


@pytest.mark.requirement("POOL-EP-004", "POOL-EP-005")
def test_metrics_count_pooling_requests(target, client, seed_arrays, checks):
    try:
        before = _successes(client, target.model)
    except (ValueError, GeopoolError) as exc:
        checks.fail("POOL-EP-004", f"/metrics does not parse as Prometheus text: {exc}")
        return
    if not checks.that("POOL-EP-004", before is not None, f"/metrics has no {SUCCESS_COUNTER}_total counter"):
        return
    sent = 3
    for _ in range(sent):
        send(client, body_for(target, seed_arrays), "POOL-EP-005")
    after = _successes(client, target.model)
    grown = f"grew by {after - before:g}" if after is not None else "vanished"
    checks.that("POOL-EP-005", after is not None and after - before == sent,
                f"{SUCCESS_COUNTER}_total{{model_name={target.model!r}}} {grown} for {sent} pooling requests",
                before=before, after=after)


@pytest.fixture(scope="module")
def pooling_operation(client):
    spec = client.openapi()
    return spec, spec.get("paths", {}).get("/pooling", {}).get("post")


def _schema(spec: dict, schema: dict) -> dict:
    return {**schema, "components": spec.get("components", {})}


@pytest.mark.requirement("POOL-EP-006", "POOL-EP-008")
def test_openapi_documents_the_pooling_request(target, seed_arrays, pooling_operation, checks):
    spec, operation = pooling_operation
    checks.that("POOL-EP-006", str(spec.get("openapi", "")).startswith("3."), f"openapi is {spec.get('openapi')!r}")
    if not checks.that("POOL-EP-006", isinstance(operation, dict), "/openapi.json has no POST /pooling"):
        return
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not checks.that("POOL-EP-006", bool(schema), "POST /pooling has no JSON request body schema"):
        return
    body = body_for(target, seed_arrays)
    try:
        jsonschema.validate(body, _schema(spec, schema), cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as exc:
        checks.fail("POOL-EP-008", f"the tensor-mode body does not validate: {exc.message[:300]}",
                    path="/".join(map(str, exc.absolute_path)))
    else:
        checks.that("POOL-EP-008", True, "the tensor-mode body validates")


@pytest.mark.requirement("POOL-EP-007")
def test_openapi_documents_the_pooling_response(target, client, seed_arrays, pooling_operation, checks):
    spec, operation = pooling_operation
    schema = ((operation or {}).get("responses", {}).get("200", {}).get("content", {})
              .get("application/json", {}).get("schema"))
    checks.that("POOL-EP-007", bool(schema), f"the 200 response schema of POST /pooling is {schema!r}: "
                "it documents nothing about the answer")
    response = send(client, body_for(target, seed_arrays), "POOL-EP-007")
    try:
        jsonschema.validate(response.json(), _schema(spec, schema or {}), cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as exc:
        checks.fail("POOL-EP-007", f"a 200 answer does not validate: {exc.message[:300]}", **evidence_of(
            GeopoolError(str(exc.absolute_path))))
