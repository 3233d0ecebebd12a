"""Output encodings: base64 and bytes, embed_dtype, endianness, the API default; output shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geopool import wire
from geopool.conformance import recipes
from geopool.conformance.checks import array_diff
from geopool.conformance.support import body_for, decode, send

#: The baseline request's options (conformance/conftest.py): what the other answers are compared with.
BASELINE_OPTIONS = {"encoding_format": "base64", "embed_dtype": "float32", "endianness": "little"}
# A value rounded to a format with p significand bits is within 2^-p relative of the original.
PRECISION = {"float16": (2.0**-11, 2.0**-24), "bfloat16": (2.0**-8, 2.0**-133)}


@pytest.mark.requirement("POOL-ENC-001", "POOL-SHAPE-001", "POOL-DTYPE-003")
def test_base64_float32_has_the_contract_shape(target, client, baseline_body, baseline_response, checks):
    recipes.sent(baseline_body)  # the answer judged first is the session's baseline
    checks.default_expect = recipes.answer()
    elements = target.contract.output_elements
    text = baseline_response.json()["data"][0]["data"]
    raw = wire.base64_bytes(text, validate=True)
    size = wire.width("float32")
    checks.that("POOL-ENC-001", len(raw) == size * elements,
                f"{len(raw)} bytes decoded, expected {size} × {elements} for shape {target.contract.output_shape}")
    checks.that("POOL-SHAPE-001", len(raw) % size == 0 and len(raw) // size == elements,
                f"{len(raw) / size:g} float32 values cannot fill shape {target.contract.output_shape}")
    # Sent without embed_dtype: the answer must still be float32 whatever the model's dtype.
    untyped = send(client, body_for(target, wire.seed_inputs(target.contract)), "POOL-DTYPE-003")
    raw_default = wire.base64_bytes(untyped.json()["data"][0]["data"])
    checks.that("POOL-DTYPE-003", len(raw_default) == size * elements,
                f"without embed_dtype: {len(raw_default)} bytes, float32 needs {size * elements}",
                model_dtype=target.contract.input_dtype)


@pytest.mark.requirement("POOL-ENC-002", "POOL-ENC-003", "POOL-SHAPE-002")
def test_bytes_encoding(target, client, seed_arrays, baseline, checks):
    response = send(client, body_for(target, seed_arrays, encoding_format="bytes"), "POOL-ENC-002")
    content_type = response.headers.get("content-type", "")
    checks.that("POOL-ENC-002", content_type.startswith("application/octet-stream"), f"content-type {content_type!r}")
    try:
        item = json.loads(response.metadata or "")["data"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        checks.fail("POOL-ENC-002", f"metadata header missing or malformed ({exc!r})", metadata=response.metadata)
        return
    missing = {"embed_dtype", "endianness", "start", "end", "shape"} - set(item)
    checks.that("POOL-ENC-002", not missing, f"metadata lacks {sorted(missing)}", metadata=response.metadata)
    checks.that("POOL-ENC-002", item.get("end", 0) - item.get("start", 0) == len(response.content) ==
                wire.width("float32") * target.contract.output_elements,
                f"metadata slice {item.get('start')}:{item.get('end')} vs a {len(response.content)}-byte body")
    expected_shape = list(target.contract.output_shape[1:])
    checks.that("POOL-SHAPE-002", item.get("shape") == expected_shape,
                f"metadata shape {item.get('shape')} != contract {expected_shape}")
    try:
        values = wire.decode_bytes_response(response.content, response.metadata, target.contract.output_shape)
    except ValueError as exc:
        checks.fail("POOL-ENC-003", f"bytes answer does not decode: {exc}", expect=recipes.close_to(BASELINE_OPTIONS))
        return
    checks.that("POOL-ENC-003", np.array_equal(values, baseline, equal_nan=True), array_diff(values, baseline),
                expect=recipes.close_to(BASELINE_OPTIONS))


def _answer_in(target, client, seed_arrays, checks, requirement, embed_dtype, endianness):
    response = send(client, body_for(target, seed_arrays, embed_dtype=embed_dtype, endianness=endianness),
                    requirement)
    raw = wire.base64_bytes(response.json()["data"][0]["data"])
    width = wire.width(embed_dtype)
    if not checks.that(requirement, len(raw) == width * target.contract.output_elements,
                       f"{embed_dtype}: {len(raw)} bytes, expected {width} × {target.contract.output_elements}",
                       expect=recipes.answer()):
        return None
    return decode(target, response, requirement, embed_dtype=embed_dtype, endianness=endianness)


@pytest.mark.requirement("POOL-ENC-006")
@pytest.mark.parametrize("endianness", wire.ENDIANNESSES)
def test_endianness(target, client, seed_arrays, baseline, checks, endianness):
    values = _answer_in(target, client, seed_arrays, checks, "POOL-ENC-006", "float32", endianness)
    if values is not None:
        checks.that("POOL-ENC-006", np.array_equal(values, baseline, equal_nan=True),
                    f"float32/{endianness} decoded in that byte order is not the baseline: "
                    + array_diff(values, baseline), expect=recipes.close_to(BASELINE_OPTIONS))


@pytest.mark.parametrize("endianness", ["little", "big"])
@pytest.mark.parametrize("embed_dtype", [
    pytest.param("float16", marks=pytest.mark.requirement("POOL-ENC-004")),
    pytest.param("bfloat16", marks=pytest.mark.requirement("POOL-ENC-005")),
])
def test_reduced_precision(target, client, seed_arrays, baseline, checks, embed_dtype, endianness):
    requirement = {"float16": "POOL-ENC-004", "bfloat16": "POOL-ENC-005"}[embed_dtype]
    values = _answer_in(target, client, seed_arrays, checks, requirement, embed_dtype, endianness)
    if values is not None:
        relative, absolute = PRECISION[embed_dtype]
        checks.that(requirement, np.allclose(values, baseline, rtol=relative, atol=absolute, equal_nan=True),
                    f"{embed_dtype}/{endianness} is further from the float32 baseline than {embed_dtype} rounding: "
                    + array_diff(values, baseline),
                    expect=recipes.close_to(BASELINE_OPTIONS, rtol=relative, atol=absolute))


@pytest.mark.requirement("POOL-ENC-007")
def test_default_encoding_format(target, client, seed_arrays, checks):
    body = body_for(target, seed_arrays)
    del body["encoding_format"]
    response = send(client, body, "POOL-ENC-007")
    data = response.json()["data"][0]["data"]
    array = np.asarray(data, dtype=np.float32)
    checks.that("POOL-ENC-007", array.size == target.contract.output_elements,
                f"float answer holds {array.size} numbers, expected {target.contract.output_elements}")


@pytest.mark.requirement("POOL-SHAPE-003")
@pytest.mark.parametrize("scale", [(0.5, 0.5), (0.5, 0.75)], ids=["half", "half-by-three-quarters"])
def test_output_follows_the_input_size(target, client, seed_arrays, checks, scale):
    contract = target.contract
    shape = contract.input_shape(contract.target)
    height, width = (max(16, int(shape[-2] * scale[0]) // 16 * 16), max(16, int(shape[-1] * scale[1]) // 16 * 16))
    arrays = dict(seed_arrays, **{contract.target: np.ones((*shape[:-2], height, width), np.float32)})
    response = send(client, body_for(target, arrays), "POOL-SHAPE-003")
    expected = (1, contract.num_classes, height, width)
    try:
        wire.decode_json_response(response.json(), expected)
    except ValueError as exc:
        checks.fail("POOL-SHAPE-003", f"a {height}×{width} input did not give {expected}: {exc}")
