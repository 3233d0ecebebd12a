"""The CI recipes in ``examples/ci/`` on paper: their steps are the ones the live test runs and replaces
(tests/live/test_ci_recipes_live.py), the compose file starts what the README says, the waivers name
MUST requirements, the SLO fits its scenario, the health wait is bounded. No server, no GPU."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from ci_recipes import (
    GITHUB_BASH,
    GITLAB_BASH,
    RecipeError,
    evaluate,
    github_jobs,
    gitlab_jobs,
    job_environment,
    script_kind,
    substitute,
)

from geopool import exitcodes
from geopool.load.judge.slo import load_slo
from geopool.load.judge.stats import min_samples
from geopool.load.scenario import load_scenarios
from geopool.server import free_port, model_runner_env

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "examples" / "ci"
GITHUB = github_jobs(CI / "github-actions.yml")
GITLAB = gitlab_jobs(CI / "gitlab-ci.yml")
ALL_JOBS = [*GITHUB.values(), *GITLAB.values()]
COMPOSE_KINDS = ["start-server", "install", "wait-health", "gate", "upload", "stop-server"]


def _job_id(job) -> str:
    return f"{job.platform}-{job.name}"


# ------------------------------------------------------------------------------------- the steps
def test_github_jobs_have_the_steps_the_live_test_runs():
    assert set(GITHUB) == {"gate-compose", "gate-deployed"}
    compose, deployed = GITHUB["gate-compose"], GITHUB["gate-deployed"]
    assert compose.kinds() == ["checkout", "setup-python", *COMPOSE_KINDS]
    assert deployed.kinds() == ["checkout", "setup-python", "install", "wait-health", "gate", "upload"]
    assert "gpu" in compose.raw["runs-on"] and "self-hosted" in compose.raw["runs-on"]
    for job in (compose, deployed):
        assert job.only("setup-python").inputs["python-version"] == "3.11"
        assert job.only("install").script.strip() == "python -m pip install ."
        assert job.only("gate").condition is None  # runs only when everything before it passed
        assert job.only("upload").condition == "always()"  # the report also when the gate failed
        assert job.only("upload").uses.startswith("actions/upload-artifact@")
        assert job.only("upload").inputs["path"] == "reports/gate"
    assert compose.only("stop-server").condition == "always()"
    assert "docker compose -f examples/ci/compose.yaml down" in compose.only("stop-server").script
    # The deployed job takes its URL and key from the repository's variable and secret, nothing literal.
    assert deployed.env["GEOPOOL_BASE_URL"] == "${{ vars.GEOPOOL_BASE_URL }}"
    assert deployed.env["GEOPOOL_API_KEY"] == "${{ secrets.GEOPOOL_API_KEY }}"


def test_gitlab_jobs_have_the_entries_the_live_test_runs():
    assert set(GITLAB) == {"gate-compose", "gate-deployed"}
    compose, deployed = GITLAB["gate-compose"], GITLAB["gate-deployed"]
    assert compose.kinds() == ["start-server", "install", "install", "install", "wait-health", "gate",
                               "stop-server", "stop-server", "upload"]
    assert deployed.kinds() == ["install", "wait-health", "gate", "upload"]
    assert compose.raw["tags"] == ["gpu"]
    assert [step.section for step in compose.steps if step.kind == "stop-server"] == ["after_script"] * 2
    assert "GEOPOOL_BASE_URL" not in deployed.env and "GEOPOOL_API_KEY" not in deployed.env  # CI/CD variables
    for job in (compose, deployed):
        artifacts = job.only("upload").inputs
        assert artifacts["when"] == "always" and artifacts["paths"] == ["reports/gate/"]
        assert artifacts["reports"]["junit"] == "reports/gate/junit.xml"


def test_every_gate_step_is_the_same_command():
    """One live run of the gate command checks the command of all four jobs."""
    scripts = {_job_id(job): job.only("gate").script.strip() for job in ALL_JOBS}
    assert len(set(scripts.values())) == 1, scripts
    (script,) = set(scripts.values())
    command = script.replace("\\\n", " ").split("geopool gate", 1)[1].split("|| status=$?", 1)[0]
    words = ["geopool", "gate", *shlex.split(command)]
    options = dict(zip(words[2::2], words[3::2], strict=True))
    assert words[:2] == ["geopool", "gate"]
    assert options["--base-url"] == "$GEOPOOL_BASE_URL" and options["--input-dtype"] == "$GEOPOOL_INPUT_DTYPE"
    assert options["--slo"] == "$GEOPOOL_SLO" and options["--scenario"] == "$GEOPOOL_SCENARIO"
    assert options["--scenario-file"] == "examples/ci/scenarios.toml"
    assert options["--waivers"] == "examples/ci/waivers.toml"
    assert options["--report-dir"] == "reports/gate"
    assert "from geopool import exitcodes" in script and 'exit "$status"' in script


@pytest.mark.parametrize("job", ALL_JOBS, ids=_job_id)
def test_every_job_parametrizes_the_gate_through_its_environment(job):
    for name in ("GEOPOOL_INPUT_DTYPE", "GEOPOOL_SCENARIO", "GEOPOOL_SLO", "GEOPOOL_HEALTH_TIMEOUT_S"):
        assert name in job.env
    scenarios = load_scenarios(CI / "scenarios.toml")
    assert job.env["GEOPOOL_SCENARIO"] in scenarios
    load_slo(REPO / job.env["GEOPOOL_SLO"])
    if "compose" in job.name:  # the server's dtype is read from the same variable (compose.yaml)
        assert job.env["GEOPOOL_INPUT_DTYPE"] == "float16"
        assert job.env["GEOPOOL_BASE_URL"] == "http://127.0.0.1:8000"


# ------------------------------------------------------------------------------ reading, refusing
@pytest.mark.parametrize(("expression", "context", "value"), [
    ("vars.DTYPE || 'float16'", {"vars": {"DTYPE": ""}}, "float16"),
    ("vars.DTYPE || 'float16'", {"vars": {"DTYPE": "bfloat16"}}, "bfloat16"),
    (" secrets.KEY ", {"secrets": {"KEY": "k"}}, "k"),
    ("'it''s'", {}, "it's"),
    ("vars.A || vars.B", {"vars": {"A": "", "B": ""}}, ""),
])
def test_expressions_the_recipes_use_evaluate(expression, context, value):
    assert evaluate(expression, context) == value


@pytest.mark.parametrize(("expression", "context", "says"), [
    ("vars.URL", {"vars": {}}, "vars.URL was not provided"),
    ("github.run_id", {"vars": {}}, "github.run_id was not provided"),
    ("vars.A == 'x'", {"vars": {"A": "x"}}, "neither"),
    ("format('{0}', vars.A)", {"vars": {"A": "x"}}, "neither"),
    ("!vars.A", {"vars": {"A": "x"}}, "neither"),
    ("vars.A && 'b'", {"vars": {"A": "x"}}, "neither"),
])
def test_an_unknown_expression_fails_loudly(expression, context, says):
    with pytest.raises(RecipeError, match=re.escape(says)):
        evaluate(expression, context)


def test_substitute_replaces_every_expression_in_a_value():
    context = {"vars": {"HOST": "127.0.0.1"}, "secrets": {"PORT": "8000"}}
    assert substitute("http://${{ vars.HOST }}:${{secrets.PORT}}/", context) == "http://127.0.0.1:8000/"
    with pytest.raises(RecipeError, match=re.escape("vars.NOPE")):
        substitute("x ${{ vars.HOST }} ${{ vars.NOPE }}", context)


@pytest.mark.parametrize(("script", "says"), [
    ("echo hello", "matches nothing"),
    ("pip install -e .", "matches nothing"),
    ("geopool gate --base-url $U; curl $U/health", "'wait-health', 'gate'"),
])
def test_a_script_the_test_does_not_know_fails_loudly(script, says):
    with pytest.raises(RecipeError, match=re.escape(says)):
        script_kind(script)


@pytest.mark.parametrize(("step", "says"), [
    ({"uses": "docker/login-action@v3"}, "unknown action"),
    ({"run": "python -m pip install .", "env": {"A": "1"}}, "not emulated"),
    ({"run": "python -m pip install .", "shell": "sh"}, "not emulated"),
    ({"run": "make gate"}, "cannot classify"),
])
def test_a_github_step_the_test_does_not_know_fails_loudly(tmp_path, step, says):
    workflow = {"defaults": {"run": {"shell": "bash"}}, "jobs": {"j": {"runs-on": "x", "steps": [step]}}}
    path = tmp_path / "workflow.yml"
    path.write_text(yaml.safe_dump(workflow))
    with pytest.raises(RecipeError, match=says):
        github_jobs(path)


def test_a_job_environment_needs_every_expression_it_names():
    """The deployed GitHub job reads its URL from a repository variable: not given, the test fails loudly."""
    with pytest.raises(RecipeError, match=re.escape("vars.GEOPOOL_BASE_URL was not provided")):
        job_environment(GITHUB["gate-deployed"], {}, {"vars": {}, "secrets": {"GEOPOOL_API_KEY": ""}}, {}, {})
    env = job_environment(GITHUB["gate-deployed"], {"PATH": "/bin"},
                          {"vars": {"GEOPOOL_BASE_URL": "http://127.0.0.1:1", "GEOPOOL_INPUT_DTYPE": ""},
                           "secrets": {"GEOPOOL_API_KEY": "k"}}, {}, {"GEOPOOL_SLO": "x.toml"})
    assert env["GEOPOOL_BASE_URL"] == "http://127.0.0.1:1" and env["GEOPOOL_INPUT_DTYPE"] == "float16"
    assert env["GEOPOOL_API_KEY"] == "k" and env["GEOPOOL_SLO"] == "x.toml" and env["PATH"] == "/bin"
    # GitLab: CI/CD variables win over the file's, overrides over both.
    env = job_environment(GITLAB["gate-deployed"], {}, {}, {"GEOPOOL_INPUT_DTYPE": "bfloat16"}, {})
    assert env["GEOPOOL_INPUT_DTYPE"] == "bfloat16" and env["GEOPOOL_SCENARIO"] == "ci-gpu"


def test_a_workflow_without_the_bash_default_is_refused(tmp_path):
    path = tmp_path / "workflow.yml"
    path.write_text(yaml.safe_dump({"jobs": {"j": {"steps": [{"run": "python -m pip install ."}]}}}))
    with pytest.raises(RecipeError, match="shell: bash"):
        github_jobs(path)


# ------------------------------------------------------------------------------ the health wait
def test_the_health_wait_gives_up_at_its_deadline(tmp_path):
    """Against a loopback port nobody listens on, each job's wait step stops with an error after its
    timeout (all four at once: each sleeps 5 s between probes)."""
    assert shutil.which("curl"), "the recipes' health wait needs curl (GitHub's runners and python:3.11 have it)"
    env = {"PATH": "/usr/bin:/bin", "GEOPOOL_BASE_URL": f"http://127.0.0.1:{free_port()}",
           "GEOPOOL_HEALTH_TIMEOUT_S": "2"}
    started, waits = time.monotonic(), {}
    for job in ALL_JOBS:
        folder = tmp_path / _job_id(job)
        folder.mkdir()
        (folder / "step.sh").write_text(job.only("wait-health").script)
        shell = GITHUB_BASH if job.platform == "github" else (*GITLAB_BASH, "-eo", "pipefail")
        waits[_job_id(job)] = subprocess.Popen([*shell, "step.sh"], cwd=folder, env=env, text=True,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name, wait in waits.items():
        output, _ = wait.communicate(timeout=60)
        assert wait.returncode == exitcodes.TARGET_UNUSABLE, (name, output)
        assert "/health within 2 s" in output, (name, output)
    assert 2 <= time.monotonic() - started < 20


@pytest.mark.parametrize("job", [GITHUB["gate-deployed"], GITLAB["gate-deployed"]], ids=_job_id)
def test_the_deployed_job_names_its_missing_url(tmp_path, job):
    (tmp_path / "step.sh").write_text(job.only("wait-health").script)
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "step.sh"], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "GEOPOOL_BASE_URL": "", "GEOPOOL_HEALTH_TIMEOUT_S": "2"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == exitcodes.USAGE and "GEOPOOL_BASE_URL" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------- the compose file
def _readme_serve_command() -> list[str]:
    """The `vllm serve ...` of README "Testing your own server", as words."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your own server", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    words = shlex.split(block.replace("\\\n", " "))
    return words[words.index("serve") - 1:]


def test_compose_starts_the_server_the_readme_describes():
    compose = yaml.safe_load((CI / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    readme = _readme_serve_command()
    assert readme[:2] == ["vllm", "serve"]
    assert service["entrypoint"] == ["vllm", "serve"]
    # The same flags; the dtype comes from GEOPOOL_INPUT_DTYPE, float16 (the README's) by default.
    command = [str(word) for word in service["command"]]
    assert command == [word if word != "float16" else "${GEOPOOL_INPUT_DTYPE:-float16}" for word in readme[2:]]
    # The first model runner is asked for exactly where the image's vLLM has one (0.34 refuses the variable).
    tag = re.search(r"FROM vllm/vllm-openai:v(\S+)", service["build"]["dockerfile_inline"]).group(1)
    assert service["environment"].get("VLLM_USE_V2_MODEL_RUNNER") == model_runner_env(tag) == "0"
    assert service["image"].endswith(f":v{tag}")
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert "--port" in command and command[command.index("--port") + 1] == "8000"


def test_compose_uses_the_official_image_pinned_with_terratorch_added():
    compose = yaml.safe_load((CI / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    dockerfile = service["build"]["dockerfile_inline"]
    assert re.search(r"^FROM vllm/vllm-openai:v0\.32\.\d+$", dockerfile, re.M)
    pinned = re.search(r"^terratorch==(\S+)$", (REPO / "requirements" / "constraints.txt").read_text(), re.M)
    assert f'"terratorch=={pinned.group(1)}"' in dockerfile  # the version geopool runs against vLLM 0.32
    assert "import terratorch.vllm" in dockerfile  # the build fails rather than the server at start
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    health = service["healthcheck"]
    assert health["test"][0] == "CMD" and "/health" in health["test"][-1] and "timeout=" in health["test"][-1]


# ------------------------------------------------------------------------------ waivers and SLO
def test_every_waiver_names_a_must_requirement_with_a_reason_and_its_causes():
    waivers = tomllib.loads((CI / "waivers.toml").read_text())
    assert set(waivers) == {"waiver"}
    requirements = tomllib.loads((REPO / "conformance" / "requirements.toml").read_text())["requirement"]
    must = {entry["id"] for entry in requirements if entry["level"] == "MUST"}
    ids = [entry["id"] for entry in waivers["waiver"]]
    assert len(ids) == len(set(ids))
    for entry in waivers["waiver"]:
        assert set(entry) == {"id", "reason", "causes"}, entry
        assert entry["id"] in must, entry
        assert len(entry["reason"]) > 20, entry
        # a light install's and a non-destructive run's causes, never a deselection
        assert set(entry["causes"]) <= {"not checked", "no reference weights", "destructive input",
                                        "no API key configured"}, entry


def test_the_gpu_slo_gates_only_percentiles_its_scenario_has_samples_for():
    scenario = load_scenarios(CI / "scenarios.toml")["ci-gpu"]
    expected = scenario.rate * (scenario.duration_s - scenario.warmup_s)
    slo = load_slo(CI / "slo.toml")
    gated = {key for bounds in slo.latency_ms.values() for key in bounds}
    assert gated
    for key in gated:
        assert expected >= 2 * min_samples(float(key[1:])), (key, expected)
    assert slo.min_rps is not None and slo.min_rps < scenario.rate
