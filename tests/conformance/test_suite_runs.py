"""The conformance suite run as a user runs it: against the embedded server, and against a dead URL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from geopool.conformance.registry import SUITE_DIR, load_expectations, load_registry
from geopool.server import free_port

REPO = SUITE_DIR.parent


def run_suite(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "conformance/", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.mark.live
@pytest.mark.timeout(2400)  # the server is restarted after each destructive input (~45 s each)
def test_plain_gate_against_the_embedded_server(plain_conformance_run):
    """``geopool gate`` with no URL: the suite starts its own server; only vLLM 0.32's known defects fail,
    as expected-fail; then a minute of load on another embedded server; the gate passes (exit 0).

    The run itself may already be going in the background (tests/conftest.py); this waits for it."""
    report_path, junit_path = plain_conformance_run.report, plain_conformance_run.junit
    result = plain_conformance_run.result(timeout=2300)
    wall = time.monotonic() - plain_conformance_run.started
    folder = plain_conformance_run.folder
    conformance_output = (folder / "conformance" / "output.txt").read_text(errors="replace")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:] + conformance_output[-4000:]
    gate = json.loads((folder / "summary.json").read_text())
    assert gate["verdict"] == "pass" and gate["exit_code"] == 0 and gate["reasons"] == []
    assert gate["line"].startswith("GATE PASSED: conformance ") and gate["line"] in result.stdout
    assert gate["load"]["verdict"] == "pass" and (folder / "load" / "records.jsonl").stat().st_size > 0
    for name in ("report.html", "summary.md", "conformance/conformance.html"):
        assert (folder / name).stat().st_size > 0, name
    for name in ("report.html", "summary.md"):
        assert "GATE PASSED" in (folder / name).read_text(), name
    suites = {suite.get("name") for suite in ET.parse(folder / "junit.xml").getroot().iter("testsuite")}
    assert suites == {"geopool-conformance", "geopool-load"}
    report = json.loads(report_path.read_text())
    registry = load_registry()
    outcomes = {entry["id"]: entry["outcome"] for entry in report["requirements"]}
    assert set(outcomes) == set(registry)
    expected = load_expectations("0.32.0").reasons
    assert report["target"]["vllm_version"] == "0.32.0" and report["target"]["embedded"] is True
    assert {rid for rid, outcome in outcomes.items() if outcome == "expected-fail"} == set(expected)
    assert {rid for rid, outcome in outcomes.items() if outcome != "expected-fail"} == set(registry) - set(expected)
    assert all(outcome == "pass" for rid, outcome in outcomes.items() if rid not in expected), outcomes
    # Every known defect is seen failing in its own case; the embedded server leaves no MUST unchecked.
    entries = report["expectations"]["entries"]
    assert entries and all(e["outcome"] == "expected-fail" and e["matched_cases"] for e in entries), [
        (e["id"], e["case"], e["outcome"]) for e in entries if e["outcome"] != "expected-fail"]
    assert report["unchecked_must"] == [], report["unchecked_line"]
    for entry in report["requirements"]:
        assert entry["tests"], entry["id"]
        if entry["outcome"] == "expected-fail":
            failing = [test for test in entry["tests"] if test["outcome"] == "expected-fail"]
            assert entry["expected_failure_reason"] and entry["replay"], entry["id"]
            assert failing and all(test["evidence"] for test in failing), entry["id"]
    # every test the report names is a JUnit test case (classname "conformance.test_x", name "test_y[case]")
    junit_cases = {f"{case.get('classname').replace('.', '/')}.py::{case.get('name')}"
                   for case in ET.parse(junit_path).getroot().iter("testcase")}
    reported = {test["test"] for entry in report["requirements"] for test in entry["tests"]}
    assert reported and reported <= junit_cases, sorted(reported - junit_cases)[:10]
    assert "geopool conformance" in conformance_output and "requirements:" in conformance_output
    print(f"gate run: {wall:.0f} s wall (two server starts included), conformance report duration "
          f"{report['duration_s']} s, {len(registry)} requirements, summary {report['summary']}; {gate['line']}")
    print("\n".join(line for line in conformance_output.splitlines()
                    if line.startswith(("destructive", "wall time"))))


def test_unreachable_target_fails_fast_with_one_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_suite("--base-url", url, "--conformance-report", str(tmp_path / "r.json"), timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode == 12, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert output.count("is not reachable") == 1 and url in output
    assert " passed" not in output and " failed" not in output and "skipped" not in output


@pytest.mark.live
def test_external_target_without_the_flag_gets_no_destructive_input(embedded_server, pooling_requests, tmp_path):
    before = pooling_requests(embedded_server.url)
    result = run_suite("-m", "destructive", "--base-url", embedded_server.url, "--input-dtype", embedded_server.dtype,
                       "--conformance-report", str(tmp_path / "r.json"), "--junitxml", str(tmp_path / "j.xml"),
                       timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" not in result.stdout.splitlines()[-1] and "skipped" in result.stdout.splitlines()[-1]
    cases = list(ET.parse(tmp_path / "j.xml").getroot().iter("testcase"))
    assert len(cases) >= 9
    for case in cases:
        skipped = case.find("skipped")
        assert skipped is not None and "destructive input: sent only" in skipped.get("message", ""), case.attrib
    assert pooling_requests(embedded_server.url) == before, "a pooling request reached the server"
    assert httpx_health(embedded_server.url)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["requirements"], "the report was written"
    assert {e["outcome"] for e in report["requirements"] if e["id"] == "POOL-SURV-002"} == {"skip"}


def httpx_health(url: str) -> bool:
    import httpx

    return httpx.get(f"{url}/health", timeout=10).status_code == 200
