"""The numeric oracle against the real embedded server (float32, prithvi-tiny-tl), directly and through the
fault proxy: the criterion POOL-NUM-002 and load's ``--verify reference`` share
(geopool.numerics.compare_to_reference) catches answers bent below the tolerance NUM-002 used before
(allclose, atol 5e-3 + rtol 1e-3), and the golden answer catches what a client with no torch can.

Inputs: the seed input and load pool item 0 (normal values around 0, coordinates in range).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geopool import wire
from geopool.client import PoolingClient
from geopool.golden import GOLDEN_CRITERIA, load_golden
from geopool.load.run.payloads import item_recipe
from geopool.numerics import CRITERIA, compare_to_reference
from geopool.proxy import FaultProxy

pytestmark = pytest.mark.live

#: The tolerance POOL-NUM-002 and load used before this oracle (numpy.allclose), for float32.
OLD_FLOAT32_TOLERANCE = {"atol": 5e-3, "rtol": 1e-3}
GEOPOOL = str(Path(sys.executable).with_name("geopool"))


@pytest.fixture(scope="module")
def oracle(embedded_server):
    """``(inputs, offline answers)`` by input name, from the reference pass on the served weights."""
    from geopool.reference import ReferenceModel

    contract = embedded_server.contract
    inputs = {"seed": wire.seed_inputs(contract), "load-item-0": item_recipe(contract, 0, 0).arrays(contract)}
    reference = ReferenceModel(embedded_server.served_dir, embedded_server.dtype)
    return inputs, {name: reference(arrays) for name, arrays in inputs.items()}


def answer(url: str, server, arrays: dict[str, np.ndarray]) -> np.ndarray:
    contract = server.contract
    with PoolingClient(url, timeout=300) as client:
        body = wire.request_body(server.model_name, arrays, dtype=contract.input_dtype)
        return wire.decode_json_response(client.pool(body).json(), contract.output_shape)


def test_unfaulted_answers_pass_with_a_wide_margin(embedded_server, oracle):
    inputs, offline = oracle
    bound = CRITERIA["float32"]
    for name, arrays in inputs.items():
        comparison = compare_to_reference(answer(embedded_server.url, embedded_server, arrays), offline[name],
                                          "float32")
        # measured worst 1.5e-6 over 30 inputs (geopool.numerics): a tenth of the bound is still 7x that
        assert comparison.figures.relative_error <= bound.max_relative_error / 10, (name, comparison.describe())
        assert comparison.figures.agreement >= 1 - (1 - bound.min_agreement) / 10, (name, comparison.describe())


@pytest.mark.parametrize("fault", ["scale:1.005", "fixed-noise:0.0005"])
def test_num002_criterion_catches_what_the_old_tolerance_let_through(embedded_server, oracle, fault):
    inputs, offline = oracle
    with FaultProxy(embedded_server.url, fault, max_seconds=300) as proxy:
        for name, arrays in inputs.items():
            served = answer(proxy.url, embedded_server, arrays)
            comparison = compare_to_reference(served, offline[name], "float32")
            # (the noise may also flip the class of a pixel whose two classes are within it of each other)
            assert "relative_error" in comparison.failures, (name, comparison.describe())
            assert comparison.figures.relative_error > 10 * CRITERIA["float32"].max_relative_error
            assert np.allclose(served, offline[name], **OLD_FLOAT32_TOLERANCE), name


@pytest.fixture(scope="module")
def other_model(embedded_server, tmp_path_factory):
    """The reference pass of *another* model: the same architecture (the served config) with other random
    weights (TerraTorch's own initialisation under torch seed 1, not the fixture's seed-0 weights)."""
    import torch
    from terratorch.vllm.utils import InferenceRunner

    from geopool.reference import ReferenceModel

    folder = tmp_path_factory.mktemp("other-model")
    config = (embedded_server.served_dir / "config.json").read_text()
    (folder / "config.json").write_text(config)
    torch.manual_seed(1)
    torch.save({"state_dict": InferenceRunner(json.loads(config)["pretrained_cfg"]).state_dict()}, folder / "model.pt")
    return ReferenceModel(folder, embedded_server.dtype)


def test_num002_criterion_catches_a_server_serving_another_model(embedded_server, oracle, other_model):
    """Stands for a server that serves another model than the one the user holds the weights of: the
    embedded server's answers (fixture weights, seed 0) judged against the reference pass of the same
    architecture with other weights (see ``other_model``), as NUM-002 judges them when
    --reference-checkpoint names the other checkpoint. Also the other model's seed answer against the
    served fixture's golden answer (case ``golden``)."""
    inputs, _ = oracle
    for name, arrays in inputs.items():
        comparison = compare_to_reference(answer(embedded_server.url, embedded_server, arrays), other_model(arrays),
                                          "float32")
        assert not comparison.passed and comparison.figures.relative_error > 0.05, (name, comparison.describe())
    golden = load_golden(embedded_server.model_name, "float32")
    assert golden is not None
    verdict = golden.check(other_model(inputs["seed"]))
    assert not verdict.passed, verdict.describe()


def test_golden_answer_passes_the_served_seed_answer_and_catches_scaling(embedded_server, oracle):
    inputs, _ = oracle
    golden = load_golden(embedded_server.model_name, "float32")
    assert golden is not None
    verdict = golden.check(answer(embedded_server.url, embedded_server, inputs["seed"]))
    bound = GOLDEN_CRITERIA["float32"].max_relative_error
    assert verdict.passed and max(verdict.samples.figures.relative_error, verdict.mean_shift,
                                  verdict.std_ratio_error) <= bound / 10, verdict.describe()
    with FaultProxy(embedded_server.url, "scale:1.02", max_seconds=300) as proxy:
        faulted = golden.check(answer(proxy.url, embedded_server, inputs["seed"]))
    assert not faulted.passed and faulted.std_ratio_error == pytest.approx(0.02, abs=1e-3), faulted.describe()


def test_load_verify_reference_catches_a_scaling_by_1_005(embedded_server, tmp_path):
    # One user and a pool of 2: vLLM 0.32 mixes up coordinates between batched requests (POOL-DET-003).
    (tmp_path / "slo.toml").write_text("[errors]\nmax_error_rate = 0.0\n")
    with FaultProxy(embedded_server.url, "scale:1.005", max_seconds=300) as proxy:
        result = subprocess.run(
            [GEOPOOL, "load", "--report-dir", str(tmp_path / "run"), "--base-url", proxy.url, "--input-dtype",
             "float32", "--scenario", "closed", "--users", "1", "--duration", "4", "--warmup", "0", "--pool-size",
             "2", "--verify", "reference", "--model-config", str(embedded_server.served_dir / "config.json"),
             "--reference-checkpoint", str(embedded_server.served_dir), "--numeric-bounds", "same-kernels",
             "--slo", str(tmp_path / "slo.toml")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.returncode == 10, result.stdout[-2000:] + result.stderr[-2000:]
    requests = summary["requests"]
    assert requests["verification_failures"] == requests["finished"] > 0 and requests["http_errors"] == 0
    records = (tmp_path / "run" / "records.jsonl").read_text()
    assert "relative L2 error 0.005" in records
    assert "outside the float32 same-kernels bounds (relative_error)" in records
