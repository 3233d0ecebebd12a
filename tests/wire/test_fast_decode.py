"""The fast decode path (msgspec + pybase64, the base64 text cut out of compact JSON) returns exactly what the
reference path (``json`` + ``base64``) returns, and fails with the same message, on valid and malformed answers."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geopool import wire
from geopool.errors import MalformedResponseError
from geopool.load.judge.verify import OK, VERIFY_FAILED, verify_response
from geopool.wire import response

SHAPE = (1, 2, 4, 4)
VALUES = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) / 7
RAW = VALUES.astype("<f4").tobytes()
TEXT = base64.b64encode(RAW).decode()


def answer(data: object = TEXT, *, compact: bool = True, **extra: object) -> bytes:
    body = {"id": "pooling-1", "object": "list", "created": 1, "model": "m",
            "data": [{"index": 0, "object": "pooling", "data": data}], **extra}
    return json.dumps(body, separators=(",", ":") if compact else None).encode()


def outcome(body: object, *, fast: bool, monkeypatch: pytest.MonkeyPatch, **kw: object) -> tuple[str, object]:
    with monkeypatch.context() as patch:
        patch.setattr(response, "FAST_DECODE", fast)
        try:
            array = wire.decode_json_response(body, SHAPE, **kw)
        except MalformedResponseError as exc:
            return "error", str(exc)
    assert array.dtype == np.float32 and array.shape == SHAPE
    return "ok", array.tobytes()


MALFORMED = {
    "not-json": b"{not json",
    "truncated": answer()[:-3],
    "not-utf8-elsewhere": answer().replace(b'"m"', b'"\xff"'),
    "not-an-object": b"[1,2]",
    "data-not-a-list": b'{"data":"abc"}',
    "no-entry": b'{"data":[]}',
    "entry-without-data": b'{"data":[{"index":0}]}',
    "data-a-number": answer(5),
    "bad-padding": answer(TEXT[:-1]),
    "non-alphabet": answer(TEXT[:10] + "*" + TEXT[11:]),
    "newline-escape": answer(TEXT[:10] + "\n" + TEXT[10:]),
    "escaped-slash": answer(TEXT).replace(b"/", b"\\/"),
    "too-few-bytes": answer(base64.b64encode(RAW[:-4]).decode()),
    "duplicate-data-key-last-wins": answer()[:-1] + b',"data":[{"data":"AAAA"}]}',
    "stand-in-text-in-the-body": answer(note="#geopool-base64-cut#"),
    "first-data-field-is-another": b'{"meta":{"data":"QUJD"},' + answer()[1:],
}
VALID = {
    "compact": answer(),
    "spaced": answer(compact=False),
    "extra-fields-after": answer(usage={"prompt_tokens": 1}),
    "str-body": answer().decode(),
    "bytearray-body": bytearray(answer()),
}


@pytest.mark.parametrize("body", [*VALID.values(), *MALFORMED.values()], ids=[*VALID, *MALFORMED])
def test_fast_and_reference_paths_agree(body, monkeypatch):
    fast = outcome(body, fast=True, monkeypatch=monkeypatch)
    assert fast == outcome(body, fast=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("name", list(VALID))
def test_valid_answers_decode_to_the_values(name, monkeypatch):
    assert outcome(VALID[name], fast=True, monkeypatch=monkeypatch) == ("ok", RAW)


def test_the_escaped_slash_answer_is_still_read_by_both_paths(monkeypatch):
    # JSON allows "\/" for "/": the cut refuses it (a backslash), and the reference path reads it
    assert outcome(MALFORMED["escaped-slash"], fast=True, monkeypatch=monkeypatch) == ("ok", RAW)


def test_the_fast_path_is_on_and_cuts_compact_answers():
    assert response.FAST_DECODE
    cut = response._fast_base64_field(answer(), 0)
    assert isinstance(cut, bytearray) and bytes(cut) == RAW
    assert response._fast_base64_field(answer(note="#geopool-base64-cut#"), 0) is None
    assert response._fast_base64_field(b'{"meta":{"data":"QUJD"},' + answer()[1:], 0) is None


def test_a_float32_answer_is_a_writable_view_of_the_decoded_buffer():
    array = wire.decode_json_response(answer(), SHAPE)
    assert array.flags.writeable and not array.flags.owndata
    array[0, 0, 0, 0] = 42.0  # the buffer is the array's own: nothing else sees it


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_any_one_byte_change_gives_the_same_outcome_on_both_paths(position, byte):
    body = bytearray(answer())
    body[position % len(body)] = byte
    with pytest.MonkeyPatch.context() as patch:
        assert outcome(bytes(body), fast=True, monkeypatch=patch) == outcome(bytes(body), fast=False,
                                                                             monkeypatch=patch)


# ------------------------------------------------------------------------------------ bytes answers
META = json.dumps({"data": [{"index": 0, "embed_dtype": "float32", "endianness": "little", "start": 0,
                             "end": len(RAW), "shape": list(SHAPE[1:])}]})


@pytest.mark.parametrize("content", [RAW, bytearray(RAW)], ids=["bytes", "bytearray"])
def test_bytes_answers_decode_alike_from_bytes_and_bytearray(content):
    assert wire.decode_bytes_response(content, META, SHAPE).tobytes() == RAW


@pytest.mark.parametrize("metadata, content, message", [
    (None, RAW, "bytes response has no 'metadata' header"),
    ("{not json", RAW, "bytes response metadata header is malformed"),
    (META, RAW[:-4], "is outside the"),
    (META.replace('"float32"', '"int8"'), RAW, "unsupported embed_dtype/endianness"),
], ids=["no-header", "bad-header", "short-body", "bad-dtype"])
def test_malformed_bytes_answers_fail_alike_on_both_paths(metadata, content, message, monkeypatch):
    for fast in (True, False):
        monkeypatch.setattr(response, "FAST_DECODE", fast)
        with pytest.raises(MalformedResponseError, match=message):
            wire.decode_bytes_response(bytearray(content), metadata, SHAPE)


def test_verify_response_checks_bytes_answers_like_base64_ones(tmp_path):
    from geopool.contract import load_contract
    from geopool.resources import fixture_models_dir

    contract = load_contract(fixture_models_dir() / "prithvi-tiny-tl" / "config.json")
    values = np.zeros(contract.output_shape, np.float32)
    meta = json.dumps({"data": [{"index": 0, "embed_dtype": "float32", "endianness": "little", "start": 0,
                                 "end": values.nbytes, "shape": list(contract.output_shape[1:])}]})
    assert verify_response(200, bytearray(values.tobytes()), contract, encoding="bytes", metadata=meta) == (OK, "")
    values.flat[[3, 9]] = [np.nan, np.inf]
    as_json = answer(base64.b64encode(values.tobytes()).decode())
    expected = (VERIFY_FAILED, "2 non-finite values")
    assert verify_response(200, bytearray(values.tobytes()), contract, encoding="bytes", metadata=meta) == expected
    assert verify_response(200, as_json, contract) == expected
    verdict, detail = verify_response(200, values.tobytes(), contract, encoding="bytes", metadata=None)
    assert verdict == VERIFY_FAILED and detail == "malformed: bytes response has no 'metadata' header"


def test_verify_response_fails_an_answer_in_a_dtype_load_did_not_ask_for():
    from geopool.contract import load_contract
    from geopool.resources import fixture_models_dir

    contract = load_contract(fixture_models_dir() / "prithvi-tiny-tl" / "config.json")
    half = np.zeros(contract.output_shape, np.float16)  # finite values a widening decode would let through
    meta = json.dumps({"data": [{"index": 0, "embed_dtype": "float16", "endianness": "little", "start": 0,
                                 "end": half.nbytes, "shape": list(contract.output_shape[1:])}]})
    verdict, detail = verify_response(200, bytearray(half.tobytes()), contract, encoding="bytes", metadata=meta)
    assert (verdict, detail) == (VERIFY_FAILED, "malformed: metadata says embed_dtype 'float16'; the request asked "
                                                "for 'float32'")
    verdict, detail = verify_response(200, answer(base64.b64encode(half.tobytes()).decode()), contract)
    assert verdict == VERIFY_FAILED and "malformed" in detail
