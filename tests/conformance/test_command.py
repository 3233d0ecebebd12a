"""``geopool conformance``: the pytest command line it builds, and one real run against a dead URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from geopool.cli import main
from geopool.conformance import command
from geopool.resources import suite_dir
from geopool.server import free_port

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ran(monkeypatch) -> list[list[str]]:
    """The argv each run_pytest call got; pytest itself does not run."""
    calls: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        calls.append(argv)
        return 3

    monkeypatch.setattr(command, "run_pytest", fake)
    monkeypatch.setattr(command, "plugin_args", lambda: ["-p", "geopool.conformance.plugin"])
    return calls


def test_every_argument_goes_to_pytest_after_the_suite_and_the_plugin_flags(ran):
    args = ["--base-url", "http://gpu-box:8000", "--model", "m", "-k", "envelope and not slow", "-x",
            "--conformance-report", "out/r.json", "--hypothesis-profile=fast", "tests_extra.py::test_one"]
    result = CliRunner().invoke(main, ["conformance", *args])
    assert result.exit_code == 3, result.output  # pytest's exit code
    assert ran == [[str(suite_dir()), "-p", "geopool.conformance.plugin", *args]]


def test_no_argument_runs_the_whole_suite_against_the_embedded_server(ran):
    result = CliRunner().invoke(main, ["conformance"])
    assert result.exit_code == 3 and ran == [[str(suite_dir()), "-p", "geopool.conformance.plugin"]]


def test_help_shows_the_command_then_goes_to_pytest(ran):
    result = CliRunner().invoke(main, ["conformance", "--help"])
    assert "Run the conformance suite" in result.output and "pytest's help" in result.output
    assert ran == [[str(suite_dir()), "-p", "geopool.conformance.plugin", "--help"]]


@pytest.mark.parametrize(("environ", "installed", "expected"), [
    pytest.param({}, set(command.PLUGINS), [], id="entry-points-autoloaded"),
    pytest.param({}, {"base_url"}, ["-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin"],
                 id="checkout-without-entry-points"),
    pytest.param({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, set(command.PLUGINS),
                 ["-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin"], id="autoload-disabled"),
])
def test_plugin_flags_only_where_pytest_would_not_autoload_the_plugins(monkeypatch, environ, installed, expected):
    from types import SimpleNamespace

    monkeypatch.setattr(command.importlib.metadata, "entry_points",
                        lambda group: [SimpleNamespace(name=name) for name in sorted(installed)])
    assert command.plugin_args(environ) == expected


def test_an_unreachable_base_url_exits_4_with_one_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    for name in ("PYTEST_BASE_URL", "GEOPOOL_API_KEY", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "geopool.cli", "conformance", "--base-url", url,
                             "--input-dtype", "float32", "--conformance-report", str(tmp_path / "r.json"),
                             "-p", "no:cacheprovider"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 12, output[-3000:]
    assert output.count("is not reachable") == 1 and url in output, output[-3000:]
    assert " passed" not in output and " failed" not in output and "Traceback" not in output
