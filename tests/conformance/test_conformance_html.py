"""The conformance run's HTML page and its JUnit properties.

The page is drawn from a real report: ``data/conformance-byteswap.json`` is the conformance.json of a
run of test_encoding, test_envelope, test_determinism and test_rejection (``--hypothesis-profile fast``)
against the embedded server (prithvi-tiny-tl, vLLM 0.32) behind ``geopool proxy --fault byteswap``.
The plugin's part (writing the page and the JUnit properties) is seen in pytester runs of a tiny suite
with a stand-in target, as in test_ledger.py: no server is contacted.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from page_text import PageText  # tests/ is on sys.path (its conftest.py)
from standin_suite import CONFTEST, PLUGINS

from geopool.conformance import html

DATA = Path(__file__).parent / "data"
SUITE = '''
import pytest

@pytest.mark.requirement("POOL-ENV-001", "POOL-ENV-002")
def test_envelope(checks):
    checks.that("POOL-ENV-001", True, "held")
    checks.that("POOL-ENV-002", True, "held")

@pytest.mark.requirement("POOL-ENC-004")
@pytest.mark.parametrize("case", ["little", "big"])
def test_float16(checks, case):
    checks.that("POOL-ENC-004", case == "little", f"{case}: got nan, expected 1.5 <b>")

@pytest.mark.requirement("POOL-REJ-010")
def test_known(checks):
    checks.that("POOL-REJ-010", False, "answered 500, expected 400", case="known-killer")

@pytest.mark.requirement("POOL-SEC-001")
def test_crashes(checks):
    raise RuntimeError("the test itself broke")
'''
EXPECTED = '[[expected-fail]]\nid = "POOL-REJ-010"\ncase = "known-killer"\nreason = "a known defect"\n'


@pytest.fixture(scope="module")
def byteswap_report() -> dict:
    return json.loads((DATA / "conformance-byteswap.json").read_text())


pytestmark = pytest.mark.usefixtures("no_target_from_the_environment")


# ----------------------------------------------------------------------------------------- verdict


def _report(**outcomes: str) -> dict:
    return {"requirements": [{"id": rid.replace("_", "-"), "outcome": outcome} for rid, outcome in outcomes.items()]}


def test_the_verdict_line_names_what_failed_and_counts_the_rest(byteswap_report):
    passed, line = html.verdict(byteswap_report)
    assert not passed
    assert line == ("FAILED: 5 requirements failed (POOL-ENC-004, POOL-ENC-005, POOL-DET-002, POOL-DET-005, "
                    "POOL-SURV-001); 4 expected failures; 1 unexpected pass (POOL-DET-003)")
    assert html.verdict(_report(POOL_A_1="pass", POOL_A_2="expected-fail", POOL_A_3="skip")) == (
        True, "PASSED: 1 requirement held, 1 expected failure")
    assert html.verdict(_report(POOL_A_1="error", POOL_A_2="pass")) == (
        False, "FAILED: 1 requirement errored (POOL-A-1)")
    passed, line = html.verdict(_report(POOL_A_1="unexpected-pass", POOL_A_2="pass"))
    assert passed and "1 unexpected pass (POOL-A-1: its expectation entry is out of date" in line
    strict = {**_report(POOL_A_1="unexpected-pass"), "strict_failures": ["unexpected-pass: POOL-A-1 case x"]}
    assert html.verdict(strict) == (False, "FAILED: 1 unexpected pass (POOL-A-1)")
    unchecked = {**_report(POOL_A_1="pass", POOL_A_2="skip"), "unchecked_must": [{"id": "POOL-A-2"}],
                 "strict_failures": ["1 MUST requirement not checked: POOL-A-2 (skipped)"]}
    assert html.verdict(unchecked) == (False, "FAILED: 1 MUST requirements not checked (--strict)")
    assert html.verdict(_report(POOL_A_1="skip", POOL_A_2="not-run"))[0] is False


def test_family_is_the_id_up_to_its_last_dash():
    assert html.family_of("POOL-ENC-004") == "POOL-ENC"
    assert html.family_of("POOL-DTYPE-001") == "POOL-DTYPE"


# ------------------------------------------------------------------------------------------- page


def test_the_page_opens_with_the_verdict_then_the_unchecked_musts_then_the_target(byteswap_report, tmp_path):
    path = html.write_conformance_html(tmp_path / "conformance.html", byteswap_report)
    page = PageText(path.read_text())
    assert page.text[0] == html.verdict(byteswap_report)[1]
    assert page.text[1] == byteswap_report["unchecked_line"]
    assert page.text[2].startswith("Target") and "http://127.0.0.1:18432" in page.text[3]
    assert page.ids[:3] == ["conformance", "conformance-verdict", "conformance-unchecked"]


def test_requirements_are_grouped_by_family_in_registry_order(byteswap_report):
    page = PageText(html.render_conformance_section(byteswap_report))
    families = [i.removeprefix("conformance-family-") for i in page.ids if i.startswith("conformance-family-")]
    expected = list(dict.fromkeys(html.family_of(r["id"]) for r in byteswap_report["requirements"]))
    assert families == expected and "POOL-ENC" in families and "POOL-SURV" in families
    rows = [i.removeprefix("conformance-") for i in page.ids if i.startswith("conformance-POOL-")]
    assert rows == [r["id"] for r in byteswap_report["requirements"]]


def _row(fragment: str, rid: str) -> str:
    """A requirement's row and its detail row: up to the next requirement's row."""
    start = fragment.index(f'<tr id="conformance-{rid}"')
    end = fragment.find('<tr id="conformance-POOL-', start + 1)
    return fragment[start:end if end > 0 else None]


def test_failures_show_their_evidence_and_replay_and_the_rest_do_not(byteswap_report):
    fragment = html.render_conformance_section(byteswap_report)
    assert "<html" not in fragment
    row = _row(fragment, "POOL-ENC-004")
    assert '<span class="gp-badge o-fail">fail</span>' in row and "<details open>" in row
    assert "float16/little is further from the float32 baseline than float16 rounding" in row
    assert "pytest &#39;conformance/test_encoding.py::test_reduced_precision[float16-little]&#39; --base-url" in row
    # the expected failure of POOL-REJ-002: its evidence (status, server message) and its expectation entry
    row = _row(fragment, "POOL-REJ-002")
    assert "o-expected-fail" in row and "not-a-tensor-file: answered 500, expected 400" in row
    assert "server_message: <code>pop from empty list</code>" in row and "Expected failures" in row
    # a pass shows its row only
    row = _row(fragment, "POOL-ENV-001")
    assert "o-pass" in row and "gp-detail" not in row
    # the unexpected pass says what to do about it
    assert "the defect looks fixed; remove the entry" in fragment


def test_many_failing_tests_fold_after_the_first_three(byteswap_report):
    fragment = html.render_conformance_section(byteswap_report)
    surv = next(r for r in byteswap_report["requirements"] if r["id"] == "POOL-SURV-001")
    failing = [t for t in surv["tests"] if t["outcome"] == "fail"]
    assert len(failing) > 3
    assert f"{len(failing) - 3} more failing test(s)" in fragment


def test_a_reproducer_is_linked_relative_to_the_page(byteswap_report, tmp_path):
    report = copy.deepcopy(byteswap_report)
    reproducer = tmp_path / "gate" / "repro" / "POOL-ENC-004.py"
    next(r for r in report["requirements"] if r["id"] == "POOL-ENC-004")["reproducer"] = str(reproducer)
    page = html.write_conformance_html(tmp_path / "gate" / "conformance" / "conformance.html", report).read_text()
    assert f'<a href="../repro/POOL-ENC-004.py">{reproducer}</a>' in page


def test_report_text_is_escaped(byteswap_report):
    report = copy.deepcopy(byteswap_report)
    report["requirements"][0]["statement"] = "<script>alert(1)</script>"
    fragment = html.render_conformance_section(report)
    assert "<script>" not in fragment and "&lt;script&gt;alert(1)&lt;/script&gt;" in fragment


# ------------------------------------------------------------------------------- the plugin's part


def _run(pytester, *args: str):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    expectations = pytester.path / "expected.toml"
    expectations.write_text('applies_from = "0.32.0"\n' + EXPECTED)
    report = pytester.path / "out" / "conformance.json"
    result = pytester.runpytest(*PLUGINS, "--expectations", str(expectations), "--conformance-report", str(report),
                                "--junitxml", str(pytester.path / "out" / "junit.xml"), *args)
    return result, json.loads(report.read_text()), report


def test_the_plugin_writes_the_page_beside_the_json_from_the_same_report(pytester):
    result, report, path = _run(pytester)
    result.assert_outcomes(passed=2, failed=2, xfailed=1)
    page = path.with_suffix(".html").read_text()
    text = PageText(page).text
    assert text[0] == html.verdict(report)[1] == ("FAILED: 1 requirement failed (POOL-ENC-004); "
                                                  "1 requirement errored (POOL-SEC-001); 1 expected failure")
    assert report["unchecked_line"] in text  # this tiny run leaves most MUSTs unselected
    assert "big: got nan, expected 1.5 &lt;b&gt;" in page and "RuntimeError: the test itself broke" in page
    result.stdout.fnmatch_lines([f"*html: {path.with_suffix('.html')}*"])
    elsewhere = pytester.path / "pages" / "mine.html"
    _run(pytester, "--conformance-html", str(elsewhere))
    assert PageText(elsewhere.read_text()).text[0] == text[0]


def test_junit_testcases_carry_requirement_outcome_and_evidence_properties(pytester):
    _run(pytester)
    tree = ET.parse(pytester.path / "out" / "junit.xml")
    properties = {case.get("name"): [(p.get("name"), p.get("value")) for p in case.iter("property")]
                  for case in tree.iter("testcase")}
    assert properties["test_envelope"] == [("requirement", "POOL-ENV-001"), ("requirement", "POOL-ENV-002")]
    assert properties["test_float16[little]"] == [("requirement", "POOL-ENC-004")]
    assert properties["test_float16[big]"] == [
        ("requirement", "POOL-ENC-004"), ("outcome", "POOL-ENC-004: fail"),
        ("evidence", "POOL-ENC-004 [big]: big: got nan, expected 1.5 <b>")]
    assert properties["test_known"] == [
        ("requirement", "POOL-REJ-010"), ("outcome", "POOL-REJ-010: expected-fail"),
        ("evidence", "POOL-REJ-010 [known-killer]: answered 500, expected 400")]
    assert properties["test_crashes"] == [
        ("requirement", "POOL-SEC-001"), ("outcome", "POOL-SEC-001: error"),
        ("evidence", "POOL-SEC-001: RuntimeError: the test itself broke")]
