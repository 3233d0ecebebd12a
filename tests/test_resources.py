"""Shipped data: every data file is reachable through geopool.resources, and the wheel carries it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from setuptools import find_namespace_packages

from geopool import resources
from geopool.conformance import registry
from geopool.fixture_models import FIXTURES_DIR, fixture_names, resolve_model_dir
from geopool.load import scenario
from geopool.load.report import run_report
from geopool.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
#: Every data file in the source tree that geopool reads (globs, so a new file must be shipped too).
DATA_GLOBS = ["conformance/requirements.toml", "conformance/expectations/*.toml", "load/scenarios.toml",
              "load/slo/*.toml", "fixtures/models/*/config.json", "geopool/**/*.j2"]


def _source_data_files() -> set[Path]:
    return {path for pattern in DATA_GLOBS for path in REPO.glob(pattern)}


def _wheel_name(source: Path) -> str:
    """Where a source file lands in the wheel (``conformance/x`` → ``geopool_conformance/x``)."""
    relative = source.relative_to(REPO).as_posix()
    for package, folder in resources.DATA_PACKAGES.items():
        if relative.startswith(folder + "/"):
            return package + relative[len(folder):]
    return relative


def test_every_data_file_in_the_source_tree_is_reachable_through_resources():
    shipped = resources.shipped_files()
    assert all(path.is_file() for path in shipped)
    assert {path.resolve() for path in shipped} == _source_data_files()
    assert resources.registry_file() in shipped and resources.scenarios_file() in shipped
    assert resources.expectations_files() and resources.slo_examples() and len(resources.fixture_configs()) >= 2


def test_the_modules_that_read_data_take_their_paths_from_resources():
    assert registry.SUITE_DIR == resources.suite_dir() == REPO / "conformance"
    assert registry.REGISTRY_PATH == resources.registry_file()
    assert registry.EXPECTATIONS_DIR == resources.expectations_dir()
    assert FIXTURES_DIR == resources.fixture_models_dir()
    assert fixture_names() == [path.parent.name for path in resources.fixture_configs()]
    assert resolve_model_dir("prithvi-tiny-tl") == resources.fixture_models_dir() / "prithvi-tiny-tl"
    assert scenario.DEFAULT_SCENARIO_FILE == resources.scenarios_file()
    assert run_report.TEMPLATE == resources.report_template() and run_report.TEMPLATE in resources.templates()


def test_reports_go_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.reports_dir() == tmp_path / "reports"
    assert EmbeddedServer().log_dir == tmp_path / "reports"  # nothing starts in __init__
    assert EmbeddedServer(log_dir=tmp_path / "logs").log_dir == tmp_path / "logs"


def test_the_build_configuration_lists_every_package_and_maps_the_data_folders():
    # package-dir cannot rename what packages.find finds, so packages are listed by hand: a new
    # geopool subpackage (or data subfolder) that is not listed would be missing from the wheel.
    found = set(find_namespace_packages(str(REPO), include=["geopool", "geopool.*"], exclude=["*.__pycache__"]))
    missing = sorted(found - set(PYPROJECT["packages"]))
    assert missing == [], f"add to pyproject.toml's [tool.setuptools] packages: {missing}"
    assert PYPROJECT["package-dir"] == resources.DATA_PACKAGES
    for package, folder in resources.DATA_PACKAGES.items():
        subfolders = find_namespace_packages(str(REPO / folder), exclude=["*.__pycache__", "*-*"])
        assert {f"{package}.{name}" for name in subfolders} <= set(PYPROJECT["packages"]), package


def test_the_wheel_carries_every_data_file_module_and_conformance_test(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {_wheel_name(path) for path in _source_data_files()}
    expected |= {_wheel_name(path) for path in (REPO / "geopool").rglob("*.py")}
    expected |= {_wheel_name(path) for path in (REPO / "conformance").glob("*.py")}
    assert "geopool_conformance/conftest.py" in expected and "geopool_conformance/__init__.py" in expected
    assert expected - names == set()
    assert not any(name.startswith(("conformance/", "load/", "fixtures/", "reports/", "tests/")) for name in names)


def test_an_installed_wheel_reads_its_data_from_the_install(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    script = ("import json; from geopool import resources; from geopool.conformance.registry import load_registry; "
              "print(json.dumps({'files': [str(p) for p in resources.shipped_files()], "
              "'suite': str(resources.suite_dir()), 'reports': str(resources.reports_dir()), "
              "'requirements': len(load_registry())}))")
    # -I ignores PYTHONPATH and the current folder; the install is the only geopool on the path.
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {script}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["suite"] == str(target / "geopool_conformance")
    assert found["reports"] == str(tmp_path / "reports")
    assert len(found["files"]) == len(resources.shipped_files())
    assert all(Path(path).is_file() and Path(path).is_relative_to(target) for path in found["files"])
    assert found["requirements"] == len(registry.load_registry())
