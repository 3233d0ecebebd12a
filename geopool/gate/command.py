"""``geopool gate``: one command that gates a release — the conformance suite, then a load scenario
against the same target, then the SLO — with one report folder and one exit code (:mod:`geopool.exitcodes`).

Each phase runs as a child process (``pytest`` on the installed suite; ``geopool load``), exactly as a
user would run it alone, with a hard deadline; the gate reads what they leave (``conformance.json``,
the load ``summary.json``) and judges (:mod:`geopool.gate.verdict`). Why child processes: pytest must
import the suite itself (assertion rewriting, its own plugins and exit codes), Locust monkey-patches
the process it runs in (gevent), and a child can be stopped at its deadline with everything it started
(an embedded vLLM server) without taking the gate and its report down with it.

A child's command line is rendered from the option table (:mod:`geopool.gate.options`): the gate's
parsed values go back out through the same rows (:func:`geopool.options.argv`). Every value is checked
once, here, before the first request — the waiver file, the expectations file, the scenario, the SLO
file, ``--input-dtype`` against a URL — so a bad one is one error line and nothing starts.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from geopool import exitcodes
from geopool import options as shared
from geopool.conformance.command import pytest_argv
from geopool.conformance.registry import load_expectations, load_registry
from geopool.deadlines import load_command_s
from geopool.errors import ERROR_PREFIX, ConfigError
from geopool.events import EventChannel
from geopool.gate import progress_plugin
from geopool.gate.options import CONFORMANCE_PHASE, LOAD_PHASE
from geopool.gate.verdict import judge
from geopool.gate.waivers import load_waivers
from geopool.load.run.command import check_load_values
from geopool.load.run.options import option as load_option
from geopool.load.run.tally import load_line
from geopool.load.scenario import Scenario
from geopool.options import Option
from geopool.progress import ProgressLine, watch_child

__all__ = ["conformance_command", "default_report_dir", "load_command", "run_gate"]

def default_report_dir() -> Path:
    return Path("reports") / f"gate-{datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')}"


def run_gate(values: Mapping[str, Any], pytest_args: Sequence[str] = ()) -> int:
    """Run both phases, write the report folder, print the verdict; return the exit code.

    ``values``: the gate's options (:data:`geopool.gate.options.GATE_OPTIONS`), keyed by ``dest``, as
    click parsed them (so each row's type, choices and bounds hold already); ``pytest_args`` go to pytest.
    """
    waivers = load_waivers(values["waivers"], load_registry())
    scenario = _check(values)
    options = _Run(dict(values), tuple(pytest_args), scenario)
    folder = Path(values["report_dir"] or default_report_dir())
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        # An earlier run's conformance.json or load summary would be read as this run's.
        raise ConfigError(f"--report-dir {str(folder)!r} is a file or a folder that is not empty; name a new folder")
    (folder / "conformance").mkdir(parents=True, exist_ok=True)
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    progress = ProgressLine()
    target = values["base_url"] or "the embedded server"
    progress.say(f"geopool gate: conformance, then load ({options.scenario.name}) against {target}; report in {folder}")
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
                    conformance_error=conformance_error, strict=values["strict_expectations"])
    summary = {**verdict, "target": (conformance or {}).get("target") or {"url": values["base_url"]},
               "started": started.isoformat(timespec="seconds"), "duration_s": round(time.monotonic() - clock, 1),
               "report_dir": str(folder), "waivers_file": str(values["waivers"]) if values["waivers"] else None,
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
            print(f"{ERROR_PREFIX}could not write {failure}", file=sys.stderr)
        return exitcodes.worst([summary["exit_code"], exitcodes.INTERNAL])
    return summary["exit_code"]


@dataclasses.dataclass(frozen=True)
class _Run:
    """One gate run: its checked option values (keyed by ``dest``; the table's defaults filled in by
    click), the arguments for pytest, and the load scenario the check resolved."""

    values: Mapping[str, Any]
    pytest_args: tuple[str, ...]
    scenario: Scenario


def _check(values: Mapping[str, Any]) -> Scenario:
    """Every usage error of both phases, before anything starts: the load phase's as ``geopool load``
    checks them (the scenario, returned, the SLO file, ``--input-dtype`` against a URL), and the
    expectations file. Each child, being a command of its own, runs the same checks on the same values
    again and finds nothing new; none of them can start a server or send a request with a bad value."""
    scenario = check_load_values(_phase_values(LOAD_PHASE, values), embedded=values["base_url"] is None)
    expectations = values.get("expectations")
    if expectations is not None and expectations != "none":
        load_expectations(None, registry=load_registry(mode=None), path=Path(expectations))
    return scenario


def _phase_rows(rows: Iterable[Option], values: Mapping[str, Any]) -> tuple[Option, ...]:
    """A phase's rows for this run: against a URL, not the embedded server's (they would mean nothing)."""
    embedded = {row.flag for row in (shared.EMBEDDED_MODEL, shared.EMBEDDED_DTYPE, shared.DEVICE)}
    return tuple(row for row in rows if values.get("base_url") is None or row.flag not in embedded)


def _phase_values(rows: Iterable[Option], values: Mapping[str, Any]) -> dict[str, Any]:
    return {row.dest: values.get(row.dest) for row in rows}


def _why_no_load(conformance_code: int) -> str | None:
    if conformance_code == exitcodes.TARGET_UNUSABLE:
        return "the conformance phase could not use the target"
    if conformance_code in (exitcodes.USAGE, exitcodes.INTERRUPTED, exitcodes.INTERNAL) or conformance_code < 0:
        return f"the conformance phase ended with {exitcodes.name(conformance_code)}"
    return None


# ----------------------------------------------------------------------------------- conformance


def conformance_command(values: Mapping[str, Any], folder: Path, pytest_args: Sequence[str] = ()) -> list[str]:
    """The conformance phase's command line: pytest on the suite, the gate's report paths, and the
    conformance phase's rows rendered from ``values`` (the secret goes by environment)."""
    out = folder / "conformance"
    args = ["-p", progress_plugin.__name__, "-p", "no:cacheprovider", "-q",
            *shared.CONFORMANCE_REPORT.to_argv(out / "conformance.json"), "--junitxml", str(out / "junit.xml"),
            *shared.CONFORMANCE_HTML.to_argv(out / "conformance.html"), *shared.REPRO_DIR.to_argv(folder / "repro"),
            # --strict-expectations among them: unexpected passes fail the conformance run; unchecked MUSTs
            # are the gate's to judge (waivers), so pytest's own --strict is not passed.
            *shared.argv(_phase_rows(CONFORMANCE_PHASE, values), values)]
    return [sys.executable, "-m", "pytest", *pytest_argv([*args, *pytest_args])]


def _run_conformance(options: _Run, folder: Path, progress: ProgressLine) -> tuple[int, str | None]:
    out = folder / "conformance"
    channel = EventChannel()  # the progress plugin's events (geopool.gate.progress_plugin)

    def show() -> None:
        progress.show("conformance", _conformance_progress(channel))

    code = watch_child(conformance_command(options.values, folder, options.pytest_args), env=_child_env(options),
                       log=out / "output.txt", deadline_s=options.values["conformance_timeout"], tick=show,
                       events=channel)
    output = (out / "output.txt").read_text(errors="replace")
    # a run stopped before any test says why in one line (geopool.conformance.hooks.session.stop)
    error = next((line.removeprefix(ERROR_PREFIX) for line in output.splitlines()
                  if line.startswith(ERROR_PREFIX)), None)
    if code is None:
        timeout = options.values["conformance_timeout"]
        return exitcodes.TARGET_UNUSABLE, f"the conformance run did not stop within {timeout:.0f} s"
    return code, error


def _conformance_progress(channel: EventChannel) -> str:
    collected = channel.latest("collected")
    if collected is None:
        return "starting (collecting tests, resolving the target)"
    done = channel.count("test")
    failed, xfailed = channel.count("test", "failed"), channel.count("test", "xfailed")
    return f"{done}/{collected['total']} tests, {failed} failed, {xfailed} expected failures"


# ------------------------------------------------------------------------------------------ load


def load_command(values: Mapping[str, Any], folder: Path) -> list[str]:
    """The load phase's command line: ``geopool load`` into the gate's folder, with the load phase's rows
    rendered from ``values`` (the secret goes by environment)."""
    args = [*load_option("report_dir").to_argv(folder / "load"), *shared.argv(_phase_rows(LOAD_PHASE, values), values)]
    return [sys.executable, "-m", "geopool.cli", "load", *args]


def _run_load(options: _Run, folder: Path, progress: ProgressLine) -> int:
    embedded = options.values["base_url"] is None  # `geopool load` starts a server with the default start-up deadline
    deadline = load_command_s(options.scenario, server_startup_s=shared.STARTUP_TIMEOUT.default if embedded else None)
    channel = EventChannel()  # the load run's tally, passed up by `geopool load` (geopool.load.run.tally)

    def show() -> None:
        progress.show("load", load_line(channel.latest("load")))

    (folder / "load").mkdir(parents=True, exist_ok=True)
    code = watch_child(load_command(options.values, folder), env=_child_env(options), events=channel,
                       log=folder / "load" / "output.txt", deadline_s=deadline, tick=show)
    return exitcodes.TARGET_UNUSABLE if code is None else code


# ----------------------------------------------------------------------------------------- common


def _child_env(options: _Run) -> dict[str, str]:
    # secrets by environment, never argv (`ps` shows argv)
    return {**os.environ, **shared.secret_env((shared.API_KEY,), options.values)}


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
