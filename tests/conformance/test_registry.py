"""The registry and the suite agree: every requirement has a test, every named requirement exists."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geopool.conformance.registry import EXPECTATIONS_DIR, REGISTRY_PATH, SUITE_DIR, load_expectations, load_registry
from geopool.errors import RegistryError

REPO = SUITE_DIR.parent


@pytest.fixture(scope="module")
def requirement_map(tmp_path_factory) -> dict[str, list[str]]:
    path = tmp_path_factory.mktemp("map") / "map.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             str(SUITE_DIR), "--requirements-map", str(path)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(path.read_text())


def test_every_requirement_has_a_test(requirement_map):
    registry = load_registry()
    assert set(requirement_map) == set(registry)
    untested = sorted(rid for rid, tests in requirement_map.items() if not tests)
    assert untested == [], f"requirements with no test: {untested}"


def test_registry_covers_every_family_with_several_requirements():
    families = {}
    for rid in load_registry():
        families.setdefault(rid.rsplit("-", 1)[0], []).append(rid)
    for family in ("POOL-ENV", "POOL-ENC", "POOL-SHAPE", "POOL-DTYPE", "POOL-NUM", "POOL-DET", "POOL-EP"):
        assert len(families.get(family, [])) >= 2, family


def test_a_test_naming_an_unknown_requirement_is_a_usage_error(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.requirement('POOL-NOPE-999')\ndef test_x():\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "geopool.pytest_plugin",
                             "-p", "geopool.conformance.plugin", str(suite)],
                            capture_output=True, text=True, cwd=suite, timeout=120)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "POOL-NOPE-999" in result.stderr and "requirements.toml" in result.stderr


def test_expectations_for_vllm_0_32_name_known_requirements_with_reasons():
    expectations = load_expectations("0.32.0", registry=load_registry())
    assert expectations.source and expectations.source.endswith("vllm-0.32.toml")
    assert expectations.reasons and all(len(reason) > 20 for reason in expectations.reasons.values())
    assert load_expectations("99.0.0").reasons == {}


@pytest.mark.parametrize("text, message", [
    ('[[requirement]]\nid = "POOL-X-001"\nlevel = "MAY"\nstatement = "s"\nsource = "s"\n', "level must be"),
    ('[[requirement]]\nid = "bad"\nlevel = "MUST"\nstatement = "s"\nsource = "s"\n', "id must look like"),
    ('[[requirement]]\nid = "POOL-X-001"\nlevel = "MUST"\nsource = "s"\n', "'statement'"),
    ('[[requirement]]\nid = "POOL-X-001"\nlevel = "MUST"\nstatement = "s"\nsource = "s"\n' * 2, "appears twice"),
    ("[[requirement]\n", "not valid TOML"),
])
def test_malformed_registries_name_the_problem(tmp_path, text, message):
    path = tmp_path / "requirements.toml"
    path.write_text(text)
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


def test_expectation_for_an_unknown_requirement_is_rejected(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('versions = ["1"]\n[[expected-fail]]\nid = "POOL-NOPE-001"\nreason = "because"\n')
    with pytest.raises(RegistryError, match="unknown requirement"):
        load_expectations("1", path=path, registry=load_registry())


def test_shipped_files_exist():
    assert REGISTRY_PATH.is_file() and any(EXPECTATIONS_DIR.glob("*.toml"))


def test_every_image_to_image_requirement_has_a_test_and_the_tensor_tests_are_deselected(tmp_path):
    path = tmp_path / "io-map.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             str(SUITE_DIR), "--mode", "image-to-image", "--requirements-map", str(path)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(path.read_text())
    assert set(found) == set(load_registry(mode="image-to-image")) and all(found.values()), found
    assert all(test.split("::")[0].rsplit("/", 1)[-1].startswith(("test_io_", "test_mode_mismatch"))
               for tests in found.values() for test in tests)
    assert "deselected" in result.stdout


def test_requirements_are_split_by_mode():
    tensor, image, every = load_registry(), load_registry(mode="image-to-image"), load_registry(mode=None)
    assert set(tensor) | set(image) == set(every) and not set(tensor) & set(image)
    assert "POOL-IO-014" in tensor  # a plugin request to a tensor server is checked in tensor runs
    assert {"POOL-IO-001", "POOL-IO-023"} <= set(image) and "POOL-ENV-001" not in image


@pytest.mark.parametrize(("plugin", "terratorch", "file"), [
    ("geopool", "1.2.10", "io-geopool-terratorch-1.2.toml"), ("stock", "1.2.10", "io-stock-terratorch-1.2.10.toml"),
    ("loopfix", "1.2.10", "io-loopfix-terratorch-1.2.toml")])
def test_image_to_image_expectations_are_chosen_by_plugin_and_terratorch_version(plugin, terratorch, file):
    found = load_expectations("0.32.0", registry=load_registry(mode=None), mode="image-to-image", plugin=plugin,
                              terratorch_version=terratorch)
    assert found.source and found.source.endswith(file) and found.warning is None, found.line
    assert all(entry.id.startswith("POOL-IO-") for entry in found.entries)


@pytest.mark.parametrize(("plugin", "terratorch", "why"), [
    ("stock", "1.2.13", "no image-to-image file covers them"),
    # never seen: the stock plugin's file is for 1.2.10 only
    ("stock", "1.2.11", "no image-to-image file covers them"),
    ("stock", "1.2.12", "no image-to-image file covers them"),
    ("geopool", None, "TerraTorch version is unknown"),
    ("geopool", "garbage", "TerraTorch version is unknown")])
def test_an_uncovered_plugin_or_unknown_terratorch_gets_no_expectations_and_a_warning(plugin, terratorch, why):
    found = load_expectations("0.32.0", mode="image-to-image", plugin=plugin, terratorch_version=terratorch)
    assert found.entries == () and found.warning and why in found.warning


def test_tensor_runs_never_get_an_image_to_image_file():
    assert load_expectations("0.32.0").source.endswith("vllm-0.32.toml")
