"""``geopool load``: the Locust scenarios as one bounded command for CI, against a URL or the embedded server.

It checks the scenario and SLO files first (a bad one is a usage error before anything starts),
starts the embedded vLLM server when no URL is given, runs headless Locust on
:mod:`geopool.load.locustfile` as a child process with a hard deadline, and returns Locust's exit
code, which geopool's locustfile sets from the run's verdict (:data:`geopool.load.slo.EXIT_CODES`).
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geopool.errors import ConfigError
from geopool.load.scenario import Scenario, load_scenarios
from geopool.load.slo import EXIT_NO_TARGET, load_slo

__all__ = ["locust_command", "resolve", "run_load"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")  # not imported here: Locust monkey-patches
_FLAGS = {"rate": "--rate", "arrival": "--arrival", "max_requests": "--max-requests", "warmup_s": "--warmup",
          "window_requests": "--window-requests", "stability_tolerance": "--stability-tolerance",
          "payload": "--payload", "pool_size": "--pool-size",
          "verify": "--verify"}


def resolve(scenario_name: str, scenario_file: Path | None, overrides: dict[str, Any]) -> Scenario:
    scenarios = load_scenarios(scenario_file)
    if scenario_name not in scenarios:
        raise ConfigError(f"unknown scenario {scenario_name!r}; the scenario file has: {', '.join(sorted(scenarios))}")
    scenario = scenarios[scenario_name]
    if overrides.get("users") is not None and scenario.stages:
        raise ConfigError(f"scenario {scenario_name!r} has stages; --users applies only to scenarios without")
    return scenario.with_overrides(**overrides)


def locust_command(scenario: Scenario, overrides: dict[str, Any], *, host: str, report_dir: Path,
                   scenario_file: Path | None, slo_file: Path | None, processes: int | None,
                   extra: dict[str, str | None]) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
               "--scenario", scenario.name, "--report-dir", str(report_dir),
               "--csv", str(report_dir / "locust"), "--html", str(report_dir / "locust.html"), "--only-summary"]
    if overrides.get("users") is not None:
        command += ["-u", str(overrides["users"])]
    if overrides.get("duration_s") is not None:
        command += ["-t", f"{math.ceil(overrides['duration_s'])}s"]
    for key, flag in _FLAGS.items():
        if overrides.get(key) is not None:
            command += [flag, str(overrides[key])]
    if scenario_file:
        command += ["--scenario-file", str(scenario_file)]
    if slo_file:
        command += ["--slo", str(slo_file)]
    if processes:
        command += ["--processes", str(processes)]
    for flag, value in extra.items():
        if value is not None:
            command += [flag, str(value)]
    return command


def run_load(*, scenario_name: str, scenario_file: Path | None, slo_file: Path | None, base_url: str | None,
             overrides: dict[str, Any], processes: int | None, report_dir: Path | None, model: str | None,
             model_config: Path | None, input_dtype: str, reference_dir: Path | None, api_key: str | None,
             embedded: dict[str, Any]) -> int:
    """Run one scenario to its end and return the exit code (see EXIT_CODES)."""
    scenario = resolve(scenario_name, scenario_file, overrides)
    if slo_file is not None:
        load_slo(slo_file)
    if scenario.verify == "reference" and base_url and reference_dir is None:
        raise ConfigError("--verify reference against a URL needs --reference-dir (the folder the server serves)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    report_dir = Path(report_dir or Path("reports") / "load" / f"{scenario.name}-{stamp}")
    report_dir.mkdir(parents=True, exist_ok=True)
    with _target(base_url, embedded) as (url, server):
        if server is not None:
            model_config = model_config or server.served_dir / "config.json"
            input_dtype = server.dtype
            reference_dir = reference_dir or server.served_dir
        command = locust_command(
            scenario, overrides, host=url, report_dir=report_dir, scenario_file=scenario_file, slo_file=slo_file,
            processes=processes,
            extra={"--model": model, "--model-config": model_config, "--input-dtype": input_dtype,
                   "--reference-dir": reference_dir if scenario.verify == "reference" else None})
        env = dict(os.environ)
        if api_key:  # through the environment, not argv, so it never shows in `ps`
            env["LOCUST_API_KEY"] = api_key
        deadline = scenario.end_s + 2 * min(scenario.request_timeout_s, 30.0) + 180.0
        print(f"geopool load: {scenario.name} against {url}; report in {report_dir}", flush=True)
        child = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            return child.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            print(f"error: the load run did not stop within {deadline:.0f} s and was killed; "
                  f"records so far are in {report_dir}/records.jsonl", file=sys.stderr)
            return EXIT_NO_TARGET
        except KeyboardInterrupt:
            os.killpg(child.pid, signal.SIGINT)
            return child.wait(timeout=60)


@contextlib.contextmanager
def _target(base_url: str | None, embedded: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if base_url:
        yield base_url.rstrip("/"), None
        return
    from geopool.server import EmbeddedServer

    print(f"geopool load: no --base-url; starting the embedded server ({embedded['model']})", flush=True)
    with EmbeddedServer(embedded["model"], dtype=embedded["dtype"], max_num_seqs=embedded["max_num_seqs"],
                        extra_args=embedded["vllm_args"], startup_timeout_s=embedded["startup_timeout"]) as server:
        yield server.url, server
