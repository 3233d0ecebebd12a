"""The mistakes real clients make (POOL-CLI-*): inputs as numpy, a training loop or a GPU leaves them,
completion-shaped bodies, mixed sizes, a client that hangs up, connection reuse after an error, the API
key, the raw and 1-byte encodings, and the SageMaker route.

Each test is a handful of requests: they run in every conformance run of CI.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from geopool import wire
from geopool.client import PROBE_TIMEOUT, AsyncPoolingClient, Endpoint, PoolingClient
from geopool.conformance import recipes
from geopool.conformance.checks import Checks, array_diff
from geopool.conformance.support import batched_steps, body_for, decode, send
from geopool.errors import GeopoolError
from geopool.invalid import BadRequest, client_mistakes
from geopool.strategies import TensorRecipe

from .test_determinism import ROUNDS, batch_tolerance
from .test_encoding import BASELINE_OPTIONS

MISTAKES = client_mistakes()


def _param(case: BadRequest):
    marks = [pytest.mark.requirement(case.requirement)]
    if case.destructive:
        marks.append(pytest.mark.destructive)
    if case.needs_torch:
        marks.append(pytest.mark.needs_torch)
    return pytest.param(case, id=case.name, marks=marks)


def _inputs(target, seed: int, *, size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Random target pixels (``size``: another H×W), the seed's coordinates: batch-mates share them,
    so vLLM 0.32's coordinate mixing in a batch (POOL-DET-003) cannot blur what these tests look at."""
    contract = target.contract
    shape = contract.input_shape(contract.target)
    if size is not None:
        shape = (*shape[:-2], *size)
    arrays = wire.seed_inputs(contract)
    arrays[contract.target] = TensorRecipe(2000 + seed, "uniform", 0.0, 1.0).build(shape, contract.input_dtype)
    return arrays


# ------------------------------------------------------------------------------- inputs and bodies
@pytest.mark.parametrize("case", [_param(case) for case in MISTAKES])
def test_client_mistake_is_refused_or_answered(target, client, guard, baseline, checks, case):
    """A clear 4xx naming the problem, or (where a server may fix the input) the valid request's
    answer; never a 5xx; and the server survives."""
    rid, name = case.requirement, case.name
    raw = case.body(body_for(target, wire.seed_inputs(target.contract)), target.contract)
    try:
        response = client.post_raw("/pooling", raw)
    except GeopoolError as exc:  # a reset or timeout is the verdict, not a crash of the test
        checks.fail(rid, f"{name}: no HTTP answer ({type(exc).__name__}: {exc})", case=name)
    else:
        _judge(target, checks, case, response, baseline)
    guard.survives(checks, rid, f"{name} ({rid})", raw)


def _judge(target, checks: Checks, case: BadRequest, response: httpx.Response, baseline: np.ndarray) -> None:
    rid, name, status = case.requirement, case.name, response.status_code
    error = wire.parse_error(response.content)
    message = str(wire.error_message(error) or response.text)[:300]
    checks.context.update(status=status, server_message=message)
    if status == 200 and case.may_answer:
        try:
            answer = wire.decode_json_response(response.json(), target.contract.output_shape)
        except ValueError as exc:
            checks.fail(rid, f"{name}: answered 200 with an answer that does not decode: {exc}", case=name)
            return
        checks.that(rid, np.allclose(answer, baseline, atol=batch_tolerance(target), rtol=0),
                    f"{name}: answered 200, but not with the valid request's answer: " + array_diff(answer, baseline),
                    case=name)
        return
    # A server may answer some mistakes as the valid request: a reproducer cannot tell that answer right.
    judged = not case.may_answer
    if not checks.that(rid, status in case.statuses,
                       f"{name}: answered {status}, expected {' or '.join(map(str, case.statuses))}"
                       + (" or the valid request's answer" if case.may_answer else ""), case=name,
                       expect=judged and recipes.rejection("status", statuses=case.statuses)):
        return
    checks.that(rid, any(word.lower() in message.lower() for word in case.names),
                f"{name}: the {status} message names none of {list(case.names)}", case=name,
                expect=judged and recipes.rejection("message-or-text", names=case.names))


@pytest.mark.requirement("POOL-CLI-005")
@pytest.mark.destructive  # vLLM 0.32: a batch holding two sizes kills the engine (pixel_values arrive as a list)
def test_concurrent_requests_of_different_sizes(target, client, guard, checks):
    """Two sizes, each sent alone and then twice among the others at once (four requests), round after
    round until the engine is seen running two or more of them in one step (at most ROUNDS)."""
    shape = target.contract.input_shape(target.contract.target)
    # One 16-pixel patch column narrower: bodies of nearly one size are parsed in nearly the same time, so
    # they reach the engine interleaved (a half-size body overtakes the others and batches with its twin).
    small = (shape[-2], max(16, (shape[-1] - 16) // 16 * 16))
    inputs = [_inputs(target, 0), _inputs(target, 1, size=small)]
    shapes = [target.contract.output_shape, (*target.contract.output_shape[:2], *small)]
    alone = [_decode_as(send(client, body_for(target, arrays), "POOL-CLI-005"), shape, checks, case="alone")
             for arrays, shape in zip(inputs, shapes, strict=True)]
    order = [0, 1, 0, 1]
    formed = "concurrent"  # "mixed-batch" once a round is seen batched (or fails as vLLM 0.32's engine does)
    for attempt in range(ROUNDS):
        batched_before = batched_steps(target) or 0.0
        try:
            responses = asyncio.run(_concurrently(target, [body_for(target, inputs[i]) for i in order]))
        except GeopoolError as exc:
            formed, seen = _formed_after_failure(target, guard, batched_before)
            checks.fail("POOL-CLI-005", f"round {attempt + 1}: a request of two concurrent sizes failed ({seen}): "
                                        f"{exc}", case=formed)
            break
        # Only a round in which the engine ran two or more requests in one step tested a mixed batch.
        case = formed = "mixed-batch" if (batched_steps(target) or 0.0) > batched_before else "concurrent"
        for position, (which, response) in enumerate(zip(order, responses, strict=True)):
            got = _decode_as(response, shapes[which], checks, case=case)
            if got is None or alone[which] is None:
                continue
            checks.that("POOL-CLI-005", np.allclose(got, alone[which], atol=batch_tolerance(target), rtol=0),
                        f"round {attempt + 1}: concurrent request #{position} ({shapes[which][-2]}×"
                        f"{shapes[which][-1]}) vs alone: " + array_diff(got, alone[which]), case=case)
        if case == "mixed-batch" or checks.failures:
            break
    # the survival of a mixed batch only if one formed: else that of concurrent requests of two sizes
    guard.survives(checks, "POOL-CLI-005", "concurrent requests of two spatial sizes", case=formed)


def _decode_as(response, shape: tuple[int, ...], checks: Checks, *, case: str) -> np.ndarray | None:
    try:
        return wire.decode_json_response(response.json(), shape)
    except ValueError as exc:
        checks.fail("POOL-CLI-005", f"a {shape[-2]}×{shape[-1]} input did not give {shape}: {exc}", case=case)
        return None


def _formed_after_failure(target, guard, batched_before: float) -> tuple[str, str]:
    """The case of a round whose request failed, and what was seen: a mixed batch when the engine counted a
    step of two or more requests, or when its engine died (/health no longer 200: vLLM 0.32's engine dies in the
    step that batches two sizes, before counting it); else concurrent requests that were not seen batched."""
    healthy = guard.healthy()
    try:
        batched = batched_steps(target) if healthy else None
    except GeopoolError:
        healthy, batched = False, None
    if not healthy:
        return "mixed-batch", "the engine died in the round, as vLLM 0.32's does in a step that batches two sizes"
    if batched is not None and batched > batched_before:
        return "mixed-batch", "the engine ran them batched"
    return "concurrent", "no step batched them and the server is healthy"


async def _concurrently(target, bodies: list[dict]) -> list:
    async with AsyncPoolingClient(target.endpoint) as client:
        return await asyncio.gather(*(client.pool(body) for body in bodies))


# ------------------------------------------------------------------------------------ connections
#: How long the server may take to count an abandoned request as no longer running.
SETTLE_S = 15.0


@pytest.mark.requirement("POOL-CLI-006")
def test_a_client_that_hangs_up_mid_request(target, client, guard, checks):
    """One request is abandoned (socket closed before any answer byte) while two others run beside it."""
    mates = [_inputs(target, 10), _inputs(target, 11)]
    alone = [decode(target, send(client, body_for(target, a), "POOL-CLI-006"), "POOL-CLI-006") for a in mates]
    abandoned = json.dumps(body_for(target, _inputs(target, 12))).encode()

    async def together():
        async with AsyncPoolingClient(target.endpoint) as mates_client:
            hang_up = asyncio.create_task(_send_and_hang_up(target.endpoint, abandoned))
            await asyncio.sleep(0.01)
            answers = await asyncio.gather(*(mates_client.pool(body_for(target, a)) for a in mates))
            return await hang_up, answers

    early_bytes, answers = asyncio.run(together())
    checks.context["answer_bytes_before_hang_up"] = len(early_bytes)
    for index, response in enumerate(answers):
        got = decode(target, response, "POOL-CLI-006")
        checks.that("POOL-CLI-006", np.allclose(got, alone[index], atol=batch_tolerance(target), rtol=0),
                    f"batch-mate #{index} of the abandoned request vs alone: " + array_diff(got, alone[index]),
                    case="batch-mates")
    running = _running_after(target, SETTLE_S)
    checks.that("POOL-CLI-006", running == 0.0,
                f"vllm:num_requests_running is {running} {SETTLE_S:.0f} s after the hang-up (None: not exported)",
                case="running-returns-to-0")
    guard.survives(checks, "POOL-CLI-006", "a client that hung up mid-request", case="survives")


async def _send_and_hang_up(endpoint: Endpoint, body: bytes) -> bytes:
    """Send ``body`` to /pooling on a raw connection and close it at once; the bytes already answered."""
    where = urlsplit(endpoint.base_url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(where.hostname, where.port or 80), 10)
    headers = {**endpoint.headers(content_type="application/json"), "Host": where.netloc,
               "Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"POST {where.path.rstrip('/')}/pooling HTTP/1.1\r\n{head}\r\n".encode() + body)
    await writer.drain()
    await asyncio.sleep(0.02)
    try:
        early = await asyncio.wait_for(reader.read(100), 0.001)
    except TimeoutError:
        early = b""
    writer.close()
    return early


def _running_after(target, deadline_s: float) -> float | None:
    """vllm:num_requests_running once it is 0, or its last value when ``deadline_s`` passes."""
    stop = time.monotonic() + deadline_s
    with PoolingClient(target.endpoint.with_timeout(PROBE_TIMEOUT)) as probe:
        while True:
            running = wire.gauge(wire.read_metrics(probe.metrics()), "vllm:num_requests_running")
            if running == 0.0 or running is None or time.monotonic() > stop:
                return running
            time.sleep(0.25)


@pytest.mark.requirement("POOL-CLI-007")
@pytest.mark.parametrize("error", ["after-4xx", "after-5xx"])
def test_keep_alive_connection_survives_an_error_answer(target, baseline, checks, error):
    """valid, bad, valid on one client that never asks for ``Connection: close``: one TCP connection."""
    valid = body_for(target, wire.seed_inputs(target.contract), embed_dtype="float32", endianness="little")
    bad = json.loads(json.dumps(valid))
    # bad base64 is a 400 everywhere; a text file for a tensor is vLLM 0.32's cheapest 500 (POOL-REJ-002)
    wire.image_embeds(bad)[target.contract.target] = ("@@not base64@@" if error == "after-4xx"
                                                      else wire.base64_text(b"this is text, not a tensor file"))
    connects: list[str] = []

    def trace(event: str, info: dict) -> None:
        if event == "connection.connect_tcp.complete":
            connects.append(event)

    endpoint = target.endpoint
    with httpx.Client(base_url=endpoint.base_url, headers=endpoint.headers(), timeout=endpoint.timeout) as http:
        post = lambda body: http.post("/pooling", json=body, extensions={"trace": trace})  # noqa: E731
        try:
            post(valid).raise_for_status()
            refused = post(bad)
            after = post(valid)
        except httpx.HTTPError as exc:
            checks.fail("POOL-CLI-007", f"{error}: a request of valid, bad, valid on one client failed: "
                        f"{type(exc).__name__}: {exc}", case=error, tcp_connections=len(connects))
            return
    wanted = range(400, 500) if error == "after-4xx" else range(500, 600)
    if refused.status_code not in wanted:  # this server gives no such answer to that input: nothing to check
        return
    checks.context.update(error_status=refused.status_code, error_connection_header=refused.headers.get("connection"))
    checks.that("POOL-CLI-007", len(connects) == 1,
                f"{error}: the next request needed a new TCP connection ({len(connects)} opened; the "
                f"{refused.status_code} said Connection: {refused.headers.get('connection')!r})", case=error)
    try:
        answered = after.status_code == 200 and np.array_equal(
            wire.decode_json_response(after.json(), target.contract.output_shape), baseline, equal_nan=True)
    except ValueError:
        answered = False
    checks.that("POOL-CLI-007", answered, f"{error}: the next valid request got {after.status_code}, "
                "not the baseline answer", case=error)


# ------------------------------------------------------------------------------------------ API key
def _needs_key(target) -> str:
    if not target.api_key:
        pytest.skip("no API key configured: not checked (pass --api-key or $GEOPOOL_API_KEY for a server "
                    "started with one; the embedded server always has one)")
    return target.api_key


@pytest.mark.requirement("POOL-CLI-008")
def test_api_key_guards_the_openai_routes(target, checks):
    key = _needs_key(target)
    for case, who in (("no-key", None), ("wrong-key", f"{key}-wrong"), ("with-key", key)):
        with PoolingClient(Endpoint(target.url, who, PROBE_TIMEOUT)) as probe:
            status = probe.get("/v1/models").status_code
        wanted = 200 if who == key else 401
        checks.that("POOL-CLI-008", status == wanted, f"GET /v1/models {case}: {status}, expected {wanted}",
                    case=f"models-{case}")
    with PoolingClient(Endpoint(target.url, None, PROBE_TIMEOUT)) as probe:
        status = probe.get("/health").status_code
    checks.that("POOL-CLI-008", status == 200, f"GET /health without a key: {status}, expected 200",
                case="health-public")


@pytest.mark.requirement("POOL-CLI-009")
@pytest.mark.parametrize("route", ["/pooling", "/invocations"])
def test_api_key_guards_the_pooling_routes(target, checks, route):
    key = _needs_key(target)
    raw = json.dumps(body_for(target, wire.seed_inputs(target.contract))).encode()
    for case, who in (("no-key", None), ("wrong-key", f"{key}-wrong")):
        with PoolingClient(Endpoint(target.url, who)) as stranger:
            status = stranger.post_raw(route, raw).status_code
        checks.that("POOL-CLI-009", status == 401, f"POST {route} {case}: {status}, expected 401",
                    case=f"{route.strip('/')}-{case}")


# -------------------------------------------------------------------------------- other encodings
@pytest.mark.requirement("POOL-CLI-010")
def test_bytes_only_is_the_raw_baseline(target, client, seed_arrays, baseline, checks):
    response = send(client, body_for(target, seed_arrays, encoding_format="bytes_only", endianness="little"),
                    "POOL-CLI-010")
    content_type = response.headers.get("content-type", "")
    checks.that("POOL-CLI-010", content_type.startswith("application/octet-stream"), f"content-type {content_type!r}",
                case="content-type", expect=recipes.headers("application/octet-stream"))
    checks.that("POOL-CLI-010", response.metadata is None, f"a metadata header: {response.metadata!r:.200}",
                case="no-metadata", expect=recipes.headers("application/octet-stream", metadata=False))
    same = recipes.close_to(BASELINE_OPTIONS)
    try:
        values = wire.decode_values(response.content, target.contract.output_shape)
    except ValueError as exc:
        checks.fail("POOL-CLI-010", f"the body is not the float32 output: {exc}", case="values", expect=same)
        return
    checks.that("POOL-CLI-010", np.array_equal(values, baseline, equal_nan=True), array_diff(values, baseline),
                case="values", expect=same)


@pytest.mark.requirement("POOL-CLI-011")
@pytest.mark.parametrize("embed_dtype", list(wire.FP8_FORMATS))
def test_fp8_embed_dtypes(target, client, seed_arrays, baseline, checks, embed_dtype):
    """Base64 and bytes answers: one byte per value, the baseline rounded to that format, the metadata."""
    _, mantissa_bits, bias = wire.FP8_FORMATS[embed_dtype]
    shape = target.contract.output_shape
    encoded = send(client, body_for(target, seed_arrays, embed_dtype=embed_dtype), "POOL-CLI-011")
    # Round to nearest: within half a step, 2^-(m+1) of the value, or half the smallest subnormal step.
    relative, absolute = 2.0 ** -(mantissa_bits + 1), 2.0 ** (-bias - mantissa_bits)
    rounded = recipes.close_to(BASELINE_OPTIONS, rtol=relative, atol=absolute)
    try:  # a malformed answer fails the requirement; it is not a crash of the test
        raw = wire.base64_bytes(encoded.json()["data"][0]["data"], validate=True)
        values = wire.decode_fp8(raw, shape, embed_dtype=embed_dtype)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        checks.fail("POOL-CLI-011", f"{embed_dtype}: {exc}", case=f"{embed_dtype}-base64", expect=rounded)
        return
    checks.that("POOL-CLI-011", bool(np.all(np.abs(values - baseline) <= np.abs(baseline) * relative + absolute)),
                f"{embed_dtype} is further from the float32 baseline than {embed_dtype} rounding: "
                + array_diff(values, baseline), case=f"{embed_dtype}-base64", expect=rounded)
    as_bytes = send(client, body_for(target, seed_arrays, embed_dtype=embed_dtype, encoding_format="bytes"),
                    "POOL-CLI-011")
    try:
        item = json.loads(as_bytes.metadata or "")["data"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        checks.fail("POOL-CLI-011", f"{embed_dtype} bytes: metadata header missing or malformed ({exc!r})",
                    case=f"{embed_dtype}-bytes", metadata=as_bytes.metadata,
                    expect=recipes.headers("application/octet-stream", metadata=True))
        return
    facts = {"embed_dtype": item.get("embed_dtype") == embed_dtype, "shape": item.get("shape") == list(shape[1:]),
             "slice": (item.get("start"), item.get("end")) == (0, len(as_bytes.content)),
             "endianness": item.get("endianness") in wire.ENDIANNESSES, "body": as_bytes.content == raw}
    wrong = sorted(name for name, holds in facts.items() if not holds)
    # the script's check: the bytes answer, read as its metadata says, gives the base64 answer's values
    checks.that("POOL-CLI-011", not wrong, f"{embed_dtype} bytes answer: wrong {wrong} (metadata {item!r:.300}, "
                f"{len(as_bytes.content)}-byte body)", case=f"{embed_dtype}-bytes",
                expect=recipes.close_to({"encoding_format": "base64"}))


# ------------------------------------------------------------------------------------------ routes
@pytest.mark.requirement("POOL-CLI-012")
def test_invocations_answers_as_pooling(target, client, seed_arrays, baseline, checks):
    raw = json.dumps(body_for(target, seed_arrays, embed_dtype="float32", endianness="little")).encode()
    response = client.post_raw("/invocations", raw, close=False)
    if not checks.that("POOL-CLI-012", response.status_code == 200,
                       f"POST /invocations answered {response.status_code}: {response.text[:200]!r}"):
        return
    try:
        answer = wire.decode_json_response(response.json(), target.contract.output_shape)
    except ValueError as exc:
        checks.fail("POOL-CLI-012", f"the /invocations answer does not decode: {exc}")
        return
    checks.that("POOL-CLI-012", np.array_equal(answer, baseline, equal_nan=True),
                "/invocations vs /pooling for the same body: " + array_diff(answer, baseline))
