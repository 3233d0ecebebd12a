"""``geopool gate`` as a user runs it, where no server is needed: bad input and an unreachable target."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from geopool import exitcodes
from geopool.server import free_port


def gate(*args: str, cwd, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geopool.cli", "gate", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.mark.parametrize("args, message", [
    (["--base-url", "http://127.0.0.1:9"], "pass --input-dtype"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--waivers", "missing.toml"],
     "waiver file 'missing.toml' does not exist"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--slo", "bad.toml"],
     "latency.corrected.p97 is not one of"),
    (["--input-dtype", "int8"], "'int8' is not one of"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--waivers", "."],
     "waiver file '.' cannot be read"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--expectations", "missing.toml"],
     "expectations file 'missing.toml' does not exist"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--users", "0"], "0 is not in the range x>=1"),
    (["--base-url", "http://127.0.0.1:9", "--input-dtype", "float32", "--report-dir", "bad.toml"],
     "'bad.toml' is a file or a folder that is not empty"),
])
def test_bad_input_is_one_error_line_before_anything_starts(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("[latency.corrected]\np97 = 3\n")
    result = gate(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == exitcodes.USAGE, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "reports").exists(), "nothing ran, so no report folder"


def test_an_unreachable_target_exits_with_the_target_code_and_a_report(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = gate("--base-url", url, "--input-dtype", "float32", "--report-dir", "out", cwd=tmp_path, timeout=120)
    assert result.returncode == exitcodes.TARGET_UNUSABLE, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.monotonic() - started < 90
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exit_code"] == exitcodes.TARGET_UNUSABLE and summary["exit_name"] == "target-unusable"
    assert "is not reachable" in summary["line"] and url in summary["line"]
    for report in (summary["line"], (tmp_path / "out" / "summary.md").read_text()):
        assert " !" not in report and "_pytest" not in report, report  # the reason, not pytest's "! ... !" frame
    assert summary["load"] == {"skipped": "the conformance phase could not use the target"}
    assert summary["line"] in result.stdout.splitlines()
    junit = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    load_suite = junit.find("testsuite[@name='geopool-load']")
    assert load_suite is not None and load_suite.get("skipped") == "1"
    # a CI system's test view shows the unusable target as an error, not as a green run with one skip
    errors = [case for case in junit.iter("testcase") if case.find("error") is not None]
    assert len(errors) == 1 and "is not reachable" in errors[0].find("error").get("message")
