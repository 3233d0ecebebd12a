"""The client-mistake faults (geopool/faults/client.py), on hand-made exchanges."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np

from geopool.faults import Exchange, parse_fault


def _apply(spec: str, *exchanges: Exchange) -> list[Exchange]:
    fault = parse_fault(spec)
    for exchange in exchanges:
        asyncio.run(fault.response(exchange))
    return list(exchanges)


def _answer(raw: bytes, **request) -> Exchange:
    body = {"id": "pooling-1", "object": "list", "data": [{"index": 0, "data": base64.b64encode(raw).decode()}]}
    return Exchange("POST", "/pooling", b"{}", {"messages": [], **request}, 200,
                    {"content-type": "application/json"}, json.dumps(body).encode())


def _rejected(request: dict, status: int = 400) -> Exchange:
    return Exchange("POST", "/pooling", json.dumps(request).encode(), request, status,
                    {"content-type": "application/json"}, b'{"error": {"message": "no", "code": 400}}')


def _data(exchange: Exchange) -> bytes:
    return base64.b64decode(json.loads(exchange.body)["data"][0]["data"])


def test_accept_completion_answers_only_bodies_without_messages():
    valid, chat, completion = _answer(b"\x01\x02\x03\x04"), _rejected({"messages": "x"}), _rejected({"prompt": "x"})
    _apply("accept-completion", valid, chat, completion)
    assert chat.status == 400
    assert completion.status == 200 and _data(completion) == bytes(4)


def test_close_after_error_marks_errors_only():
    ok, client_error, server_error = _answer(b"\x00" * 4), _rejected({}, 404), _rejected({}, 500)
    _apply("close-after-error", ok, client_error, server_error)
    assert "connection" not in ok.headers
    assert client_error.headers["connection"] == server_error.headers["connection"] == "close"


def test_low_bit_flips_fp8_and_bytes_only_answers_only():
    values = np.array([0.25, -1.5], "<f4").tobytes()
    float32, fp8 = _answer(values), _answer(b"\x38\x40", embed_dtype="fp8_e4m3")
    bytes_only = Exchange("POST", "/pooling", b"{}", {"encoding_format": "bytes_only", "endianness": "big"}, 200,
                          {"content-type": "application/octet-stream"}, np.array([0.25, -1.5], ">f4").tobytes())
    _apply("low-bit", float32, fp8, bytes_only)
    assert _data(float32) == values
    assert _data(fp8) == b"\x39\x41"
    flipped = np.frombuffer(bytes_only.body, ">f4")
    assert np.array_equal(flipped.view(">u4") ^ np.array([0.25, -1.5], ">f4").view(">u4"), [1, 1])
