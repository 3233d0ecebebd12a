"""Per-requirement outcomes of a conformance run, the JSON report and the terminal table."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from geopool.conformance.registry import Expectations, Requirement

__all__ = ["OUTCOMES", "RequirementLedger", "write_report", "terminal_table"]

#: Worst first: a requirement's outcome is the worst of its tests'.
OUTCOMES = ("fail", "error", "unexpected-pass", "expected-fail", "pass", "skip", "not-run")


class RequirementLedger:
    """Which tests check which requirement, and what each test said about each of them."""

    def __init__(self, registry: dict[str, Requirement]) -> None:
        self.registry = registry
        #: Requirement id → reason, for the server under test (set once the target is known).
        self.expected: dict[str, str] = {}
        self.tests: dict[str, list[str]] = {rid: [] for rid in registry}
        self.results: dict[str, list[dict[str, Any]]] = {rid: [] for rid in registry}

    def add_test(self, nodeid: str, ids: list[str]) -> None:
        for rid in ids:
            self.tests[rid].append(nodeid)

    def record(self, nodeid: str, report: pytest.TestReport, ids: list[str], failing: list[str],
               evidence: list[dict], expected: dict[str, str]) -> str:
        """Record one test phase; return the test's overall conformance outcome."""
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            for rid in ids:
                self._add(rid, nodeid, "skip", [{"message": reason}])
            return "skip"
        if report.failed and report.when != "call":
            for rid in ids:
                self._add(rid, nodeid, "error", [e for e in evidence if e["requirement"] == rid])
            return "error"
        overall = []
        for rid in ids:
            if rid in failing:
                outcome = "expected-fail" if rid in expected else "fail"
            else:
                outcome = "pass"
            overall.append(outcome)
            self._add(rid, nodeid, outcome, [e for e in evidence if e["requirement"] == rid])
        if "fail" in overall:
            return "fail"
        return "expected-fail" if "expected-fail" in overall else "pass"

    def _add(self, rid: str, nodeid: str, outcome: str, evidence: list[dict]) -> None:
        self.results[rid].append({"test": nodeid, "outcome": outcome, "evidence": evidence})

    def outcome(self, rid: str) -> str:
        """Worst test outcome; a known defect whose every run test passed is an unexpected pass."""
        seen = {entry["outcome"] for entry in self.results[rid]}
        if not seen:
            return "not-run"
        if seen == {"skip"}:
            return "skip"
        seen.discard("skip")
        worst = next(o for o in OUTCOMES if o in seen)
        return "unexpected-pass" if worst == "pass" and rid in self.expected else worst


def write_report(path: Path, ledger: RequirementLedger, target: Any, expectations: Expectations,
                 duration_s: float, replay: str) -> dict:
    requirements = []
    for rid, requirement in ledger.registry.items():
        outcome = ledger.outcome(rid)
        entry = {**requirement.__dict__, "outcome": outcome, "tests": ledger.results[rid] or
                 [{"test": nodeid, "outcome": "not-run", "evidence": []} for nodeid in ledger.tests[rid]]}
        if rid in expectations.reasons:
            entry["expected_failure_reason"] = expectations.reasons[rid]
        entry["replay"] = [replay.format(test=t["test"]) for t in entry["tests"]
                           if t["outcome"] in ("fail", "error", "expected-fail")]
        requirements.append(entry)
    report = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 2),
        "target": target.describe(),
        "expectations": {"file": expectations.source, "requirements": sorted(expectations.reasons),
                         "line": expectations.line, "warning": expectations.warning,
                         "applies_from": expectations.applies_from, "applies_below": expectations.applies_below},
        "summary": dict(Counter(entry["outcome"] for entry in requirements)),
        "requirements": requirements,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    return report


def terminal_table(ledger: RequirementLedger, target: Any) -> list[str]:
    described = target.describe()
    lines = [f"target {described['url']}  model {described['model']}  vLLM {described['vllm_version']}  "
             f"({'embedded' if described['embedded'] else 'external'})",
             f"{'requirement':<16}{'level':<8}{'outcome':<17}tests  statement"]
    for rid, requirement in ledger.registry.items():
        outcome = ledger.outcome(rid)
        lines.append(f"{rid:<16}{requirement.level:<8}{outcome:<17}{len(ledger.tests[rid]):>5}  "
                     f"{requirement.statement[:70]}")
    counts = Counter(ledger.outcome(rid) for rid in ledger.registry)
    lines.append("requirements: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]))
    return lines
