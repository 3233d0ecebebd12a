"""A pytest plugin the gate loads into its conformance run: each finished test appends one JSON line
(``{"total": N}`` once after collection, then ``{"outcome": ...}`` per test) to the file named by
``$GEOPOOL_GATE_PROGRESS``, which the gate reads for its progress line. Inert without the variable."""

from __future__ import annotations

import json
import os

import pytest

ENV = "GEOPOOL_GATE_PROGRESS"


def _write(record: dict) -> None:
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"total": len(session.items)})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _write({"test": report.nodeid, "outcome": outcome})
