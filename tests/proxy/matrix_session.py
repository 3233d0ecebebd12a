"""Fault-matrix rows' conformance runs in one Python process: ``python tests/proxy/matrix_session.py`` reads
plan paths from stdin, one a line, runs each plan's rows and answers with a line ``MATRIX-DONE PLAN`` on
stdout. A test worker keeps one such process (tests/conftest.py's :class:`MatrixSession`) and sends it each
row when the row's test comes, so the rows can spread over the workers, each paying the imports once.

Each row is still the run a user would do (``pytest conformance/...`` through a proxy planting the row's
fault, with the row's expectations file and report), but as :func:`pytest.main` in one process instead of a
process per row: ~50 rows each paid an interpreter start and the imports of torch, TerraTorch, Hypothesis
and geopool (and the reference model's load) before sending a request. The conformance plugin keeps its
state in each session's ``config.stash``, so sessions do not leak into one another.

PLAN is a JSON file: ``{"upstream", "dtype", "model", "served_dir", "out", "rows": [{"row", "fault",
"selection", "extra", "expectations", "destructive", "report"}]}`` (``fault``: the proxy's spec, default the
row's name; ``extra``: more pytest arguments). One JSON line per finished row is appended to ``out`` as it
finishes, so the rows done before a crash are kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import pytest

from geopool.contract import load_contract
from geopool.proxy import FaultProxy


def pytest_arguments(plan: dict, row: dict, url: str) -> list[str]:
    report = Path(row["report"])
    return ["-p", "no:cacheprovider", "-q", "--hypothesis-profile", "fast",
            *[f"conformance/{path}" for path in row["selection"]], "--base-url", url, "--input-dtype", plan["dtype"],
            "--model", plan["model"], "--reference-checkpoint", plan["served_dir"],
            "--numeric-bounds", "same-kernels",  # the proxied server is the embedded CPU build
            "--expectations", row["expectations"], "--conformance-report", str(report),
            "--junitxml", str(report.with_suffix(".xml")), *(["--destructive"] if row["destructive"] else []),
            *row.get("extra", ())]


def run_row(plan: dict, row: dict, contract) -> dict:
    started = time.monotonic()
    output = io.StringIO()
    with FaultProxy(plan["upstream"], row.get("fault", row["row"]), max_seconds=1800, contract=contract) as proxy:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            returncode = int(pytest.main(pytest_arguments(plan, row, proxy.url)))
        forwarded = proxy.requests
    result = {"row": row["row"], "report": row["report"], "returncode": returncode, "requests": forwarded,
              "seconds": time.monotonic() - started, "stdout": output.getvalue()[-6000:]}
    report = Path(row["report"])
    if not report.is_file():
        return result | {"requirements": None, "tests": []}
    entries = json.loads(report.read_text())["requirements"]
    errors = sorted({f"{test['test']}: {item.get('message', '')[:300]}" for entry in entries
                     for test in entry["tests"] if test["outcome"] == "error" for item in test["evidence"]})
    return result | {"stdout": "\n".join([result["stdout"], *errors]),
                     "requirements": {entry["id"]: entry["outcome"] for entry in entries},
                     "tests": [[entry["id"], test["test"], test["outcome"]] for entry in entries
                               for test in entry["tests"]]}


DONE = "MATRIX-DONE"


def main() -> int:
    for line in sys.stdin:
        plan_path = line.strip()
        if plan_path:
            run_plan(json.loads(Path(plan_path).read_text()))
            print(f"{DONE} {plan_path}", flush=True)
    return 0


def run_plan(plan: dict) -> None:
    """Run the plan's rows, one after another, appending each one's result to ``out`` as it finishes."""
    contract = load_contract(Path(plan["served_dir"]), input_dtype=plan["dtype"])
    out = Path(plan["out"])
    for row in plan["rows"]:
        try:
            result = run_row(plan, row, contract)
        except Exception as exc:  # one row's crash (a proxy that cannot bind, ...) must not lose the others
            result = {"row": row["row"], "report": row["report"], "returncode": None, "requests": 0, "seconds": 0.0,
                      "stdout": f"the row's run crashed: {type(exc).__name__}: {exc}", "requirements": None,
                      "tests": []}
        with out.open("a") as stream:
            stream.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    sys.exit(main())
