"""Fault edits, checked on hand-made exchanges (the proxy in front of vLLM is checked by the matrix)."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from geopool.errors import FaultSpecError
from geopool.faults import FAULTS, Exchange, parse_fault


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
