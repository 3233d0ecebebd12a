"""The image-to-image golden class maps (geopool/geotiff/golden.py): the kept file matches its rasters, and the
judgement is a share of sampled pixels against the bound. The served maps are judged live in the image-to-image
suite (tests/conformance/test_io_suite_live.py)."""

from __future__ import annotations

import numpy as np
import pytest

from geopool.geotiff import golden


def test_the_file_keeps_both_dtypes_and_every_raster_at_the_drawn_positions():
    for dtype in ("float32", "float16"):
        maps = golden.load_golden_maps(golden.IO_FIXTURE, dtype)
        assert maps is not None and set(maps) == set(golden.GOLDEN_RASTERS)
        for case, kept in maps.items():
            assert np.array_equal(kept.positions, golden.sample_positions(golden.GOLDEN_RASTERS[case]))
            assert len(kept.values) == golden.SAMPLES and set(kept.values) <= {0, 255}
            # both classes are well represented, so a swap or a flip cannot go unseen
            assert min(kept.shares.values()) > 0.3 and abs(sum(kept.shares.values()) - 1) < 1e-9


def test_other_models_and_dtypes_have_none():
    assert golden.load_golden_maps("prithvi-tiny-tl", "float32") is None
    assert golden.load_golden_maps(golden.IO_FIXTURE, "bfloat16") is None


def _kept() -> golden.GoldenMap:
    return golden.load_golden_maps(golden.IO_FIXTURE, "float32")["512x512"]


def _map_with(kept: golden.GoldenMap, values: np.ndarray) -> np.ndarray:
    served = np.zeros((kept.spec.height, kept.spec.width), np.uint8)
    served[kept.positions[:, 0], kept.positions[:, 1]] = values
    return served


@pytest.mark.parametrize(("changed", "passes"), [(0, True), (20, True), (21, False), (golden.SAMPLES, False)])
def test_the_share_of_differing_samples_is_held_to_the_bound(changed, passes):
    kept = _kept()
    values = kept.values.copy()
    values[:changed] = 255 - values[:changed]
    served = _map_with(kept, values)
    assert kept.mismatch(served) == pytest.approx(changed / golden.SAMPLES)
    assert (kept.mismatch(served) <= golden.MISMATCH_BOUND) is passes
    assert kept.describe(kept.mismatch(served)).startswith("matches" if passes else "does not match")


def test_a_map_of_another_size_does_not_match():
    assert _kept().mismatch(np.zeros((512, 511), np.uint8)) == 1.0
