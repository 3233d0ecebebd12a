"""What the conformance plugin's parts share through pytest's config (and item) stash, and the plugin's name."""

from __future__ import annotations

import pytest

from geopool.conformance.checks import Evaluations
from geopool.conformance.guard import ServerGuard
from geopool.conformance.registry import Expectations
from geopool.conformance.report import RequirementLedger
from geopool.conformance.target import Target

__all__ = ["EVALUATED_KEY", "EXPECT_KEY", "GUARD_KEY", "LAST_TEST_KEY", "LEDGER_KEY", "PLUGIN_NAME", "STARTED_KEY",
           "STOPPED_KEY", "TARGET_KEY"]

#: The module pytest loads (``-p geopool.conformance.plugin``, the pytest11 entry point, conftest.py): a run that
#: names it asks for the suite's behaviour (:func:`geopool.conformance.hooks.session.active`).
PLUGIN_NAME = "geopool.conformance.plugin"

TARGET_KEY = pytest.StashKey[Target]()
LEDGER_KEY = pytest.StashKey[RequirementLedger]()
EXPECT_KEY = pytest.StashKey[Expectations]()
STARTED_KEY = pytest.StashKey[float]()
GUARD_KEY = pytest.StashKey[ServerGuard]()
#: Whether the test running now is the session's last (:attr:`ServerGuard.last_test`).
LAST_TEST_KEY = pytest.StashKey[bool]()
EVALUATED_KEY = pytest.StashKey[Evaluations]()
#: Why the run was stopped before any test (an unusable target, a bad option value), once it was.
STOPPED_KEY = pytest.StashKey[str]()
