"""The gate's Markdown summary and its one page, report.html, drawn from real run outputs.

No server is started: the conformance report is a real one (tests/conformance/data/conformance-byteswap.json,
the suite through ``geopool proxy --fault byteswap``), the load folder ``data/load`` holds the records.jsonl,
metrics.jsonl and summary.json of a real 25 s ``geopool load`` run (closed loop, 2 users, SLO
load/slo/example.toml) against the embedded server, and the gate's summary.json is written by hand in the
shape the gate writes (the notes of issue 12). The page is opened in headless Chromium, as a reader would.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from page_text import PageText, assert_plots_drawn, rendered_dom  # tests/ is on sys.path (its conftest.py)

from geopool.conformance.html import verdict
from geopool.gate import markdown
from geopool.gate.html import write_gate_html
from geopool.load.report import run_report as load_report

HERE = Path(__file__).parent
LOAD_DIR = HERE / "data" / "load"
CONFORMANCE = HERE.parent / "conformance" / "data" / "conformance-byteswap.json"
PLOTS = ("latency", "throughput", "cdf", "queue")


@pytest.fixture(scope="module")
def conformance() -> dict:
    return json.loads(CONFORMANCE.read_text())


@pytest.fixture(scope="module")
def load_summary() -> dict:
    return json.loads((LOAD_DIR / "summary.json").read_text())


@pytest.fixture
def gate(conformance) -> dict:
    """A failing gate's summary.json: conformance failed, MUST requirements unchecked, one of them waived."""
    unchecked = [item["id"] for item in conformance["unchecked_must"]]
    return {
        "verdict": "fail", "exit_code": 1, "exit_name": "conformance-failed",
        "line": "FAIL (exit 1 conformance-failed): 5 requirements failed; 29 MUST requirements unchecked; load pass",
        "reasons": [{"code": 1, "name": "conformance-failed", "message": "5 requirements failed: POOL-ENC-004, ..."},
                    {"code": 13, "name": "unchecked-must", "message": "29 MUST requirements not checked, not waived"}],
        "target": {"url": "http://127.0.0.1:18432", "model": "prithvi-tiny-tl", "vllm_version": "0.32.0",
                   "embedded": False, "input_dtype": "float32"},
        "started": "2026-12-01T21:10:40Z", "duration_s": 95.2,
        "conformance": {"exit_code": 1, "report": "conformance/conformance.json", "counts": conformance["summary"],
                        "failed": ["POOL-ENC-004", "POOL-ENC-005", "POOL-DET-002", "POOL-DET-005", "POOL-SURV-001"],
                        "unchecked_must": conformance["unchecked_must"],
                        "waived": [{"id": "POOL-REJ-005", "reason": "destructive: | not sent to a shared server"}],
                        "unwaived": [rid for rid in unchecked if rid != "POOL-REJ-005"]},
        "load": {"exit_code": 0, "report_dir": "load", "verdict": "pass", "summary": "load/summary.json"},
        "repro": ["repro/POOL-ENC-004.py"],
    }


# --------------------------------------------------------------------------------------- Markdown


def test_markdown_opens_with_the_gate_verdict_then_conformance_then_load(gate, conformance, load_summary):
    text = markdown.render_markdown(gate, conformance, load_summary)
    lines = text.splitlines()
    assert lines[0] == "### ❌ " + gate["line"]
    assert text.index("#### Conformance") < text.index("#### Load")
    assert f"**{verdict(conformance)[1]}**" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("| fail |"))
    assert lines[header + 2] == "| 5 | 1 | 4 | 27 | 2 | 31 |"  # fail, unexpected-pass, expected-fail, pass, ...
    failed = [line for line in lines if line.startswith("| POOL-")]
    assert [line.split(" | ")[0][2:] for line in failed] == [
        "POOL-ENC-004", "POOL-ENC-005", "POOL-DET-002", "POOL-DET-003", "POOL-DET-005", "POOL-SURV-001"]
    assert failed[0].startswith("| POOL-ENC-004 | fail | [float16-little] float16/little is further")
    assert "max \\|diff\\| inf" in failed[0]  # a pipe in evidence does not split the cell
    assert all(len(line) < 220 for line in failed)  # one line of evidence each
    assert "Unchecked MUST requirements: " + conformance["unchecked_line"] in lines
    assert "Waived: POOL-REJ-005 (destructive: | not sent to a shared server)" in lines
    assert any(line.startswith("Not waived: POOL-DTYPE-001,") and "and 19 more" in line for line in lines)
    assert "**pass** (exit 0): scenario `closed`, 56 requests measured, 56 ok, 2.65 req/s" in text
    assert "| latency.corrected.p50 &lt;= 6000 ms | 657.9 | met |" in lines
    assert "Reproducers: `repro/POOL-ENC-004.py`" in lines


def test_markdown_says_what_did_not_run(gate):
    gate = {**gate, "verdict": "fail", "load": {"skipped": "conformance could not reach the target"}}
    text = markdown.render_markdown(gate, None, None)
    assert "No conformance report (exit 1)." in text
    assert "Skipped: conformance could not reach the target" in text
    error = {"verdict": "error", "error": "no target at http://127.0.0.1:9", "exit_code": 12}
    text = markdown.render_markdown({**gate, "load": {"exit_code": 12}}, None, error)
    assert "**error** (exit 12): no target at http://127.0.0.1:9" in text


def test_markdown_is_appended_to_the_github_step_summary_when_set(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert markdown.append_step_summary("### x") is None
    assert list(tmp_path.iterdir()) == []
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert markdown.append_step_summary("### gate one") == summary
    assert markdown.append_step_summary("### gate two\n") == summary
    assert summary.read_text() == "earlier step\n### gate one\n### gate two\n"


# ------------------------------------------------------------------------------------------- page


def test_the_load_section_comes_from_a_run_folder(tmp_path, load_summary):
    context = load_report.section_context(LOAD_DIR)
    assert context["summary"] == load_summary
    assert [f'id="plot-{name}"' in context["plots"][name] for name in PLOTS] == [True] * 4
    failed = tmp_path / "failed"
    load_report.write_failure(failed, "no target", None, {"url": "http://127.0.0.1:9"})
    assert load_report.section_context(failed) is None


def test_the_page_opens_with_the_verdict_then_reasons_then_conformance_then_load(gate, conformance, tmp_path):
    page = write_gate_html(tmp_path / "report.html", gate, conformance, LOAD_DIR).read_text()
    parsed = PageText(page)
    assert parsed.text[0] == gate["line"]
    assert parsed.ids[:2] == ["gate-verdict", "gate-reasons"]
    assert 'class="gate-verdict gate-fail"' in page
    order = [parsed.ids.index(i) for i in ("gate-verdict", "gate-reasons", "gate-waivers", "gate-conformance",
                                           "conformance-verdict", "conformance-requirements", "gate-load",
                                           *(f"plot-{name}" for name in PLOTS))]
    assert order == sorted(order)
    assert page.count("<html") == 1 and page.count("plotly.js v") >= 1
    assert "destructive: | not sent to a shared server" in page
    assert '<a href="repro/POOL-ENC-004.py">repro/POOL-ENC-004.py</a>' in page
    rows = [i for i in parsed.ids if i.startswith("conformance-POOL-")]
    assert len(rows) == len(conformance["requirements"])


def test_a_passing_gate_is_green_and_a_skipped_load_has_no_plots(gate, conformance, tmp_path):
    passing = {**copy.deepcopy(gate), "verdict": "pass", "exit_code": 0, "exit_name": "ok", "reasons": [],
               "line": "PASS (exit 0)", "load": {"skipped": "--scenario none"}}
    page = write_gate_html(tmp_path / "report.html", passing, conformance, None).read_text()
    assert 'class="gate-verdict gate-pass">PASS (exit 0)</p>' in page
    assert 'id="gate-reasons"' not in page and "--scenario none" in page
    assert "plotly.js v" not in page and 'id="plot-' not in page  # no plotly.js without plots


def test_the_page_links_the_files_that_are_in_the_gate_folder(gate, conformance, tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(gate))
    (tmp_path / "conformance").mkdir()
    (tmp_path / "conformance" / "conformance.html").write_text("<p>")
    page = write_gate_html(tmp_path / "report.html", gate, conformance, None).read_text()
    assert '<a href="summary.json">' in page and '<a href="conformance/conformance.html">' in page
    assert '<a href="junit.xml">' not in page


def test_the_gate_text_is_escaped(gate, conformance, tmp_path):
    hostile = {**gate, "line": "FAIL <script>alert(1)</script>",
               "reasons": [{"code": 1, "name": "conformance-failed", "message": "<img src=x onerror=alert(1)>"}]}
    page = write_gate_html(tmp_path / "report.html", hostile, conformance, None).read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "FAIL &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_headless_chromium_draws_the_verdict_first_the_table_and_the_load_plots(gate, conformance, tmp_path):
    page = write_gate_html(tmp_path / "gate" / "report.html", gate, conformance, LOAD_DIR)
    dom = rendered_dom(page, tmp_path / "profile")
    body = dom[dom.index("<body"):]
    drawn = PageText(body)
    assert drawn.text[0] == gate["line"] and drawn.ids[0] == "gate-verdict"  # the first thing on the page
    table = body[body.index('id="conformance-requirements"'):body.index('id="gate-load"')]
    assert table.count('class="gp-row"') == len(conformance["requirements"]) > 0
    assert 'class="gp-badge o-fail">fail</span>' in table
    assert_plots_drawn(body, PLOTS)


def test_the_gate_judges_verdict_renders_in_both_reports(conformance, load_summary, tmp_path):
    """The summary the gate writes (geopool.gate.verdict.judge, on the same real outputs) draws as is."""
    from geopool import exitcodes
    from geopool.gate.verdict import judge
    from geopool.gate.waivers import Waiver

    waiver = Waiver("destructive inputs are not sent to a shared server", ("destructive input",))
    summary = {**judge(conformance_code=exitcodes.FAILED, conformance=conformance, waivers={"POOL-REJ-005": waiver},
                       load_code=exitcodes.OK, load=load_summary),
               "target": conformance["target"], "started": "2026-12-01T21:10:40+00:00", "duration_s": 95.2,
               "repro": []}
    assert summary["exit_code"] == exitcodes.FAILED and summary["conformance"]["waived"]
    page = write_gate_html(tmp_path / "report.html", summary, conformance, LOAD_DIR).read_text()
    parsed = PageText(page)
    assert parsed.text[0] == summary["line"] and parsed.text[0].startswith("GATE FAILED (exit 1")
    assert "<li><b>POOL-REJ-005</b>: destructive inputs are not sent to a shared server</li>" in page
    assert all(f'id="plot-{name}"' in page for name in PLOTS)
    text = markdown.render_markdown(summary, conformance, load_summary)
    assert text.splitlines()[0] == f"### ❌ {summary['line']}"
    assert "Waived: POOL-REJ-005 (destructive inputs are not sent to a shared server)" in text
    assert f"- exit 13 `unchecked-must`: {summary['reasons'][-1]['message']}" in text


def _junit_suites(path: Path) -> dict[str, dict[str, str]]:
    import xml.etree.ElementTree as ET

    return {suite.get("name"): dict(suite.attrib) for suite in ET.parse(path).getroot().iter("testsuite")}


@pytest.mark.parametrize(("code", "judged"), [(12, False), (4, False), (2, False), (0, True), (1, True), (13, True)])
def test_a_conformance_phase_that_could_not_judge_is_an_error_in_junit(tmp_path, code, judged):
    from geopool.gate.junit import write_gate_junit

    message = "conformance: conformance target http://127.0.0.1:9 is not reachable"
    summary = {"verdict": "fail", "exit_code": code, "line": "GATE FAILED", "conformance": {"exit_code": code},
               "reasons": [{"code": code, "name": "x", "message": message}] if not judged else [],
               "load": {"skipped": "the conformance phase could not use the target"}}
    write_gate_junit(tmp_path / "junit.xml", tmp_path / "missing.xml", summary, None)
    suites = _junit_suites(tmp_path / "junit.xml")
    assert ("geopool-conformance" in suites) is not judged, suites
    if not judged:
        assert suites["geopool-conformance"]["errors"] == "1"
        assert message in (tmp_path / "junit.xml").read_text()
    # beside a conformance JUnit the run did write (pytest's, from its exit), the error is a suite of its own
    (tmp_path / "pytest.xml").write_text('<testsuites><testsuite name="pytest" tests="0" errors="0" failures="0"/>'
                                         '</testsuites>')
    write_gate_junit(tmp_path / "junit.xml", tmp_path / "pytest.xml", summary, None)
    suites = _junit_suites(tmp_path / "junit.xml")
    assert "geopool-conformance" in suites and ("geopool-conformance-run" in suites) is not judged
