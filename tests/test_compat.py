"""geopool compat: known TerraTorch changes against a model config, and a real build with the installed one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geopool import exitcodes
from geopool.compat import config_problems, load_config
from geopool.errors import ContractError, InvalidArgument

GEOPOOL = [sys.executable, "-m", "geopool.cli", "compat"]


def rules(found) -> list[tuple[str, str]]:
    return [(problem.rule, problem.severity) for problem in found]


def test_decoder_scale_modules_is_incompatible_from_1_2_13_and_deprecated_before():
    config = load_config("prithvi-tiny-tl")  # as the real Sen1Floods11 config: UperNet with scale modules
    assert rules(config_problems(config, "1.2.13")) == [("upernet-scale-modules", "incompatible")]
    assert rules(config_problems(config, "1.3.0")) == [("upernet-scale-modules", "incompatible")]
    assert rules(config_problems(config, "1.2.10")) == [("upernet-scale-modules-deprecated", "deprecated")]


def test_the_image_to_image_fixture_builds_on_both_and_has_what_the_plugin_needs():
    config = load_config("prithvi-tiny-tl-seg")
    assert config_problems(config, "1.2.13", "image-to-image") == []
    assert config_problems(config, "1.2.10", "image-to-image") == []


def test_image_to_image_needs_a_datamodule_and_a_test_transform_with_full_class_paths():
    config = load_config("prithvi-tiny-tl-seg")
    assert ("io-plugin-datamodule", "incompatible") in rules(config_problems(load_config("prithvi-tiny-tl"), "1.2.10",
                                                                             "image-to-image"))
    config["pretrained_cfg"]["data"]["init_args"]["test_transform"] = [{"class_path": "ToTensorV2"}]
    assert rules(config_problems(config, "1.2.10", "image-to-image")) == [("io-plugin-test-transform",
                                                                           "incompatible")]
    del config["pretrained_cfg"]["data"]["init_args"]["test_transform"]
    assert rules(config_problems(config, "1.2.10", "image-to-image")) == [("io-plugin-test-transform",
                                                                           "incompatible")]
    assert config_problems(config, "1.2.10") == []  # tensor-to-tensor needs neither


def test_bad_input_is_named(tmp_path):
    with pytest.raises(InvalidArgument, match=r"1\.2\.13"):
        config_problems({}, "one-two")
    (tmp_path / "plain.json").write_text('{"architectures": ["Terratorch"]}')
    with pytest.raises(ContractError, match="not a TerraTorch vLLM config"):
        load_config(tmp_path / "plain.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ContractError, match="not a readable JSON config"):
        load_config(tmp_path / "broken.json")
    with pytest.raises(InvalidArgument, match="neither a folder"):
        load_config(tmp_path / "missing.json")


def test_a_config_the_installed_terratorch_cannot_build_fails_with_its_error(tmp_path):
    config = load_config("prithvi-tiny-tl-seg")
    config["pretrained_cfg"]["model"]["init_args"]["model_args"]["necks"].append({"name": "NoSuchNeck"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    # (geopool compat's build in a child process is build_problem's: one TerraTorch import, ~20 CPU-s, not two)
    result = subprocess.run([*GEOPOOL, "--model-config", str(path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == exitcodes.FAILED and "FAILED" in result.stdout and "INCOMPATIBLE" in result.stdout
    assert "NoSuchNeck" in result.stdout, result.stdout


def test_the_image_to_image_fixture_builds_with_the_installed_terratorch():
    result = subprocess.run([*GEOPOOL, "--model-config", "prithvi-tiny-tl-seg", "--mode", "image-to-image"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == exitcodes.OK, result.stdout + result.stderr
    assert ": ok" in result.stdout and "compatible with TerraTorch" in result.stdout


def test_usage_errors_are_one_line():
    result = subprocess.run([*GEOPOOL, "--terratorch-version", "abc"], capture_output=True, text=True, timeout=120)
    assert result.returncode == exitcodes.USAGE and result.stderr.startswith("error: ") and "Traceback" not in (
        result.stderr)
