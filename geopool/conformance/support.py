"""Helpers the conformance tests share: build and send a request, decode its answer, fail a requirement."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from geopool import wire
from geopool.client import PROBE_TIMEOUT, PoolingClient, PoolingResponse
from geopool.conformance import recipes
from geopool.conformance.checks import Evidence, RequirementFailure, evaluated
from geopool.conformance.target import Target
from geopool.errors import GeopoolError, PoolingHTTPError

__all__ = ["body_for", "send", "decode", "require", "evidence_of", "batched_steps"]


def body_for(target: Target, arrays: Mapping[str, np.ndarray], *, fmt: wire.InputFormat | None = None,
             **options: Any) -> dict[str, Any]:
    """The seed-shaped request for ``arrays``, serialized in the contract's input dtype."""
    return wire.request_body(target.model, arrays, dtype=target.contract.input_dtype, fmt=fmt, **options)


def evidence_of(error: GeopoolError) -> dict[str, Any]:
    if isinstance(error, PoolingHTTPError):
        return {"status": error.status, "message": (wire.error_message(error.error) or error.body)[:500]}
    return {"error": f"{type(error).__name__}: {error}"[:500]}


def require(requirement: str, condition: object, message: str, *, case: str | None = None,
            expect: dict[str, Any] | None = None, **details: Any) -> None:
    """Raise RequirementFailure for ``requirement`` unless ``condition`` holds (for Hypothesis tests);
    either way ``requirement`` (in ``case``) counts as evaluated. ``expect``: see Checks."""
    evaluated(requirement, case)
    if not condition:
        raise RequirementFailure([Evidence(requirement, message, details, case, recipes.capture(expect))])


def send(client: PoolingClient, body: dict[str, Any], requirement: str, *,
         request_id: str | None = None, tag: bool = True, case: str | None = None) -> PoolingResponse:
    """POST ``body`` with an X-Request-Id (``request_id``, else a fresh one when ``tag``, so evidence can be
    found in the server's log); any failure to get a 2xx fails ``requirement`` with status, message and id.
    A 2xx evaluates ``requirement`` (a valid request was answered)."""
    request_id = request_id or (f"geopool-{uuid.uuid4().hex[:16]}" if tag else None)
    evaluated(requirement, case)
    try:
        return client.pool(body, request_id=request_id)
    except GeopoolError as error:
        raise RequirementFailure([Evidence(requirement, "a valid request was not answered 2xx",
                                           {**evidence_of(error), "request_id": request_id}, case,
                                           recipes.capture(recipes.answer()))]) from error


def decode(target: Target, response: PoolingResponse, requirement: str, *, case: str | None = None,
           **options: Any) -> np.ndarray:
    """Decode a base64 JSON answer to the contract's output shape, failing ``requirement`` if it cannot
    (either way ``requirement`` counts as evaluated)."""
    evaluated(requirement, case)
    try:
        return wire.decode_json_response(response.json(), target.contract.output_shape, **options)
    except (GeopoolError, ValueError) as error:
        raise RequirementFailure([Evidence(requirement, f"the answer does not decode: {error}",
                                           {"request_id": response.request_id}, case,
                                           recipes.capture(recipes.answer()))]) from error


def batched_steps(target: Target) -> float | None:
    """Engine steps that ran two or more requests so far (each Terratorch request is one token, so a step of
    more tokens batched requests), from vLLM's ``vllm:iteration_tokens_total``; None: the server does not
    expose it. Checks of what batching does compare it before and after: a round that batched nothing
    checked nothing."""
    with PoolingClient(target.endpoint.with_timeout(PROBE_TIMEOUT)) as probe:
        found = wire.histogram(wire.read_metrics(probe.metrics()), "vllm:iteration_tokens_total")
    if not found:
        return None
    return found["count"] - found["buckets"].get("1.0", 0.0)
