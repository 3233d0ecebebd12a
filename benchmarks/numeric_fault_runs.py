"""The conformance run a user would do through the fault proxy, for the numeric faults (not a test):
``pytest conformance/test_numerics.py`` against an embedded server behind ``--fault``, printing each
run's exit code and POOL-NUM-002's outcome per test. ``--checkout`` runs another checkout's suite
(e.g. main's, to see what its tolerance let through) against the same server.

    .venv/bin/python benchmarks/numeric_fault_runs.py [--checkout DIR] [--faults none scale:1.005 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from geopool.proxy import FaultProxy
from geopool.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("none", "scale:1.005", "fixed-noise:0.0005", "scale:1.02")


def user_run(checkout: Path, server: EmbeddedServer, fault: str, report: Path) -> tuple[int, dict[str, str]]:
    with FaultProxy(server.url, fault, max_seconds=900) as proxy:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--hypothesis-profile", "fast",
             "conformance/test_numerics.py", "--base-url", proxy.url, "--input-dtype", server.dtype,
             "--model", server.model_name, "--reference-checkpoint", str(server.served_dir),
             "--numeric-bounds", "same-kernels",
             "--expectations", str(checkout / "conformance" / "expectations" / "vllm-0.32.toml"),
             "--conformance-report", str(report)],
            capture_output=True, text=True, cwd=checkout, timeout=900, env={**os.environ, "PYTHONPATH": str(checkout)})
    if not report.exists():
        return result.returncode, {"(no report)": result.stdout[-300:]}
    entries = json.loads(report.read_text())["requirements"]
    return result.returncode, {test["test"].split("::")[-1]: test["outcome"] for entry in entries
                               if entry["id"] == "POOL-NUM-002" for test in entry["tests"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout whose suite to run (repeatable)")
    parser.add_argument("--faults", nargs="+", default=list(FAULTS))
    args = parser.parse_args()
    with EmbeddedServer() as server, tempfile.TemporaryDirectory() as tmp:
        for checkout in args.checkout or [REPO]:
            for number, fault in enumerate(args.faults):
                report = Path(tmp) / f"{checkout.name}-{number}.json"
                code, outcomes = user_run(checkout.resolve(), server, fault, report)
                print(f"{checkout}: --fault {fault}: exit {code}, POOL-NUM-002 {outcomes}", flush=True)


if __name__ == "__main__":
    main()
