"""Faults in image-to-image answers: the base64 GeoTIFF of a successful ``/pooling`` answer
(``data.data`` with ``data_format: b64_json``) rewritten with rasterio, everything but the planted defect
kept (pixels, size, CRS, nodata, dtype, creation options as the profile reports them, dataset tags).
Tensor-mode answers (``data`` is a list) pass unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pybase64

from geopool.faults.base import Exchange, Fault
from geopool.faults.error_answers import proxy_error

__all__ = ["GeotiffFlip", "GeotiffShift", "GeotiffSwapClasses", "RepairIoPaths", "edited_pixels", "shifted_geotiff"]


def shifted_geotiff(geotiff: bytes, metres: float) -> bytes:
    """``geotiff`` rewritten with its transform's origin moved ``metres`` (CRS units) along x."""
    from geopool.geotiff import rasterio_module  # rasterio only when an answer is rewritten

    rasterio = rasterio_module()

    def moved(profile: dict, pixels: np.ndarray) -> tuple[dict, np.ndarray]:
        old = profile["transform"]
        return {**profile, "transform": rasterio.Affine(old.a, old.b, old.c + metres, old.d, old.e, old.f)}, pixels

    return _rewritten(geotiff, moved)


def edited_pixels(geotiff: bytes, edit: Callable[[np.ndarray], np.ndarray]) -> bytes:
    """``geotiff`` rewritten with its pixels (bands × rows × columns) replaced by ``edit`` of them."""
    return _rewritten(geotiff, lambda profile, pixels: (profile, edit(pixels)))


def _rewritten(geotiff: bytes, change: Callable[[dict, np.ndarray], tuple[dict, np.ndarray]]) -> bytes:
    from geopool.geotiff import rasterio_module

    rasterio = rasterio_module()
    with rasterio.io.MemoryFile(geotiff) as source, source.open() as dataset:
        profile, pixels, tags = dataset.profile, dataset.read(), dataset.tags()
    profile, pixels = change(dict(profile), pixels)
    with rasterio.io.MemoryFile() as target:
        with target.open(**profile) as dataset:
            dataset.write(pixels)
            dataset.update_tags(**tags)
        return target.read()


class _GeotiffFault(Fault):
    """Edits the GeoTIFF of successful image-to-image answers sent as base64."""

    def edit(self, geotiff: bytes) -> bytes:
        return geotiff

    async def response(self, exchange: Exchange) -> None:
        if not exchange.ok_json:
            return
        body: Any = json.loads(exchange.body)
        data = body.get("data") if isinstance(body, dict) else None
        if not (isinstance(data, dict) and data.get("data_format") == "b64_json" and isinstance(data.get("data"), str)):
            return
        data["data"] = pybase64.b64encode(self.edit(pybase64.b64decode(data["data"]))).decode("ascii")
        exchange.set_json(body)


class GeotiffShift(_GeotiffFault):
    name, summary = ("geotiff-shift", "an image-to-image answer's GeoTIFF has its origin moved along x "
                                      "(param: CRS units, metres for projected CRSs [30])")

    def edit(self, geotiff: bytes) -> bytes:
        return shifted_geotiff(geotiff, self._float(0, 30.0))


class GeotiffFlip(_GeotiffFault):
    name, summary = "geotiff-flip", "an image-to-image answer's class map is flipped north-south (georeferencing kept)"

    def edit(self, geotiff: bytes) -> bytes:
        return edited_pixels(geotiff, lambda pixels: np.ascontiguousarray(pixels[:, ::-1, :]))


class GeotiffSwapClasses(_GeotiffFault):
    name, summary = ("geotiff-swap-classes", "an image-to-image answer's two classes are exchanged (values 0 and "
                                             "255 of the class map; georeferencing kept)")

    def edit(self, geotiff: bytes) -> bytes:
        return edited_pixels(geotiff, lambda pixels: np.where(pixels == 0, 255, np.where(pixels == 255, 0, pixels))
                             .astype(pixels.dtype))


class RepairIoPaths(Fault):
    name, summary = ("repair-io-paths", "positive control: an image-to-image request naming by path a file that does "
                                        "not exist or is not a raster is refused 400, its message naming no path")

    async def intercept(self, exchange: Exchange) -> bool:
        data = exchange.request_json.get("data") if isinstance(exchange.request_json, dict) else None
        if not (exchange.pooling and isinstance(data, dict) and data.get("data_format") == "path"
                and isinstance(data.get("data"), str)):
            return False
        problem = _unreadable(data["data"])
        if problem is None:
            return False
        exchange.status = 400
        exchange.body = proxy_error(400, f"data.data: {problem}")
        exchange.headers = {"content-type": "application/json"}
        return True


def _unreadable(path: str) -> str | None:
    """Why the server could not read ``path`` as a raster (without naming it), or None."""
    from geopool.geotiff import rasterio_module

    if not Path(path).is_file():
        return "the path names no file the server can read"
    rasterio = rasterio_module()
    try:
        with rasterio.open(path):
            return None
    except rasterio.errors.RasterioIOError:
        return "the file is not a raster the server can read"
