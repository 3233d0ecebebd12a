"""Flake check (not a test): the conformance suite N times against one embedded server, through the fault
proxy with ``--fault none``, comparing every (requirement, test) verdict across runs.

    .venv/bin/python benchmarks/flake_check.py [--runs 5] [--profile dev]

Destructive inputs are not sent (the target is external to the suite), so one server serves all runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geopool.proxy import FaultProxy
from geopool.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]


def verdicts(report: Path) -> dict[tuple[str, str], str]:
    return {(entry["id"], test["test"]): test["outcome"]
            for entry in json.loads(report.read_text())["requirements"] for test in entry["tests"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", default="dev", help="Hypothesis profile (dev draws new examples each run)")
    args = parser.parse_args()
    runs: list[dict[tuple[str, str], str]] = []
    with EmbeddedServer() as server, FaultProxy(server.url, "none") as proxy, tempfile.TemporaryDirectory() as tmp:
        for number in range(1, args.runs + 1):
            report = Path(tmp) / f"run{number}.json"
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:cacheprovider",
                 "--base-url", proxy.url, "--input-dtype", server.dtype,
                 "--reference-checkpoint", str(server.served_dir), "--numeric-bounds", "same-kernels",
                 "--hypothesis-profile", args.profile,
                 "--conformance-report", str(report), "--junitxml", str(Path(tmp) / f"run{number}.xml")],
                capture_output=True, text=True, cwd=REPO, timeout=1800)
            runs.append(verdicts(report))
            summary = json.loads(report.read_text())["summary"]
            print(f"run {number}: exit {result.returncode}, {time.monotonic() - started:.0f} s, {summary}")
    differing = sorted(key for key in set().union(*runs) if len({run.get(key) for run in runs}) > 1)
    print(f"{len(runs)} runs, {len(runs[0])} (requirement, test) verdicts each; "
          f"{len(differing)} differ between runs")
    for key in differing:
        print("  differs:", key, [run.get(key) for run in runs])


if __name__ == "__main__":
    main()
