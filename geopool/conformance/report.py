"""Per-requirement outcomes of a conformance run, the JSON report and the terminal table.

The ledger's rules, per test and requirement the test is marked with:

- skipped → "skip"; a failure outside the test body (setup, teardown) or an exception in it that is
  not a :class:`~geopool.conformance.checks.RequirementFailure` → "error" (never expected-fail);
- failing facts → "expected-fail" when an expectation entry matches every one of them (requirement and
  case), else "fail";
- no failing fact → "pass" only when the test evaluated the requirement (a ``checks.that``/``require``/
  ``send``/``decode`` call), else "not-run": the test ran but did not check it.

A requirement's outcome is the worst of its tests', except that one with some tests checked and others
not (skipped, deselected with ``-k``/``-m``, or run without evaluating it) is "partial", never "pass" or
"expected-fail": its unchecked cases are listed, and a partial MUST counts as unchecked.

An expectation entry is "expected-fail" when one of its cases failed, "unexpected-pass" when none did
but one of them was evaluated and held, "not-run" when none of its cases was evaluated.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from geopool.conformance.registry import Expectations, ExpectedFailure, Requirement
from geopool.conformance.reproducers import write_reproducers

__all__ = ["OUTCOMES", "NOT_EVALUATED", "UNCHECKED", "RequirementLedger", "ids_by_reason", "listed_ids", "write_report",
           "terminal_table",
           "unchecked_line"]

#: Worst first: a requirement's outcome is the worst of its tests' ("partial": some of them checked it).
OUTCOMES = ("fail", "error", "unexpected-pass", "partial", "expected-fail", "pass", "skip", "not-run")
#: Outcomes that leave a MUST requirement unchecked (the gate's exit 13 unless waived).
UNCHECKED = ("partial", "skip", "not-run")
#: The evidence of a requirement a test is marked with but did not evaluate.
NOT_EVALUATED = "the test ran but did not evaluate this requirement"
#: Outcomes of a test that checked the requirement: its evaluated cases that did not fail held.
_CHECKED = ("pass", "fail", "expected-fail")


class RequirementLedger:
    """Which tests check which requirement, and what each test said about each of them."""

    def __init__(self, registry: dict[str, Requirement]) -> None:
        self.registry = registry
        #: The expected failures for the server under test (set once the target is known).
        self.expectations: Expectations = Expectations(None, {})
        self.tests: dict[str, list[str]] = {rid: [] for rid in registry}
        self.results: dict[str, list[dict[str, Any]]] = {rid: [] for rid in registry}
        #: Tests collected and then deselected (``-k``, ``-m``): their cases are not checked.
        self.deselected: set[str] = set()

    def add_test(self, nodeid: str, ids: list[str]) -> None:
        for rid in ids:
            self.tests[rid].append(nodeid)

    def record(self, nodeid: str, report: pytest.TestReport, ids: list[str], *, evidence: list[dict],
               evaluated: dict[str, set[str]], error: str | None = None) -> str:
        """Record one test phase; return the test's overall conformance outcome.

        ``evidence``: the failing facts (dicts with requirement, case, message); ``evaluated``: requirement
        → the cases the test evaluated; ``error``: the exception that is not a requirement failure, if any.
        """
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            for rid in ids:
                self._add(rid, nodeid, "skip", [{"message": reason}])
            return "skip"
        if error is not None or (report.failed and report.when != "call"):
            # A requirement the test saw fail before the error fails (the error follows its evidence); the
            # others errored, and so did one whose failure an expectation excuses: it never excuses a crash.
            message = error or "the test failed outside its body"
            overall = []
            for rid in ids:
                failing = [e for e in evidence if e.get("requirement") == rid]
                if failing and self._record_requirement(nodeid, rid, failing, evaluated.get(rid, set())) == "fail":
                    self.results[rid][-1]["evidence"].append({"requirement": rid, "message": f"then: {message}"})
                    overall.append("fail")
                    continue
                if failing:
                    self.results[rid].pop()
                self._add(rid, nodeid, "error", [{"requirement": rid, "message": message}, *failing])
                overall.append("error")
            return next(o for o in OUTCOMES if o in overall)
        overall = [self._record_requirement(nodeid, rid, [e for e in evidence if e.get("requirement") == rid],
                                            evaluated.get(rid, set())) for rid in ids]
        return next(o for o in OUTCOMES if o in overall)

    def _record_requirement(self, nodeid: str, rid: str, failing: list[dict], cases: set[str]) -> str:
        failed = {str(item.get("case")) for item in failing}
        for item in failing:
            matched = self.expectations.matching(rid, item.get("case"))
            explained = [entry for entry in matched if entry.explains(item)]
            if explained:
                item["expected_by"] = [entry.label for entry in explained]
            elif matched:  # the case is known to fail, but not like this: shown beside the entry it did not match
                item["unlike_expected"] = [f"{entry.label}: {entry.signature}" for entry in matched]
                item["message"] = (f"{item.get('message', '')} [not the known failure of this case: expected "
                                   f"{'; '.join(entry.signature for entry in matched)}]")
        if failing:
            outcome = "expected-fail" if all("expected_by" in item for item in failing) else "fail"
        else:
            outcome = "pass" if cases else "not-run"
        shown = failing or ([] if cases else [{"requirement": rid, "message": NOT_EVALUATED}])
        self._add(rid, nodeid, outcome, shown, failed=sorted(failed), held=sorted(cases - failed))
        return outcome

    def _add(self, rid: str, nodeid: str, outcome: str, evidence: list[dict], *,
             failed: list[str] = (), held: list[str] = ()) -> None:
        self.results[rid].append({"test": nodeid, "outcome": outcome, "evidence": evidence,
                                  "failed_cases": list(failed), "held_cases": list(held)})

    def entry_outcome(self, entry: ExpectedFailure) -> tuple[str, list[str], list[str]]:
        """An expectation entry's outcome, the failing cases it matched and its evaluated cases that held."""
        failed, held = set(), set()
        for result in self.results.get(entry.id, []):
            failed |= {str(item.get("case")) for item in result["evidence"]
                       if entry.label in item.get("expected_by", ()) and entry.matches(entry.id, item.get("case"))}
            if result["outcome"] in _CHECKED:
                held |= {case for case in result["held_cases"] if entry.matches(entry.id, case)}
        outcome = "expected-fail" if failed else "unexpected-pass" if held else "not-run"
        return outcome, sorted(failed), sorted(held)

    def outcome(self, rid: str) -> str:
        """Worst test outcome; an expectation entry of the requirement that held everywhere it was
        evaluated makes it an unexpected pass (unless a test failed or errored); checked by some of its
        tests and not by others, it is partial."""
        seen = {entry["outcome"] for entry in self.results[rid]}
        if not seen:
            return "not-run"
        if seen <= {"skip", "not-run"}:  # nothing checked it
            return "skip" if seen == {"skip"} else "not-run"
        worst = next(o for o in OUTCOMES if o in seen - {"skip", "not-run"})
        if worst in ("fail", "error"):
            return worst
        if worst == "unexpected-pass" or any(
                self.entry_outcome(entry)[0] == "unexpected-pass" for entry in self._entries(rid)):
            return "unexpected-pass"
        return "partial" if self.unchecked_cases(rid) else worst

    def unchecked_cases(self, rid: str) -> list[dict[str, str]]:
        """The tests of ``rid`` that did not check it, each with why: deselected, skipped (the skip's
        reason), run without evaluating it, or not run."""
        found = []
        for nodeid in self.tests[rid]:
            outcomes = [entry for entry in self.results[rid] if entry["test"] == nodeid]
            if any(entry["outcome"] not in ("skip", "not-run") for entry in outcomes):
                continue
            skips = [entry for entry in outcomes if entry["outcome"] == "skip" and entry["evidence"]]
            why = ("deselected" if nodeid in self.deselected else _short(skips[0]["evidence"][0]["message"])
                   if skips else "ran without evaluating it" if outcomes else "not run")
            found.append({"test": nodeid, "why": why})
        return found

    def _entries(self, rid: str) -> list[ExpectedFailure]:
        return [entry for entry in self.expectations.entries if entry.id == rid]

    def unexpected_passes(self) -> list[ExpectedFailure]:
        return [entry for entry in self.expectations.entries if self.entry_outcome(entry)[0] == "unexpected-pass"]

    def unchecked_must(self) -> list[tuple[str, str, str]]:
        """MUST requirements not wholly checked: (id, outcome, why) for outcomes partial, skip and not-run."""
        found = []
        for rid, requirement in self.registry.items():
            outcome = self.outcome(rid)
            if requirement.level == "MUST" and outcome in UNCHECKED:
                found.append((rid, outcome, self._why_unchecked(rid)))
        return found

    def unchecked_causes(self, rid: str) -> list[str]:
        """Every reason ``rid`` went unchecked, each once, in the words of :meth:`unchecked_cases` (``deselected``,
        a skip's gist such as ``destructive input``, ...): what a gate waiver must name to cover it."""
        causes = {case["why"] for case in self.unchecked_cases(rid)}
        return sorted(causes) if causes else [self._why_unchecked(rid)]

    def _why_unchecked(self, rid: str) -> str:
        results = self.results[rid]
        if not results:
            if self.tests[rid] and set(self.tests[rid]) <= self.deselected:
                return "deselected"
            return "no test selected" if not self.tests[rid] else "no test ran"
        if self.outcome(rid) == "partial":
            unchecked = self.unchecked_cases(rid)
            return f"partly: {len(unchecked)} of {len(self.tests[rid])} tests did not check it, {unchecked[0]['why']}"
        skips = [e["evidence"][0]["message"] for e in results if e["outcome"] == "skip" and e["evidence"]]
        if skips:
            return _short(skips[0])
        return "tests ran but did not evaluate it"


def _short(reason: str) -> str:
    """The gist of a skip reason: its text before the first colon (``no reference weights: pass ...``)."""
    text = str(reason).removeprefix("Skipped: ").strip().split(":", 1)[0].strip()
    if len(text) > 60:
        text = text[:57].rsplit(" ", 1)[0] + "..."
    return text or "skipped"


def unchecked_line(ledger: RequirementLedger) -> str:
    """One line: which MUST requirements went unchecked, and why; or that all were checked."""
    unchecked = ledger.unchecked_must()
    musts = sum(1 for requirement in ledger.registry.values() if requirement.level == "MUST")
    if not unchecked:
        return f"all {musts} MUST requirements checked"
    listed = ids_by_reason((rid, why) for rid, _, why in unchecked)
    return f"{len(unchecked)} MUST requirement{'s' if len(unchecked) != 1 else ''} not checked: {listed}"


def ids_by_reason(pairs: Iterable[tuple[str, str]]) -> str:
    """(id, why) pairs on one line, grouped by why: ``A, B (no reference weights); C (destructive input)``."""
    by_why: dict[str, list[str]] = {}
    for rid, why in pairs:
        by_why.setdefault(why, []).append(rid)
    return "; ".join(f"{listed_ids(ids)} ({why})" for why, ids in by_why.items())


def listed_ids(ids: Sequence[str], shown: int = 6) -> str:
    """Ids for one line (``A, B and 3 more``): a partial run leaves dozens unselected, which the JSON
    reports list in full."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def write_report(path: Path, ledger: RequirementLedger, target: Any, expectations: Expectations,
                 duration_s: float, replay: str, *, strict_failures: Sequence[str] = (),
                 repro_dir: Path | None = None) -> dict:
    """Write conformance.json and return what it holds. ``strict_failures``: why ``--strict`` or
    ``--strict-expectations`` fail the run (kept in the report, so that its pages can say so); with
    ``repro_dir``, a standalone reproducer per failing requirement too (its path under the requirement's
    ``reproducer``)."""
    requirements = []
    for rid, requirement in ledger.registry.items():
        outcome = ledger.outcome(rid)
        entry = {**requirement.__dict__, "outcome": outcome, "tests": ledger.results[rid] or
                 [{"test": nodeid, "outcome": "not-run", "evidence": []} for nodeid in ledger.tests[rid]]}
        if outcome == "partial":
            entry["unchecked_cases"] = ledger.unchecked_cases(rid)
        if rid in expectations.reasons:
            entry["expected_failure_reason"] = expectations.reasons[rid]
            entry["expected_failures"] = [_entry_report(ledger, e) for e in expectations.entries if e.id == rid]
        entry["replay"] = [replay.format(test=t["test"]) for t in entry["tests"]
                           if t["outcome"] in ("fail", "error", "expected-fail")]
        requirements.append(entry)
    report = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 2),
        "target": target.describe(),
        "unchecked_must": [{"id": rid, "outcome": outcome, "why": why, "causes": ledger.unchecked_causes(rid)}
                           for rid, outcome, why in ledger.unchecked_must()],
        "unchecked_line": unchecked_line(ledger),
        "strict_failures": list(strict_failures),
        "expectations": {"file": expectations.source, "requirements": sorted(expectations.reasons),
                         "line": expectations.line, "warning": expectations.warning,
                         "applies_from": expectations.applies_from, "applies_below": expectations.applies_below,
                         "entries": [_entry_report(ledger, e) for e in expectations.entries]},
        "summary": dict(Counter(entry["outcome"] for entry in requirements)),
        "requirements": requirements,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))  # first: a reproducer's failure must not lose it
    if repro_dir is not None:
        try:
            for rid, script in write_reproducers(report, repro_dir).items():
                next(entry for entry in requirements if entry["id"] == rid)["reproducer"] = script
        except Exception as exc:  # a convenience failed: the verdicts stand, and the report says so
            report["reproducers_error"] = f"{type(exc).__name__}: {exc}"
        path.write_text(json.dumps(report, indent=2, default=str))
    return report


def _entry_report(ledger: RequirementLedger, entry: ExpectedFailure) -> dict[str, Any]:
    outcome, failed, held = ledger.entry_outcome(entry)
    return {**entry.as_dict(), "outcome": outcome, "matched_cases": failed, "held_cases": held}


def terminal_table(ledger: RequirementLedger, target: Any) -> list[str]:
    """The unchecked-MUST line first, then one line per requirement and one per expectation entry."""
    described = target.describe()
    lines = [unchecked_line(ledger),
             f"target {described['url']}  model {described['model']}  vLLM {described['vllm_version']}  "
             f"({'embedded' if described['embedded'] else 'external'})",
             *([f"image-to-image through {described['plugin']}"] if described.get("plugin") else []),
             f"{'requirement':<16}{'level':<8}{'outcome':<17}tests  statement"]
    for rid, requirement in ledger.registry.items():
        outcome = ledger.outcome(rid)
        lines.append(f"{rid:<16}{requirement.level:<8}{outcome:<17}{len(ledger.tests[rid]):>5}  "
                     f"{requirement.statement[:70]}")
        for entry in ledger.expectations.entries:
            if entry.id == rid:
                entry_outcome = ledger.entry_outcome(entry)[0]
                lines.append(f"{'':<18}case {entry.label:<28} {entry_outcome:<16} {entry.reason[:60]}")
    counts = Counter(ledger.outcome(rid) for rid in ledger.registry)
    lines.append("requirements: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]))
    return lines
