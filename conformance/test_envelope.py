"""Envelope of a /pooling answer: id, object, created, model, data[], usage, X-Request-Id."""

from __future__ import annotations

import time
import uuid

import pytest

from geopool.conformance import recipes
from geopool.conformance.support import body_for, send


@pytest.mark.requirement("POOL-ENV-001", "POOL-ENV-002", "POOL-ENV-003", "POOL-ENV-004", "POOL-ENV-005",
                         "POOL-ENV-006", "POOL-ENV-007")
def test_envelope_of_a_valid_request(target, client, seed_arrays, checks):
    sent_at = time.time()
    # Untagged, so the ids are the server's own.
    responses = [send(client, body_for(target, seed_arrays), "POOL-ENV-001", tag=False) for _ in range(2)]
    first = responses[0]
    checks.context["request"] = "seed inputs, encoding_format base64"
    checks.default_expect = recipes.envelope()
    content_type = first.headers.get("content-type", "")
    checks.that("POOL-ENV-001", content_type.startswith("application/json"), f"content-type is {content_type!r}")
    body, other = (response.json() for response in responses)
    ident = body.get("id")
    checks.that("POOL-ENV-002", isinstance(ident, str) and ident, f"id is {ident!r}")
    checks.that("POOL-ENV-002", ident != other.get("id"), f"two requests got the same id {ident!r}", expect=False)
    checks.that("POOL-ENV-003", body.get("object") == "list", f"object is {body.get('object')!r}")
    created = body.get("created")
    checks.that("POOL-ENV-004", isinstance(created, int) and not isinstance(created, bool),
                f"created is {created!r} ({type(created).__name__}), not an integer")
    if isinstance(created, int):
        checks.that("POOL-ENV-004", abs(created - sent_at) < 600, f"created {created} is {created - sent_at:+.0f} s "
                    "from the client's clock")
    checks.that("POOL-ENV-005", body.get("model") == target.model,
                f"model is {body.get('model')!r}, the request asked for {target.model!r}")
    data = body.get("data")
    checks.that("POOL-ENV-006", isinstance(data, list) and len(data) == 1,
                f"data has {len(data) if isinstance(data, list) else type(data).__name__} entries, not 1")
    if isinstance(data, list) and data:
        entry = data[0] if isinstance(data[0], dict) else {}
        checks.that("POOL-ENV-006", entry.get("index") == 0, f"data[0].index is {entry.get('index')!r}")
        checks.that("POOL-ENV-006", entry.get("object") == "pooling", f"data[0].object is {entry.get('object')!r}")
    usage = body.get("usage")
    if not checks.that("POOL-ENV-007", isinstance(usage, dict), f"usage is {usage!r}"):
        return
    prompt, total, completion = (usage.get(k) for k in ("prompt_tokens", "total_tokens", "completion_tokens"))
    checks.that("POOL-ENV-007", isinstance(prompt, int) and prompt >= 1, f"usage.prompt_tokens is {prompt!r}")
    checks.that("POOL-ENV-007", isinstance(total, int) and total == (prompt or 0) + (completion or 0),
                f"usage.total_tokens {total!r} != prompt_tokens {prompt!r} + completion_tokens {completion!r}")


@pytest.mark.requirement("POOL-ENV-008")
def test_request_id_header_is_reflected_in_the_id(target, client, seed_arrays, checks):
    request_id = f"geopool-{uuid.uuid4().hex[:12]}"
    response = send(client, body_for(target, seed_arrays), "POOL-ENV-008", request_id=request_id)
    ident = response.json().get("id")
    checks.that("POOL-ENV-008", isinstance(ident, str) and request_id in ident,
                f"sent X-Request-Id {request_id!r}, the answer's id is {ident!r}", request_id=request_id,
                expect=recipes.envelope(request_id=True))
