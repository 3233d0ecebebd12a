"""Fault edits, checked on hand-made exchanges (the proxy in front of vLLM is checked by the matrix)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from geopool import wire
from geopool.contract import SEN1FLOODS11
from geopool.errors import FaultSpecError
from geopool.faults import FAULTS, Exchange, parse_fault
from geopool.invalid import bad_requests, client_mistakes, code_running_payload, sparse_payload
from geopool.proxy import _json_or_none


def pooling_exchange(values: np.ndarray, **request) -> Exchange:
    body = {"id": "pooling-1", "object": "list", "created": 1, "model": "m",
            "data": [{"index": 0, "object": "pooling",
                      "data": base64.b64encode(values.astype("<f4").tobytes()).decode()}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    return Exchange("POST", "/pooling", b"{}", {"encoding_format": "base64", **request}, 200,
                    {"content-type": "application/json"}, json.dumps(body).encode())


def output(exchange: Exchange) -> bytes:
    return base64.b64decode(json.loads(exchange.body)["data"][0]["data"])


def apply(spec: str, exchange: Exchange) -> Exchange:
    asyncio.run(parse_fault(spec).response(exchange))
    return exchange


VALUES = np.arange(8, dtype=np.float32)


def test_none_changes_nothing():
    exchange = pooling_exchange(VALUES)
    before = exchange.body
    assert apply("none", exchange).body == before


def test_layout_keeps_the_byte_count_and_reorders():
    edited = np.frombuffer(output(apply("layout:2", pooling_exchange(VALUES))), "<f4")
    assert edited.size == VALUES.size and edited.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_float16_bytes_halves_the_output():
    raw = output(apply("float16-bytes", pooling_exchange(VALUES)))
    assert np.frombuffer(raw, "<f2").tolist() == VALUES.tolist()


def test_byteswap_and_nan_and_truncate():
    assert np.frombuffer(output(apply("byteswap", pooling_exchange(VALUES))), ">f4").tolist() == VALUES.tolist()
    assert np.isnan(np.frombuffer(output(apply("nan:3", pooling_exchange(VALUES))), "<f4")[3])
    assert len(output(apply("truncate:2", pooling_exchange(VALUES)))) == 4 * 6


def test_big_endian_requests_are_edited_in_their_own_byte_order():
    exchange = pooling_exchange(VALUES, endianness="big")
    exchange.body = exchange.body.replace(
        json.loads(exchange.body)["data"][0]["data"].encode(), base64.b64encode(VALUES.astype(">f4").tobytes()))
    edited = np.frombuffer(output(apply("inf:0", exchange)), ">f4")
    assert edited[0] == np.inf and edited[1:].tolist() == VALUES[1:].tolist()


def test_stale_serves_the_previous_output():
    fault = parse_fault("stale")
    first, second = pooling_exchange(VALUES), pooling_exchange(VALUES + 100)
    asyncio.run(fault.response(first))
    asyncio.run(fault.response(second))
    assert np.frombuffer(output(second), "<f4").tolist() == VALUES.tolist()


def test_accept_bad_turns_a_rejection_into_zeros():
    fault = parse_fault("accept-bad")
    asyncio.run(fault.response(pooling_exchange(VALUES)))
    rejected = Exchange("POST", "/pooling", b"{}", {}, 400, {"content-type": "application/json"}, b'{"error": {}}')
    asyncio.run(fault.response(rejected))
    assert rejected.status == 200 and set(output(rejected)) == {0}


@pytest.mark.parametrize("spec, message", [("nope", "unknown fault 'nope'"), ("noise:loud", "not a number")])
def test_bad_fault_specs(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(spec)


def test_every_fault_has_a_summary():
    assert all(cls.summary and cls.name == name for name, cls in FAULTS.items())


def test_version_claims_the_given_version_and_leaves_other_paths_alone():
    fault = parse_fault("version:0.33.0")
    answer = Exchange("GET", "/version", b"", None, 200, {"content-type": "application/json"}, b'{"version": "0.32.0"}')
    asyncio.run(fault.response(answer))
    assert (answer.status, answer.headers["content-type"]) == (200, "application/json")
    assert json.loads(answer.body) == {"version": "0.33.0"}
    health = Exchange("GET", "/health", b"", None, 200, {}, b"")
    asyncio.run(fault.response(health))
    assert health.body == b"" and health.status == 200
    before = pooling_exchange(VALUES)
    assert apply("version:0.33.0", pooling_exchange(VALUES)).body == before.body


@pytest.mark.parametrize("spec", ["version", "version:", "version:1:2"])
def test_version_needs_exactly_one_version(spec):
    with pytest.raises(FaultSpecError, match=r"needs the version to claim, e\.g\. version:0\.33\.0"):
        parse_fault(spec)


# ------------------------------------------------------------------ the gateway and the other repairs

CONTRACT = SEN1FLOODS11


def model_request(raw: bytes, path: str = "/pooling") -> Exchange:
    return Exchange("POST", path, raw, _json_or_none(raw))


def seed_body(**options) -> dict:
    return wire.request_body("m", wire.seed_inputs(CONTRACT), dtype="float32", **options)


def bound(spec: str):
    fault = parse_fault(spec)
    fault.bind(CONTRACT)
    return fault


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in bad_requests()])
def test_the_gateway_refuses_every_named_bad_request_naming_the_problem(case):
    if case.needs_torch and not wire.torch_available():
        pytest.skip("torch.save payload")
    exchange = model_request(case.body(seed_body(), CONTRACT))
    if case.requirement == "POOL-REJ-008" or case.name.startswith("bad-e"):
        assert asyncio.run(bound("repair-validate").intercept(exchange)) is False  # the server's own 404/400 holds
        return
    assert asyncio.run(bound("repair-validate").intercept(exchange)) is True
    error = wire.parse_error(exchange.body)
    assert exchange.status in case.statuses and wire.well_formed_error(error, exchange.status)
    assert any(word.lower() in error["message"].lower() for word in case.names), error["message"]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in bad_requests() if case.destructive])
def test_die_on_killer_dies_on_exactly_the_inputs_that_kill_vllm_and_never_forwards_them(case):
    fault = bound("die-on-killer")
    answered = asyncio.run(fault.intercept(model_request(case.body(seed_body(), CONTRACT))))
    killer = case.name != "mismatched-coords-shape"  # vLLM 0.32 answers that one 200 and lives
    assert answered is killer
    if killer:  # dead until a /health probe saw it
        pooling, health, after = model_request(b"{}"), Exchange("GET", "/health", b""), Exchange("GET", "/health", b"")
        assert asyncio.run(fault.intercept(pooling)) and pooling.status == 503
        assert asyncio.run(fault.intercept(health)) and health.status == 503
        assert asyncio.run(fault.intercept(after)) is False


def test_the_gateway_forwards_valid_requests_and_refuses_what_vllm_mishandles():
    gateway = bound("repair-validate:16")
    assert asyncio.run(gateway.intercept(model_request(json.dumps(seed_body()).encode()))) is False
    npy = wire.request_body("m", wire.seed_inputs(CONTRACT), dtype="float32", fmt="npy")
    assert asyncio.run(gateway.intercept(model_request(json.dumps(npy).encode(), "/invocations"))) is False
    oversized = model_request(json.dumps(dict(seed_body(), filler="x" * 16 * 2**20)).encode())
    assert asyncio.run(gateway.intercept(oversized)) and oversized.status == 413
    deep = model_request(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert asyncio.run(gateway.intercept(deep)) and deep.status == 400
    assert "JSON" in wire.parse_error(deep.body)["message"]
    health = Exchange("GET", "/health", b"")
    assert asyncio.run(gateway.intercept(health)) is False


@pytest.mark.skipif(not wire.torch_available(), reason="torch.save payloads")
@pytest.mark.parametrize("value", [
    pytest.param(lambda: code_running_payload("/tmp/geopool-never-created"), id="code-running-pickle"),
    pytest.param(lambda: sparse_payload(indices=[[0, 10**6], [0, 0], [0, 0]], size=(6, 512, 512)), id="sparse-oob"),
    pytest.param(lambda: sparse_payload(indices=[[0], [0], [0]], size=(6, 100_000, 100_000)), id="sparse-huge"),
])
def test_the_gateway_refuses_hostile_tensors_without_running_or_densifying_them(value):
    body = wire.set_image_embed(seed_body(), "pixel_values", value())
    exchange = model_request(json.dumps(body).encode())
    assert asyncio.run(bound("repair-validate").intercept(exchange)) and exchange.status == 400
    assert not Path("/tmp/geopool-never-created").exists()


def test_contract_faults_need_a_contract():
    with pytest.raises(FaultSpecError, match="needs the model contract"):
        parse_fault("repair-validate").bind(None)


@pytest.mark.parametrize("spec, message", [("repair-validate+", "an empty layer"), ("none+nope", "unknown fault")])
def test_bad_stacked_specs(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(spec)


def test_stacked_faults_are_layers_the_outer_one_sees_the_inner_ones_answer():
    fault = bound("flat-errors+repair-validate")
    exchange = model_request(b"{not json")
    assert asyncio.run(fault.intercept(exchange)) is True
    body = json.loads(exchange.body)
    assert body["object"] == "error" and "JSON" in body["message"]  # the gateway's answer, flattened outside it
    inner_first = bound("repair-validate+flat-errors")
    exchange = model_request(b"{not json")
    assert asyncio.run(inner_first.intercept(exchange)) is True
    assert "error" in json.loads(exchange.body)


def test_repair_float_asks_for_base64_and_answers_nested_numbers():
    fault = bound("repair-float")
    body = seed_body()
    del body["encoding_format"]
    exchange = model_request(json.dumps(body).encode())
    assert asyncio.run(fault.intercept(exchange)) is False
    assert json.loads(exchange.request_body)["encoding_format"] == "base64"
    values = np.arange(CONTRACT.output_elements, dtype=np.float32)
    answered = pooling_exchange(values)
    exchange.status, exchange.headers, exchange.body = answered.status, answered.headers, answered.body
    asyncio.run(fault.response(exchange))
    nested = np.asarray(json.loads(exchange.body)["data"][0]["data"])
    assert nested.shape == CONTRACT.output_shape[1:] and nested.ravel().tolist() == values.tolist()
    asyncio.run(parse_fault("truncate:4").response(exchange))  # output faults edit float answers too
    assert np.asarray(json.loads(exchange.body)["data"][0]["data"]).size == values.size - 4


def test_repair_openapi_documents_the_pooling_answer():
    spec = {"openapi": "3.1.0", "paths": {"/pooling": {"post": {"responses": {"200": {"content": {
        "application/json": {"schema": {}}}}}}}}}
    exchange = Exchange("GET", "/openapi.json", b"", None, 200, {}, json.dumps(spec).encode())
    asyncio.run(parse_fault("repair-openapi").response(exchange))
    edited = json.loads(exchange.body)
    schema = edited["paths"]["/pooling"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    answer = json.loads(pooling_exchange(VALUES).body)
    jsonschema.validate(answer, {**schema, "components": edited["components"]})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(answer, created="1x"), {**schema, "components": edited["components"]})


def test_repair_serialize_holds_one_model_request_at_a_time():
    fault = parse_fault("repair-serialize")
    inside, most = 0, 0

    async def forward(exchange):
        nonlocal inside, most
        async with fault.forwarding(exchange):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    async def main():
        await asyncio.gather(*(forward(model_request(b"{}")) for _ in range(4)))

    asyncio.run(main())
    assert most == 1


def test_ignore_endianness_spoils_only_big_endian_answers():
    little = pooling_exchange(VALUES, endianness="little")
    assert np.frombuffer(output(apply("ignore-endianness", little)), "<f4").tolist() == VALUES.tolist()
    big = pooling_exchange(VALUES.byteswap(), endianness="big")  # a correct big-endian answer
    assert np.frombuffer(output(big), ">f4").tolist() == VALUES.tolist()
    assert np.frombuffer(output(apply("ignore-endianness", big)), "<f4").tolist() == VALUES.tolist()


def test_bytes_no_metadata_drops_the_header():
    exchange = Exchange("POST", "/pooling", b"{}", {"encoding_format": "bytes"}, 200,
                        {"content-type": "application/octet-stream", "metadata": "{}"}, VALUES.tobytes())
    assert "metadata" not in apply("bytes-no-metadata", exchange).headers


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in client_mistakes() if case.destructive])
def test_die_on_killer_never_forwards_a_destructive_client_mistake(case):
    """The fault matrix's baseline sends these to the shared server through die-on-killer: forwarded, one
    would take the session's server down (input-token-ids did, before die-on-killer knew it)."""
    fault = bound("die-on-killer")
    exchange = model_request(case.body(seed_body(), CONTRACT))
    assert asyncio.run(fault.intercept(exchange)) is True
    assert exchange.status == 500 and "EngineCore" in wire.parse_error(exchange.body)["message"]


def test_slow_every_delays_exactly_every_nth_pooling_request():
    import time

    fault = parse_fault("slow-every:3:0.05")
    delayed = []
    for _ in range(6):
        asyncio.run(fault.intercept(Exchange("GET", "/health", b"", None)))  # not counted
        started = time.monotonic()
        asyncio.run(fault.intercept(model_request(b"{}")))
        delayed.append(time.monotonic() - started >= 0.05)
    assert delayed == [False, False, True, False, False, True]
    with pytest.raises(FaultSpecError, match="whole N >= 1"):
        parse_fault("slow-every:0")


def test_noise_every_second_answer_alternates_noisy_and_exact_answers():
    fault = parse_fault("noise:0.5:2")
    exact = []
    for _ in range(4):
        exchange = pooling_exchange(VALUES)
        asyncio.run(fault.response(exchange))
        exact.append(np.frombuffer(output(exchange), "<f4").tolist() == VALUES.tolist())
    assert exact == [True, False, True, False]
    assert np.frombuffer(output(apply("noise:0.5", pooling_exchange(VALUES))), "<f4").tolist() != VALUES.tolist()
    with pytest.raises(FaultSpecError, match="whole N >= 1"):
        parse_fault("noise:0.5:0")
