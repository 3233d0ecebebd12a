"""Faults in image-to-image answers: the base64 GeoTIFF of a successful ``/pooling`` answer
(``data.data`` with ``data_format: b64_json``) rewritten with rasterio, everything but the planted defect
kept (pixels, size, CRS, nodata, dtype, creation options as the profile reports them, dataset tags).
Tensor-mode answers (``data`` is a list) pass unchanged."""

from __future__ import annotations

import json
from typing import Any

import pybase64

from geopool.faults.base import Exchange, Fault

__all__ = ["GeotiffShift", "shifted_geotiff"]


def shifted_geotiff(geotiff: bytes, metres: float) -> bytes:
    """``geotiff`` rewritten with its transform's origin moved ``metres`` (CRS units) along x."""
    from geopool.geotiff import rasterio_module  # rasterio only when an answer is rewritten

    rasterio = rasterio_module()
    with rasterio.io.MemoryFile(geotiff) as source, source.open() as dataset:
        profile, pixels, tags = dataset.profile, dataset.read(), dataset.tags()
    moved = profile["transform"]
    profile["transform"] = rasterio.Affine(moved.a, moved.b, moved.c + metres, moved.d, moved.e, moved.f)
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
