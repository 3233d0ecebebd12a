"""The numeric oracle without a server: the served-vs-offline criterion, golden answers, the faults that
bend every answer alike, and strict loading of the reference checkpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil

import numpy as np
import pytest

from geopool.errors import CheckpointError
from geopool.faults import Exchange, parse_fault
from geopool.fixture_models import DEFAULT_MODEL, FIXTURES_DIR
from geopool.golden import GOLDEN_CRITERIA, SAMPLES, GoldenAnswer, load_golden, make_golden
from geopool.numerics import CRITERIA, compare_to_reference, difference_figures

RNG = np.random.default_rng(7)
#: A smooth two-class answer of the fixture's magnitude (rms ~0.1), as the upsampling decoder gives.
ANSWER = (0.1 + 0.05 * np.sin(np.linspace(0, 6, 64))[None, None, :, None]
          * np.cos(np.linspace(0, 4, 64))[None, None, None, :] * np.array([1.0, -1.0])[None, :, None, None]
          ).astype(np.float32)


def test_an_answer_equal_to_its_reference_passes_with_zero_error():
    comparison = compare_to_reference(ANSWER.copy(), ANSWER, "float32")
    assert comparison.passed and comparison.figures.relative_error == 0.0 and comparison.figures.agreement == 1.0


@pytest.mark.parametrize("factor", [1.005, 1.0002, 0.9995])
def test_a_scaled_answer_has_the_scaling_as_relative_error_and_fails_in_float32(factor):
    comparison = compare_to_reference(ANSWER * np.float32(factor), ANSWER, "float32")
    assert comparison.figures.relative_error == pytest.approx(abs(factor - 1), rel=1e-3)
    assert not comparison.passed and comparison.failures == ["relative_error"]
    assert "outside the float32 same-kernels bounds (relative_error)" in comparison.describe()


def test_deterministic_noise_of_5e_4_fails_and_its_figure_is_sigma_over_rms():
    noise = RNG.normal(0, 5e-4, ANSWER.shape)
    comparison = compare_to_reference(ANSWER + noise, ANSWER, "float32")
    rms = float(np.sqrt(np.mean(ANSWER.astype(np.float64) ** 2)))
    assert comparison.figures.relative_error == pytest.approx(5e-4 / rms, rel=0.05)
    assert not comparison.passed


def test_swapped_classes_fail_on_agreement_too():
    comparison = compare_to_reference(ANSWER[:, ::-1], ANSWER, "float32")
    assert comparison.figures.agreement < 0.5 and set(comparison.failures) == {"relative_error", "agreement"}


def test_half_precision_bounds_are_looser_but_still_bounded():
    scaled = ANSWER * np.float32(1.005)
    assert CRITERIA["float16"].max_relative_error > CRITERIA["float32"].max_relative_error
    assert not compare_to_reference(ANSWER * np.float32(1.2), ANSWER, "bfloat16").passed
    assert compare_to_reference(scaled, ANSWER, "float32").figures == compare_to_reference(
        scaled, ANSWER, "float16").figures  # the figures do not depend on the dtype; the bounds do


def test_non_finite_values_count_only_where_the_reference_has_them():
    reference = ANSWER.copy()
    reference[0, 0, 0, 0] = np.nan
    assert compare_to_reference(reference.copy(), reference, "float32").passed
    served = ANSWER.copy()
    served[0, 1, 2, 3] = np.inf
    figures = difference_figures(served, ANSWER)
    assert math.isinf(figures.relative_error) and not compare_to_reference(served, ANSWER, "float32").passed


def test_another_shape_is_an_infinite_error():
    assert math.isinf(difference_figures(ANSWER[..., :32], ANSWER).relative_error)


def test_evidence_carries_every_figure_and_bound():
    evidence = compare_to_reference(ANSWER * np.float32(1.01), ANSWER, "float32").evidence()
    assert evidence["relative_error"] == pytest.approx(0.01, rel=1e-3)
    assert evidence["max_relative_error"] == CRITERIA["float32"].max_relative_error
    assert {"agreement", "min_agreement", "max_abs_diff", "dtype"} <= set(evidence)


# ------------------------------------------------------------------------------------ golden answers


def golden_of(answer: np.ndarray, dtype: str = "float32") -> GoldenAnswer:
    path_content = make_golden("m", dtype, answer, b"{}")
    return GoldenAnswer("m", dtype, tuple(path_content["output_shape"]), np.asarray(path_content["positions"]),
                        np.asarray(path_content["values"]), np.asarray(path_content["class_mean"]),
                        np.asarray(path_content["class_std"]), path_content["rms"], path_content["source"])


def big_answer() -> np.ndarray:
    grid = np.linspace(0, 8, 96)
    first = 0.15 + 0.05 * np.sin(grid)[:, None] * np.cos(grid)[None, :]
    return np.stack([first, 0.1 + 0.02 * np.cos(2 * grid)[:, None] + 0 * grid[None, :]])[None].astype(np.float32)


def test_golden_samples_avoid_pixels_whose_class_a_small_change_could_flip():
    answer = big_answer()
    content = make_golden("m", "float32", answer, b"{}")
    positions = np.asarray(content["positions"])
    assert len(positions) == SAMPLES == len(set(map(tuple, positions.tolist())))
    margins = np.abs(answer[0, 0] - answer[0, 1])[positions[:, 0], positions[:, 1]]
    assert margins.min() >= content["source"]["min_margin"] > 0


def test_golden_check_passes_its_own_answer_and_fails_a_scaled_or_shifted_one():
    answer = big_answer()
    golden = golden_of(answer)
    assert golden.check(answer).passed
    bound = GOLDEN_CRITERIA["float32"].max_relative_error
    scaled = golden.check(answer * np.float32(1 + 2 * bound))
    assert not scaled.passed and "does not match the golden answer" in scaled.describe()
    assert scaled.std_ratio_error == pytest.approx(2 * bound, rel=1e-3)
    assert not golden.check(answer + np.float32(0.05)).passed  # a bias moves every class mean
    assert not golden.check(answer[:, ::-1]).passed


def test_the_fixture_golden_file_is_complete_and_loads():
    golden = load_golden(DEFAULT_MODEL, "float32")
    assert golden is not None and golden.output_shape == (1, 2, 512, 512)
    assert golden.values.shape == (2, SAMPLES) and golden.positions.shape == (SAMPLES, 2)
    assert (golden.positions >= 0).all() and (golden.positions < 512).all()
    assert golden.source["weights_seed"] == 0 and len(golden.source["offline_sha256"]) == 64
    assert load_golden("not-a-fixture", "float32") is None
    assert load_golden(DEFAULT_MODEL, "bfloat16") is None  # no golden file for that dtype (yet)


# -------------------------------------------------------------------------------------------- faults


def exchange_of(values: np.ndarray, request: dict | None = None) -> Exchange:
    encoded = base64.b64encode(values.astype("<f4").tobytes()).decode()
    body = {"data": [{"index": 0, "object": "pooling", "data": encoded}]}
    return Exchange("POST", "/pooling", b"{}", {"encoding_format": "base64", **(request or {})}, 200,
                    {"content-type": "application/json"}, json.dumps(body).encode())


def edited(spec: str, values: np.ndarray, request: dict | None = None) -> np.ndarray:
    exchange = exchange_of(values, request)
    asyncio.run(parse_fault(spec).response(exchange))
    return np.frombuffer(base64.b64decode(json.loads(exchange.body)["data"][0]["data"]), "<f4")


def test_scale_multiplies_every_value():
    values = RNG.normal(0, 1, 100).astype(np.float32)
    np.testing.assert_allclose(edited("scale:1.005", values), values * 1.005, rtol=1e-6)


def test_fixed_noise_is_the_same_for_every_answer_and_request_and_has_its_sigma():
    first = RNG.normal(0, 1, 20000).astype(np.float32)
    second = RNG.normal(0, 1, 20000).astype(np.float32)
    noise_first = edited("fixed-noise:0.0005", first) - first
    noise_second = edited("fixed-noise:0.0005", second, {"model": "other", "encoding_format": "base64"}) - second
    np.testing.assert_allclose(noise_first, noise_second, atol=1e-6)  # float32 rounding of the sums only
    assert np.std(noise_first) == pytest.approx(5e-4, rel=0.05)
    again = parse_fault("fixed-noise:0.0005")  # a new proxy run: the same noise again
    exchange = exchange_of(first)
    asyncio.run(again.response(exchange))
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(json.loads(exchange.body)["data"][0]["data"]),
                                                "<f4") - first, noise_first)


def test_numeric_faults_reject_a_non_numeric_parameter():
    from geopool.errors import FaultSpecError

    for spec in ("scale:big", "fixed-noise:loud"):
        with pytest.raises(FaultSpecError, match="is not a number"):
            parse_fault(spec)


# ------------------------------------------------------------------------------- strict checkpoints


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory):
    """The tiny fixture's config with a checkpoint of freshly built (random) weights: no cache needed."""
    import torch
    from terratorch.vllm import utils
    folder = tmp_path_factory.mktemp("reference")
    shutil.copy(FIXTURES_DIR / DEFAULT_MODEL / "config.json", folder / "config.json")
    config = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    state = utils.InferenceRunner(config).state_dict()
    torch.save({"state_dict": state}, folder / "model.pt")
    return folder, state


def save_variant(folder, state: dict, tmp_path):
    import torch

    variant = tmp_path / "variant"
    variant.mkdir()
    shutil.copy(folder / "config.json", variant / "config.json")
    torch.save({"state_dict": state}, variant / "model.pt")
    return variant


def test_a_complete_checkpoint_loads_and_answers_in_the_asked_dtype(reference_folder):
    from geopool.reference import ReferenceModel

    folder, _ = reference_folder
    model = ReferenceModel(folder, "float32")
    assert str(next(model.runner.parameters()).dtype) == "torch.float32"


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_a_checkpoint_missing_or_adding_a_weight_is_a_checkpoint_error(reference_folder, tmp_path, change):
    import torch

    from geopool.reference import ReferenceModel

    folder, state = reference_folder
    state = dict(state)
    if change == "missing":
        state.pop(sorted(state)[-1])
    else:
        state["model.extra_layer.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=f"{change} \\['model\\."):
        ReferenceModel(save_variant(folder, state, tmp_path), "float32")


def test_an_unknown_reference_dtype_is_a_clear_error(reference_folder):
    from geopool.reference import ReferenceModel

    with pytest.raises(CheckpointError, match="float64"):
        ReferenceModel(reference_folder[0], "float64")


def test_a_server_at_a_url_gets_the_other_kernel_bounds_unless_told():
    from geopool.numerics import OTHER_KERNEL_CRITERIA, bounds_for

    assert bounds_for("auto", embedded=True) == "same-kernels"
    assert bounds_for(None, embedded=False) == "other-kernels"
    assert bounds_for("same-kernels", embedded=False) == "same-kernels"
    with pytest.raises(ValueError, match="--numeric-bounds 'gpu'"):
        bounds_for("gpu", embedded=False)
    # other kernels (a GPU) move a random-weight model's answer by up to 8.7e-3: a 1 % scaling is within
    # their bounds, and the verdict says which bounds judged it
    scaled = ANSWER * np.float32(1.01)
    lenient = compare_to_reference(scaled, ANSWER, "float32", "other-kernels")
    assert lenient.passed and "other-kernels" in lenient.describe()
    assert not compare_to_reference(scaled, ANSWER, "float32", "same-kernels").passed
    for dtype, criterion in OTHER_KERNEL_CRITERIA.items():
        assert criterion.max_relative_error >= CRITERIA[dtype].max_relative_error
        assert criterion.min_agreement <= CRITERIA[dtype].min_agreement
