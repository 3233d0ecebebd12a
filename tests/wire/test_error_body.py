"""geopool.wire.error_body: vLLM's {"error": {...}} built, found and judged in one place."""

from __future__ import annotations

import json

import pytest

from geopool import wire


def test_built_body_has_vllm_fields_and_parses_back():
    raw = wire.error_json("bad base64", type="BadRequestError", code=400)
    assert json.loads(raw) == {"error": {"message": "bad base64", "type": "BadRequestError", "param": None,
                                         "code": 400}}
    assert wire.parse_error(raw) == wire.error_body("bad base64", type="BadRequestError", code=400)["error"]
    assert wire.well_formed_error(wire.parse_error(raw), 400)
    assert wire.parse_error(raw.decode())["message"] == "bad base64"


@pytest.mark.parametrize("body", [b'{"detail": "Not Found"}', b'{"error": "busy"}', b"not json", b"\xff\xfe",
                                  b"[1, 2]", b"", b'{"object": "error", "message": "flat"}', "[" * 100_000],
                         ids=["fastapi", "string-error", "text", "not-utf8", "list", "empty", "flat", "deep"])
def test_other_shapes_have_no_error_object(body):
    assert wire.parse_error(body) is None


@pytest.mark.parametrize(("body", "message"), [
    (b'{"error": {"message": "bad base64", "type": "BadRequestError"}}', "bad base64"),
    (b'{"error": {"message": "", "type": "BadRequestError"}}', ""),  # empty is a message: callers decide
    (b'{"error": {"message": 42}}', 42),  # as sent: a message that is not text is itself a finding
    (b'{"error": {"type": "BadRequestError"}}', None),
    (b'{"detail": "Not Found"}', None),
    (b"not json", None),
])
def test_the_message_is_read_in_one_place_as_sent(body, message):
    assert wire.error_message(wire.parse_error(body)) == message


def test_a_parsed_body_gives_its_own_dict_to_edit():
    body = {"error": {"message": "x"}}
    wire.parse_error(body)["message"] = ""
    assert body == {"error": {"message": ""}}


WELL_FORMED = {
    "complete": ({"message": "m", "type": "T", "param": None, "code": 400}, 400, True),
    "param string": ({"message": "m", "type": "T", "param": "model", "code": 404}, 404, True),
    "code differs": ({"message": "m", "type": "T", "param": None, "code": 500}, 400, False),
    "no message": ({"type": "T", "param": None, "code": 400}, 400, False),
    "message not a string": ({"message": 3, "type": "T", "param": None, "code": 400}, 400, False),
    "no type": ({"message": "m", "param": None, "code": 400}, 400, False),
    "param a number": ({"message": "m", "type": "T", "param": 1, "code": 400}, 400, False),
    "none": (None, 400, False),
}


@pytest.mark.parametrize("error, status, expected", WELL_FORMED.values(), ids=WELL_FORMED.keys())
def test_well_formed_error(error, status, expected):
    assert wire.well_formed_error(error, status) is expected
