"""The image-to-image request body of TerraTorch's segmentation IO-processor plugin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geopool.errors import InvalidArgument

__all__ = ["DATA_FORMATS", "OUT_DATA_FORMATS", "io_request"]

DATA_FORMATS = ("path", "url")
OUT_DATA_FORMATS = ("b64_json", "path")


def io_request(model: str, data: str, *, data_format: str = "path", out_data_format: str = "b64_json",
               indices: Sequence[int] | None = None, out_path: str | None = None, **extra: Any) -> dict[str, Any]:
    """``POST /pooling`` body naming a GeoTIFF by server ``path`` or ``url``; ``extra`` goes into ``data``
    as is (a test's deliberate mistakes)."""
    if data_format not in DATA_FORMATS and not extra.pop("allow_any_format", False):
        raise InvalidArgument(f"data_format {data_format!r} is not one of {DATA_FORMATS}")
    inner: dict[str, Any] = {"data": data, "data_format": data_format, "out_data_format": out_data_format}
    if indices is not None:
        inner["indices"] = list(indices)
    if out_path is not None:
        inner["out_path"] = out_path
    inner.update(extra)
    return {"model": model, "data": inner}
