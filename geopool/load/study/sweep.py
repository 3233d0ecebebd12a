"""``geopool sweep``: the highest open-loop arrival rate at which an SLO holds.

Steps of increasing constant-arrival rate, each a complete ``geopool load`` run (the shipped
``open-constant`` scenario with the step's rate and duration) against one server, judged against
the SLO (goodput included) with the load suite's validity rules: enough samples for every bound
(LoadGen's early stopping), a steady state, every scheduled arrival sent. A step that breaches ends
the sweep; the result is the highest rate whose step met the SLO and was valid.

Why one Locust child per step rather than one staged run judged stage by stage: each step then *is*
a load run — the same records, summary.json, report.html, validity rules and exit code as
``geopool load`` at that rate, with nothing new to trust — and stopping after a breached step is
simply not starting the next one (a staged run would keep loading an overloaded server until its
schedule ends, and its next stage would inherit the previous stage's queue). The price is Locust's
start-up and payload pool per step (a few seconds) and a short warm-up per step; the server, when
embedded, starts only once.

Knee: see :mod:`geopool.load.study.knee`. Exit codes (geopool's table): 0 a rate was found, 10 no step met
the SLO and one breached (the first breach ends the sweep: usually the first step), 11 no step was
valid, 12 the target failed, 2 interrupted, 4 usage.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.judge.slo import load_slo
from geopool.load.report.run_report import json_safe
from geopool.load.run import command
from geopool.load.run.options import option
from geopool.load.study import knee
from geopool.options import Option, declare

__all__ = ["MAX_STEPS", "OPTIONS", "SweepStep", "result_of", "run_sweep", "step_from_summary", "step_rates"]

MAX_STEPS = 50
STEP_SCENARIO = "open-constant"
REPORTS = Path("reports") / "sweep"
#: ``geopool sweep``'s options: its own (declared into geopool's one option table), then the load options
#: that keep their meaning in every step.
OPTIONS: tuple[Option, ...] = (
    option("base_url"),
    option("slo").but(required=True),
    *declare(
        Option("--rates", "Offered rates, ascending, comma-separated (e.g. 0.5,1,1.5) [or --start/--step/--max; "
                          "default 0.5,1,1.5,2,2.5,3]."),
        Option("--start", "First rate (req/s), with --step and --max.", kind=float, low=0, low_open=True),
        Option("--step", "Rate increment (req/s), with --start and --max.", kind=float, low=0, low_open=True),
        Option("--max", "Last rate at most (req/s), with --start and --step.", kind=float, low=0, low_open=True),
        Option("--step-duration", "Seconds per step.", kind=float, low=1, default=30.0),
    ),
    option("warmup").but(default=5.0),  # a step is short: its first seconds are excluded whatever the scenario says
    option("users"),
    option("report_dir"),
    *(option(dest) for dest in ("window_requests", "stability_tolerance", "payload", "pool_size", "verify",
                                "reference_checkpoint", "processes", "numeric_bounds", "model", "model_config",
                                "input_dtype", "api_key")),
)
DEFAULT_RATES = "0.5,1,1.5,2,2.5,3"
#: The states a step can end in, from its ``geopool load`` exit code.
STATES = {exitcodes.OK: "met", exitcodes.SLO_BREACHED: "breached", exitcodes.LOAD_INVALID: "invalid"}


@dataclasses.dataclass(frozen=True)
class SweepStep:
    """One step: its offered rate, its state (met / breached / invalid / failed) and its figures."""

    rate: float
    state: str
    exit_code: int
    figures: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "state": self.state, "exit_code": self.exit_code, **self.figures}


def step_rates(rates: str | None, start: float | None, step: float | None, maximum: float | None) -> list[float]:
    """The offered rates, ascending: ``--rates 0.5,1,1.5`` or ``--start R --step R --max R`` (not both)."""
    progression = (start, step, maximum)
    if rates is not None:
        if any(value is not None for value in progression):
            raise ConfigError("give either --rates or --start/--step/--max, not both")
        try:
            values = [float(part) for part in rates.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--rates {rates!r} is not a comma-separated list of numbers (e.g. 0.5,1,1.5)") from None
        if not values:
            raise ConfigError("--rates is empty; give rates such as 0.5,1,1.5")
    else:
        if any(value is None for value in progression):
            raise ConfigError("give --rates R,R,... or all three of --start, --step and --max")
        if not step > 0 or not start > 0 or maximum < start:
            raise ConfigError(f"--start {start:g} --step {step:g} --max {maximum:g}: need start > 0, step > 0 "
                              "and max >= start")
        count = math.floor((maximum - start) / step + 1e-9) + 1
        if count > MAX_STEPS:
            raise ConfigError(f"--start/--step/--max give {count} steps; at most {MAX_STEPS}")
        values = [round(start + index * step, 9) for index in range(count)]
    if any(not (value > 0 and math.isfinite(value)) for value in values):
        raise ConfigError(f"--rates: every rate must be a positive number, got {values}")
    if any(later <= earlier for earlier, later in itertools.pairwise(values)):
        raise ConfigError(f"--rates must increase step by step, got {values}")
    if len(values) > MAX_STEPS:
        raise ConfigError(f"--rates has {len(values)} steps; at most {MAX_STEPS}")
    return values


def step_from_summary(rate: float, code: int, summary: Mapping[str, Any] | None) -> SweepStep:
    """A step's verdict and figures from its ``geopool load`` exit code and summary.json."""
    state = STATES.get(code, "failed")
    if not summary or "requests" not in summary:
        return SweepStep(rate, state, code, {"error": (summary or {}).get("error", f"no summary (exit {code})")})
    latency = summary["latency_ms"]["corrected"]
    figures = {
        "throughput_rps": summary["throughput_rps"], "goodput": summary.get("goodput"),
        "latency_ms": {key: latency.get(key) for key in ("mean", "p50", "p90", "p99")},
        "requests": summary["requests"]["measured"], "ok": summary["requests"]["ok"],
        "valid": summary["valid"], "invalid_reasons": summary["invalid_reasons"],
        "checks": [{key: check.get(key) for key in ("bound", "state", "observed", "by")}
                   for check in summary["slo"]["checks"]],
    }
    return SweepStep(rate, state, code, figures)


def result_of(steps: Sequence[SweepStep]) -> tuple[float | None, int]:
    """The highest rate whose step met the SLO (valid), and the sweep's exit code."""
    met = [step.rate for step in steps if step.state == "met"]
    failed = [step for step in steps if step.state == "failed"]
    if failed:
        code = failed[-1].exit_code
        return (max(met) if met else None), code if code == exitcodes.INTERRUPTED else exitcodes.TARGET_UNUSABLE
    if met:
        return max(met), exitcodes.OK
    if any(step.state == "breached" for step in steps):
        return None, exitcodes.SLO_BREACHED
    return None, exitcodes.LOAD_INVALID


def run_sweep(values: Mapping[str, Any], *, embedded: dict[str, Any]) -> int:
    """Run the steps (the option values of ``geopool sweep``) and write sweep.json and report.html."""
    if values.get("rates") is None and all(values.get(key) is None for key in ("start", "step", "max")):
        values = {**values, "rates": DEFAULT_RATES}
    rates = step_rates(values.get("rates"), values.get("start"), values.get("step"), values.get("max"))
    if values.get("slo") is None:
        raise ConfigError("geopool sweep needs --slo FILE: each step is judged against it (see load/slo/example.toml)")
    slo_spec = load_slo(values["slo"])
    report_dir = Path(values.get("report_dir") or REPORTS / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if report_dir.exists() and any(report_dir.iterdir()):
        raise ConfigError(f"{report_dir} is not empty; pick a new --report-dir")
    base = {**values, "scenario": STEP_SCENARIO, "scenario_file": None, "arrival": "constant",
            "duration": values["step_duration"], "max_requests": None}
    for key in ("rates", "start", "step", "max", "step_duration"):
        base.pop(key, None)
    if values.get("warmup") is not None and values["warmup"] >= values["step_duration"]:
        raise ConfigError(f"--warmup {values['warmup']:g} must be below --step-duration {values['step_duration']:g}")
    first = command.check_load_values({**base, "rate": rates[0], "report_dir": report_dir},
                                      embedded=values["base_url"] is None)
    report_dir.mkdir(parents=True, exist_ok=True)
    steps: list[SweepStep] = []
    with command.target(values["base_url"], embedded) as (url, server):
        print(f"geopool sweep: {len(rates)} step(s) of {first.duration_s:g} s at {', '.join(f'{r:g}' for r in rates)} "
              f"req/s against {url}; SLO {slo_spec.source}; report in {report_dir}", flush=True)
        for index, rate in enumerate(rates):
            step_dir = report_dir / f"step-{index + 1:02d}-{rate:g}rps"
            step_values = {**base, "rate": rate, "report_dir": step_dir}
            scenario = command.check_load_values(step_values, embedded=server is not None)
            child = command.child_values(step_values, scenario, url, server)
            print(f"geopool sweep: step {index + 1}/{len(rates)}: {rate:g} req/s", flush=True)
            code = command.run_child(child, scenario, step_dir)
            steps.append(step_from_summary(rate, code, _summary(step_dir)))
            print(f"geopool sweep: step {index + 1} at {rate:g} req/s: {steps[-1].state} (exit {code})", flush=True)
            if steps[-1].state in ("breached", "failed"):
                break
    best, code = result_of(steps)
    document = sweep_document(steps, rates, best, code, slo_spec.source, url, first.duration_s, first.warmup_s)
    (report_dir / "sweep.json").write_text(json.dumps(json_safe(document), indent=2))
    from geopool.load.report.sweep_report import render_sweep_html

    (report_dir / "report.html").write_text(render_sweep_html(document))
    found = f"{best:g} req/s" if best is not None else "none"
    print(f"geopool sweep: highest rate meeting the SLO: {found}; knee (Kneedle on p50): "
          f"{_rate(document['knee']['latency_p50'].get('rate'))}; saturation: "
          f"{_rate(document['knee']['saturation'].get('rate'))}; exit {code}; report: {report_dir}/report.html",
          flush=True)
    return code


def sweep_document(steps: Sequence[SweepStep], rates: Sequence[float], best: float | None, code: int,
                   slo_source: str, url: str, step_duration_s: float, warmup_s: float) -> dict[str, Any]:
    """sweep.json: the plan, every step run, the result, the knee estimates and the exit code."""
    measured = [step for step in steps if step.figures.get("latency_ms")]
    offered = [step.rate for step in measured]
    return {
        "target": url, "slo": slo_source, "rates": list(rates), "step_duration_s": step_duration_s,
        "warmup_s": warmup_s, "steps": [step.to_dict() for step in steps],
        "stopped_early": len(steps) < len(rates), "highest_rate_meeting_slo": best,
        "knee": {
            "latency_p50": knee.kneedle(offered, [step.figures["latency_ms"].get("p50") for step in measured]),
            "saturation": knee.saturation(offered, [step.figures["throughput_rps"] for step in measured]),
        },
        "exit_code": code, "exit_meaning": exitcodes.describe(code),
    }


def _summary(step_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((step_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} req/s"
