"""Image-to-image mode's payload pool and answer check: GeoTIFFs the server reads by path, and every
answer's georeferencing and shape checked against its own input.

Item ``k`` is a :class:`~geopool.geotiff.RasterSpec` GeoTIFF (512 × 512, 6 bands of int16: a
Sen1Floods11 tile) with seed ``(seed, k)`` and its own origin, written into the run's input folder,
which the server reads by the same absolute paths. Every input has its own transform, so an answer
that comes back for another request's input fails its check too. The request asks for a base64
GeoTIFF (``out_data_format: b64_json``), so nothing is written on the server's side.

An answer is verified as a tensor is in tensor-to-tensor mode: status 200, then decoded (JSON and
base64, never pickle), then its GeoTIFF read with rasterio: width, height, CRS and transform equal to
the input's (:func:`~geopool.geotiff.georeferencing_problems`), one band of uint8, nodata 0, class
values only (:func:`~geopool.geotiff.answer_problems`). Any problem is a verification failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from geopool.errors import MalformedResponseError
from geopool.geotiff import RasterFacts, RasterSpec, io_request, judge_io_answer, raster_facts
from geopool.load.judge.verify import HTTP_ERROR, OK, VERIFY_FAILED
from geopool.load.scenario import Scenario
from geopool.server import describe_plugin

__all__ = ["IOPayloadItem", "build_io_pool", "input_spec", "io_summary", "verify_io_item", "verify_io_response"]

#: Inputs side by side: item k's origin is k tiles east of the first, so no two share a transform.
_TILE_STEP_M = 512 * 10.0
_DETAIL_CHARS = 300


@dataclasses.dataclass(frozen=True)
class IOPayloadItem:
    """One pool item: its request body, the GeoTIFF it names and that GeoTIFF's facts (what the answer
    must repeat)."""

    index: int
    body: bytes
    path: Path
    facts: RasterFacts


def input_spec(seed: int, index: int) -> RasterSpec:
    """Item ``index``'s raster: Sen1Floods11-like values from ``(seed, index)``, its own origin."""
    return RasterSpec(seed=seed * 1_000_003 + index, x0=500_000.0 + index * _TILE_STEP_M)


def build_io_pool(scenario: Scenario, model: str, input_dir: str | Path) -> list[IOPayloadItem]:
    """The scenario's pool: ``pool_size`` GeoTIFFs (one for ``payload = "seed"``) written into
    ``input_dir`` (created), each with its request body and facts."""
    folder = Path(input_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    count = 1 if scenario.payload == "seed" else scenario.pool_size
    items = []
    for index in range(count):
        path = _write_once(input_spec(scenario.seed, index), folder / f"geopool-load-{scenario.seed}-{index}.tif")
        body = json.dumps(io_request(model, str(path), data_format="path", out_data_format="b64_json")).encode()
        items.append(IOPayloadItem(index, body, path, raster_facts(path)))
    return items


def io_summary(scenario: Scenario, input_dir: str | None, plugin: str | None) -> dict[str, Any]:
    """summary.json's ``io``: the plugin (``plugin``: the embedded server's choice; None: a server at a
    URL, whose plugin geopool cannot name), the input folder and what the GeoTIFFs are."""
    spec = input_spec(scenario.seed, 0)
    return {"plugin": describe_plugin(plugin) if plugin else None, "plugin_choice": plugin, "input_dir": input_dir,
            "inputs": 1 if scenario.payload == "seed" else scenario.pool_size, "data_format": "path",
            "out_data_format": "b64_json",
            "raster": f"{spec.width}x{spec.height}, {spec.bands} bands of {spec.dtype}, {spec.crs}"}


def _write_once(spec: RasterSpec, path: Path) -> Path:
    """Write ``spec`` to ``path`` through a private name and an atomic rename: the processes of a
    distributed run write the same bytes to the same path, and the server never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    spec.write(partial)
    os.replace(partial, path)
    return path


def verify_io_response(status: int, body: bytes, source: RasterFacts) -> tuple[str, str]:
    """``(verdict, detail)`` for one image-to-image answer to the input whose facts are ``source``;
    detail is empty when the verdict is OK."""
    if status != 200:
        return HTTP_ERROR, f"HTTP {status}: {bytes(body[:200]).decode('utf-8', 'replace')}"
    try:
        parsed = _json(body)
    except MalformedResponseError as exc:
        return VERIFY_FAILED, f"malformed: {exc}"[:_DETAIL_CHARS]
    facts, georeferencing, form = judge_io_answer(parsed, source)
    problems = georeferencing if facts is None else georeferencing + form
    if problems:
        return VERIFY_FAILED, "; ".join(problems)[:_DETAIL_CHARS]
    return OK, ""


def verify_io_item(status: int, body: bytes, item: IOPayloadItem, metadata: str | None = None) -> tuple[str, str]:
    """:func:`verify_io_response` against ``item``'s input, as a :class:`~geopool.load.run.worker.Worker` calls
    its check (``metadata``: a tensor-to-tensor header, unused here)."""
    return verify_io_response(status, body, item.facts)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise MalformedResponseError(f"the answer is not JSON: {exc}") from exc
