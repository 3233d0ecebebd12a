"""The conformance run's session: whether a run is the suite's, its target and expectations, the fixtures
tests take (``target``, ``guard``, ``checks``), and what is skipped before a test runs.

An installed geopool registers the plugin (entry point group ``pytest11``) in every pytest run of its
venv. It acts only in runs that are the suite's (:func:`active`): the command line names the suite,
or the plugin was asked for by name (``-p geopool.conformance.plugin``, ``$PYTEST_PLUGINS``, a conftest's
``pytest_plugins``). Elsewhere it loads no Hypothesis profile, prints no header, reads no
``@pytest.mark.requirement`` and writes no report; it only registers its options, markers, fixtures and
Hypothesis profiles.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings

from geopool import exitcodes, options, wire
from geopool.conformance.checks import Checks
from geopool.conformance.guard import ServerGuard
from geopool.conformance.hooks.options import DECLARED, as_path, base_url
from geopool.conformance.hooks.stash import (
    EXPECT_KEY,
    GUARD_KEY,
    LAST_TEST_KEY,
    LEDGER_KEY,
    STARTED_KEY,
    STOPPED_KEY,
    TARGET_KEY,
)
from geopool.conformance.registry import Expectations, load_expectations, load_registry
from geopool.conformance.target import Target, resolve_target
from geopool.errors import ERROR_PREFIX, EmbeddedServerError, GeopoolError, ServerError, TargetError
from geopool.modes import TENSOR_TO_TENSOR
from geopool.pytest_asked import declared
from geopool.resources import SUITE_PACKAGE, suite_dir
from geopool.server import DEFAULT_PLUGIN

__all__ = ["NO_TORCH", "active", "checks", "guard", "pytest_collection_finish", "pytest_configure",
           "pytest_report_header", "pytest_runtest_setup", "pytest_unconfigure", "runs_the_suite", "say_expectations",
           "stop", "target"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the conformance requirements a test checks")
    config.addinivalue_line("markers", "destructive: sends input known or suspected to kill the server")
    config.addinivalue_line("markers", "needs_torch: builds torch.save payloads; not checked where torch is absent")
    if not active(config):
        return
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    if runs_the_suite(config) and not config.option.xmlpath:
        config.option.xmlpath = str(Path(config.getoption("conformance_report")).with_suffix(".junit.xml"))


def active(config: pytest.Config) -> bool:
    """Whether this run is the suite's: it names the suite, or asks for this plugin by name (``-p``,
    ``$PYTEST_PLUGINS``, a root conftest's ``pytest_plugins``) rather than getting it by autoload only: the
    runs that declared the suite's options (:mod:`geopool.pytest_asked` decides)."""
    return declared(config, DECLARED)


def runs_the_suite(config: pytest.Config) -> bool:
    """Whether the command line names the suite: a path in its folder, or (with --pyargs) its package."""
    suite = str(suite_dir())
    for arg in config.args:
        where = arg.split("::")[0]
        if config.option.pyargs and (where == SUITE_PACKAGE or where.startswith(SUITE_PACKAGE + ".")):
            return True
        if str(Path(where).resolve()).startswith(suite):
            return True
    return False


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if LEDGER_KEY not in config.stash or config.option.collectonly:
        return
    try:
        # A target another plugin resolved already (the project's tests of this ledger set one) is kept.
        target = config.stash[TARGET_KEY] if TARGET_KEY in config.stash else _resolve(config)
        expectations_option = config.getoption("expectations")
        expectations = load_expectations(target.version, registry=load_registry(mode=None),
                                         path="none" if expectations_option == "none" else as_path(expectations_option),
                                         mode=getattr(target, "mode", TENSOR_TO_TENSOR),
                                         plugin=getattr(target, "plugin", None),
                                         terratorch_version=getattr(target, "terratorch_version", None))
    except (TargetError, ServerError, EmbeddedServerError) as exc:
        stop(config, str(exc), exitcodes.TARGET_UNUSABLE)
    except GeopoolError as exc:  # a bad option value or expectations file
        stop(config, str(exc), exitcodes.USAGE)
    if target.server is not None:
        config.add_cleanup(target.server.stop)
    if isinstance(target, Target):
        config.add_cleanup(target.close)
    config.stash[TARGET_KEY] = target
    config.stash[EXPECT_KEY] = expectations
    config.stash[LEDGER_KEY].expectations = expectations
    config.stash[STARTED_KEY] = time.time()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and getattr(target, "plugin_description", None):
        reporter.write_line(f"image-to-image through {target.plugin_description}")
    say_expectations(config, expectations)


def stop(config: pytest.Config, reason: str, code: int) -> NoReturn:
    """End the run before any test with ``code``, saying ``reason`` once, as ``error: REASON`` (the line
    every geopool command ends a failure with; the gate reads it), instead of pytest's ``! Exit: … !``."""
    config.stash[STOPPED_KEY] = reason
    pytest.exit(reason, returncode=code)


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter's, which prints the exit framed
def pytest_unconfigure(config: pytest.Config) -> None:
    reason = config.stash.get(STOPPED_KEY, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reason is None or reporter is None:
        return
    # pytest keeps the exit's exception to print it framed in "!" at its unconfigure: this line replaces it
    if getattr(reporter, "_keyboardinterrupt_memo", None) is not None:
        reporter._keyboardinterrupt_memo = None
    reporter.write_line(f"{ERROR_PREFIX}{reason}", red=True)


def _resolve(config: pytest.Config) -> Target:
    return resolve_target(
        base_url=base_url(config) or None, model=config.getoption("conformance_model"),
        model_config=as_path(config.getoption("model_config")), input_dtype=config.getoption("input_dtype"),
        api_key=config.getoption("api_key"), embedded_model=config.getoption("embedded_model"),
        embedded_dtype=config.getoption("embedded_dtype"), reference=as_path(config.getoption("reference_checkpoint")),
        embedded_device=config.getoption("embedded_device", options.DEVICE.default),
        numeric_bounds=config.getoption("numeric_bounds", options.NUMERIC_BOUNDS.default),
        mode=config.getoption("mode", None) or TENSOR_TO_TENSOR, plugin=config.getoption("io_plugin", None) or
        DEFAULT_PLUGIN, io_input_dir=as_path(config.getoption("io_input_dir", None)),
        terratorch=config.getoption("terratorch_version", None),
    )


def say_expectations(config: pytest.Config, expectations: Expectations) -> None:
    """Which expectations file applies, and why (before the tests run; again in the summary)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if expectations.warning:
        reporter.write_line(f"warning: {expectations.warning}", yellow=True, bold=True)
    else:
        reporter.write_line(expectations.line)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not active(config):
        return []
    return [f"conformance target: (resolved after collection) base_url={base_url(config) or 'embedded'}"]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The server under test (see :class:`geopool.conformance.target.Target`)."""
    stash = request.config.stash
    if TARGET_KEY not in stash:
        pytest.fail("no conformance target: this test has no @pytest.mark.requirement", pytrace=False)
    return stash[TARGET_KEY]


#: Why a ``needs_torch`` test was not checked (the client install has no torch).
NO_TORCH = ("not checked: its payload is torch.save bytes that only torch can build; "
            "pip install 'geopool[reference]' to check it")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Destructive tests run against a server the suite owns, or an external one with --destructive.

    Decided before any fixture is set up, so a skipped destructive test sends nothing at all. Likewise a
    test whose payloads only torch can build is skipped, as not checked, where torch is not installed.
    """
    if item.get_closest_marker("needs_torch") is not None and not wire.torch_available():
        pytest.skip(NO_TORCH)
    if item.get_closest_marker("destructive") is None:
        return
    target = item.config.stash.get(TARGET_KEY, None)
    if target is not None and not target.embedded and not item.config.getoption("destructive"):
        pytest.skip("destructive input: sent only to the embedded server, or to --base-url with --destructive")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Tell the survival guard whether a test follows this one (it restarts a killed server only then)."""
    item.config.stash[LAST_TEST_KEY] = nextitem is None
    guard = item.config.stash.get(GUARD_KEY, None)
    if guard is not None:
        guard.last_test = nextitem is None


@pytest.fixture(scope="session")
def guard(request: pytest.FixtureRequest, target: Target, baseline) -> ServerGuard:
    """Survival checks and restarts of an owned server (``baseline`` comes from the suite's conftest)."""
    from geopool import wire
    from geopool.conformance.support import body_for

    found = ServerGuard(target, body_for(target, wire.seed_inputs(target.contract)), baseline)
    found.last_test = request.config.stash.get(LAST_TEST_KEY, False)
    request.config.stash[GUARD_KEY] = found
    return found


@pytest.fixture
def checks() -> Checks:
    """Per-requirement facts of one test; failures are raised after the test body."""
    return Checks()

