"""The four CI recipe jobs of ``examples/ci/``, run from their YAML against the session's embedded server.

The GPU server is replaced by the embedded one (CPU, tiny model, float32); everything else a job does
runs as written in bash (tests/ci_recipes.py), parametrized only through the job's environment, as a
user would: the URL, ``GEOPOOL_INPUT_DTYPE=float32``, a CPU scenario and SLO. The install step is
skipped; the light client install it makes (no torch) is emulated by hiding torch, torchvision and
TerraTorch from every process of the gate (a ``sitecustomize`` on PYTHONPATH): so the full run also proves
that ``waivers.toml`` covers every MUST requirement a light install leaves unchecked against a URL.

Cost: the gate runs the conformance suite against a URL, then a load run. GitHub's ``gate-compose`` runs
it whole and must pass (exit 0); the three others select a few tests (``PYTEST_ADDOPTS``, which the gate's
pytest child reads) and must exit with the unchecked-MUST code. The full job takes the smoke load scenario
(``ci-cpu-smoke``: 80 requests or 25 s), the three others one of 16 requests added to the checkout's
scenario file: the length of the load phase is not what they test.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from ci_recipes import base_environment, github_jobs, gitlab_jobs, job_environment, run_job

from geopool import exitcodes

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "examples" / "ci"
#: A selection of the conformance suite for the cheap runs: a few valid requests, nothing that kills vLLM.
SELECTION = "-k test_envelope"
HIDE_TORCH = 'import sys\nfor _name in ("torch", "torchvision", "terratorch"):\n    sys.modules[_name] = None\n'
REPORT_FILES = ("report.html", "summary.json", "junit.xml")
#: The selections' load phase: 16 requests (the CPU SLO's p50 needs 11), ~5-10 s instead of the smoke
#: scenario's 25 s on a busy box.
SELECTION_SCENARIO_NAME = "ci-test-selection"
SELECTION_SCENARIO = f"""
[scenario.{SELECTION_SCENARIO_NAME}]
description = "the project's tests: a selection job's load phase, whose length is not what the job tests"
mode = "closed"
users = 2
duration_s = 20
max_requests = 16
warmup_s = 0
window_requests = 4
stability_tolerance = 10
"""

RUNS = [
    pytest.param("github", "gate-compose", None, exitcodes.OK, id="github-compose-full"),
    pytest.param("github", "gate-deployed", SELECTION, exitcodes.UNCHECKED_MUST, id="github-deployed-selection"),
    pytest.param("gitlab", "gate-compose", SELECTION, exitcodes.UNCHECKED_MUST, id="gitlab-compose-selection"),
    pytest.param("gitlab", "gate-deployed", SELECTION, exitcodes.UNCHECKED_MUST, id="gitlab-deployed-selection"),
]


@pytest.fixture(scope="module")
def hidden_torch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("light-client")
    (folder / "sitecustomize.py").write_text(HIDE_TORCH)
    return folder


@pytest.mark.parametrize(("platform", "name", "selection", "expected"), RUNS)
def test_recipe_job_runs_against_the_embedded_server(embedded_server, hidden_torch, tmp_path, platform, name,
                                                     selection, expected):
    jobs = github_jobs(CI / "github-actions.yml") if platform == "github" else gitlab_jobs(CI / "gitlab-ci.yml")
    job = jobs[name]
    workspace = _checkout(tmp_path / "workspace")  # the recipes read examples/ci/ from it
    (tmp_path / "home").mkdir()
    base = base_environment(Path(sys.executable).parent, [hidden_torch, REPO], tmp_path / "home")
    summary_file = tmp_path / "step-summary.md"
    url, deployed = embedded_server.url, "deployed" in name
    # GitHub: the deployed job's URL and dtype come from repository variables (evaluated from the YAML),
    # its key from a secret (unset: the embedded server has none). GitLab: from CI/CD variables.
    context = {"vars": {"GEOPOOL_BASE_URL": url, "GEOPOOL_INPUT_DTYPE": "float32"},
               "secrets": {"GEOPOOL_API_KEY": "", "HF_TOKEN": ""}}
    variables = {"GEOPOOL_BASE_URL": url, "GEOPOOL_INPUT_DTYPE": "float32"} if deployed else {}
    # The load phase's length is not what these runs test: the full job takes the smoke scenario, the
    # selections a shorter one of the tests' own.
    overrides = {"GEOPOOL_SCENARIO": SELECTION_SCENARIO_NAME if selection else "ci-cpu-smoke",
                 "GEOPOOL_SLO": str(_cpu_slo(tmp_path))}
    if not deployed:  # the compose jobs name the GPU server's URL and dtype in the file: overridden
        overrides.update(GEOPOOL_BASE_URL=url, GEOPOOL_INPUT_DTYPE="float32")
    if platform == "github":
        overrides["GITHUB_STEP_SUMMARY"] = str(summary_file)
    if selection:
        overrides["PYTEST_ADDOPTS"] = selection
    env = job_environment(job, base, context, variables, overrides)
    assert env["GEOPOOL_BASE_URL"] == url and env["GEOPOOL_INPUT_DTYPE"] == "float32"

    run = run_job(job, workspace, env, timeout_s=1500)
    print(f"{platform} {name}: exit {run.exit_code} in {run.seconds:.0f} s")  # the cost, in -s / the log

    log = run.log()
    assert run.exit_code == expected, log
    assert re.search(rf"^healthy( after \d+ s)?: {re.escape(url)}$", log, re.M), log  # the wait ran and passed
    outcomes = {step.step.kind: step.outcome for step in run.steps}
    if "compose" in name:
        assert outcomes["start-server"] == outcomes["stop-server"] == "replaced"
    assert outcomes["install"] == "skipped" and outcomes["upload"] == "checked"
    assert f"geopool gate exited {expected} ({exitcodes.name(expected)}): {exitcodes.describe(expected)}" in log
    (folder,) = run.artifact_paths
    for report in REPORT_FILES:
        assert (folder / report).is_file(), (report, sorted(os.listdir(folder)) if folder.is_dir() else None)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["exit_code"] == expected and summary["exit_name"] == exitcodes.name(expected)
    assert summary["target"]["url"] == url and summary["target"]["input_dtype"] == "float32"
    assert summary["target"]["embedded"] is False
    conformance = summary["conformance"]
    waived = {entry["id"] for entry in conformance["waived"]}
    assert waived <= _waiver_ids(), waived - _waiver_ids()
    if expected == exitcodes.OK:
        assert conformance["unwaived"] == [] and conformance["failed"] == []
        # No stale waiver either: each one was needed. POOL-NUM-002 too: the fixture model's golden answer
        # checks it in part here (partial: the offline forward pass needs torch and the weights), and nothing
        # checks it against Sen1Floods11 without its weights.
        assert waived == _waiver_ids()
        assert summary["load"]["exit_code"] == exitcodes.OK
    else:
        assert conformance["unwaived"], "a selection leaves MUST requirements unchecked"
        # a waiver covers only the causes it names: the requirements it names, deselected here by -k, stay
        # unwaived, each listed with the cause its waiver lacks
        other = {entry["id"]: entry for entry in conformance["waived_for_other_causes"]}
        assert other and set(other) <= set(conformance["unwaived"]) and set(other) <= _waiver_ids(), other
        assert all("deselected" in entry["causes"] for entry in other.values()), other
    if platform == "github":
        assert summary["line"] in summary_file.read_text()


def _checkout(workspace: Path) -> Path:
    """The checkout a job runs in: links to the repository's examples/, with the tests' scenario added to
    examples/ci/scenarios.toml."""
    recipes = workspace / "examples" / "ci"
    recipes.mkdir(parents=True)
    for entry in (REPO / "examples").iterdir():
        if entry.name != "ci":
            (workspace / "examples" / entry.name).symlink_to(entry)
    for entry in CI.iterdir():
        if entry.name != "scenarios.toml":
            (recipes / entry.name).symlink_to(entry)
    (recipes / "scenarios.toml").write_text((CI / "scenarios.toml").read_text() + SELECTION_SCENARIO)
    return workspace


def _cpu_slo(folder: Path) -> Path:
    """An SLO for the embedded CPU server on a shared 2-core machine that ci-cpu and ci-cpu-smoke both have
    the samples for (p50 needs 11; a 2-user closed loop does ~1-2 requests/s)."""
    path = folder / "cpu-slo.toml"
    path.write_text("[latency.corrected]\np50 = 6000\n\n[errors]\nmax_error_rate = 0.0\n")
    return path


def _waiver_ids() -> set[str]:
    return {entry["id"] for entry in tomllib.loads((CI / "waivers.toml").read_text())["waiver"]}

