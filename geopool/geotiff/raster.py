"""GeoTIFFs for requests (:class:`RasterSpec`) and the facts of any raster (:func:`raster_facts`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from geopool.errors import MalformedResponseError, MissingDependencyError

__all__ = ["RasterFacts", "RasterSpec", "raster_facts", "rasterio_module"]


def rasterio_module() -> Any:
    """rasterio, or MissingDependencyError naming the extra that installs it."""
    try:
        import rasterio
        import rasterio.io
    except ImportError as exc:
        raise MissingDependencyError("image-to-image mode reads and writes GeoTIFFs with rasterio, a "
                                     "dependency of geopool: pip install rasterio") from exc
    return rasterio


@dataclasses.dataclass(frozen=True)
class RasterSpec:
    """A synthetic raster: ``bands`` × ``height`` × ``width`` of ``dtype``, georeferenced by ``crs`` (None:
    no CRS) with its top-left corner at (``x0``, ``y0``) and square pixels of ``resolution`` CRS units.

    Values are reflectance-like (0-3000 as integers; 0-0.3 as floats) from ``seed``, so the plugin's
    ``/10000`` rule sees what it sees in Sen1Floods11 tiles. ``nodata`` is written as the file's nodata.
    """

    height: int = 512
    width: int = 512
    bands: int = 6
    dtype: str = "int16"
    crs: str | None = "EPSG:32633"
    x0: float = 500_000.0
    y0: float = 4_600_000.0
    resolution: float = 10.0
    nodata: float | None = None
    seed: int = 0
    driver: str = "GTiff"

    def pixels(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        values = rng.integers(0, 3000, (self.bands, self.height, self.width))
        if np.dtype(self.dtype).kind == "f":
            return (values / 10_000).astype(self.dtype)
        return values.astype(self.dtype)

    def transform(self) -> Any:
        from rasterio.transform import from_origin  # only after rasterio_module() said it is there

        return from_origin(self.x0, self.y0, self.resolution, self.resolution)

    def profile(self) -> dict[str, Any]:
        """The GeoTIFF profile rasterio writes (no CRS or nodata key when there is none)."""
        return {"driver": self.driver, "height": self.height, "width": self.width, "count": self.bands,
                "dtype": self.dtype, "transform": self.transform(),
                **({"crs": self.crs} if self.crs is not None else {}),
                **({"nodata": self.nodata} if self.nodata is not None else {})}

    def write(self, path: Path | str) -> Path:
        """Write the raster to ``path`` (parents created) and return the path."""
        rasterio = rasterio_module()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", **self.profile()) as dataset:
            dataset.write(self.pixels())
        return path

    def to_bytes(self) -> bytes:
        rasterio = rasterio_module()
        with rasterio.io.MemoryFile() as memory:
            with memory.open(**self.profile()) as dataset:
                dataset.write(self.pixels())
            return memory.read()


@dataclasses.dataclass(frozen=True)
class RasterFacts:
    """What a raster says about itself: format, size, georeferencing, bands and their values."""

    driver: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    crs: str | None
    transform: tuple[float, ...]
    nodata: float | None
    values: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def raster_facts(source: bytes | Path | str, *, values: bool = False, max_values: int = 32) -> RasterFacts:
    """The facts of a raster given as bytes (an answer) or a path; ``values``: also its distinct values
    (at most ``max_values``). A raster rasterio cannot open raises MalformedResponseError."""
    rasterio = rasterio_module()
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            with rasterio.io.MemoryFile(bytes(source)) as memory, memory.open() as dataset:
                return _facts(dataset, values, max_values)
        with rasterio.open(source) as dataset:
            return _facts(dataset, values, max_values)
    except rasterio.errors.RasterioError as exc:
        raise MalformedResponseError(f"not a raster rasterio can open: {exc}") from exc


def _facts(dataset: Any, values: bool, max_values: int) -> RasterFacts:
    distinct: tuple[float, ...] = ()
    if values:
        found = np.unique(dataset.read())
        distinct = tuple(float(v) for v in found[:max_values])
    return RasterFacts(dataset.driver, dataset.width, dataset.height, dataset.count, tuple(dataset.dtypes),
                       dataset.crs.to_string() if dataset.crs else None, tuple(dataset.transform)[:6],
                       dataset.nodata, distinct)
