"""An image-to-image answer: its envelope, its GeoTIFF, and what is wrong with them against the input."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pybase64

from geopool.errors import MalformedResponseError
from geopool.geotiff.raster import RasterFacts, raster_facts

__all__ = ["ANSWER_BANDS", "ANSWER_DTYPE", "ANSWER_NODATA", "IOAnswer", "answer_problems", "decode_io_answer",
           "georeferencing_problems", "judge_io_answer"]

#: The plugin's documented output: one band of uint8 class maps, nodata 0, values class_index × 255.
ANSWER_BANDS = 1
ANSWER_DTYPE = "uint8"
ANSWER_NODATA = 0.0
#: Transform coefficients are floats written and read back by GDAL: equal to ~1e-9 of a pixel.
_TRANSFORM_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class IOAnswer:
    request_id: str
    data_format: str
    #: The GeoTIFF's bytes (``b64_json``), or None when the server wrote it to ``path``.
    geotiff: bytes | None
    path: str | None


def decode_io_answer(body: Any) -> IOAnswer:
    """The answer ``{"request_id", "created_at", "data": {"data_format", "data", "request_id"}}`` decoded;
    anything else raises MalformedResponseError naming the field."""
    if not isinstance(body, dict):
        raise MalformedResponseError(f"the answer is a JSON {type(body).__name__}, not an object")
    for field in ("request_id", "created_at", "data"):
        if field not in body:
            raise MalformedResponseError(f"the answer has no {field!r} (fields: {sorted(body)})")
    data = body["data"]
    if not isinstance(data, dict):
        raise MalformedResponseError(f"'data' is a JSON {type(data).__name__}, not an object")
    fmt, payload = data.get("data_format"), data.get("data")
    if fmt not in ("b64_json", "path") or not isinstance(payload, str):
        raise MalformedResponseError(f"'data' holds data_format={fmt!r} and a {type(payload).__name__} 'data'; "
                                     "expected b64_json or path, and a string")
    if fmt == "path":
        return IOAnswer(str(body["request_id"]), fmt, None, payload)
    try:
        geotiff = pybase64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise MalformedResponseError(f"'data.data' is not valid base64: {exc}") from exc
    return IOAnswer(str(body["request_id"]), fmt, geotiff, None)


def judge_io_answer(body: Any, source: RasterFacts, *, classes: int = 2) -> tuple[RasterFacts | None, list[str],
                                                                                  list[str]]:
    """(the answer's facts, georeferencing problems, form problems) of a parsed 200 answer to the input whose
    facts are ``source``; an answer that does not decode has no facts and one problem in each list."""
    try:
        answer = decode_io_answer(body)
        if answer.geotiff is None:
            raise MalformedResponseError(f"the answer is a server path ({answer.path!r}), not the base64 "
                                         "GeoTIFF out_data_format b64_json asks for")
        facts = raster_facts(answer.geotiff, values=True)
    except MalformedResponseError as exc:
        return None, [f"malformed: {exc}"], [f"malformed: {exc}"]
    return facts, georeferencing_problems(source, facts), answer_problems(facts, classes=classes)


def georeferencing_problems(source: RasterFacts, answer: RasterFacts) -> list[str]:
    """What differs between the input's and the answer's size, CRS and transform (empty: they agree)."""
    problems = []
    if (answer.width, answer.height) != (source.width, source.height):
        problems.append(f"size {answer.width}x{answer.height}, the input's is {source.width}x{source.height}")
    if answer.crs != source.crs:
        problems.append(f"CRS {answer.crs}, the input's is {source.crs}")
    if len(answer.transform) != len(source.transform) or not all(
            math.isclose(a, b, rel_tol=_TRANSFORM_TOLERANCE, abs_tol=_TRANSFORM_TOLERANCE)
            for a, b in zip(answer.transform, source.transform, strict=False)):
        problems.append(f"transform {answer.transform}, the input's is {source.transform}")
    return problems


def answer_problems(answer: RasterFacts, *, classes: int = 2) -> list[str]:
    """What differs from the documented output: GTiff, 1 band of uint8, nodata 0, values k×255 (k < classes)."""
    problems = []
    if answer.driver != "GTiff":
        problems.append(f"driver {answer.driver}, not GTiff")
    if answer.count != ANSWER_BANDS or answer.dtypes != (ANSWER_DTYPE,):
        problems.append(f"{answer.count} band(s) of {', '.join(answer.dtypes)}, not 1 of uint8")
    if answer.nodata != ANSWER_NODATA:
        problems.append(f"nodata {answer.nodata}, not 0")
    allowed = {float(k * 255 % 256) for k in range(classes)}
    stray = sorted(set(answer.values) - allowed)
    if stray:
        problems.append(f"values {stray[:5]} are not class indices × 255 ({sorted(allowed)})")
    return problems
