"""Input dtype round trip and numerics, over Hypothesis-generated payloads (see geopool.strategies)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from geopool import wire
from geopool.conformance import recipes
from geopool.conformance.checks import array_diff
from geopool.conformance.support import body_for, decode, require, send
from geopool.golden import load_golden
from geopool.numerics import compare_to_reference
from geopool.strategies import payload_recipes, tensor_recipes

# Payload strategies depend on the target's contract (its input names), known only at run time, so the
# tests draw them with st.data(); Hypothesis prints each draw of a failing example.


@pytest.fixture(scope="session")
def reference(target):
    if target.reference_dir is None:
        pytest.skip("no reference weights: pass --reference-checkpoint DIR (config.json + .pt) for POOL-NUM-002")
    from geopool.reference import ReferenceModel  # torch and TerraTorch: imported only where they are used

    return ReferenceModel(target.reference_dir, target.contract.input_dtype)


@pytest.mark.requirement("POOL-DTYPE-001", "POOL-NUM-001")
@given(data=st.data())
def test_finite_inputs_in_the_server_dtype_give_finite_outputs(target, client, data):
    recipe = data.draw(payload_recipes(target.contract, formats=(wire.default_input_format(),)), label="payload")
    note(f"replay: {recipe!r}")
    response = send(client, body_for(target, recipe.arrays(target.contract), fmt=recipe.fmt), "POOL-DTYPE-001")
    output = decode(target, response, "POOL-NUM-001")
    bad = ~np.isfinite(output)
    require("POOL-NUM-001", not bad.any(), f"{int(bad.sum())} non-finite outputs for finite inputs",
            recipe=repr(recipe), first_position=[int(i) for i in np.argwhere(bad)[0]] if bad.any() else None,
            expect=recipes.finite())


@pytest.mark.requirement("POOL-DTYPE-002")
@pytest.mark.needs_torch
@given(recipe=tensor_recipes())
def test_npy_and_torch_save_inputs_agree(target, client, seed_arrays, recipe):
    if target.contract.input_dtype == "bfloat16":
        pytest.skip("a bfloat16 server cannot be sent .npy inputs (numpy has no bfloat16)")
    note(f"replay: {recipe!r}")
    contract = target.contract
    arrays = dict(seed_arrays, **{contract.target: recipe.build(contract.input_shape(contract.target),
                                                                  contract.input_dtype)})
    outputs = [decode(target, send(client, body_for(target, arrays, fmt=fmt), "POOL-DTYPE-002"), "POOL-DTYPE-002")
               for fmt in ("torch", "npy")]
    require("POOL-DTYPE-002", np.array_equal(*outputs, equal_nan=True),
            "the .npy answer differs from the torch.save answer: " + array_diff(outputs[1], outputs[0]),
            recipe=repr(recipe), expect=False)  # the torch.save twin of the request needs torch


@pytest.mark.requirement("POOL-NUM-002")
@pytest.mark.needs_torch  # the offline forward pass is TerraTorch's
@given(data=st.data())
def test_served_output_matches_the_offline_forward_pass(target, client, reference, data):
    recipe = data.draw(payload_recipes(target.contract), label="payload")
    note(f"replay: {recipe!r}")
    arrays = recipe.arrays(target.contract)
    served = decode(target, send(client, body_for(target, arrays, fmt=recipe.fmt), "POOL-NUM-002"), "POOL-NUM-002")
    offline = reference(arrays)
    comparison = compare_to_reference(served, offline, target.contract.input_dtype, target.kernels)
    require("POOL-NUM-002", comparison.passed, f"the served output is not the offline pass's: {comparison.describe()}",
            case="reference", recipe=repr(recipe), **comparison.evidence(),
            expect=_offline_figures(offline, comparison.criterion.max_relative_error))


def _offline_figures(offline: np.ndarray, bound: float) -> dict:
    """The offline answer's figures a reproducer compares with (it cannot run TerraTorch): per-class mean
    and std, and values at pixels spread over the image."""
    answer = np.asarray(offline, np.float64)[0]
    classes, height, width = answer.shape
    spread = np.linspace(0, height * width - 1, recipes.SAMPLES).astype(int)
    positions = np.stack(np.unravel_index(spread, (height, width)), axis=1)
    flat = answer.reshape(classes, -1)
    return recipes.figures("offline reference pass", positions, answer[:, positions[:, 0], positions[:, 1]],
                           flat.mean(axis=1), flat.std(axis=1), float(np.sqrt(np.mean(answer ** 2))), bound)


@pytest.mark.requirement("POOL-NUM-002")
def test_seed_answer_matches_the_golden_answer(target, client):
    """An absolute check that needs no torch: a target serving a fixture model under the fixture's name
    answers the seed input with the fixture's golden answer (geopool.golden)."""
    golden = load_golden(target.model, target.contract.input_dtype)
    if golden is None:
        pytest.skip(f"no golden answer: {target.model!r} is not a fixture model with a "
                    f"golden-{target.contract.input_dtype}.json (geopool.golden)")
    if golden.output_shape != target.contract.output_shape:
        pytest.skip(f"the contract's output {target.contract.output_shape} is not the golden answer's "
                    f"{golden.output_shape}: another model under a fixture's name")
    body = body_for(target, wire.seed_inputs(target.contract))
    served = decode(target, send(client, body, "POOL-NUM-002"), "POOL-NUM-002")
    verdict = golden.check(served)
    require("POOL-NUM-002", verdict.passed, f"the seed answer is not {target.model}'s golden answer: "
            f"{verdict.describe()}", case="golden", **verdict.figures(),
            expect=recipes.figures(f"golden answer golden-{golden.dtype}.json", golden.positions, golden.values,
                                   golden.class_mean, golden.class_std, golden.rms,
                                   verdict.samples.criterion.max_relative_error))
