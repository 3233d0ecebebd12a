"""The Kubernetes recipe (examples/k8s/), checked offline: every manifest validates against the Kubernetes
schemas (kubernetes-validate, strict: an unknown field is an error), the master's and the workers' command
lines parse as Locust and geopool parse them (the master's settings built as its run would build them), the
pieces agree with each other (labels, Service, port, worker count), and the plan fits the per-worker budget
docs/k8s.md sizes it by. No cluster is used: nothing here was run on Kubernetes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from geopool.load.scenario import load_scenarios

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "examples" / "k8s"
#: The oldest Kubernetes release still supported upstream when the recipe was written, and the newest known.
VERSIONS = ("1.31", kubernetes_validate.latest_version())
#: docs/k8s.md: plan at most half the measured ceiling of one generator process (36.8 verified req/s).
PER_WORKER_BUDGET_RPS = 18.0
#: How the manifests find the locustfile in the installed package.
FIND_LOCUSTFILE = ("$(python -c \"import importlib.util as u; "
                   "print(u.find_spec('geopool.load.run.locustfile').origin)\")")


def _manifests() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(K8S.glob("*.yaml"))}


def _container(manifest: dict) -> dict:
    spec = manifest["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    (container,) = pod["containers"]
    return container


def _env(container: dict) -> dict[str, object]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container.get("env", [])}


def _argv(container: dict, env: dict[str, str]) -> list[str]:
    assert container["command"] == ["sh", "-c"]
    (line,) = container["args"]
    assert FIND_LOCUSTFILE in line, "the locustfile is found in the installed package"
    line = line.replace(FIND_LOCUSTFILE, "LOCUSTFILE")
    for name, value in env.items():
        line = line.replace(f'"${name}"', shlex.quote(value))
    assert "$" not in line, line
    words = shlex.split(line)
    assert words[:3] == ["exec", "locust", "-f"]
    return words[4:]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", [path.name for path in sorted(K8S.glob("*.yaml"))])
def test_every_manifest_validates_against_the_kubernetes_schemas(name, version):
    assert kubernetes_validate.validate(_manifests()[name], version, strict=True)


def test_a_misspelt_field_is_caught_by_the_validation():
    job = _manifests()["master-job.yaml"]
    _container(job)["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)


def test_the_pieces_agree():
    found = _manifests()
    job, service, workers = found["master-job.yaml"], found["master-service.yaml"], found["workers-deployment.yaml"]
    assert job["spec"]["backoffLimit"] == 0, "a verdict is never rerun"
    assert set(service["spec"]["selector"].items()) <= set(job["spec"]["template"]["metadata"]["labels"].items())
    worker_labels = workers["spec"]["template"]["metadata"]["labels"]
    assert not set(service["spec"]["selector"].items()) <= set(worker_labels.items()), "workers are not the master"
    master_env = _env(_container(job))
    assert int(master_env["GEOPOOL_WORKERS"]) == workers["spec"]["replicas"]
    worker_argv = _argv(_container(workers), {})
    assert worker_argv[worker_argv.index("--master-host") + 1] == service["metadata"]["name"]
    assert worker_argv[worker_argv.index("--master-port") + 1] == str(service["spec"]["ports"][0]["port"])
    master_argv = _argv(_container(job), {"GEOPOOL_WORKERS": "1", "GEOPOOL_TARGET": "http://x", "GEOPOOL_SCENARIO": "s",
                                          "GEOPOOL_INPUT_DTYPE": "float16"})
    assert master_argv[master_argv.index("--master-bind-port") + 1] == str(service["spec"]["ports"][0]["targetPort"])
    mounts = {mount["name"]: mount["mountPath"] for mount in _container(job)["volumeMounts"]}
    assert master_argv[master_argv.index("--report-dir") + 1].startswith(mounts["reports"] + "/")
    assert master_argv[master_argv.index("--scenario-file") + 1].startswith(mounts["plan"] + "/")
    reader = found["report-reader.yaml"]
    claims = {volume["persistentVolumeClaim"]["claimName"] for m in (job["spec"]["template"], reader)
              for volume in m["spec"]["volumes"] if "persistentVolumeClaim" in volume}
    assert claims == {found["reports-pvc.yaml"]["metadata"]["name"]}
    images = {_container(m)["image"] for m in (job, workers, reader)}
    assert len(images) == 1, images
    assert "GEOPOOL_API_KEY" in master_env and "value" not in str(master_env["GEOPOOL_API_KEY"]), "a key from a Secret"


def test_the_plan_is_a_valid_scenario_within_the_per_worker_budget(tmp_path):
    found = _manifests()
    plan = found["configmap.yaml"]["data"]
    (tmp_path / "scenarios.toml").write_text(plan["scenarios.toml"])
    scenario = load_scenarios(tmp_path / "scenarios.toml")[plan["GEOPOOL_SCENARIO"]]
    workers = found["workers-deployment.yaml"]["spec"]["replicas"]
    assert scenario.max_requests and scenario.duration_s, "the run is bounded in time and requests"
    assert scenario.rate / workers <= PER_WORKER_BUDGET_RPS, (scenario.rate, workers)
    job = found["master-job.yaml"]["spec"]
    assert job["activeDeadlineSeconds"] > scenario.duration_s + 300


def test_the_master_command_line_is_one_geopools_locustfile_accepts(tmp_path):
    """Parsed by Locust's own parser with geopool's arguments, then turned into the run's settings as the
    master's run does it (in a child process: importing Locust patches the standard library)."""
    found = _manifests()
    plan = found["configmap.yaml"]["data"]
    (tmp_path / "scenarios.toml").write_text(plan["scenarios.toml"])
    env = {"GEOPOOL_WORKERS": "4", "GEOPOOL_TARGET": "http://127.0.0.1:9", "GEOPOOL_SCENARIO": plan["GEOPOOL_SCENARIO"],
           "GEOPOOL_INPUT_DTYPE": plan["GEOPOOL_INPUT_DTYPE"]}
    argv = _argv(_container(found["master-job.yaml"]), env)
    argv = [str(tmp_path / "scenarios.toml") if word == "/plan/scenarios.toml" else
            str(tmp_path / "run") if word == "/reports/run" else word for word in argv]
    script = """
import json, sys
from locust.argument_parser import get_parser
from geopool.load.run.options import add_locust_arguments
from geopool.load.run.runtime import configure
parser = get_parser(default_config_files=[])
add_locust_arguments(parser)
options = parser.parse_args(json.loads(sys.argv[1]))
settings = configure(options, options.host)
print(json.dumps({"master": options.master, "workers": options.expect_workers, "headless": options.headless,
                  "scenario": settings.plan.scenario.name, "rate": settings.plan.scenario.rate,
                  "dtype": settings.plan.input_dtype, "slo": settings.slo is not None}))
"""
    result = subprocess.run([sys.executable, "-c", script, json.dumps(["-f", "LOCUSTFILE", *argv])],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed == {"master": True, "workers": 4, "headless": True, "scenario": "fleet", "rate": 60.0,
                      "dtype": "float16", "slo": True}
    worker = _argv(_container(found["workers-deployment.yaml"]), {})
    assert "--worker" in worker and "--headless" not in worker
