"""Image-to-image mode, bad files (D10): each is refused with a 4xx that names the problem, never a 5xx,
and the server stays healthy. Error messages do not echo server paths (POOL-IO-017)."""

from __future__ import annotations

import pytest

from geopool.conformance.io_support import io_post, on_this_host, write_input
from geopool.geotiff import RasterSpec, io_request
from geopool.geotiff.listener import LoopbackListener, closed_port_url


def _refused(checks, requirement: str, result, what: str, *, sent_path: str | None = None,
             reads_files: bool = True) -> None:
    checks.that(requirement, 400 <= result.status < 500, f"{what}: answered {result.status}",
                **result.evidence())
    if sent_path is not None and reads_files:  # a server that reads no file at all never names one either
        checks.that("POOL-IO-017", sent_path not in result.message,
                    f"{what}: the error message echoes the server path {sent_path}", **result.evidence())


@pytest.mark.requirement("POOL-IO-006", "POOL-IO-017")
def test_a_missing_file_is_a_4xx(target, io_guard, io_reads_files, checks):
    missing = str(target.io_input_dir / "no-such-file.tif")
    result = io_post(target, io_request(target.model, missing))
    _refused(checks, "POOL-IO-006", result, "a path naming no file", sent_path=missing, reads_files=io_reads_files)
    io_guard.survives(checks, "POOL-IO-006", "a missing file", case="survives")


@pytest.mark.requirement("POOL-IO-007", "POOL-IO-017")
def test_a_file_that_is_not_a_raster_is_a_4xx_by_path(target, io_guard, io_reads_files, checks):
    path = target.io_input_dir / "not-a-raster.tif"
    path.write_bytes(b"this is not a GeoTIFF\n" * 64)
    result = io_post(target, io_request(target.model, str(path)))
    _refused(checks, "POOL-IO-007", result, "a text file named by path", sent_path=str(path),
             reads_files=io_reads_files)
    io_guard.survives(checks, "POOL-IO-007", "a file that is not a raster", case="survives")


@pytest.mark.requirement("POOL-IO-007", "POOL-IO-010")
def test_urls_to_a_non_raster_a_404_and_a_closed_port_are_4xx(target, io_guard, checks):
    if not on_this_host(target):
        pytest.skip("not checked: the server is on another host, so it cannot reach this machine's loopback listener")
    with LoopbackListener() as listener:
        listener.serve("/text.tif", b"this is not a GeoTIFF\n" * 64)
        cases = [("POOL-IO-007", "non-raster", listener.url("/text.tif")),
                 ("POOL-IO-010", "404", listener.url("/missing.tif")),
                 ("POOL-IO-010", "closed-port", closed_port_url("/x.tif"))]
        for requirement, case, url in cases:
            result = io_post(target, io_request(target.model, url, data_format="url"))
            checks.that(requirement, 400 <= result.status < 500, f"a URL ({case}) was answered {result.status}",
                        case=case, url=url, **result.evidence())
    io_guard.survives(checks, "POOL-IO-010", "bad URLs", case="survives")


@pytest.mark.requirement("POOL-IO-008")
def test_too_few_bands_or_an_index_out_of_range_is_a_4xx(target, io_guard, checks):
    five = write_input(target, RasterSpec(bands=5, seed=3), "five-bands.tif")
    six = io_guard.valid_input
    for case, body in (("five-bands-default-indices", io_request(target.model, str(five))),
                       ("index-9-of-6", io_request(target.model, str(six), indices=[0, 1, 2, 3, 4, 9]))):
        result = io_post(target, body)
        checks.that("POOL-IO-008", 400 <= result.status < 500, f"{case}: answered {result.status}", case=case,
                    **result.evidence())
    io_guard.survives(checks, "POOL-IO-008", "too few bands", case="survives")


@pytest.mark.requirement("POOL-IO-009")
def test_a_raster_without_crs_gets_an_answer_or_a_4xx_naming_the_crs(target, io_guard, checks):
    path = write_input(target, RasterSpec(crs=None, seed=4), "no-crs.tif")
    result = io_post(target, io_request(target.model, str(path)))
    named = "crs" in result.message.lower() or "coordinate" in result.message.lower()
    checks.that("POOL-IO-009", result.status == 200 or (400 <= result.status < 500 and named),
                f"a raster without CRS was answered {result.status}" + ("" if named else " without naming the CRS"),
                **result.evidence())
    io_guard.survives(checks, "POOL-IO-009", "a raster without CRS", case="survives")
