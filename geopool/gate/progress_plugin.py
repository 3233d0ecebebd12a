"""A pytest plugin the gate loads into its conformance run: a ``collected`` event (``total``) once the
tests are collected, then a ``test`` event (``outcome``) per finished test, on the gate's event channel
(:mod:`geopool.events`). Inert when no gate listens."""

from __future__ import annotations

import pytest

from geopool import events


def pytest_collection_finish(session: pytest.Session) -> None:
    events.emit("collected", total=len(session.items))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        events.emit("test", test=report.nodeid, outcome=outcome)
