"""Image-to-image mode: a valid GeoTIFF gets a GeoTIFF with the input's georeferencing, in the documented
form, whatever its size; the server's own dtype is honoured (D9). Run with --mode image-to-image."""

from __future__ import annotations

import pytest

from geopool.conformance.io_support import io_post, judge_answer, write_input
from geopool.geotiff import RasterSpec, io_request, raster_facts


def _valid_answer(target, checks, path, requirement: str, *, case: str | None = None):
    source = raster_facts(path)
    result = io_post(target, io_request(target.model, str(path)))
    checks.that(requirement, result.status == 200, f"a valid GeoTIFF was answered {result.status}", case=case,
                **result.evidence())
    if result.status != 200:
        return source, result, None, [], []
    facts, georeferencing, form = judge_answer(result, source, target.contract.num_classes)
    return source, result, facts, georeferencing, form


@pytest.mark.requirement("POOL-IO-001", "POOL-IO-002", "POOL-IO-003")
def test_a_valid_geotiff_gets_a_geotiff_with_its_georeferencing(target, io_valid_input, checks):
    source, result, facts, georeferencing, form = _valid_answer(target, checks, io_valid_input, "POOL-IO-001")
    if result.status != 200:
        return  # POOL-IO-002/003 were not reached: they stay not checked, not passed
    envelope = result.body if isinstance(result.body, dict) else {}
    inner = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
    checks.that("POOL-IO-001", {"request_id", "created_at", "data"} <= set(envelope)
                and {"data_format", "data", "request_id"} <= set(inner) and inner.get("data_format") == "b64_json",
                f"the envelope has {sorted(envelope)} / data {sorted(inner)}")
    checks.that("POOL-IO-002", not georeferencing, "; ".join(georeferencing) or "georeferencing kept",
                input=source.as_dict(), answer=facts.as_dict() if facts else None)
    checks.that("POOL-IO-003", not form, "; ".join(form) or "documented form",
                answer=facts.as_dict() if facts else None)


@pytest.mark.requirement("POOL-IO-004")
@pytest.mark.parametrize(("height", "width"), [(300, 700), (1100, 600)], ids=["300x700-padded", "1100x600-6-tiles"])
def test_sizes_that_need_padding_and_several_tiles(target, io_valid_input, checks, height, width):
    path = write_input(target, RasterSpec(height=height, width=width, seed=2), f"size-{height}x{width}.tif")
    _, result, facts, georeferencing, form = _valid_answer(target, checks, path, "POOL-IO-004")
    if result.status == 200:
        checks.that("POOL-IO-004", not georeferencing and not form, "; ".join(georeferencing + form) or "ok",
                    answer=facts.as_dict() if facts else None)


@pytest.mark.requirement("POOL-IO-012")
@pytest.mark.destructive
def test_a_valid_request_to_a_server_of_its_own_dtype_is_answered_and_survived(target, io_guard, checks):
    result = io_post(target, io_request(target.model, str(io_guard.valid_input)))
    checks.that("POOL-IO-012", result.status == 200, f"a valid GeoTIFF was answered {result.status}",
                server_dtype=target.contract.input_dtype, **result.evidence())
    io_guard.survives(checks, "POOL-IO-012", "a valid GeoTIFF request", case="survives")
