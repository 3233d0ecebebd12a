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
