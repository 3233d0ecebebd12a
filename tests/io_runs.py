"""``geopool conformance --mode image-to-image`` as a user runs it, for the image-to-image suite's live tests
(tests/conformance/test_io_suite_live.py, tests/conformance/test_io_plugins_live.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GEOPOOL = str(Path(sys.executable).with_name("geopool"))


def conformance(folder: Path, *args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], dict]:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([GEOPOOL, "conformance", "--mode", "image-to-image", "-p", "no:cacheprovider",
                             "--conformance-report", str(folder / "conformance.json"), *args],
                            capture_output=True, text=True, timeout=timeout, cwd=folder)
    report = folder / "conformance.json"
    assert report.is_file(), f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return result, json.loads(report.read_text())


def outcomes(report: dict) -> dict[str, str]:
    return {entry["id"]: entry["outcome"] for entry in report["requirements"]}


def evidence(report: dict, rid: str) -> str:
    entry = next(entry for entry in report["requirements"] if entry["id"] == rid)
    return json.dumps([test["evidence"] for test in entry["tests"]])
