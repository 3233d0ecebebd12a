"""The gate's Markdown summary (``summary.md``), also appended to a GitHub Actions job's summary page.

Short on purpose: the verdict line first, then what a reviewer needs to decide whether to open the full
report — the conformance outcomes with each failed requirement's first piece of evidence, the MUST
requirements left unchecked and the waivers, the load verdict and its SLO bounds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geopool.conformance.html import verdict as conformance_verdict
from geopool.conformance.report import listed_ids

__all__ = ["append_step_summary", "render_markdown"]

#: Outcomes in the order the counts table lists them.
_OUTCOMES = ("fail", "error", "unexpected-pass", "partial", "expected-fail", "pass", "skip", "not-run")
#: Characters of a failed requirement's evidence in its table cell.
_EVIDENCE_CHARS = 160


def render_markdown(gate_summary: Mapping[str, Any], conformance: Mapping[str, Any] | None,
                    load_summary: Mapping[str, Any] | None) -> str:
    """The summary: ``gate_summary`` is the gate's summary.json, ``conformance`` the conformance.json report
    (None: the suite wrote none) and ``load_summary`` the load run's summary.json (None: no load run)."""
    passed = gate_summary.get("verdict") == "pass"
    lines = [f"### {'✅' if passed else '❌'} {_inline(gate_summary.get('line', gate_summary.get('verdict', '')))}", ""]
    target = gate_summary.get("target") or {}
    if target:
        lines += [f"Target `{target.get('url')}`, model `{target.get('model')}`, vLLM {target.get('vllm_version')}"
                  f" ({'embedded' if target.get('embedded') else 'external'}); "
                  f"{float(gate_summary.get('duration_s') or 0):.0f} s.", ""]
    if gate_summary.get("reasons"):
        lines += [f"- exit {reason['code']} `{reason['name']}`: {_inline(reason['message'])}"
                  for reason in gate_summary["reasons"]] + [""]
    lines += _conformance(gate_summary.get("conformance") or {}, conformance)
    lines += _load(gate_summary.get("load") or {}, load_summary)
    if gate_summary.get("repro"):
        lines += ["Reproducers: " + ", ".join(f"`{path}`" for path in gate_summary["repro"]), ""]
    lines.append("Full report: `report.html` in the gate's report folder.")
    return "\n".join(lines) + "\n"


def _conformance(gate: Mapping[str, Any], report: Mapping[str, Any] | None) -> list[str]:
    lines = ["#### Conformance", ""]
    if report is None:
        return [*lines, f"No conformance report (exit {gate.get('exit_code', '?')}).", ""]
    lines += [f"**{_inline(conformance_verdict(report)[1])}**", ""]
    counts = report.get("summary") or {}
    lines += ["| " + " | ".join(o for o in _OUTCOMES if counts.get(o)) + " |",
              "|" + "---|" * sum(1 for o in _OUTCOMES if counts.get(o)),
              "| " + " | ".join(str(counts[o]) for o in _OUTCOMES if counts.get(o)) + " |", ""]
    failed = [r for r in report.get("requirements", []) if r["outcome"] in ("fail", "error", "unexpected-pass")]
    if failed:
        lines += ["| requirement | outcome | evidence |", "|---|---|---|"]
        lines += [f"| {r['id']} | {r['outcome']} | {_cell(_first_evidence(r))} |" for r in failed] + [""]
    if report.get("unchecked_must"):
        lines += [f"Unchecked MUST requirements: {_inline(report['unchecked_line'])}", ""]
    if gate.get("waived"):
        lines += ["Waived: " + "; ".join(f"{w['id']} ({_inline(w['reason'])})" for w in gate["waived"]), ""]
    if gate.get("unwaived"):
        lines += [f"Not waived: {listed_ids(gate['unwaived'], 10)}", ""]
    return lines


def _first_evidence(requirement: Mapping[str, Any]) -> str:
    """One line: the first failing fact of the requirement's first failing test (its case and message)."""
    if requirement["outcome"] == "unexpected-pass":
        return "its expected failure held everywhere it was checked: the expectation entry is out of date"
    for test in requirement.get("tests", []):
        for fact in test.get("evidence") or []:
            if test["outcome"] in ("fail", "error"):
                case = f"[{fact['case']}] " if fact.get("case") else ""
                return case + str(fact.get("message", ""))
    return ""


def _load(gate: Mapping[str, Any], summary: Mapping[str, Any] | None) -> list[str]:
    lines = ["#### Load", ""]
    if gate.get("skipped"):
        return [*lines, f"Skipped: {_inline(gate['skipped'])}", ""]
    if summary is None:
        return [*lines, f"No load summary (exit {gate.get('exit_code', '?')}).", ""]
    if "requests" not in summary:  # the run never started: its summary holds the error
        return [*lines, f"**{summary.get('verdict', 'error')}** (exit {summary.get('exit_code')}): "
                        f"{_inline(summary.get('error', ''))}", ""]
    scenario, requests = summary.get("scenario") or {}, summary["requests"]
    corrected = (summary.get("latency_ms") or {}).get("corrected") or {}
    lines += [f"**{summary['verdict']}** (exit {summary['exit_code']}): scenario `{scenario.get('name')}`, "
              f"{requests.get('measured')} requests measured, {requests.get('ok')} ok, "
              f"{summary.get('throughput_rps', 0):.2f} req/s" + _goodput(summary.get("goodput")) + (
                  f", corrected p50 {corrected['p50']:.0f} ms, p99 {corrected['p99']:.0f} ms"
                  if corrected.get("p50") is not None and corrected.get("p99") is not None else ""), ""]
    if summary.get("invalid_reasons"):
        lines += [f"- invalid: {_inline(reason)}" for reason in summary["invalid_reasons"]] + [""]
    checks = (summary.get("slo") or {}).get("checks") or []
    if checks:
        lines += ["| SLO bound | observed | state |", "|---|---|---|"]
        lines += [f"| {_cell(c['bound'])} | {_observed(c.get('observed'))} | {c['state']}"
                  f"{' — ' + _cell(c['by']) if c.get('by') else ''} |" for c in checks]
    return [*lines, ""]


def _observed(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _cell(str(value))


def _inline(text: Any) -> str:
    """Text safe on one Markdown line: no line breaks, no HTML."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: Any) -> str:
    """Text safe in a table cell: one line, no pipes, cut short."""
    text = _inline(text)
    if len(text) > _EVIDENCE_CHARS:
        text = text[:_EVIDENCE_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def append_step_summary(text: str) -> Path | None:
    """Append ``text`` to the file ``$GITHUB_STEP_SUMMARY`` names (a GitHub Actions job's summary page);
    return that path, or None when the variable is not set (outside GitHub Actions: nothing to do)."""
    where = os.environ.get("GITHUB_STEP_SUMMARY")
    if not where:
        return None
    path = Path(where)
    with path.open("a", encoding="utf-8") as file:
        file.write(text if text.endswith("\n") else text + "\n")
    return path


def _goodput(figures: dict | None) -> str:
    """``, goodput 0.95 req/s (19/20 within 3000 ms)`` when the run's SLO defines goodput."""
    if not figures:
        return ""
    return (f", goodput {figures['rps']:.2f} req/s ({figures['good']}/{figures['of']} "
            f"within {figures['max_latency_ms']:g} ms)")
