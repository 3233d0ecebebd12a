"""``geopool gate`` against the session's real vLLM server through the fault proxy: a conformance fault
ends it with the conformance code, a slow tail under a tight SLO with the SLO code. (The plain gate on
the embedded server, exit 0, is tests/conformance/test_suite_runs.py; an unreachable URL is in
test_gate_command.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from load_runs import check_lines  # tests/ is on sys.path
from selections import waive_every_must

from geopool import exitcodes
from geopool.proxy import FaultProxy

pytestmark = pytest.mark.live
SELECTS_A_FEW = "this test selects a few conformance tests"


@pytest.fixture
def run_gate(gate_command_for):
    def run(tmp_path: Path, url: str, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
        return _run(gate_command_for, tmp_path, url, *args, timeout=timeout)

    return run


def _run(gate_command, tmp_path: Path, url: str, *args: str,
         timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    folder = tmp_path / "gate"
    result = subprocess.run(gate_command(folder, "--base-url", url, "--input-dtype", "float32", *args),
                            capture_output=True, text=True, cwd=tmp_path, timeout=timeout)
    summary_path = folder / "summary.json"
    assert summary_path.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(summary_path.read_text())


def test_a_conformance_fault_ends_the_gate_with_the_conformance_code(embedded_server, run_gate, tmp_path):
    with FaultProxy(embedded_server.url, "byteswap", max_seconds=600) as proxy:
        result, summary = run_gate(tmp_path, proxy.url, "--reference-checkpoint", str(embedded_server.served_dir),
                                   "--waivers", str(waive_every_must(tmp_path / "waivers.toml", SELECTS_A_FEW)),
                                   "--duration", "20",
                                   "--", "-k", "test_served_output_matches_the_offline_forward_pass",
                                   # one pass, no shrinking: every shrink step of the failing property is a
                                   # reference forward pass (~400 s of them under the default profile)
                                   "--hypothesis-profile", "fast")
    assert result.returncode == exitcodes.FAILED, result.stdout[-3000:] + result.stderr[-2000:]
    assert summary["exit_name"] == "conformance-failed" and "POOL-NUM-002" in summary["conformance"]["failed"]
    assert summary["reasons"][0] == {"code": exitcodes.FAILED, "name": "conformance-failed",
                                     "message": "1 requirement failed: POOL-NUM-002"}
    assert summary["line"].startswith("GATE FAILED (exit 1, conformance-failed): 1 requirement failed: POOL-NUM-002")
    # The load phase ran too (through the same proxy), and its verdict is in the report.
    assert "skipped" not in summary["load"] and (tmp_path / "gate" / "load" / "summary.json").is_file()
    failures = [case for case in ET.parse(tmp_path / "gate" / "junit.xml").getroot().iter("testcase")
                if case.find("failure") is not None]
    assert any("test_served_output_matches_the_offline_forward_pass" in case.get("name") for case in failures)


def test_a_slow_tail_under_a_tight_slo_ends_the_gate_with_the_slo_code(embedded_server, run_gate, tmp_path):
    (tmp_path / "slo.toml").write_text("[latency.corrected]\np90 = 2000\n")
    with FaultProxy(embedded_server.url, "slow-tail:50:3", max_seconds=600) as proxy:
        result, summary = run_gate(tmp_path, proxy.url, "--slo", str(tmp_path / "slo.toml"),
                                   "--waivers", str(waive_every_must(tmp_path / "waivers.toml", SELECTS_A_FEW)),
                                   "--duration", "25",
                                   "--", "-k", "test_bytes_encoding", "--hypothesis-profile", "fast")
    assert result.returncode == exitcodes.SLO_BREACHED, result.stdout[-3000:] + result.stderr[-2000:]
    assert summary["conformance"]["exit_code"] == 0 and summary["conformance"]["failed"] == []
    assert summary["conformance"]["waived"], "the unchecked MUSTs were waived, and the report says so"
    breach = next(reason for reason in summary["reasons"] if reason["code"] == exitcodes.SLO_BREACHED)
    assert breach["message"].startswith("SLO breached: latency.corrected.p90 <= 2000 ms: ")
    assert summary["line"].startswith("GATE FAILED (exit 10, slo-breached): SLO breached: latency.corrected.p90")
    load_suite = ET.parse(tmp_path / "gate" / "junit.xml").getroot().find("testsuite[@name='geopool-load']")
    failed = [case.get("name") for case in load_suite.iter("testcase") if case.find("failure") is not None]
    assert "SLO latency.corrected.p90 <= 2000 ms" in failed
    page = (tmp_path / "gate" / "report.html").read_text()
    assert "GATE FAILED (exit 10, slo-breached)" in page and "plot-latency" in page
    # the load phase's own verdict and check line (`geopool load` as the gate ran it)
    load = json.loads((tmp_path / "gate" / "load" / "summary.json").read_text())
    assert summary["load"]["exit_code"] == exitcodes.SLO_BREACHED and load["verdict"] == "slo-breached"
    assert load["latency_ms"]["corrected"]["p90"] > 3000, load["latency_ms"]
    lines = check_lines((tmp_path / "gate" / "load" / "output.txt").read_text())
    assert "SLO BREACHED     latency.corrected.p90 <= 2000 ms: " in lines and " ms over (" in lines, lines


#: What vLLM 0.33 is read to answer every TerraTorch request (docs/vllm-versions.md), played by the proxy.
REFUSAL = "Token id 1 is out of vocabulary"


def test_a_server_refusing_the_seed_request_is_unusable_in_one_line_in_every_command(embedded_server, run_gate,
                                                                                    tmp_path):
    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "geopool.cli", *args, "--base-url", proxy.url,
                               "--input-dtype", "float32"], capture_output=True, text=True, cwd=tmp_path, timeout=300)

    with FaultProxy(embedded_server.url, "out-of-vocab", max_seconds=600) as proxy:
        load = command("load", "--duration", "30", "--report-dir", str(tmp_path / "load"))
        gate, summary = run_gate(tmp_path, proxy.url)
    for result in (load, gate):
        assert result.returncode == exitcodes.TARGET_UNUSABLE, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stdout + result.stderr
    # the conformance phase is `pytest` on the suite as `geopool conformance` runs it: its own output, and its code
    assert summary["conformance"]["exit_code"] == exitcodes.TARGET_UNUSABLE, summary["conformance"]
    lines = (tmp_path / "gate" / "conformance" / "output.txt").read_text().splitlines()
    quoted = [line for line in lines if REFUSAL in line]
    assert len(quoted) == 1 and "refuses the contract's own valid request" in quoted[0], lines[-30:]
    assert not any(word in line for line in lines for word in (" passed", " failed")), lines[-30:]
    load_summary = json.loads((tmp_path / "load" / "summary.json").read_text())
    assert load_summary["verdict"] == "error" and REFUSAL in load_summary["error"]
    assert not (tmp_path / "load" / "records.jsonl").read_text(), "no load was sent"
    errors = [line for line in load.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and REFUSAL in errors[0] and "(exit 12;" in errors[0], load.stderr[-3000:]
    assert summary["exit_name"] == "target-unusable" and REFUSAL in summary["line"]
    assert summary["load"] == {"skipped": "the conformance phase could not use the target"}
