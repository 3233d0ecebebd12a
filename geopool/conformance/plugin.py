"""pytest plugin of the conformance suite (loaded by the repository's root conftest.py, ``-p
geopool.conformance.plugin``, and the ``pytest11`` entry point of an installed geopool).

This is the module pytest loads; its hooks and fixtures live in :mod:`geopool.conformance.hooks`, one concern
a module, and are gathered here (pytest finds a plugin's hooks and fixtures among its module's names):

- :mod:`~geopool.conformance.hooks.options`: the options, and ``--base-url`` shared with pytest-base-url;
- :mod:`~geopool.conformance.hooks.session`: whether a run is the suite's, its target and expectations, the
  ``target``/``guard``/``checks`` fixtures, what is skipped before a test runs;
- :mod:`~geopool.conformance.hooks.ledger`: which tests check which requirement, outcomes and evidence,
  JUnit properties, --strict;
- :mod:`~geopool.conformance.hooks.summary`: the report files and the terminal summary.

An installed geopool registers this plugin in every pytest run of its venv; it acts only in runs that are
the suite's (:func:`~geopool.conformance.hooks.session.active`), and only those declare its options
(:mod:`geopool.pytest_asked`). Elsewhere it registers only its markers, fixtures and Hypothesis profiles
(``dev``, ``ci``, ``nightly``, ``fast``; loaded with ``--hypothesis-profile``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from geopool.conformance.hooks.ledger import (
    default_case,
    pytest_collection_modifyitems,
    pytest_deselected,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    strict_failures,
    strict_mode,
)
from geopool.conformance.hooks.options import (
    BASE_URL_MODULE,
    BASE_URL_PLUGIN,
    base_url_plugin_owns_the_option,
    pytest_addoption,
    pytest_plugin_registered,
)
from geopool.conformance.hooks.session import (
    NO_TORCH,
    checks,
    guard,
    pytest_collection_finish,
    pytest_configure,
    pytest_report_header,
    pytest_runtest_protocol,
    pytest_runtest_setup,
    pytest_unconfigure,
    target,
)
from geopool.conformance.hooks.stash import (
    EVALUATED_KEY,
    EXPECT_KEY,
    GUARD_KEY,
    LAST_TEST_KEY,
    LEDGER_KEY,
    PLUGIN_NAME,
    STARTED_KEY,
    TARGET_KEY,
)
from geopool.conformance.hooks.summary import pytest_terminal_summary

__all__ = [
    "BASE_URL_MODULE", "BASE_URL_PLUGIN", "EVALUATED_KEY", "EXPECT_KEY", "GUARD_KEY", "LAST_TEST_KEY", "LEDGER_KEY",
    "NO_TORCH",
    "PLUGIN_NAME", "STARTED_KEY", "TARGET_KEY", "base_url_plugin_owns_the_option", "checks", "default_case", "guard",
    "pytest_addoption", "pytest_collection_finish", "pytest_collection_modifyitems", "pytest_configure",
    "pytest_deselected", "pytest_plugin_registered",
    "pytest_report_header", "pytest_runtest_call", "pytest_runtest_makereport", "pytest_runtest_protocol",
    "pytest_runtest_setup",
    "pytest_sessionfinish", "pytest_terminal_summary", "pytest_unconfigure", "strict_failures", "strict_mode", "target",
]

# The profiles are registered when pytest loads the plugin, in every run, so --hypothesis-profile can name them.
_slow_network = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
                 "print_blob": True}
# Examples per property: ~0.5 s a request on 2 CPU cores, ~50 ms on a GPU.
settings.register_profile("dev", max_examples=8, database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
                          **_slow_network)
settings.register_profile("ci", max_examples=5, derandomize=True, database=None, **_slow_network)
settings.register_profile("nightly", max_examples=200, phases=tuple(Phase), **_slow_network)
# One pass without shrinking: each shrink step is another request to a slow server (fault matrix, smoke runs).
settings.register_profile("fast", max_examples=3, derandomize=True, database=None,
                          phases=(Phase.explicit, Phase.generate), **_slow_network)
