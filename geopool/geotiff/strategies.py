"""Hypothesis strategies for image-to-image inputs: synthetic GeoTIFFs as :class:`RasterSpec` recipes.

As with tensor mode's :mod:`geopool.strategies`, Hypothesis draws the *parameters* of a raster (size,
bands, dtype, nodata, CRS, origin, pixel size, seed) and :meth:`RasterSpec.write` expands them, so a failing
example prints as a short replayable ``RasterSpec(...)`` and shrinks towards a small int16 UTM tile with
``min_bands`` bands and no nodata.

Sizes run from below one 512 crop to a few crops per side (padding and several tiles), with the pixel
count bounded so one request stays around 3 s on CPU. Each CRS gets origins and pixel sizes of its own
units inside its area of use (EPSG:4326 in degrees; EPSG:32633 and EPSG:3857 in metres; no CRS: metres),
so the raster's centre — the plugin's ``location_coords`` — is a real place.

>>> from hypothesis import find
>>> find(raster_specs(dtypes=("uint16",)), lambda spec: spec.bands == 8).dtype
'uint16'
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import strategies as st

from geopool.errors import InvalidArgument
from geopool.geotiff.raster import RasterSpec

__all__ = ["CRSS", "DTYPES", "nodata_equal", "raster_specs"]

DTYPES: tuple[str, ...] = ("int16", "uint8", "uint16", "float32", "float64")
#: None: a raster without a CRS (the plugin cannot place it: its location_coords fail).
CRSS: tuple[str | None, ...] = ("EPSG:32633", "EPSG:4326", "EPSG:3857", None)


@dataclasses.dataclass(frozen=True)
class _Area:
    """Where a CRS's rasters may lie: origin bounds (left, bottom, right, top) and pixel sizes, its units."""

    bounds: tuple[float, float, float, float]
    resolutions: tuple[float, ...]
    #: decimals the origin is rounded to (degrees need more than metres)
    decimals: int


_AREAS: dict[str | None, _Area] = {
    # UTM 33N: eastings of the zone, northings from the equator to ~84°N
    "EPSG:32633": _Area((166_000.0, 0.0, 834_000.0, 9_300_000.0), (10.0, 20.0, 30.0, 60.0, 1.0), 0),
    # ~1 m to ~100 m pixels, away from the antimeridian and the poles
    "EPSG:4326": _Area((-179.0, -80.0, 179.0, 80.0), (0.0001, 0.0002, 0.001, 0.00001), 6),
    # Web Mercator within ±~80° latitude
    "EPSG:3857": _Area((-20_000_000.0, -15_500_000.0, 20_000_000.0, 15_500_000.0), (10.0, 30.0, 100.0, 1.0), 0),
    None: _Area((0.0, 0.0, 1_000_000.0, 1_000_000.0), (10.0, 1.0), 0),
}

#: Nodata values each dtype can hold: 0 (the answer's own), the dtype's extremes, TerraTorch's -9999.
_NODATA: dict[str, tuple[float, ...]] = {
    "uint8": (0.0, 255.0),
    "uint16": (0.0, 65535.0),
    "int16": (-9999.0, 0.0, -32768.0),
    "float32": (-9999.0, 0.0, math.nan),
    "float64": (-9999.0, 0.0, math.nan),
}


def raster_specs(*, min_side: int = 64, max_side: int = 1100, max_pixels: int = 1_200_000,
                 min_bands: int = 1, max_bands: int = 8, dtypes: tuple[str, ...] = DTYPES,
                 crss: tuple[str | None, ...] = CRSS, nodata: bool | None = None) -> st.SearchStrategy[RasterSpec]:
    """RasterSpecs with ``min_side``-``max_side`` pixels a side and at most ``max_pixels`` pixels,
    ``min_bands``-``max_bands`` bands of one of ``dtypes``, georeferenced in one of ``crss``.

    ``nodata``: True, every raster has a nodata value; False, none has; None (default), either.
    Arguments are checked here, not when drawing.
    """
    _check_int("min_side", min_side, 1, 20_000)
    _check_int("max_side", max_side, min_side, 20_000)
    _check_int("max_pixels", max_pixels, min_side * min_side, 100_000_000)
    _check_int("min_bands", min_bands, 1, 64)
    _check_int("max_bands", max_bands, min_bands, 64)
    _check_choice("dtypes", dtypes, DTYPES)
    _check_choice("crss", crss, CRSS)
    if nodata not in (True, False, None):
        raise InvalidArgument(f"nodata={nodata!r} must be True, False or None (either)")
    return _raster_specs(min_side, max_side, max_pixels, min_bands, max_bands, tuple(dtypes), tuple(crss), nodata)


@st.composite
def _raster_specs(draw: st.DrawFn, min_side: int, max_side: int, max_pixels: int, min_bands: int,
                  max_bands: int, dtypes: tuple[str, ...], crss: tuple[str | None, ...],
                  nodata: bool | None) -> RasterSpec:
    height = draw(st.integers(min_side, min(max_side, max_pixels // min_side)))
    width = draw(st.integers(min_side, min(max_side, max_pixels // height)))
    bands = draw(st.integers(min_bands, max_bands))
    dtype = draw(st.sampled_from(dtypes))
    crs = draw(st.sampled_from(crss))
    area = _AREAS[crs]
    resolution = draw(st.sampled_from(area.resolutions))
    left, bottom, right, top = area.bounds
    x0 = round(draw(st.floats(left, right - width * resolution)), area.decimals)
    y0 = round(draw(st.floats(bottom + height * resolution, top)), area.decimals)
    with_nodata = draw(st.booleans()) if nodata is None else nodata
    value = draw(st.sampled_from(_NODATA[dtype])) if with_nodata else None
    seed = draw(st.integers(0, 2**32 - 1))
    return RasterSpec(height=height, width=width, bands=bands, dtype=dtype, crs=crs, x0=float(x0),
                      y0=float(y0), resolution=resolution, nodata=value, seed=seed)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name}={value!r} must be an integer within {low}-{high}")


def _check_choice(name: str, given: object, allowed: tuple) -> None:
    if isinstance(given, str) or not isinstance(given, tuple | list) or not given:
        raise InvalidArgument(f"{name}={given!r} must be a non-empty tuple drawn from {allowed}, "
                              f"e.g. {name}=({allowed[0]!r},)")
    stray = [item for item in given if item not in allowed]
    if stray:
        raise InvalidArgument(f"{name}={given!r}: {stray!r} not among {allowed}")


def nodata_equal(a: float | None, b: float | None) -> bool:
    """Nodata values compared as rasterio reports them (NaN equals NaN)."""
    if a is None or b is None:
        return a is b
    return a == b or (bool(np.isnan(a)) and bool(np.isnan(b)))
