"""The ledger's rules, each seen in a pytester run of a tiny suite through the conformance plugin.

No server is contacted: the inner runs' conftest puts a stand-in target in the plugin's stash before the
plugin would resolve one (:data:`geopool.conformance.plugin.TARGET_KEY`), and the inner tests state
their facts about requirements directly. What is under test is the bookkeeping (which outcome each
fact, crash or skip becomes, and the exit code), not any vLLM verdict.
"""

from __future__ import annotations

import json

import pytest
from standin_suite import CONFTEST, PLUGINS  # tests/ is on sys.path (its conftest.py)

from geopool import exitcodes
from geopool.conformance.registry import load_registry
from geopool.conformance.report import NOT_EVALUATED

pytestmark = pytest.mark.usefixtures("no_target_from_the_environment")


def run(pytester, suite: str, expectations: str = "", *args: str):
    """Run ``suite`` with ``expectations`` (an expectations file's entries); return the result and report."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=suite)
    path = pytester.path / "expected.toml"
    path.write_text('applies_from = "0.32.0"\n' + expectations)
    report = pytester.path / "report.json"
    result = pytester.runpytest(*PLUGINS, "--expectations", str(path), "--conformance-report", str(report), *args)
    return result, json.loads(report.read_text())


def requirement(report: dict, rid: str) -> dict:
    return next(entry for entry in report["requirements"] if entry["id"] == rid)


def results_by_test(report: dict, rid: str) -> dict[str, dict]:
    return {test["test"].split("::")[-1]: test for test in requirement(report, rid)["tests"]}


def test_a_marked_requirement_no_check_evaluated_is_not_run(pytester):
    result, report = run(pytester, '''
import pytest
from geopool.conformance.checks import Checks
from geopool.conformance.support import require

@pytest.mark.requirement("POOL-ENV-001", "POOL-ENV-002")
def test_checks_one_of_two(checks):
    checks.that("POOL-ENV-001", True, "held")

@pytest.mark.requirement("POOL-ENV-003", "POOL-ENV-004")
def test_own_checks_and_require_without_the_fixture():
    Checks().that("POOL-ENV-003", True, "held")  # as Hypothesis tests do
    require("POOL-ENV-004", True, "held")

@pytest.mark.requirement("POOL-ENV-005")
def test_returns_early():
    return
''')
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    outcomes = {rid: requirement(report, rid)["outcome"] for rid in
                ("POOL-ENV-001", "POOL-ENV-002", "POOL-ENV-003", "POOL-ENV-004", "POOL-ENV-005")}
    assert outcomes == {"POOL-ENV-001": "pass", "POOL-ENV-002": "not-run", "POOL-ENV-003": "pass",
                        "POOL-ENV-004": "pass", "POOL-ENV-005": "not-run"}
    unrun = results_by_test(report, "POOL-ENV-002")["test_checks_one_of_two"]
    assert unrun["outcome"] == "not-run" and unrun["evidence"][0]["message"] == NOT_EVALUATED


def test_a_crash_is_an_error_never_an_expected_failure(pytester):
    expected = '[[expected-fail]]\nid = "POOL-ENV-001"\nreason = "listed: any failure of it is known"\n'
    result, report = run(pytester, '''
import pytest

@pytest.mark.requirement("POOL-ENV-001")
def test_crashes(checks):
    checks.that("POOL-ENV-001", False, "a real failure, but the test then crashes")
    {}["missing"]
''', expected)
    result.assert_outcomes(failed=1)  # not xfailed
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert requirement(report, "POOL-ENV-001")["outcome"] == "error"
    test = results_by_test(report, "POOL-ENV-001")["test_crashes"]
    assert test["outcome"] == "error" and test["evidence"][0]["message"] == "KeyError: 'missing'"


def test_recorded_failures_are_kept_when_a_later_step_raises(pytester):
    result, report = run(pytester, '''
import pytest
from geopool.conformance.support import require

@pytest.mark.requirement("POOL-ENV-001", "POOL-ENV-002")
def test_fails_then_a_send_fails(checks):
    checks.that("POOL-ENV-001", False, "the first answer's envelope is wrong")
    require("POOL-ENV-002", False, "the next request got no answer")

@pytest.mark.requirement("POOL-ENV-003", "POOL-ENV-004")
def test_fails_then_crashes(checks):
    checks.that("POOL-ENV-003", False, "a real failure before the crash")
    {}["missing"]
''')
    result.assert_outcomes(failed=2)
    outcomes = {rid: requirement(report, rid)["outcome"] for rid in
                ("POOL-ENV-001", "POOL-ENV-002", "POOL-ENV-003", "POOL-ENV-004")}
    # both facts of the first test are failures; the crash fails what the test saw fail and errors the rest
    assert outcomes == {"POOL-ENV-001": "fail", "POOL-ENV-002": "fail", "POOL-ENV-003": "fail",
                        "POOL-ENV-004": "error"}
    crashed = results_by_test(report, "POOL-ENV-003")["test_fails_then_crashes"]["evidence"]
    assert [fact["message"] for fact in crashed] == ["a real failure before the crash", "then: KeyError: 'missing'"]


def test_a_new_failing_case_of_an_expected_requirement_fails_the_run(pytester):
    expected = ('[[expected-fail]]\nid = "POOL-SURV-002"\ncase = "known-*"\nreason = "D9: the known killer"\n'
                'evidence = "500, then the server exits"\n')
    result, report = run(pytester, '''
import pytest

@pytest.mark.requirement("POOL-SURV-002")
@pytest.mark.parametrize("case", ["known-killer", "new-killer"])
def test_killers(checks, case):
    checks.fail("POOL-SURV-002", f"{case} killed the server")

@pytest.mark.requirement("POOL-SURV-002")
def test_named_cases(checks):
    checks.fail("POOL-SURV-002", "listed", case="known-too")
    checks.fail("POOL-SURV-002", "not listed", case="other")
''', expected)
    result.assert_outcomes(failed=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tests = results_by_test(report, "POOL-SURV-002")
    assert {name: test["outcome"] for name, test in tests.items()} == {
        "test_killers[known-killer]": "expected-fail", "test_killers[new-killer]": "fail",
        "test_named_cases": "fail"}
    assert tests["test_named_cases"]["evidence"][0]["expected_by"] == ["known-*"]
    assert "expected_by" not in tests["test_named_cases"]["evidence"][1]
    assert requirement(report, "POOL-SURV-002")["outcome"] == "fail"
    [entry] = report["expectations"]["entries"]
    assert entry["outcome"] == "expected-fail" and entry["matched_cases"] == ["known-killer", "known-too"]
    assert entry["evidence"] == "500, then the server exits"


def test_a_failure_unlike_its_entrys_signature_is_a_failure_shown_beside_the_entry(pytester):
    """The entry was written for a 500 naming the sparse tensor's size: a 200 (the tensor accepted), or a 500
    saying something else, fails; only the known failure is excused."""
    expected = ('[[expected-fail]]\nid = "POOL-SEC-003"\ncase = "out-of-bounds*"\nreason = "D5: a 500, not a 4xx"\n'
                'status = [500]\nmessage = "size is inconsistent with indices"\n')
    result, report = run(pytester, '''
import pytest

ANSWERS = {"out-of-bounds-known": (500, "size is inconsistent with indices: for dim 0, size is 6"),
           "out-of-bounds-accepted": (200, None), "out-of-bounds-other-500": (500, "pop from empty list")}

@pytest.mark.requirement("POOL-SEC-003")
@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_sparse(checks, case):
    status, server_message = ANSWERS[case]
    checks.fail("POOL-SEC-003", f"answered {status}", status=status, server_message=server_message)
''', expected)
    result.assert_outcomes(failed=2, xfailed=1)
    tests = results_by_test(report, "POOL-SEC-003")
    assert {name: test["outcome"] for name, test in tests.items()} == {
        "test_sparse[out-of-bounds-known]": "expected-fail", "test_sparse[out-of-bounds-accepted]": "fail",
        "test_sparse[out-of-bounds-other-500]": "fail"}
    accepted = tests["test_sparse[out-of-bounds-accepted]"]["evidence"][0]
    assert "expected_by" not in accepted
    assert accepted["unlike_expected"] == ["out-of-bounds*: status [500], message /size is inconsistent with indices/"]
    assert "not the known failure of this case" in accepted["message"]
    result.stdout.fnmatch_lines(["*POOL-SEC-003*answered 200*not the known failure of this case*"])
    [entry] = report["expectations"]["entries"]
    assert entry["outcome"] == "expected-fail" and entry["matched_cases"] == ["out-of-bounds-known"]
    assert entry["status"] == [500] and requirement(report, "POOL-SEC-003")["outcome"] == "fail"


def test_an_expected_case_that_passes_is_an_unexpected_pass(pytester):
    expected = ('[[expected-fail]]\nid = "POOL-REJ-010"\ncase = "fixed"\nreason = "D3: was a killer"\n'
                '[[expected-fail]]\nid = "POOL-REJ-010"\ncase = "still-broken"\nreason = "a known defect"\n'
                '[[expected-fail]]\nid = "POOL-REJ-010"\ncase = "skipped"\nreason = "not sent in this run"\n')
    suite = '''
import pytest

@pytest.mark.requirement("POOL-REJ-010")
@pytest.mark.parametrize("case", ["fixed", "still-broken", "skipped"])
def test_cases(checks, case):
    if case == "skipped":
        pytest.skip("destructive input: not sent")
    checks.that("POOL-REJ-010", case == "fixed", f"{case} failed")
'''
    result, report = run(pytester, suite, expected)
    result.assert_outcomes(passed=1, xfailed=1, skipped=1)
    assert result.ret == 0  # without --strict, an unexpected pass is reported, not failed
    assert requirement(report, "POOL-REJ-010")["outcome"] == "unexpected-pass"
    entries = {entry["case"]: entry for entry in report["expectations"]["entries"]}
    assert {case: entry["outcome"] for case, entry in entries.items()} == {
        "fixed": "unexpected-pass", "still-broken": "expected-fail", "skipped": "not-run"}
    assert entries["fixed"]["held_cases"] == ["fixed"]
    result.stdout.fnmatch_lines(["*case fixed*unexpected-pass*D3: was a killer*",
                                 "*case still-broken*expected-fail*"])
    for flag in ("--strict-expectations", "--strict"):
        strict, _ = run(pytester, suite, expected, flag)
        assert strict.ret == pytest.ExitCode.TESTS_FAILED, flag
        strict.stdout.fnmatch_lines([f"the run fails ({flag}): unexpected-pass: POOL-REJ-010 case fixed"])


def test_a_skipped_must_tops_the_summary_and_fails_under_strict(pytester):
    suite = '''
import pytest

@pytest.mark.requirement("POOL-NUM-002")
def test_numerics():
    pytest.skip("no reference weights: pass --reference-checkpoint DIR")

@pytest.mark.requirement("POOL-ENV-001")
def test_envelope(checks):
    checks.that("POOL-ENV-001", True, "held")
'''
    result, report = run(pytester, suite)
    assert result.ret == 0  # skips change no exit code without --strict
    lines = result.stdout.lines
    first = lines[next(i for i, line in enumerate(lines) if "geopool conformance" in line) + 1]
    assert "MUST requirements not checked: " in first and "POOL-NUM-002 (no reference weights)" in first, first
    assert "POOL-ENV-001" not in first
    unchecked = {entry["id"]: entry for entry in report["unchecked_must"]}
    assert unchecked["POOL-NUM-002"] == {"id": "POOL-NUM-002", "outcome": "skip", "why": "no reference weights",
                                         "causes": ["no reference weights"]}
    assert report["unchecked_line"] == first
    strict, _ = run(pytester, suite, "", "--strict")
    assert strict.ret == exitcodes.UNCHECKED_MUST
    strict.stdout.fnmatch_lines(["the run fails (--strict): *MUST requirements not checked*POOL-NUM-002*"])


def test_strict_passes_a_run_that_checked_every_must(pytester):
    musts = [rid for rid, entry in load_registry().items() if entry.level == "MUST"]
    result, report = run(pytester, f'''
import pytest

@pytest.mark.requirement(*{musts!r})
def test_everything(checks):
    for rid in {musts!r}:
        checks.that(rid, True, "held")
''', "", "--strict")
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert report["unchecked_must"] == [] and report["unchecked_line"] == f"all {len(musts)} MUST requirements checked"


PARTLY_CHECKED = '''
import pytest

@pytest.mark.requirement("POOL-REJ-010")
@pytest.mark.parametrize("case", ["messages-not-a-list", "two-image-parts", "empty-messages"])
def test_rejects(checks, case):
    if case == "empty-messages":
        pytest.skip("destructive input: pass --destructive")
    checks.that("POOL-REJ-010", True, "answered 400", case=case)

@pytest.mark.requirement("POOL-ENV-001")
def test_envelope(checks):
    checks.that("POOL-ENV-001", True, "held")

@pytest.mark.requirement("POOL-ENV-001")
def test_envelope_again(checks):
    checks.that("POOL-ENV-001", True, "held")
'''


def test_a_requirement_checked_by_some_of_its_cases_is_partial_and_unchecked(pytester):
    """One passing case beside a skipped one is no pass: the requirement is partial, its skipped case
    listed, and a partial MUST counts as unchecked (exit 13 under --strict, as the gate judges it)."""
    result, report = run(pytester, PARTLY_CHECKED)
    assert result.ret == 0
    rej = requirement(report, "POOL-REJ-010")
    assert rej["outcome"] == "partial" and requirement(report, "POOL-ENV-001")["outcome"] == "pass"
    assert [case["why"] for case in rej["unchecked_cases"]] == ["destructive input"]
    assert rej["unchecked_cases"][0]["test"].endswith("test_rejects[empty-messages]")
    unchecked = {entry["id"]: entry for entry in report["unchecked_must"]}
    assert unchecked["POOL-REJ-010"]["outcome"] == "partial" and "POOL-ENV-001" not in unchecked
    assert "partly: 1 of 3 tests did not check it, destructive input" == unchecked["POOL-REJ-010"]["why"]
    strict, _ = run(pytester, PARTLY_CHECKED, "", "--strict")
    assert strict.ret == exitcodes.UNCHECKED_MUST


def test_cases_deselected_with_k_or_m_leave_their_requirement_partial(pytester):
    """``-k`` removes tests before they run: the ledger still knows them, and says they were not checked."""
    result, report = run(pytester, PARTLY_CHECKED, "", "-k", "not two-image-parts and not envelope_again")
    assert result.ret == 0
    rej, env = requirement(report, "POOL-REJ-010"), requirement(report, "POOL-ENV-001")
    assert rej["outcome"] == env["outcome"] == "partial"
    assert sorted(case["why"] for case in rej["unchecked_cases"]) == ["deselected", "destructive input"]
    assert env["unchecked_cases"] == [{"test": env["unchecked_cases"][0]["test"], "why": "deselected"}]
    # every cause, each once: what a gate waiver must name to cover the requirement
    causes = {entry["id"]: entry["causes"] for entry in report["unchecked_must"]}
    assert causes["POOL-REJ-010"] == ["deselected", "destructive input"] and causes["POOL-ENV-001"] == ["deselected"]
    assert causes["POOL-NUM-002"] == ["no test selected"]  # no test of the run names it
    _, report = run(pytester, PARTLY_CHECKED, "", "-k", "rejects")
    assert requirement(report, "POOL-ENV-001")["outcome"] == "not-run"
    assert {e["id"]: e["why"] for e in report["unchecked_must"]}["POOL-ENV-001"] == "deselected"
