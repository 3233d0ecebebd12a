"""``geopool load`` run as a user runs it, for the live load tests (tests/load/): the command, its summary and
records, and the lines of its verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GEOPOOL = str(Path(sys.executable).with_name("geopool"))
LOCUSTFILE = str(REPO / "load" / "locustfile.py")


def run_load(tmp_path: Path, *args: str, slo: str | None = None, timeout: float = 300,
             ) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    report_dir = tmp_path / "run"
    command = [GEOPOOL, "load", "--report-dir", str(report_dir), *args]
    if "--base-url" in args:  # the session's servers are float32 (geopool needs a URL's dtype told)
        command += ["--input-dtype", "float32"]
    if slo is not None:
        (tmp_path / "slo.toml").write_text(slo)
        command += ["--slo", str(tmp_path / "slo.toml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    summary_path = report_dir / "summary.json"
    assert summary_path.is_file(), f"no summary.json; exit {result.returncode}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result, json.loads(summary_path.read_text()), report_dir


def records(report_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (report_dir / "records.jsonl").read_text().splitlines()]


def check_lines(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.strip().startswith(("SLO", "INVALID", "verdict")))
