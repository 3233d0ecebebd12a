"""pytest plugin of the conformance suite (loaded by the repository's root conftest.py).

Target selection follows pytest-base-url: ``--base-url``, else ``$PYTEST_BASE_URL``, else the
``base_url`` ini key; with none, the suite starts the embedded server for the session. When the
pytest-base-url plugin is installed (and not disabled with ``-p no:base_url``), it owns ``--base-url``
and the ``base_url`` ini key, and this plugin reads them: declaring them twice is an error in pytest.

An installed geopool registers this plugin (entry point group ``pytest11``) in every pytest run of its
venv. It acts only in runs that are the suite's (:func:`_active`): the command line names the suite,
or the plugin was asked for by name (``-p geopool.conformance.plugin``, ``$PYTEST_PLUGINS``, a conftest's
``pytest_plugins``). Elsewhere it loads no Hypothesis profile, prints no header, reads no
``@pytest.mark.requirement`` and writes no report; it only registers its options, markers, fixtures and
Hypothesis profiles (``dev``, ``ci``, ``nightly``, ``fast``; loaded with ``--hypothesis-profile``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from geopool import exitcodes, options, wire
from geopool.conformance.checks import Checks, Evaluations, RequirementFailure, recording
from geopool.conformance.guard import ServerGuard
from geopool.conformance.html import write_conformance_html
from geopool.conformance.recipes import sending
from geopool.conformance.registry import Expectations, load_expectations, load_registry
from geopool.conformance.report import RequirementLedger, terminal_table, unchecked_line, write_report
from geopool.conformance.target import Target, resolve_target
from geopool.errors import EmbeddedServerError, GeopoolError, ServerError, TargetError
from geopool.resources import SUITE_PACKAGE, suite_dir
from geopool.server import DEFAULT_PLUGIN, TENSOR_TO_TENSOR

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

TARGET_KEY = pytest.StashKey[Target]()
LEDGER_KEY = pytest.StashKey[RequirementLedger]()
EXPECT_KEY = pytest.StashKey[Expectations]()
STARTED_KEY = pytest.StashKey[float]()
GUARD_KEY = pytest.StashKey["ServerGuard"]()
EVALUATED_KEY = pytest.StashKey[Evaluations]()


#: pytest-base-url's entry point name (pytest11), and its module.
BASE_URL_PLUGIN, BASE_URL_MODULE = "base_url", "pytest_base_url.plugin"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("geopool-conformance", "geopool conformance suite")
    if not base_url_plugin_owns_the_option(pluginmanager):
        _add_base_url(parser, group)
    # Every option is a row of geopool's one table (same help and default as in the CLI and Locust);
    # ``model`` and ``plugin`` get their own dests here, as other plugins may own those.
    options.add_pytest(group, (*options.CONFORMANCE_TARGET, *options.CONFORMANCE),
                       dests={"model": "conformance_model", "plugin": "io_plugin"})


def _add_base_url(parser: pytest.Parser, group: Any) -> None:
    """``--base-url`` and the ``base_url`` ini key, as pytest-base-url declares them (same dest, same name),
    unless a plugin registered before this one declared ``--base-url`` already."""
    # Parser._groups/_anonymous are private, but the only way to see other plugins' options before pytest 9,
    # which raises argparse's conflict error at once (older versions only when parsing the command line).
    groups = [*getattr(parser, "_groups", ()), getattr(parser, "_anonymous", None)]
    taken = {name for other in groups if other is not None for option in other.options for name in option.names()}
    if "--base-url" in taken:
        return
    try:
        # pytest-base-url's option, as that plugin declares it: its help, and $PYTEST_BASE_URL (read in
        # _base_url) instead of the CLI's variable. The one row the suite renders with another help.
        options.add_pytest(group, (dataclasses.replace(
            options.BASE_URL, help="Server under test [$PYTEST_BASE_URL, ini base_url; default: start the "
            "embedded server].", env=None),))
    except (ValueError, argparse.ArgumentError):  # declared already (conflicting option)
        return
    parser.addini("base_url", "base URL of the server under test", default=None)


def base_url_plugin_owns_the_option(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-base-url declares ``--base-url`` in this run, whatever the registration order.

    It does when it is registered already, or is going to be: installed (an entry point named
    ``base_url``) and autoloaded, or named with ``-p base_url`` / ``$PYTEST_PLUGINS``; never when
    blocked (``-p no:base_url``). A conftest that lists it in ``pytest_plugins`` after this plugin is
    not foreseen: load it with ``-p`` instead.
    """
    if pluginmanager.is_blocked(BASE_URL_PLUGIN):
        return False
    if pluginmanager.has_plugin(BASE_URL_PLUGIN) or pluginmanager.has_plugin(BASE_URL_MODULE):
        return True
    config = pluginmanager.get_plugin("pytestconfig")
    namespace = getattr(config, "known_args_namespace", None)
    named = [name.strip() for name in getattr(namespace, "plugins", None) or []]
    named += [name.strip() for name in os.environ.get("PYTEST_PLUGINS", "").split(",") if name.strip()]
    if f"no:{BASE_URL_PLUGIN}" in named:
        return False
    if BASE_URL_MODULE in named or BASE_URL_PLUGIN in named:
        return True
    autoload = not (os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
                    or getattr(namespace, "disable_plugin_autoload", False))
    return autoload and _base_url_entry_point()


def _base_url_entry_point() -> bool:
    return any(entry.name == BASE_URL_PLUGIN for entry in importlib.metadata.entry_points(group="pytest11"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the conformance requirements a test checks")
    config.addinivalue_line("markers", "destructive: sends input known or suspected to kill the server")
    config.addinivalue_line("markers", "needs_torch: builds torch.save payloads; not checked where torch is absent")
    if not _active(config):
        return
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    if _runs_the_suite(config) and not config.option.xmlpath:
        config.option.xmlpath = str(Path(config.getoption("conformance_report")).with_suffix(".junit.xml"))


def _active(config: pytest.Config) -> bool:
    """Whether this run is the suite's: it names the suite, or asks for this plugin by name (``-p``,
    ``$PYTEST_PLUGINS``, a conftest's ``pytest_plugins``) rather than getting it by autoload only."""
    if _runs_the_suite(config):
        return True
    named = [*(config.getoption("plugins", None) or []), *os.environ.get("PYTEST_PLUGINS", "").split(",")]
    if __name__ in (name.strip() for name in named):
        return True
    for found in config.pluginmanager.get_plugins():
        wanted = getattr(found, "pytest_plugins", ())
        if __name__ in ([wanted] if isinstance(wanted, str) else wanted):
            return True
    return False


def _runs_the_suite(config: pytest.Config) -> bool:
    """Whether the command line names the suite: a path in its folder, or (with --pyargs) its package."""
    suite = str(suite_dir())
    for arg in config.args:
        where = arg.split("::")[0]
        if config.option.pyargs and (where == SUITE_PACKAGE or where.startswith(SUITE_PACKAGE + ".")):
            return True
        if str(Path(where).resolve()).startswith(suite):
            return True
    return False


def _requirements_of(item: pytest.Item) -> list[str]:
    return [rid for mark in item.iter_markers("requirement") for rid in mark.args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _active(config):
        return  # another project's "requirement" marker is none of our business
    marked = [item for item in items if _requirements_of(item)]
    if not marked:
        return
    every_mode = load_registry(mode=None)
    unknown = sorted({rid for item in marked for rid in _requirements_of(item)} - set(every_mode))
    if unknown:
        raise pytest.UsageError(f"tests name requirements missing from conformance/requirements.toml: {unknown}")
    mode = config.getoption("mode", None) or TENSOR_TO_TENSOR
    registry = {rid: requirement for rid, requirement in every_mode.items() if requirement.mode == mode}
    other_mode = [item for item in marked if not set(_requirements_of(item)) & set(registry)]
    if other_mode:  # the other mode's checks: not applicable to this server, so not collected at all
        config.hook.pytest_deselected(items=other_mode)
        items[:] = [item for item in items if item not in other_mode]
        marked = [item for item in marked if item not in other_mode]
    mixed = [item.nodeid for item in marked if set(_requirements_of(item)) - set(registry)]
    if mixed:
        raise pytest.UsageError(f"tests name requirements of both modes: {mixed[:3]}")
    if not marked:
        return
    ledger = config.stash[LEDGER_KEY] = RequirementLedger(registry)
    for item in marked:
        ledger.add_test(item.nodeid, _requirements_of(item))
    if map_path := config.getoption("requirements_map"):
        Path(map_path).parent.mkdir(parents=True, exist_ok=True)
        Path(map_path).write_text(json.dumps(ledger.tests, indent=2))


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if LEDGER_KEY not in config.stash or config.option.collectonly:
        return
    try:
        # A target another plugin resolved already (the project's tests of this ledger set one) is kept.
        target = config.stash[TARGET_KEY] if TARGET_KEY in config.stash else _resolve(config)
        expectations_option = config.getoption("expectations")
        expectations = load_expectations(target.version, registry=load_registry(mode=None),
                                         path="none" if expectations_option == "none" else _path(expectations_option),
                                         mode=getattr(target, "mode", TENSOR_TO_TENSOR),
                                         plugin=getattr(target, "plugin", None),
                                         terratorch_version=getattr(target, "terratorch_version", None))
    except (TargetError, ServerError, EmbeddedServerError) as exc:
        pytest.exit(f"geopool conformance: {exc}", returncode=exitcodes.TARGET_UNUSABLE)
    except GeopoolError as exc:  # a bad option value or expectations file
        pytest.exit(f"geopool conformance: {exc}", returncode=exitcodes.USAGE)
    if target.server is not None:
        config.add_cleanup(target.server.stop)
    config.stash[TARGET_KEY] = target
    config.stash[EXPECT_KEY] = expectations
    config.stash[LEDGER_KEY].expectations = expectations
    config.stash[STARTED_KEY] = time.time()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and getattr(target, "plugin_description", None):
        reporter.write_line(f"image-to-image through {target.plugin_description}")
    _say_expectations(config, expectations)


def _resolve(config: pytest.Config) -> Target:
    return resolve_target(
        base_url=_base_url(config) or None, model=config.getoption("conformance_model"),
        model_config=_path(config.getoption("model_config")), input_dtype=config.getoption("input_dtype"),
        api_key=config.getoption("api_key"), embedded_model=config.getoption("embedded_model"),
        embedded_dtype=config.getoption("embedded_dtype"), reference=_path(config.getoption("reference_checkpoint")),
        embedded_device=config.getoption("embedded_device", options.DEVICE.default),
        numeric_bounds=config.getoption("numeric_bounds", options.NUMERIC_BOUNDS.default),
        mode=config.getoption("mode", None) or TENSOR_TO_TENSOR, plugin=config.getoption("io_plugin", None) or
        DEFAULT_PLUGIN, io_input_dir=_path(config.getoption("io_input_dir", None)),
        terratorch=config.getoption("terratorch_version", None),
    )


def _say_expectations(config: pytest.Config, expectations: Expectations) -> None:
    """Which expectations file applies, and why (before the tests run; again in the summary)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if expectations.warning:
        reporter.write_line(f"warning: {expectations.warning}", yellow=True, bold=True)
    else:
        reporter.write_line(expectations.line)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _base_url(config: pytest.Config) -> str | None:
    """pytest-base-url's order: the option, then $PYTEST_BASE_URL, then the ini key; None: embedded.

    The option and the key are this plugin's, or pytest-base-url's (then its ini key's default is "").
    """
    try:
        ini = config.getini("base_url")
    except ValueError:  # nobody declared it: pytest-base-url was expected but -p no:base_url came later
        ini = None
    return config.getoption("base_url", None) or os.environ.get("PYTEST_BASE_URL") or ini or None


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not _active(config):
        return []
    return [f"conformance target: (resolved after collection) base_url={_base_url(config) or 'embedded'}"]


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


@pytest.fixture(scope="session")
def guard(request: pytest.FixtureRequest, target: Target, baseline) -> ServerGuard:
    """Survival checks and restarts of an owned server (``baseline`` comes from the suite's conftest)."""
    from geopool import wire
    from geopool.conformance.support import body_for

    found = ServerGuard(target, body_for(target, wire.seed_inputs(target.contract)), baseline)
    request.config.stash[GUARD_KEY] = found
    return found


@pytest.fixture
def checks() -> Checks:
    """Per-requirement facts of one test; failures are raised after the test body."""
    return Checks()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Record what the test body evaluates (every ``Checks``, ``require``, ``send``, ``decode`` call, also in
    Hypothesis tests that build their own Checks), then raise the ``checks`` fixture's failures."""
    with recording() as record, sending():
        item.stash[EVALUATED_KEY] = record
        result = yield
    found = getattr(item, "funcargs", {}).get("checks")
    if isinstance(found, Checks) and found.failures:
        raise RequirementFailure(found.failures)
    return result


def default_case(item: pytest.Item) -> str:
    """A test's own case: its parametrize id, else its function name."""
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else getattr(item, "originalname", item.name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report: pytest.TestReport = yield
    ledger = item.config.stash.get(LEDGER_KEY, None)
    ids = _requirements_of(item)
    if ledger is None or not ids:
        return report
    if report.when == "setup":
        _add_properties(item, report, [("requirement", rid) for rid in ids])
    if report.when == "call" or report.outcome != "passed":
        case = default_case(item)
        evidence, error = _attribute(call, case)
        if report.when != "call" and report.failed and error is None:  # e.g. a session fixture's send() failed
            error = f"{report.when} failed: " + ("; ".join(f"{e['requirement']}: {e['message']}" for e in evidence)
                                                 or "see the test's report")
        record = item.stash.get(EVALUATED_KEY, None) if report.when == "call" else None
        evaluated = {rid: record.cases(rid, case) for rid in ids} if record is not None else {}
        outcome = ledger.record(item.nodeid, report, ids, evidence=evidence, evaluated=evaluated, error=error)
        _add_properties(item, report, _outcome_properties(ledger, item.nodeid, ids))
        if outcome == "expected-fail":
            report.outcome = "skipped"
            report.wasxfail = "; ".join(sorted({f"{e['requirement']} [{e['case']}]: {_reason(ledger, e)}"
                                                for e in evidence}))
    return report


#: Requirement outcomes that the JUnit testcase states with their evidence.
_JUNIT_OUTCOMES = ("fail", "error", "expected-fail")
#: Failing facts per requirement, and characters per fact, a JUnit testcase carries (conformance.json has all).
_JUNIT_FACTS, _JUNIT_CHARS = 3, 300


def _add_properties(item: pytest.Item, report: pytest.TestReport, properties: list[tuple[str, str]]) -> None:
    """JUnit testcase properties: pytest's junitxml writes the teardown report's ``user_properties``,
    which are the item's at that time; a teardown report is built already, so it gets them too."""
    item.user_properties.extend(properties)
    if report.when == "teardown":
        report.user_properties.extend(properties)


def _outcome_properties(ledger: RequirementLedger, nodeid: str, ids: list[str]) -> list[tuple[str, str]]:
    """``outcome`` (``POOL-X-001: fail``) and up to three ``evidence`` (``POOL-X-001 [case]: message``)
    per requirement this test phase failed, errored or failed as expected."""
    found = []
    for rid in ids:
        result = ledger.results[rid][-1] if ledger.results[rid] else None
        if result is None or result["test"] != nodeid or result["outcome"] not in _JUNIT_OUTCOMES:
            continue
        found.append(("outcome", f"{rid}: {result['outcome']}"))
        for fact in result["evidence"][:_JUNIT_FACTS]:
            text = f"{rid} [{fact['case']}]: {fact.get('message', '')}" if fact.get("case") else \
                f"{rid}: {fact.get('message', '')}"
            found.append(("evidence", text if len(text) <= _JUNIT_CHARS else text[:_JUNIT_CHARS - 3] + "..."))
    return found


def _reason(ledger: RequirementLedger, evidence: dict) -> str:
    matched = ledger.expectations.matching(evidence["requirement"], evidence["case"])
    return matched[0].reason if matched else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With --strict-expectations, a known defect that no longer fails makes the run fail; with --strict,
    so does a MUST requirement nothing checked."""
    ledger = session.config.stash.get(LEDGER_KEY, None)
    if ledger is None or exitstatus != 0 or TARGET_KEY not in session.config.stash:
        return
    reasons = strict_failures(session.config, ledger)
    if reasons:
        only_unchecked = all(not reason.startswith("unexpected-pass") for reason in reasons)
        session.exitstatus = exitcodes.UNCHECKED_MUST if only_unchecked else exitcodes.FAILED


def strict_mode(config: pytest.Config) -> bool:
    """pytest's own ``--strict`` (ini ``strict = true``; pytest 9): the conformance run is strict too, so a
    MUST requirement left unchecked (skipped or not evaluated) fails it, and so does an unexpected pass."""
    try:
        return bool(config.getini("strict"))
    except ValueError:  # a pytest without the ``strict`` ini key
        return bool(getattr(config.option, "strict", False))


def strict_failures(config: pytest.Config, ledger: RequirementLedger) -> list[str]:
    """Why --strict / --strict-expectations fail this run (empty: they don't)."""
    strict = strict_mode(config)
    reasons = []
    if strict or config.getoption("strict_expectations"):
        reasons += [f"unexpected-pass: {entry.id} case {entry.label}" for entry in ledger.unexpected_passes()]
    if strict and ledger.unchecked_must():
        reasons.append(unchecked_line(ledger))
    return reasons


def _attribute(call: pytest.CallInfo, case: str) -> tuple[list[dict], str | None]:
    """The failing facts of a test phase (their case defaulting to the test's), or the error that is
    not a requirement failure (exception type and message)."""
    if call.excinfo is None or call.excinfo.errisinstance(pytest.skip.Exception):
        return [], None
    error = call.excinfo.value
    failures = ([error] if isinstance(error, RequirementFailure) else
                [e for e in getattr(error, "exceptions", ()) if isinstance(e, RequirementFailure)])
    if failures and (isinstance(error, RequirementFailure) or len(failures) == len(error.exceptions)):
        return [{**item.as_dict(), "case": item.case or case} for f in failures for item in f.evidence], None
    message = str(error).strip().splitlines()
    short = " | ".join(message[:6])[:800]
    return [], f"{type(error).__name__}: {short}" if short else type(error).__name__


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    ledger = config.stash.get(LEDGER_KEY, None)
    target = config.stash.get(TARGET_KEY, None)
    if ledger is None or target is None:
        return
    expectations = config.stash.get(EXPECT_KEY, Expectations(None, {}))
    path = Path(config.getoption("conformance_report"))
    duration = time.time() - config.stash.get(STARTED_KEY, time.time())
    report = write_report(path, ledger, target, expectations, duration, _replay_command(config, target),
                          strict_failures=strict_failures(config, ledger),
                          repro_dir=Path(config.getoption("repro_dir")))
    html_path = write_conformance_html(Path(config.getoption("conformance_html") or path.with_suffix(".html")),
                                       report)
    terminalreporter.write_sep("=", "geopool conformance")
    for number, line in enumerate(terminal_table(ledger, target)):
        terminalreporter.write_line(line, **({"yellow": True, "bold": True}
                                             if number == 0 and ledger.unchecked_must() else {}))
    _say_expectations(config, expectations)
    destructive = [r for reports in terminalreporter.stats.values() for r in reports
                   if isinstance(r, pytest.TestReport) and "destructive" in r.keywords]
    if destructive:
        guard = config.stash.get(GUARD_KEY, None)
        restarts = f", server restarted {guard.restarts}× ({guard.restart_seconds:.0f} s)" if guard else ""
        ran = sum(1 for r in destructive if r.when == "call" and (not r.skipped or hasattr(r, "wasxfail")))
        terminalreporter.write_line(f"destructive inputs: {ran} tests run, "
                                    f"wall time {sum(r.duration for r in destructive):.1f} s{restarts}")
    terminalreporter.write_line(f"wall time {duration:.1f} s (after target start-up)  report: {path}  "
                                f"html: {html_path}  junit: {config.option.xmlpath or '-'}")
    scripts = [entry["reproducer"] for entry in report["requirements"] if "reproducer" in entry]
    if scripts:
        terminalreporter.write_line(f"reproducers (httpx + numpy; exit 1 = reproduced): {len(scripts)} in "
                                    f"{config.getoption('repro_dir')}/, e.g. python {scripts[0]}")
    flag = "--strict" if strict_mode(config) else "--strict-expectations"
    for reason in strict_failures(config, ledger):
        terminalreporter.write_line(f"the run fails ({flag}): {reason}", red=True, bold=True)


def _replay_command(config: pytest.Config, target: Target) -> str:
    """A command template; ``{test}`` is replaced by a failing test's node id."""
    url = "" if target.embedded else f" --base-url {target.url}"
    return (f"pytest '{{test}}'{url} --model {target.model}  (a failing Hypothesis example is printed as a "
            "recipe, and with the dev profile saved under .hypothesis/examples and re-tried first)")
