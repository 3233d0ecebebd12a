"""``geopool gate``: one command that gates a release — the conformance suite, then a load scenario
against the same target, then the SLO — with one report folder and one exit code (:mod:`geopool.exitcodes`).

Each phase runs as a child process (``pytest`` on the installed suite; ``geopool load``), exactly as a
user would run it alone, with a hard deadline; the gate reads what they leave (``conformance.json``,
the load ``summary.json``) and judges (:mod:`geopool.gate.verdict`). Everything is checked before the
first request: the waiver file, the scenario, the SLO file, ``--input-dtype`` against a URL.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from geopool import exitcodes
from geopool.conformance.command import pytest_argv
from geopool.conformance.registry import load_registry
from geopool.errors import ConfigError
from geopool.gate import progress_plugin
from geopool.gate.verdict import judge
from geopool.gate.waivers import load_waivers
from geopool.load.run.command import check_load_values
from geopool.load.run.options import resolve
from geopool.progress import LoadTally, ProgressLine, json_lines, watch_child

__all__ = ["GateOptions", "run_gate", "default_report_dir"]

#: Beyond the load scenario's own end: start-up of the embedded server, Locust and the report.
LOAD_DEADLINE_EXTRA_S = 900.0


@dataclasses.dataclass
class GateOptions:
    base_url: str | None = None
    input_dtype: str | None = None
    model: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    model_config: Path | None = None
    reference_checkpoint: Path | None = None
    slo: Path | None = None
    scenario: str = "gate"
    scenario_file: Path | None = None
    users: int | None = None
    duration: float | None = None
    expectations: str | None = None
    strict: bool = False
    waivers: Path | None = None
    destructive: bool = False
    report_dir: Path | None = None
    embedded_model: str = "prithvi-tiny-tl"
    embedded_dtype: str = "float32"
    conformance_timeout: float = 5400.0
    pytest_args: tuple[str, ...] = ()

    def load_values(self) -> dict[str, Any]:
        """The options of ``geopool load`` this gate passes on (keyed by their ``dest``)."""
        return {"base_url": self.base_url, "input_dtype": self.input_dtype, "model": self.model,
                "model_config": self.model_config, "reference_checkpoint": self.reference_checkpoint,
                "scenario": self.scenario, "scenario_file": self.scenario_file, "slo": self.slo,
                "users": self.users, "duration": self.duration}


def default_report_dir() -> Path:
    return Path("reports") / f"gate-{datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')}"


def run_gate(options: GateOptions) -> int:
    """Run both phases, write the report folder, print the verdict; return the exit code."""
    waivers = load_waivers(options.waivers, load_registry())
    _check_load_options(options)
    folder = Path(options.report_dir or default_report_dir())
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        # An earlier run's conformance.json or load summary would be read as this run's.
        raise ConfigError(f"--report-dir {str(folder)!r} is a file or a folder that is not empty; name a new folder")
    (folder / "conformance").mkdir(parents=True, exist_ok=True)
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    progress = ProgressLine()
    target = options.base_url or "the embedded server"
    progress.say(f"geopool gate: conformance, then load ({options.scenario}) against {target}; report in {folder}")
    try:
        conformance_code, conformance_error = _run_conformance(options, folder, progress)
        conformance = _read_json(folder / "conformance" / "conformance.json")
        progress.say(f"conformance: exit {conformance_code} ({exitcodes.name(conformance_code)})"
                     + (f"; {conformance.get('unchecked_line', '')}" if conformance else ""))
        load_code, load_summary, skipped = None, None, _why_no_load(conformance_code)
        if skipped is None:
            load_code = _run_load(options, folder, progress)
            load_summary = _read_json(folder / "load" / "summary.json")
            progress.say(f"load: exit {load_code} ({exitcodes.name(load_code)})")
    except KeyboardInterrupt:
        progress.close()
        print(f"geopool gate: interrupted; partial results in {folder}", file=sys.stderr)
        return exitcodes.INTERRUPTED
    finally:
        progress.close()
    verdict = judge(conformance_code=conformance_code, conformance=conformance, waivers=waivers,
                    load_code=load_code, load=load_summary, load_skipped=skipped,
                    conformance_error=conformance_error, strict=options.strict)
    summary = {**verdict, "target": (conformance or {}).get("target") or {"url": options.base_url},
               "started": started.isoformat(timespec="seconds"), "duration_s": round(time.monotonic() - clock, 1),
               "report_dir": str(folder), "waivers_file": str(options.waivers) if options.waivers else None,
               "repro": sorted(str(path.relative_to(folder)) for path in (folder / "repro").glob("*.py")),
               "exit_codes": {str(code): meaning for code, (_, meaning) in exitcodes.TABLE.items()}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))  # the verdict, first
    failed_outputs = _write_outputs(folder, summary, conformance, load_summary)
    for reason in summary["reasons"]:
        print(f"  exit {reason['code']:>2} {reason['name']}: {reason['message']}")
    print(summary["line"])
    print(f"report: {folder / 'report.html'}")
    if failed_outputs:  # a bug of ours: the verdict above stands, but the report folder is incomplete
        summary["report_errors"] = failed_outputs
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        for failure in failed_outputs:
            print(f"error: could not write {failure}", file=sys.stderr)
        return exitcodes.worst([summary["exit_code"], exitcodes.INTERNAL])
    return summary["exit_code"]


def _check_load_options(options: GateOptions) -> None:
    """Usage errors before anything starts, as ``geopool load`` checks them."""
    check_load_values(options.load_values(), embedded=options.base_url is None)


def _why_no_load(conformance_code: int) -> str | None:
    if conformance_code == exitcodes.TARGET_UNUSABLE:
        return "the conformance phase could not use the target"
    if conformance_code in (exitcodes.USAGE, exitcodes.INTERRUPTED, exitcodes.INTERNAL) or conformance_code < 0:
        return f"the conformance phase ended with {exitcodes.name(conformance_code)}"
    return None


# ----------------------------------------------------------------------------------- conformance


def conformance_command(options: GateOptions, folder: Path) -> list[str]:
    out = folder / "conformance"
    args = ["-p", progress_plugin.__name__, "-p", "no:cacheprovider", "-q",
            "--conformance-report", str(out / "conformance.json"), "--junitxml", str(out / "junit.xml"),
            "--conformance-html", str(out / "conformance.html"), "--repro-dir", str(folder / "repro")]
    if options.base_url:
        args += ["--base-url", options.base_url, "--input-dtype", str(options.input_dtype)]
    else:
        args += ["--embedded-model", options.embedded_model, "--embedded-dtype", options.embedded_dtype]
    for flag, value in (("--model", options.model), ("--model-config", options.model_config),
                        ("--reference-checkpoint", options.reference_checkpoint),
                        ("--expectations", options.expectations)):
        if value is not None:
            args += [flag, str(value)]
    if options.destructive:
        args.append("--destructive")
    if options.strict:
        # Unexpected passes fail the conformance run; unchecked MUSTs are the gate's to judge (waivers).
        args.append("--strict-expectations")
    return [sys.executable, "-m", "pytest", *pytest_argv([*args, *options.pytest_args])]


def _run_conformance(options: GateOptions, folder: Path, progress: ProgressLine) -> tuple[int, str | None]:
    out = folder / "conformance"
    tally = out / "progress.jsonl"
    tally.unlink(missing_ok=True)
    env = _child_env(options, {progress_plugin.ENV: str(tally)})

    def show() -> None:
        progress.show("conformance", _conformance_progress(tally))

    code = watch_child(conformance_command(options, folder), env=env, log=out / "output.txt",
                       deadline_s=options.conformance_timeout, tick=show)
    output = (out / "output.txt").read_text(errors="replace")
    error = next((line.split("geopool conformance: ", 1)[1] for line in output.splitlines()
                  if "geopool conformance: " in line and line.startswith(("!", "Exit", "geopool"))), None)
    if code is None:
        return exitcodes.TARGET_UNUSABLE, f"the conformance run did not stop within {options.conformance_timeout:.0f} s"
    return code, error


def _conformance_progress(tally: Path) -> str:
    total, done, failed, xfailed = None, 0, 0, 0
    for record in json_lines(tally):
        if "total" in record:
            total = record["total"]
        elif "outcome" in record:
            done += 1
            failed += record["outcome"] == "failed"
            xfailed += record["outcome"] == "xfailed"
    if total is None:
        return "starting (collecting tests, resolving the target)"
    return f"{done}/{total} tests, {failed} failed, {xfailed} expected failures"


# ------------------------------------------------------------------------------------------ load


def load_command(options: GateOptions, folder: Path) -> list[str]:
    args = ["--report-dir", str(folder / "load"), "--scenario", options.scenario]
    for flag, value in (("--base-url", options.base_url), ("--input-dtype", options.input_dtype),
                        ("--model", options.model), ("--model-config", options.model_config),
                        ("--reference-checkpoint", options.reference_checkpoint),
                        ("--scenario-file", options.scenario_file), ("--slo", options.slo),
                        ("--users", options.users), ("--duration", options.duration)):
        if value is not None:
            args += [flag, str(value)]
    if not options.base_url:
        args += ["--embedded-model", options.embedded_model, "--embedded-dtype", options.embedded_dtype]
    return [sys.executable, "-m", "geopool.cli", "load", *args]


def _run_load(options: GateOptions, folder: Path, progress: ProgressLine) -> int:
    scenario = resolve(options.load_values(), embedded=options.base_url is None)
    records = folder / "load" / "records.jsonl"
    deadline = scenario.end_s + 2 * scenario.grace_s + LOAD_DEADLINE_EXTRA_S

    tally = LoadTally(records, scenario.max_requests, scenario.duration_s)

    def show() -> None:
        progress.show("load", tally.line())

    records.parent.mkdir(parents=True, exist_ok=True)
    code = watch_child(load_command(options, folder), env=_child_env(options, {}), log=records.parent / "output.txt",
                       deadline_s=deadline, tick=show)
    return exitcodes.TARGET_UNUSABLE if code is None else code


# ----------------------------------------------------------------------------------------- common


def _child_env(options: GateOptions, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    if options.api_key:  # by environment, never argv (`ps` shows argv)
        env["GEOPOOL_API_KEY"] = options.api_key
    return env


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_outputs(folder: Path, summary: dict[str, Any], conformance: dict[str, Any] | None,
                   load_summary: dict[str, Any] | None) -> list[str]:
    """JUnit, the page and the Markdown summary, each on its own: one that fails loses none of the
    others. Returns what failed (file: error)."""
    from geopool.gate import junit
    from geopool.gate.html import write_gate_html
    from geopool.gate.markdown import append_step_summary, render_markdown

    def markdown() -> None:
        text = render_markdown(summary, conformance, load_summary)
        (folder / "summary.md").write_text(text)
        append_step_summary(text)

    writers = {
        "junit.xml": lambda: junit.write_gate_junit(folder / "junit.xml", folder / "conformance" / "junit.xml",
                                                    summary, load_summary),
        "report.html": lambda: write_gate_html(folder / "report.html", summary, conformance,
                                               folder / "load" if load_summary is not None else None),
        "summary.md": markdown,
    }
    failed = []
    for name, write in writers.items():
        try:
            write()
        except Exception as exc:  # reported, with the exit code of a geopool bug
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return failed
