"""geotiff-shift: an image-to-image answer's GeoTIFF with its origin moved along x and nothing else changed;
through the proxy in front of the real image-to-image server, the answer's georeferencing is wrong, while
the same request sent direct is clean. geotiff-flip and geotiff-swap-classes: the class map spoiled, the
georeferencing kept (their live runs: tests/conformance/test_io_suite_live.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import numpy as np
import pybase64
import pytest

from geopool.errors import FaultSpecError
from geopool.faults import Exchange, parse_fault
from geopool.faults.geotiff import edited_pixels, shifted_geotiff
from geopool.geotiff import RasterSpec, decode_io_answer, georeferencing_problems, io_request, raster_facts
from geopool.geotiff.reference import class_map
from geopool.proxy import FaultProxy

ANSWER = RasterSpec(height=40, width=70, bands=1, dtype="uint8", nodata=0.0, seed=2)


def io_exchange(geotiff: bytes) -> Exchange:
    body = {"request_id": "r-1", "created_at": 1,
            "data": {"data_format": "b64_json", "data": pybase64.b64encode(geotiff).decode(), "request_id": "r-1"}}
    return Exchange("POST", "/pooling", b"{}", {"data": {}}, 200, {"content-type": "application/json"},
                    json.dumps(body).encode())


def test_the_shift_moves_only_the_origins_x():
    source = ANSWER.to_bytes()
    shifted = shifted_geotiff(source, 30.0)
    before, after = raster_facts(source, values=True), raster_facts(shifted, values=True)
    assert after.transform[2] == before.transform[2] + 30.0
    assert after.transform[:2] + after.transform[3:] == before.transform[:2] + before.transform[3:]
    assert (after.width, after.height, after.count, after.dtypes, after.crs, after.nodata, after.values) == (
        before.width, before.height, before.count, before.dtypes, before.crs, before.nodata, before.values)
    assert np.array_equal(class_map(shifted), class_map(source))


def test_the_fault_rewrites_a_b64_answer_and_the_problem_names_the_transform():
    source = ANSWER.to_bytes()
    exchange = io_exchange(source)
    asyncio.run(parse_fault("geotiff-shift:10").response(exchange))
    answer = decode_io_answer(json.loads(exchange.body))
    problems = georeferencing_problems(raster_facts(source), raster_facts(answer.geotiff))
    assert len(problems) == 1 and problems[0].startswith("transform"), problems
    assert answer.request_id == "r-1"


def test_path_answers_tensor_answers_and_errors_pass_unchanged():
    path_answer = {"request_id": "r", "created_at": 1, "data": {"data_format": "path", "data": "/o.tif",
                                                                 "request_id": "r"}}
    tensor_answer = {"id": "p", "data": [{"index": 0, "data": "AAAA"}]}
    for body, status in ((path_answer, 200), (tensor_answer, 200), ({"error": {"message": "x"}}, 500)):
        raw = json.dumps(body).encode()
        exchange = Exchange("POST", "/pooling", b"{}", {}, status, {"content-type": "application/json"}, raw)
        asyncio.run(parse_fault("geotiff-shift").response(exchange))
        assert exchange.body == raw


@pytest.mark.parametrize(("fault", "expected"), [
    ("geotiff-flip", lambda pixels: pixels[::-1, :]),
    ("geotiff-swap-classes", lambda pixels: np.where(pixels == 0, 255, 0)),
])
def test_the_content_faults_change_the_class_map_and_keep_the_georeferencing(fault, expected):
    rng = np.random.default_rng(3)
    source = dataclasses.replace(ANSWER, nodata=None).to_bytes()
    source = edited_pixels(source, lambda pixels: (rng.integers(0, 2, pixels.shape) * 255).astype(pixels.dtype))
    exchange = io_exchange(source)
    asyncio.run(parse_fault(fault).response(exchange))
    answer = decode_io_answer(json.loads(exchange.body)).geotiff
    assert np.array_equal(class_map(answer), expected(class_map(source)))
    assert not np.array_equal(class_map(answer), class_map(source))
    assert georeferencing_problems(raster_facts(source), raster_facts(answer)) == []


def test_a_bad_shift_is_named():
    with pytest.raises(FaultSpecError, match="geotiff-shift"):
        parse_fault("geotiff-shift:east")


@pytest.mark.live
def test_through_the_proxy_the_answers_transform_is_wrong_and_direct_it_is_clean(io_server, tmp_path):
    tile = RasterSpec(height=256, width=256, seed=21)
    path = tile.write(tmp_path / "tile.tif")
    body = io_request(io_server.model_name, str(path))
    timeout = httpx.Timeout(120.0)
    source = raster_facts(path)
    direct = decode_io_answer(httpx.post(f"{io_server.url}/pooling", json=body, timeout=timeout).json())
    assert georeferencing_problems(source, raster_facts(direct.geotiff)) == []
    with FaultProxy(io_server.url, "geotiff-shift:30", max_seconds=300) as proxy:
        answer = httpx.post(f"{proxy.url}/pooling", json=body, timeout=timeout)
    assert answer.status_code == 200, answer.text[:500]
    faulty = decode_io_answer(answer.json())
    problems = georeferencing_problems(source, raster_facts(faulty.geotiff))
    assert len(problems) == 1 and problems[0].startswith("transform"), problems
    assert raster_facts(faulty.geotiff).transform[2] == source.transform[2] + 30.0
