"""Which expectations file applies, seen end to end: the embedded vLLM server behind a proxy that claims
another vLLM version (fault ``version:X.Y.Z``), and a small part of the conformance suite run against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from geopool.proxy import FaultProxy
from geopool.resources import suite_dir

pytestmark = pytest.mark.live


def run_endpoints_as(server, version: str, report: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the suite's endpoint tests through a proxy whose /version answers ``version``."""
    with FaultProxy(server.url, f"version:{version}", max_seconds=600) as proxy:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(suite_dir() / "test_endpoints.py"), "-p", "no:cacheprovider",
             "--hypothesis-profile", "fast", "--base-url", proxy.url, "--input-dtype", server.dtype,
             "--model", server.model_name,
             "--conformance-report", str(report), "--junitxml", str(report.with_suffix(".xml"))],
            capture_output=True, text=True, cwd=suite_dir().parent, timeout=600)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-2000:]
    return result, json.loads(report.read_text())


def test_a_version_only_read_gets_none_and_a_warning(embedded_server, tmp_path):
    result, report = run_endpoints_as(embedded_server, "0.33.0", tmp_path / "r.json")
    line = ("expectations: none for vLLM 0.33.0 (no file covers it: vllm-0.32.toml is for >= 0.32.0, < 0.33.0); "
            "every failure counts")
    assert f"warning: {line}" in result.stdout, result.stdout[-4000:]
    assert report["target"]["vllm_version"] == "0.33.0"
    assert report["expectations"]["line"] == line and report["expectations"]["warning"] == line
    assert report["expectations"]["file"] is None
    # vLLM 0.32's empty /pooling response schema is no longer excused: a 0.33 server showing it fails
    outcomes = {entry["id"]: entry["outcome"] for entry in report["requirements"]}
    assert outcomes["POOL-EP-007"] == "fail" and result.returncode == 1, result.stdout[-4000:]


def test_an_older_version_gets_none_and_a_warning(embedded_server, tmp_path):
    result, report = run_endpoints_as(embedded_server, "0.31.0", tmp_path / "r.json")
    line = ("expectations: none for vLLM 0.31.0 (older than every file: vllm-0.32.toml is for >= 0.32.0, < 0.33.0); "
            "every failure counts")
    assert f"warning: {line}" in result.stdout, result.stdout[-4000:]
    assert report["expectations"]["line"] == line and report["expectations"]["warning"] == line
    assert report["expectations"]["file"] is None and report["expectations"]["requirements"] == []
    # the same defect now counts as a failure
    outcomes = {entry["id"]: entry["outcome"] for entry in report["requirements"]}
    assert outcomes["POOL-EP-007"] == "fail" and result.returncode == 1, result.stdout[-4000:]
