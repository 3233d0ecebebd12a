"""raster_specs: drawn RasterSpecs write valid GeoTIFFs whose facts raster_facts reads back unchanged,
inside the bounds asked for; misuse is refused eagerly, naming the argument."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.warp import transform

from geopool.errors import InvalidArgument
from geopool.geotiff import raster_facts
from geopool.geotiff.strategies import CRSS, DTYPES, nodata_equal, raster_specs

# Writing a 1.2 M-pixel, 8-band float64 raster takes ~0.3 s: keep the example count small.
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FEW
@given(spec=raster_specs(), data=st.data())
def test_a_drawn_spec_writes_a_geotiff_with_the_same_facts(spec, data, tmp_path_factory):
    path = spec.write(tmp_path_factory.mktemp("raster") / "drawn.tif")
    facts = raster_facts(path)
    assert (facts.driver, facts.width, facts.height, facts.count) == ("GTiff", spec.width, spec.height, spec.bands)
    assert facts.dtypes == (spec.dtype,) * spec.bands
    assert facts.crs == spec.crs
    assert facts.transform == tuple(spec.transform())[:6]
    assert nodata_equal(facts.nodata, spec.nodata), (facts.nodata, spec.nodata)


@FEW
@given(spec=raster_specs())
def test_a_drawn_spec_keeps_its_bounds_and_lies_inside_its_crs_area(spec):
    assert 64 <= spec.height <= 1100 and 64 <= spec.width <= 1100
    assert spec.height * spec.width <= 1_200_000
    assert 1 <= spec.bands <= 8 and spec.dtype in DTYPES and spec.crs in CRSS
    if spec.crs is not None:
        # the raster's centre (the plugin's location_coords) is a real place on the globe
        centre_x = spec.x0 + spec.width * spec.resolution / 2
        centre_y = spec.y0 - spec.height * spec.resolution / 2
        (lon,), (lat,) = transform(spec.crs, "EPSG:4326", [centre_x], [centre_y])
        assert -180 <= lon <= 180 and -85 <= lat <= 85, (spec, lon, lat)


@settings(max_examples=30, deadline=None)
@given(spec=raster_specs(min_side=100, max_side=300, max_pixels=40_000, min_bands=6, max_bands=6,
                         dtypes=("float32",), crss=("EPSG:4326",), nodata=True))
def test_the_arguments_narrow_what_is_drawn(spec):
    assert 100 <= spec.height <= 300 and 100 <= spec.width <= 300 and spec.height * spec.width <= 40_000
    assert (spec.bands, spec.dtype, spec.crs) == (6, "float32", "EPSG:4326")
    assert spec.nodata is not None


def test_every_dtype_crs_and_nodata_choice_is_reachable():
    seen: set[tuple] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(spec=raster_specs(max_side=128))
    def collect(spec):
        seen.add(("dtype", spec.dtype))
        seen.add(("crs", spec.crs))
        seen.add(("nodata", spec.nodata is not None))

    collect()
    wanted = {("dtype", d) for d in DTYPES} | {("crs", c) for c in CRSS} | {("nodata", True), ("nodata", False)}
    assert wanted <= seen, wanted - seen


def test_nodata_equal_treats_nan_as_equal_and_none_only_as_none():
    assert nodata_equal(math.nan, math.nan) and nodata_equal(0.0, 0.0) and nodata_equal(None, None)
    assert not nodata_equal(None, 0.0) and not nodata_equal(0.0, math.nan) and not nodata_equal(1.0, 2.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_side": 0}, "min_side=0"),
    ({"min_side": 200, "max_side": 100}, "max_side=100"),
    ({"max_pixels": 10}, "max_pixels=10"),
    ({"min_bands": True}, "min_bands=True"),
    ({"min_bands": 4, "max_bands": 2}, "max_bands=2"),
    ({"dtypes": "int16"}, "dtypes='int16'"),
    ({"dtypes": ()}, r"dtypes=\(\)"),
    ({"dtypes": ("int8",)}, "'int8'"),
    ({"crss": ("EPSG:2154",)}, "'EPSG:2154'"),
    ({"nodata": "yes"}, "nodata='yes'"),
], ids=["side-zero", "sides-reversed", "pixels-below-one-tile", "bool-bands", "bands-reversed", "dtypes-string",
        "dtypes-empty", "dtype-unknown", "crs-unknown", "nodata-not-bool"])
def test_misuse_is_refused_when_the_strategy_is_made(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        raster_specs(**kwargs)
