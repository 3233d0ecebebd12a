"""The reusable GitHub Action (action.yml): its structure (a composite action with the two required inputs, every
run step in bash, the report uploaded whatever the gate's result, the outputs wired to the gate step), and its
gate step run for real by bash with a stand-in `geopool` on PATH that records its arguments: they parse as
`geopool gate` parses them, optional inputs are passed only when given, and the step's exit code, outputs and
printed meaning are the gate's. (Not run on GitHub: the project has no GitHub runner.)"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from geopool.cli import main

REPO = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((REPO / "action.yml").read_text())


def _step(step_id: str) -> dict:
    return next(step for step in ACTION["runs"]["steps"] if step.get("id") == step_id)


def test_a_composite_action_with_the_gate_inputs_and_outputs():
    assert ACTION["runs"]["using"] == "composite"
    required = {name for name, spec in ACTION["inputs"].items() if spec.get("required")}
    assert required == {"base-url", "input-dtype"}
    assert all("description" in spec for spec in ACTION["inputs"].values())
    for step in ACTION["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", step  # a composite run step names its shell
    upload = next(step for step in ACTION["runs"]["steps"] if str(step.get("uses", "")).startswith("actions/upload"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "${{ inputs.report-dir }}"
    assert {name: spec["value"] for name, spec in ACTION["outputs"].items()} == {
        "exit-code": "${{ steps.gate.outputs.exit-code }}", "verdict": "${{ steps.gate.outputs.verdict }}"}
    env = _step("gate")["env"]
    assert env["GEOPOOL_API_KEY"] == "${{ inputs.api-key }}", "the key goes by environment, never in argv"
    assert "inputs.api-key" not in _step("gate")["run"]


def _run_gate_step(tmp_path: Path, exit_code: int, **inputs: str) -> tuple[subprocess.CompletedProcess, list[str],
                                                                            dict[str, str]]:
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "geopool").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\nexit {exit_code}\n')
    (shim / "geopool").chmod(0o755)
    defaults = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values = {**defaults, **inputs}
    env = {"PATH": f"{shim}:{Path(sys.executable).parent}:{os.environ['PATH']}", "GITHUB_OUTPUT": str(tmp_path / "out"),
           "PYTHONPATH": str(REPO)}
    for name, template in _step("gate")["env"].items():
        env[name] = values[template.removeprefix("${{ inputs.").removesuffix(" }}")]
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _step("gate")["run"]],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    argv = (tmp_path / "argv").read_text().splitlines()
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    return result, argv, outputs


@pytest.mark.parametrize(("exit_code", "name"), [(0, "ok"), (10, "slo-breached"), (12, "target-unusable")])
def test_the_gate_step_passes_the_inputs_and_ends_with_the_gates_code(tmp_path, exit_code, name):
    result, argv, outputs = _run_gate_step(tmp_path, exit_code, **{"base-url": "http://gpu:8000",
                                                                   "input-dtype": "float16", "api-key": "s3cret"})
    assert result.returncode == exit_code, result.stderr
    assert f"geopool gate exited {exit_code} ({name})" in result.stdout
    assert outputs["exit-code"] == str(exit_code) and outputs["verdict"] == f"no verdict written (exit {exit_code})"
    assert argv[argv.index("--base-url") + 1] == "http://gpu:8000" and "--waivers" not in argv
    assert "--scenario-file" not in argv and "s3cret" not in argv
    main.get_command(click.Context(main), "gate").make_context("gate", argv,
                                                               parent=click.Context(main, info_name="geopool"))


def test_optional_inputs_are_passed_when_given_and_the_verdict_is_the_summarys(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps({"line": "GATE PASSED (exit 0): every check held"}))
    result, argv, outputs = _run_gate_step(tmp_path, 0, **{"base-url": "http://gpu:8000", "input-dtype": "bfloat16",
                                                          "waivers": "ci/waivers.toml", "scenario-file": "s.toml",
                                                          "report-dir": "r"})
    assert result.returncode == 0, result.stderr
    assert shlex.join(argv[argv.index("--waivers"):argv.index("--waivers") + 2]) == "--waivers ci/waivers.toml"
    assert argv[argv.index("--scenario-file") + 1] == "s.toml" and argv[argv.index("--report-dir") + 1] == "r"
    assert outputs["verdict"] == "GATE PASSED (exit 0): every check held"
