"""``geopool compare BASE NEW``: did NEW get slower (or serve less) than BASE?

BASE and NEW are folders of ``geopool load`` runs (``records.jsonl`` + ``summary.json``), or gate
folders (their ``load/``). The figures come from the per-request records, selected exactly as the run's
own statistics select them (:func:`geopool.load.judge.stats.measured_ok_records`: verified OK, sent after
warm-up); the statistics are :mod:`geopool.load.study.comparison`'s (moving-block bootstrap: see there why).

Runs that cannot be compared are refused (exit 4): an open-loop run against a closed-loop one (their
main latencies are different clocks: corrected vs uncorrected, and an open loop's throughput is the
offered rate). Different scenario names, users, rates, models or payloads are compared with a warning:
a renamed scenario is common, and the warning says what differs. An invalid run (summary ``valid``
false) is compared, said so in the verdict, and exits 11 unless ``--allow-invalid``; a regression
(exit 14) still takes precedence, as a breach does over an invalid run.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.judge import goodput, slo
from geopool.load.judge.finished_run import Run, read_run
from geopool.load.report import compare_report
from geopool.load.report.run_report import json_safe
from geopool.load.study import comparison

__all__ = ["compare_runs", "run_compare", "verdict_line"]

#: The verdict when no figure could be compared (too few samples): exit 11, never a pass.
NOT_COMPARED = "not compared"
#: Scenario settings that, when they differ, make a comparison questionable (warned, not refused).
WATCHED_SETTINGS = ("name", "users", "rate", "arrival", "payload", "verify", "stages")


def _differences(base: Run, new: Run) -> tuple[list[str], list[str]]:
    """(refusals, warnings) for comparing ``base`` with ``new``."""
    if base.scenario.open_loop != new.scenario.open_loop:
        return [f"BASE ran a {base.scenario.mode} loop and NEW a {new.scenario.mode} loop: their latencies "
                "and throughput mean different things; compare runs of one mode"], []
    warnings = []
    for key in WATCHED_SETTINGS:
        before, after = base.summary["scenario"].get(key), new.summary["scenario"].get(key)
        if before != after:
            warnings.append(f"scenario {key} differs: {before!r} in BASE, {after!r} in NEW")
    models = [(run.summary.get("target") or {}).get("model") for run in (base, new)]
    if models[0] != models[1]:
        warnings.append(f"served model differs: {models[0]!r} in BASE, {models[1]!r} in NEW")
    return [], warnings


def _facts(run: Run) -> dict[str, Any]:
    summary, target = run.summary, run.summary.get("target") or {}
    started = datetime.datetime.fromtimestamp(float(summary["t0"]), tz=datetime.UTC)
    return {"folder": str(run.folder), "scenario": summary["scenario"].get("name"), "mode": run.scenario.mode,
            "users": run.scenario.users, "rate": summary["scenario"].get("rate"), "target": target.get("url"),
            "vllm_version": target.get("vllm_version"), "model": target.get("model"),
            "started_utc": started.strftime("%Y-%m-%d %H:%M:%S"), "samples": len(run.done),
            "throughput_rps": summary.get("throughput_rps"), "valid": bool(summary.get("valid")),
            "invalid_reasons": list(summary.get("invalid_reasons") or []), "goodput": summary.get("goodput"),
            "stopped_early": summary.get("stopped_early")}


def _slo_view(spec: slo.Slo, run: Run) -> dict[str, Any]:
    """The run judged against ``--slo`` (not the SLO it ran with): its goodput recomputed with this bound."""
    summary, latencies = dict(run.summary), dict(run.latencies_ms)
    if spec.goodput is not None:
        latencies["goodput"] = goodput.effective_latencies_ms(run.records, run.scenario, run.measure_from)
        summary["goodput"] = goodput.goodput_figures(latencies["goodput"], spec.goodput.max_latency_ms,
                                                     float(summary.get("measured_seconds") or 0.0),
                                                     run.scenario.open_loop)
    checks = slo.evaluate(spec, summary, latencies)
    code = slo.exit_code(checks, bool(summary.get("valid")))
    return {"verdict": exitcodes.name(code), "exit_code": code, "checks": checks, "goodput": summary.get("goodput")}


def compare_runs(base: Run, new: Run, *, confidence: float = comparison.DEFAULT_CONFIDENCE,
                 threshold: float = comparison.DEFAULT_THRESHOLD, slo_spec: slo.Slo | None = None,
                 allow_invalid: bool = False) -> dict[str, Any]:
    """Everything ``compare.json`` holds: both runs' facts, the figures, the verdict, the line and the exit code."""
    refusals, warnings = _differences(base, new)
    if refusals:
        raise ConfigError(refusals[0])
    kind = base.main_latency
    rows = comparison.compare_latencies(base.latencies_ms[kind], new.latencies_ms[kind], confidence=confidence,
                                        threshold=threshold)
    compared = {row["figure"] for row in rows}
    skipped = [f"p{p:g}" for p in comparison.CANDIDATE_PERCENTILES if f"p{p:g}" not in compared]
    if skipped:
        warnings.append(f"not compared (too few samples beyond them; a percentile p needs "
                        f"{comparison.TAIL_SAMPLES} samples over it per run): {', '.join(skipped)}")
    throughput = comparison.compare_throughput(comparison.window_rates(base.done, base.measure_from),
                                               comparison.window_rates(new.done, new.measure_from),
                                               confidence=confidence, threshold=threshold)
    if throughput is None:
        fewest = comparison.MIN_WINDOWS * comparison.PER_WINDOW
        warnings.append(f"throughput not compared: a run has fewer than {fewest} completions after warm-up")
    else:
        rows.append(throughput)
    verdict = comparison.overall_verdict(rows) if rows else NOT_COMPARED
    invalid = [f"{label} run is invalid: {'; '.join(run.summary.get('invalid_reasons') or ['valid=false'])}"
               for label, run in (("BASE", base), ("NEW", new)) if not run.summary.get("valid")]
    codes = {exitcodes.REGRESSED} if verdict == comparison.REGRESSED else set()
    if (invalid and not allow_invalid) or verdict == NOT_COMPARED:  # nothing compared is never "no change"
        codes.add(exitcodes.LOAD_INVALID)
    code = exitcodes.worst(codes)
    result: dict[str, Any] = {
        "base": _facts(base), "new": _facts(new), "latency": kind, "confidence": confidence, "threshold": threshold,
        "method": "moving-block bootstrap, percentile intervals (geopool.load.study.comparison)",
        "figures": rows, "shift": comparison.shift_test(base.latencies_ms[kind], new.latencies_ms[kind]),
        "warnings": warnings, "invalid": invalid, "verdict": verdict, "exit_code": code,
        "exit_name": exitcodes.name(code),
        "slo": None if slo_spec is None else {"file": slo_spec.source, "base": _slo_view(slo_spec, base),
                                              "new": _slo_view(slo_spec, new)},
    }
    result["line"] = verdict_line(result)
    return result


def verdict_line(result: Mapping[str, Any]) -> str:
    """``regressed: p50 +101.2 ms (+48 %, 95 % CI +92.0..+110.3 ms); ...`` — the one line of the verdict."""
    worst = [row for row in result["figures"] if row["verdict"] == result["verdict"]] \
        if result["verdict"] != comparison.NO_CHANGE else []
    parts = [f"{row['figure']} {row['difference']:+.1f} {row['unit']} ({row['relative']:+.1%}, "
             f"{result['confidence']:.0%} CI {row['interval'][0]:+.1f}..{row['interval'][1]:+.1f})" for row in worst]
    line = (f"{result['verdict']} at {result['confidence']:.0%} confidence, threshold {result['threshold']:.0%}"
            + (": " + "; ".join(parts) if parts else ""))
    if result["invalid"]:
        line += " — " + "; ".join(result["invalid"])
    return line


def run_compare(base: Path, new: Path, *, slo_file: Path | None, threshold: float, confidence: float,
                report: Path | None, allow_invalid: bool) -> int:
    """The command: read, compare, print the table, write compare.json and compare.html; the exit code."""
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must be within 0..1 (exclusive), got {confidence!r}")
    if threshold < 0:
        raise ConfigError(f"--threshold must be a percentage >= 0, got {threshold * 100:g}")
    slo_spec = slo.load_slo(slo_file) if slo_file is not None else None
    base_run, new_run = read_run(base), read_run(new)
    result = compare_runs(base_run, new_run, confidence=confidence, threshold=threshold, slo_spec=slo_spec,
                          allow_invalid=allow_invalid)
    folder = report or new_run.folder / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(json.dumps(json_safe(result), indent=2))
    (folder / "compare.html").write_text(compare_report.render(result, base_run, new_run))
    compare_report.print_table(result)
    print(f"geopool compare: {result['line']} (exit {result['exit_code']}); report: {folder}/compare.html", flush=True)
    return result["exit_code"]
