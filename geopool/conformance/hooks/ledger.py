"""The requirement ledger's hooks: which tests check which requirement (from ``@pytest.mark.requirement``),
each test phase's outcome and evidence, the JUnit properties that carry them, and what makes the run fail
with --strict / --strict-expectations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geopool import exitcodes
from geopool.conformance.checks import Checks, RequirementFailure, recording
from geopool.conformance.hooks.session import active
from geopool.conformance.hooks.stash import EVALUATED_KEY, LEDGER_KEY, TARGET_KEY
from geopool.conformance.recipes import sending
from geopool.conformance.registry import load_registry
from geopool.conformance.report import RequirementLedger, unchecked_line
from geopool.modes import TENSOR_TO_TENSOR

__all__ = ["default_case", "pytest_collection_modifyitems", "pytest_deselected", "pytest_runtest_call",
           "pytest_runtest_makereport", "pytest_sessionfinish", "requirements_of", "strict_failures", "strict_mode"]


def requirements_of(item: pytest.Item) -> list[str]:
    """The requirement ids a test is marked with, each once (marks on a class and its methods add up)."""
    return list(dict.fromkeys(rid for mark in item.iter_markers("requirement") for rid in mark.args))


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: the ledger knows every test, selected or not
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not active(config):
        return  # another project's "requirement" marker is none of our business
    marked = [item for item in items if requirements_of(item)]
    if not marked:
        return
    every_mode = load_registry(mode=None)
    unknown = sorted({rid for item in marked for rid in requirements_of(item)} - set(every_mode))
    if unknown:
        raise pytest.UsageError(f"tests name requirements missing from conformance/requirements.toml: {unknown}")
    mode = config.getoption("mode", None) or TENSOR_TO_TENSOR
    registry = {rid: requirement for rid, requirement in every_mode.items() if requirement.mode == mode}
    other_mode = [item for item in marked if not set(requirements_of(item)) & set(registry)]
    if other_mode:  # the other mode's checks: not applicable to this server, so not collected at all
        config.hook.pytest_deselected(items=other_mode)
        items[:] = [item for item in items if item not in other_mode]
        marked = [item for item in marked if item not in other_mode]
    mixed = [item.nodeid for item in marked if set(requirements_of(item)) - set(registry)]
    if mixed:
        raise pytest.UsageError(f"tests name requirements of both modes: {mixed[:3]}")
    if not marked:
        return
    ledger = config.stash[LEDGER_KEY] = RequirementLedger(registry)
    for item in marked:
        ledger.add_test(item.nodeid, requirements_of(item))
    if map_path := config.getoption("requirements_map"):
        Path(map_path).parent.mkdir(parents=True, exist_ok=True)
        Path(map_path).write_text(json.dumps(ledger.tests, indent=2))




def pytest_deselected(items: list[pytest.Item]) -> None:
    """Tests ``-k``/``-m``, ``--lf`` or anything else deselected: the cases they check are not checked."""
    for item in items:
        ledger = item.config.stash.get(LEDGER_KEY, None)
        if ledger is not None:
            ledger.deselected.add(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Record what the test body evaluates (every ``Checks``, ``require``, ``send``, ``decode`` call, also in
    Hypothesis tests that build their own Checks), then raise the ``checks`` fixture's failures."""
    found = getattr(item, "funcargs", {}).get("checks")
    recorded = found.failures if isinstance(found, Checks) else []
    with recording() as record, sending():
        item.stash[EVALUATED_KEY] = record
        try:
            result = yield
        except RequirementFailure as failure:  # a send()/decode()/require() after facts the test recorded
            if recorded:
                raise RequirementFailure([*recorded, *failure.evidence]) from failure
            raise
        except Exception as error:  # the facts recorded before the error are verdicts too
            if recorded:
                raise ExceptionGroup("requirement failures, then an error",
                                     [RequirementFailure(recorded), error]) from None
            raise
    if recorded:
        raise RequirementFailure(recorded)
    return result


def default_case(item: pytest.Item) -> str:
    """A test's own case: its parametrize id, else its function name."""
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else getattr(item, "originalname", item.name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report: pytest.TestReport = yield
    ledger = item.config.stash.get(LEDGER_KEY, None)
    ids = requirements_of(item)
    if ledger is None or not ids:
        return report
    if report.when == "setup":
        _add_properties(item, report, [("requirement", rid) for rid in ids])
    if report.when == "call" or report.outcome != "passed":
        case = default_case(item)
        evidence, error = _attribute(call, case)
        if report.when != "call" and report.failed and error is None:  # e.g. a session fixture's send() failed
            error = f"{report.when} failed: " + ("; ".join(f"{e['requirement']}: {e['message']}" for e in evidence)
                                                 or "see the test's report")
        record = item.stash.get(EVALUATED_KEY, None) if report.when == "call" else None
        evaluated = {rid: record.cases(rid, case) for rid in ids} if record is not None else {}
        outcome = ledger.record(item.nodeid, report, ids, evidence=evidence, evaluated=evaluated, error=error)
        unlike = [fact for fact in evidence if "unlike_expected" in fact]
        if unlike:  # shown with the failure: its case is a known one, but the entry's signature does not match
            report.sections.append(("geopool: not the known failure of an expected case", "\n".join(
                f"{fact['requirement']} [{fact['case']}]: {fact['message']}" for fact in unlike)))
        _add_properties(item, report, _outcome_properties(ledger, item.nodeid, ids))
        if outcome == "expected-fail":
            report.outcome = "skipped"
            report.wasxfail = "; ".join(sorted({f"{e['requirement']} [{e['case']}]: {_reason(ledger, e)}"
                                                for e in evidence}))
    return report


#: Requirement outcomes that the JUnit testcase states with their evidence.
_JUNIT_OUTCOMES = ("fail", "error", "expected-fail")
#: Failing facts per requirement, and characters per fact, a JUnit testcase carries (conformance.json has all).
_JUNIT_FACTS, _JUNIT_CHARS = 3, 300


def _add_properties(item: pytest.Item, report: pytest.TestReport, properties: list[tuple[str, str]]) -> None:
    """JUnit testcase properties: pytest's junitxml writes the teardown report's ``user_properties``,
    which are the item's at that time; a teardown report is built already, so it gets them too."""
    item.user_properties.extend(properties)
    if report.when == "teardown":
        report.user_properties.extend(properties)


def _outcome_properties(ledger: RequirementLedger, nodeid: str, ids: list[str]) -> list[tuple[str, str]]:
    """``outcome`` (``POOL-X-001: fail``) and up to three ``evidence`` (``POOL-X-001 [case]: message``)
    per requirement this test phase failed, errored or failed as expected."""
    found = []
    for rid in ids:
        result = ledger.results[rid][-1] if ledger.results[rid] else None
        if result is None or result["test"] != nodeid or result["outcome"] not in _JUNIT_OUTCOMES:
            continue
        found.append(("outcome", f"{rid}: {result['outcome']}"))
        for fact in result["evidence"][:_JUNIT_FACTS]:
            text = f"{rid} [{fact['case']}]: {fact.get('message', '')}" if fact.get("case") else \
                f"{rid}: {fact.get('message', '')}"
            found.append(("evidence", text if len(text) <= _JUNIT_CHARS else text[:_JUNIT_CHARS - 3] + "..."))
    return found


def _reason(ledger: RequirementLedger, evidence: dict) -> str:
    matched = ledger.expectations.matching(evidence["requirement"], evidence["case"])
    return matched[0].reason if matched else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With --strict-expectations, a known defect that no longer fails makes the run fail; with --strict,
    so does a MUST requirement nothing checked."""
    ledger = session.config.stash.get(LEDGER_KEY, None)
    if ledger is None or exitstatus != 0 or TARGET_KEY not in session.config.stash:
        return
    reasons = strict_failures(session.config, ledger)
    if reasons:
        only_unchecked = all(not reason.startswith("unexpected-pass") for reason in reasons)
        session.exitstatus = exitcodes.UNCHECKED_MUST if only_unchecked else exitcodes.FAILED


def strict_mode(config: pytest.Config) -> bool:
    """pytest's own ``--strict`` (ini ``strict = true``; pytest 9): the conformance run is strict too, so a
    MUST requirement left unchecked (skipped or not evaluated) fails it, and so does an unexpected pass."""
    try:
        return bool(config.getini("strict"))
    except ValueError:  # a pytest without the ``strict`` ini key
        return bool(getattr(config.option, "strict", False))


def strict_failures(config: pytest.Config, ledger: RequirementLedger) -> list[str]:
    """Why --strict / --strict-expectations fail this run (empty: they don't)."""
    strict = strict_mode(config)
    reasons = []
    if strict or config.getoption("strict_expectations"):
        reasons += [f"unexpected-pass: {entry.id} case {entry.label}" for entry in ledger.unexpected_passes()]
    if strict and ledger.unchecked_must():
        reasons.append(unchecked_line(ledger))
    return reasons


def _attribute(call: pytest.CallInfo, case: str) -> tuple[list[dict], str | None]:
    """The failing facts of a test phase (their case defaulting to the test's), and the first error that is
    not a requirement failure (exception type and message), if any: a group can hold both."""
    if call.excinfo is None or call.excinfo.errisinstance(pytest.skip.Exception):
        return [], None
    raised = call.excinfo.value
    group = list(raised.exceptions) if isinstance(raised, BaseExceptionGroup) else [raised]
    failures = [e for e in group if isinstance(e, RequirementFailure)]
    evidence = [{**item.as_dict(), "case": item.case or case} for f in failures for item in f.evidence]
    errors = [e for e in group if not isinstance(e, RequirementFailure)]
    if not errors:
        return evidence, None
    message = str(errors[0]).strip().splitlines()
    short = " | ".join(message[:6])[:800]
    return evidence, f"{type(errors[0]).__name__}: {short}" if short else type(errors[0]).__name__


