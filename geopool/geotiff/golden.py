"""Golden class maps: what the image-to-image fixture model answers to a fixed set of rasters, kept as numbers,
so a client with no torch and no weights can still check a served class map pixel by pixel (conformance
POOL-IO-011, cases ``golden-…``) whenever the fixture is served under its own name.

The fixture's weights come from a fixed seed (:mod:`geopool.fixture_models`) and the rasters from
:class:`~geopool.geotiff.RasterSpec` seeds, so TerraTorch's offline inference of each raster is fixed too.
``fixtures/models/prithvi-tiny-tl-seg/golden-io.json`` keeps, per raster, :data:`SAMPLES` pixel positions drawn
with a fixed seed, and per server dtype the answer's band 1 (class × 255) there and the share of each value over
the whole map.

A served map is judged by the share of sampled pixels whose value differs, held to :data:`MISMATCH_BOUND`.
Measured when the file was made (``python -m geopool.geotiff.golden``): the float16 and float32 offline maps
differ on 0.016 % of the pixels; the embedded server's maps equal the offline ones. The bound, 2 % (the
other-kernels bound of the torch check, for a GPU's near-tie pixels), is far from what a wrong map gives:
north-south flipped 45 %, east-west flipped 48 %, classes swapped 100 % (measured on these rasters).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from geopool.fixture_models import FIXTURES_DIR
from geopool.geotiff.raster import RasterSpec

__all__ = ["GOLDEN_RASTERS", "IO_FIXTURE", "MISMATCH_BOUND", "SAMPLES", "GoldenMap", "golden_io_path",
           "load_golden_maps"]

#: The fixture model whose answers are kept.
IO_FIXTURE = "prithvi-tiny-tl-seg"
#: The rasters, by case name: one that fits the model's crop, one that needs padding and several tiles.
GOLDEN_RASTERS: dict[str, RasterSpec] = {
    "512x512": RasterSpec(height=512, width=512, seed=7),
    "300x700-padded": RasterSpec(height=300, width=700, seed=7),
}
SAMPLES = 1024
MISMATCH_BOUND = 0.02
_POSITION_SEED = 17


def golden_io_path() -> Path:
    return FIXTURES_DIR / IO_FIXTURE / "golden-io.json"


@dataclasses.dataclass(frozen=True)
class GoldenMap:
    """The golden answer to one raster on a server of one dtype."""

    case: str
    spec: RasterSpec
    positions: np.ndarray  # (SAMPLES, 2): row, column
    values: np.ndarray  # (SAMPLES,) band-1 values there
    shares: dict[int, float]  # band-1 value -> share of the whole map

    def mismatch(self, served: np.ndarray) -> float:
        """The share of sampled pixels whose value differs in ``served`` (1.0 when its size is not the raster's)."""
        if served.shape != (self.spec.height, self.spec.width):
            return 1.0
        return float(np.mean(served[self.positions[:, 0], self.positions[:, 1]] != self.values))

    def describe(self, share: float) -> str:
        """The verdict line for a served map whose :meth:`mismatch` is ``share``."""
        verdict = "matches" if share <= MISMATCH_BOUND else "does not match"
        return (f"{verdict} the golden class map of {IO_FIXTURE} ({self.case}): {share:.2%} of {len(self.values)} "
                f"sampled pixels differ (bound {MISMATCH_BOUND:.0%})")


def load_golden_maps(model: str, dtype: str) -> dict[str, GoldenMap] | None:
    """The golden maps of ``model`` on a ``dtype`` server, by case; None when there are none (another model)."""
    if model != IO_FIXTURE or not golden_io_path().is_file():
        return None
    content = json.loads(golden_io_path().read_text())
    kept = content["answers"].get(dtype)
    if kept is None:
        return None
    return {case: GoldenMap(case, GOLDEN_RASTERS[case], np.asarray(content["positions"][case], np.int64),
                            np.asarray(entry["values"], np.int64),
                            {int(value): share for value, share in entry["shares"].items()})
            for case, entry in kept.items()}


def sample_positions(spec: RasterSpec) -> np.ndarray:
    """:data:`SAMPLES` distinct (row, column) positions of ``spec``'s raster, drawn with a fixed seed."""
    flat = np.random.default_rng(_POSITION_SEED).choice(spec.height * spec.width, SAMPLES, replace=False)
    return np.stack(np.unravel_index(np.sort(flat), (spec.height, spec.width)), axis=1)


def make_entry(class_map: np.ndarray, positions: np.ndarray) -> dict[str, Any]:
    """A golden entry from an offline class map (band 1 of the answer, ``(H, W)``) at ``positions``."""
    values, counts = np.unique(class_map, return_counts=True)
    return {"values": [int(v) for v in class_map[positions[:, 0], positions[:, 1]]],
            "shares": {str(int(v)): float(c) / class_map.size for v, c in zip(values, counts, strict=True)}}


def _write(dtypes: tuple[str, ...] = ("float32", "float16")) -> Path:
    """Run TerraTorch's offline inference of every golden raster on the fixture; write the golden file."""
    import tempfile

    from geopool.fixture_models import prepare_model
    from geopool.geotiff.reference import offline_class_map

    folder = prepare_model(IO_FIXTURE)
    answers: dict[str, dict[str, Any]] = {}
    positions = {case: sample_positions(spec) for case, spec in GOLDEN_RASTERS.items()}
    with tempfile.TemporaryDirectory() as scratch:
        for case, spec in GOLDEN_RASTERS.items():
            path = spec.write(Path(scratch) / f"{case}.tif")
            for dtype in dtypes:
                class_map = offline_class_map(path, folder, dtype=dtype)
                answers.setdefault(dtype, {})[case] = make_entry(class_map, positions[case])
    content = {"model": IO_FIXTURE,
               "source": {"generated_by": "python -m geopool.geotiff.golden",
                          "rasters": {case: dataclasses.asdict(spec) for case, spec in GOLDEN_RASTERS.items()},
                          "oracle": "TerraTorch's segmentation plugin pipeline, offline (geopool.geotiff.reference)"},
               "positions": {case: found.tolist() for case, found in positions.items()},
               "answers": answers}
    golden_io_path().write_text(json.dumps(content, separators=(",", ":")) + "\n")
    return golden_io_path()


if __name__ == "__main__":
    if len(sys.argv) != 1:
        sys.exit("usage: python -m geopool.geotiff.golden  (writes the golden class maps of " + IO_FIXTURE + ")")
    print(_write())
