"""Reading and running the CI recipes in ``examples/ci/`` the way their CI would, with the GPU server
replaced by the embedded one (tests/test_ci_recipes.py on paper, tests/live/test_ci_recipes_live.py live).

Each step (GitHub Actions) or script entry (GitLab CI) is classified by what it does: checkout,
setup-python, start-server, install, wait-health, gate, upload, stop-server. A step that fits no kind,
or fits two, is an error: a recipe that grows a step the test does not know fails the test instead of
being skipped silently. Running a job then:

- runs ``wait-health`` and ``gate`` as written, in bash with the options GitHub (``shell: bash``:
  ``bash --noprofile --norc -eo pipefail``) and GitLab (``set -eo pipefail``) use, in a workspace holding
  ``examples/``, with the job's environment plus the caller's overrides (URL, dtype, scenario, SLO);
- replaces ``start-server`` and ``stop-server`` (docker compose) by the embedded server, which is already
  running, and skips ``install`` (the caller runs in a venv where geopool is importable);
- follows GitHub's step semantics (after a failure only ``if: always()`` steps run) and GitLab's (one
  shell for before_script + script, the job's code is the first failing command's);
- reports the upload step's paths (GitHub) or ``artifacts: paths`` (GitLab) for the caller to check.

GitHub ``${{ ... }}`` expressions are evaluated only as far as the recipes need: context references
(``vars.X``, ``secrets.X``, ``github.X``) the caller provides, string literals and ``||``. Anything else,
or a name the caller did not provide, raises :class:`RecipeError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

KINDS = ("checkout", "setup-python", "start-server", "install", "wait-health", "gate", "upload", "stop-server")
#: Kinds run as written; the others are replaced (the embedded server) or skipped (no CI machinery here).
RUN_KINDS = ("wait-health", "gate")
GITHUB_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")
GITLAB_BASH = ("bash", "--noprofile", "--norc")  # the script itself starts with set -eo pipefail


class RecipeError(AssertionError):
    """A recipe the test cannot read: an unknown step, key or expression."""


# ------------------------------------------------------------------------------------------ reading
def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise RecipeError(f"{path}: not a YAML mapping")
    return document


def script_kind(text: str) -> str:
    """The kind of a shell script (a ``run:`` or a GitLab script entry)."""
    found = [kind for kind, pattern in _SCRIPT_KINDS if re.search(pattern, text)]
    if len(found) != 1:
        raise RecipeError(f"cannot classify this script (matches {found or 'nothing'}):\n{text}")
    return found[0]


_SCRIPT_KINDS = (
    ("start-server", r"\bdocker compose -f examples/ci/compose\.yaml up\b"),
    ("stop-server", r"\bdocker compose -f examples/ci/compose\.yaml (down|logs)\b"),
    ("install", r"^(python3?(\.\d+)? -m pip install \.|python3\.11 -m venv \S+|source \S+/bin/activate)$"),
    ("wait-health", r"/health\b"),
    ("gate", r"\bgeopool gate\b"),
)


@dataclasses.dataclass(frozen=True)
class Step:
    """One GitHub step or GitLab script entry."""

    kind: str
    name: str
    script: str | None = None          # the shell text (None for ``uses:`` steps)
    uses: str | None = None
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # ``with:``
    condition: str | None = None       # ``if:``
    section: str = "steps"             # GitLab: before_script, script or after_script


@dataclasses.dataclass(frozen=True)
class Job:
    platform: str                      # github or gitlab
    name: str
    env: Mapping[str, str]             # as written (GitHub expressions not yet evaluated)
    steps: tuple[Step, ...]
    raw: Mapping[str, Any]

    def kinds(self) -> list[str]:
        return [step.kind for step in self.steps]

    def only(self, kind: str) -> Step:
        found = [step for step in self.steps if step.kind == kind]
        if len(found) != 1:
            raise RecipeError(f"{self.name}: expected one {kind} step, found {len(found)}")
        return found[0]


def github_jobs(path: Path) -> dict[str, Job]:
    document = load_yaml(path)
    shell = (document.get("defaults") or {}).get("run", {}).get("shell")
    if shell != "bash":
        raise RecipeError(f"{path}: defaults.run.shell is {shell!r}; the runner emulates `shell: bash` only")
    jobs = {}
    for name, job in document["jobs"].items():
        steps = tuple(_github_step(name, number, step) for number, step in enumerate(job["steps"], 1))
        jobs[name] = Job("github", name, {k: str(v) for k, v in (job.get("env") or {}).items()}, steps, job)
    return jobs


def _github_step(job: str, number: int, step: Mapping[str, Any]) -> Step:
    unknown = set(step) - {"name", "uses", "with", "run", "if", "shell", "env"}
    if unknown or "env" in step or "shell" in step:
        raise RecipeError(f"{job} step {number}: keys {sorted(set(step) - {'name', 'uses', 'with', 'run', 'if'})} "
                          "are not emulated")
    name = step.get("name") or step.get("uses") or f"step {number}"
    if "uses" in step:
        action = step["uses"].split("@")[0]
        kind = {"actions/checkout": "checkout", "actions/setup-python": "setup-python",
                "actions/upload-artifact": "upload"}.get(action)
        if kind is None:
            raise RecipeError(f"{job} step {number}: unknown action {step['uses']!r}")
        return Step(kind, name, uses=step["uses"], inputs=step.get("with") or {}, condition=step.get("if"))
    script = step["run"]
    return Step(script_kind(script), name, script=script, condition=step.get("if"))


def gitlab_jobs(path: Path) -> dict[str, Job]:
    document = load_yaml(path)
    jobs = {}
    for name, job in document.items():
        if name in ("stages", "variables", "default", "workflow", "include") or not isinstance(job, dict):
            continue
        steps = []
        for section in ("before_script", "script", "after_script"):
            for number, entry in enumerate(job.get(section) or [], 1):
                steps.append(Step(script_kind(entry), f"{section}[{number}]", script=entry, section=section))
        steps.append(Step("upload", "artifacts", inputs=job.get("artifacts") or {}))
        jobs[name] = Job("gitlab", name, {k: str(v) for k, v in (job.get("variables") or {}).items()},
                         tuple(steps), job)
    return jobs


# ------------------------------------------------------------------------------------ expressions
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_REFERENCE = re.compile(r"^([a-z_]+)\.([A-Za-z_][A-Za-z0-9_]*)$")
_LITERAL = re.compile(r"^'((?:[^']|'')*)'$")


def substitute(text: str, context: Mapping[str, Mapping[str, str]]) -> str:
    """``text`` with each ``${{ expression }}`` replaced by its value (see the module docstring)."""
    return _EXPRESSION.sub(lambda match: evaluate(match.group(1), context), text)


def evaluate(expression: str, context: Mapping[str, Mapping[str, str]]) -> str:
    """``a || b || ...``: the first operand that is not empty (GitHub's ``||`` on strings)."""
    value = ""
    for operand in expression.split("||"):
        value = _operand(operand.strip(), expression, context)
        if value:
            return value
    return value


def _operand(operand: str, expression: str, context: Mapping[str, Mapping[str, str]]) -> str:
    literal = _LITERAL.match(operand)
    if literal:
        return literal.group(1).replace("''", "'")
    reference = _REFERENCE.match(operand)
    if reference is None:
        raise RecipeError(f"unsupported expression ${{{{{expression}}}}}: {operand!r} is neither a 'literal' "
                          "nor a context.NAME reference")
    scope, name = reference.groups()
    if scope not in context or name not in context[scope]:
        raise RecipeError(f"expression ${{{{{expression}}}}}: {scope}.{name} was not provided by the test")
    return context[scope][name]


# ---------------------------------------------------------------------------------------- running
@dataclasses.dataclass
class StepRun:
    step: Step
    outcome: str                       # ran, replaced, skipped (not emulated), checked (upload: by the caller), not-run
    exit_code: int | None = None
    seconds: float = 0.0
    output: str = ""


@dataclasses.dataclass
class JobRun:
    job: Job
    steps: list[StepRun]
    exit_code: int                     # what the CI job ends with (0: success)
    artifact_paths: list[Path]
    seconds: float

    def ran(self, kind: str) -> StepRun:
        (found,) = [run for run in self.steps if run.step.kind == kind and run.outcome == "ran"]
        return found

    def log(self) -> str:
        return "\n".join(f"--- {run.step.name} [{run.step.kind}] {run.outcome} exit={run.exit_code} "
                         f"{run.seconds:.1f}s\n{run.output[-4000:]}" for run in self.steps)


def job_environment(job: Job, base: Mapping[str, str], context: Mapping[str, Mapping[str, str]],
                    variables: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment the job's scripts see: ``base``, then the job's own (GitHub: expressions
    evaluated), then ``variables`` (GitLab's CI/CD variables, which win over the file's), then
    ``overrides``."""
    env = dict(base)
    if job.platform == "github":
        env.update({key: substitute(value, context) for key, value in job.env.items()})
    else:
        env.update(job.env)
        env.update(variables)
    env.update(overrides)
    return env


def run_job(job: Job, workspace: Path, env: Mapping[str, str], *, timeout_s: float) -> JobRun:
    started = time.monotonic()
    if job.platform == "github":
        steps, code = _run_github(job, workspace, env, started + timeout_s)
        upload = job.only("upload")
        paths = [workspace / line.strip() for line in str(upload.inputs["path"]).splitlines() if line.strip()]
    else:
        steps, code = _run_gitlab(job, workspace, env, started + timeout_s)
        paths = [workspace / path for path in job.only("upload").inputs["paths"]]
    return JobRun(job, steps, code, paths, time.monotonic() - started)


def _run_github(job: Job, workspace: Path, env: Mapping[str, str], deadline: float) -> tuple[list[StepRun], int]:
    runs, code = [], 0
    for step in job.steps:
        if code != 0 and step.condition != "always()":
            runs.append(StepRun(step, "not-run"))
        elif step.kind in RUN_KINDS:
            assert step.script is not None
            run = _bash(step, GITHUB_BASH, step.script, workspace, env, deadline)
            runs.append(run)
            code = code or (run.exit_code or 0)
        else:
            runs.append(StepRun(step, _not_run_here(step)))
    return runs, code


def _not_run_here(step: Step) -> str:
    if step.kind.endswith("-server"):
        return "replaced"
    return "checked" if step.kind == "upload" else "skipped"


def _run_gitlab(job: Job, workspace: Path, env: Mapping[str, str], deadline: float) -> tuple[list[StepRun], int]:
    """before_script + script in one shell, entries not run here replaced by a no-op comment."""
    main = [step for step in job.steps if step.section in ("before_script", "script")]
    lines = ["set -eo pipefail"]
    for step in main:
        assert step.script is not None
        lines.append(step.script if step.kind in RUN_KINDS else f": # {step.kind}, not run here: {step.script!r}")
    whole = Step("script", f"{job.name}: before_script + script", script="\n".join(lines))
    run = _bash(whole, GITLAB_BASH, whole.script or "", workspace, env, deadline)
    runs = [StepRun(step, "ran" if step.kind in RUN_KINDS else _not_run_here(step)) for step in main]
    runs.append(run)
    runs += [StepRun(step, _not_run_here(step)) for step in job.steps
             if step.section == "after_script" or step.kind == "upload"]
    return runs, run.exit_code or 0


def _bash(step: Step, shell: Sequence[str], script: str, workspace: Path, env: Mapping[str, str],
          deadline: float) -> StepRun:
    path = workspace / ".ci-step.sh"
    path.write_text(script)
    started = time.monotonic()
    # Its own process group: at the deadline the gate's children (pytest, Locust) are stopped with it.
    child = subprocess.Popen([*shell, str(path)], cwd=workspace, env=dict(env), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = child.communicate(timeout=max(1.0, deadline - started))
    except subprocess.TimeoutExpired as exc:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        raise AssertionError(f"{step.name}: still running at the job's deadline\n{output[-4000:]}") from exc
    return StepRun(step, "ran", child.returncode, time.monotonic() - started, output)


def base_environment(python_bin: Path, pythonpath: Sequence[Path], home: Path) -> dict[str, str]:
    """A runner's environment, not the test process's: PATH with ``python_bin`` first (``python`` and
    ``geopool`` as setup-python + pip install would give), PYTHONPATH, HOME, locale; nothing else leaks in."""
    return {
        "PATH": os.pathsep.join([str(python_bin), "/usr/local/bin", "/usr/bin", "/bin"]),
        "PYTHONPATH": os.pathsep.join(str(path) for path in pythonpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
    }
