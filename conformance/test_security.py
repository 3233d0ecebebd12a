"""Hostile input: code-running pickles (with a canary proven live), sparse-tensor CVE classes, oversized
and pathological JSON. The server must refuse each one with a 4xx and stay healthy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from geopool import wire
from geopool.conformance import recipes
from geopool.conformance.support import body_for
from geopool.errors import GeopoolError
from geopool.invalid import code_running_payload, sparse_payload


def _body_with(target, name: str, value: str) -> bytes:
    body = body_for(target, wire.seed_inputs(target.contract))
    return json.dumps(wire.set_image_embed(body, name, value)).encode()


def _status_is_4xx(checks, requirement: str, response, what: str) -> None:
    checks.that(requirement, 400 <= response.status_code < 500,
                f"{what}: answered {response.status_code}", server_message=response.text[:300],
                expect=recipes.rejection("status"))


@pytest.mark.requirement("POOL-SEC-001")
@pytest.mark.needs_torch
def test_code_running_pickle_never_runs(target, client, guard, checks):
    if not target.embedded:
        pytest.skip("not checked: the canary (a file the payload would create) is only observable on the embedded "
                    "server's machine")
    marker = Path(f"/tmp/geopool-canary-{uuid.uuid4().hex}")
    payload = code_running_payload(str(marker))
    # Prove the canary: unpickling the payload unsafely in a throwaway process does create the file.
    proof = subprocess.run([sys.executable, "-c", "import base64, io, sys, torch; torch.load(io.BytesIO("
                            "base64.b64decode(sys.argv[1])), weights_only=False)", payload],
                           capture_output=True, text=True, timeout=120)
    assert marker.exists(), f"the canary did not fire when unpickled unsafely: {proof.stderr[-500:]}"
    marker.unlink()
    client.post_raw("/pooling", _body_with(target, target.contract.target, payload))
    time.sleep(0.5)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    checks.that("POOL-SEC-001", not ran, "the server ran the payload's code: the canary file appeared")


@pytest.mark.requirement("POOL-SEC-002", "POOL-SURV-001")
@pytest.mark.needs_torch
def test_code_running_pickle_is_refused(target, client, guard, checks):
    payload = code_running_payload(f"/tmp/geopool-canary-{uuid.uuid4().hex}")
    response = client.post_raw("/pooling", _body_with(target, target.contract.target, payload))
    _status_is_4xx(checks, "POOL-SEC-002", response, "a code-running torch.save payload")
    guard.survives(checks, "POOL-SURV-001", "a code-running torch.save payload")


@pytest.mark.needs_torch
@pytest.mark.parametrize("case", [  # each case checks its own requirement (and survival)
    pytest.param("out-of-bounds", marks=pytest.mark.requirement("POOL-SEC-003", "POOL-SURV-001")),
    pytest.param("huge-declared-size", marks=pytest.mark.requirement("POOL-SEC-004", "POOL-SURV-001")),
])
def test_sparse_tensors(target, client, guard, checks, case):
    shape = target.contract.input_shape(target.contract.target)
    if case == "out-of-bounds":
        requirement, payload = "POOL-SEC-003", sparse_payload(
            indices=[[0, shape[0] + 10**6], *[[0, 0] for _ in shape[1:]]], size=shape)
    else:
        requirement, payload = "POOL-SEC-004", sparse_payload(indices=[[0], [0], [0]], size=(6, 100_000, 100_000))
    response = client.post_raw("/pooling", _body_with(target, target.contract.target, payload))
    _status_is_4xx(checks, requirement, response, f"a sparse tensor ({case})")
    guard.survives(checks, "POOL-SURV-001", f"a sparse tensor ({case})")


@pytest.mark.requirement("POOL-SEC-005", "POOL-SURV-001")
def test_oversized_body_is_refused(target, client, guard, checks):
    body = json.loads(_body_with(target, target.contract.target, wire.encode_array(
        wire.seed_inputs(target.contract)[target.contract.target], dtype=target.contract.input_dtype)))
    body["geopool_oversize_filler"] = "x" * (128 * 2**20)  # a field no request type defines
    response = client.post_raw("/pooling", json.dumps(body).encode())
    checks.that("POOL-SEC-005", response.status_code in (400, 413),
                f"a 128 MiB body was answered {response.status_code}, not 413/400: the server sets no size limit",
                expect=recipes.rejection("status", statuses=(400, 413)))
    guard.survives(checks, "POOL-SURV-001", "a 128 MiB request body")


@pytest.mark.parametrize("case", [
    pytest.param("deep", marks=pytest.mark.requirement("POOL-SEC-006", "POOL-REJ-011", "POOL-SURV-001")),
    pytest.param("large", marks=pytest.mark.requirement("POOL-SEC-007", "POOL-SURV-001")),
])
def test_pathological_json(target, client, guard, checks, case):
    head = _body_with(target, target.contract.target, wire.encode_array(
        wire.seed_inputs(target.contract)[target.contract.target], dtype=target.contract.input_dtype))[:-1]
    if case == "deep":
        requirement, limit, tail = "POOL-SEC-006", 30.0, b', "junk": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        requirement, limit, tail = "POOL-SEC-007", 60.0, b', "junk": [' + b"1," * 999_999 + b"1]}"
    started = time.monotonic()
    try:
        response = client.post_raw("/pooling", head + tail)
    except GeopoolError as exc:  # a timeout or reset is the verdict
        checks.fail(requirement, f"{case} JSON got no answer: {type(exc).__name__}: {exc}")
    else:
        elapsed = time.monotonic() - started
        checks.that(requirement, elapsed <= limit, f"{case} JSON took {elapsed:.1f} s (limit {limit:.0f} s)")
        if case == "deep":
            _status_is_4xx(checks, requirement, response, "100,000-level JSON")
            error = wire.parse_error(response.content)
            checks.that("POOL-REJ-011", error is not None and error.get("code") == response.status_code,
                        f"100,000-level JSON: error body is {response.text[:200]!r}")
        else:
            checks.that(requirement, response.status_code < 500, f"large JSON answered {response.status_code}")
    guard.survives(checks, "POOL-SURV-001", f"{case} JSON")
