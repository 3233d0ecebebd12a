"""pytest-base-url and geopool's conformance plugin in one run: one ``--base-url``, whoever declares it.

A stand-in module plays pytest-base-url (its option and ini key, same names and dest), loaded with ``-p``
before or after geopool's plugin; no network, nothing installed.
"""

from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace

import pytest

from geopool.conformance import plugin
from geopool.server import free_port

STAND_IN = '''
import os

def pytest_addoption(parser):
    parser.addini("base_url", help="base url for the application under test.")
    parser.addoption("--base-url", metavar="url", default=os.getenv("PYTEST_BASE_URL", None), help="stand-in")
'''
SUITE = """
import pytest

@pytest.mark.requirement("POOL-ENV-001")
def test_envelope():
    pass
"""
OURS = ("-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin")
COMMON = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


pytestmark = pytest.mark.usefixtures("no_target_from_the_environment")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A folder with a one-test suite and two stand-ins: ``base_url`` (pytest-base-url's entry point
    name) and ``other_base_url`` (a plugin of another name declaring the same option)."""
    pytester.makepyfile(test_suite=SUITE, base_url=STAND_IN, other_base_url=STAND_IN)
    pytester.syspathinsert()
    return pytester


@pytest.mark.parametrize("order", [
    pytest.param(("-p", "base_url", *OURS), id="stand-in-first"),
    pytest.param((*OURS, "-p", "base_url"), id="stand-in-after"),
    pytest.param(("-p", "other_base_url", *OURS), id="same-option-under-another-name-first"),
])
def test_no_clash_and_the_target_is_the_stand_ins_option(suite, order):
    result = suite.runpytest(*COMMON, *order, "--collect-only", "--base-url", "http://gpu-box:8000")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["conformance target: *base_url=http://gpu-box:8000*"])
    assert "already added" not in result.stderr.str()


def test_the_stand_ins_ini_key_names_the_target(suite):
    suite.makeini("[pytest]\nbase_url = http://from-ini:8000\n")
    result = suite.runpytest(*COMMON, "-p", "base_url", *OURS, "--collect-only")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["conformance target: *base_url=http://from-ini:8000*"])


def test_the_target_resolved_from_the_stand_ins_option_is_contacted(suite):
    url = f"http://127.0.0.1:{free_port()}"
    result = suite.runpytest_subprocess(*COMMON, "-p", "base_url", *OURS, "--base-url", url, "--input-dtype", "float32")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 12, output
    assert output.count(f"conformance target {url} is not reachable") == 1, output


class FakePluginManager:
    """What base_url_plugin_owns_the_option reads of pytest's plugin manager."""

    def __init__(self, registered=(), blocked=(), plugins=(), disable_autoload=False):
        self.registered, self.blocked = set(registered), set(blocked)
        namespace = SimpleNamespace(plugins=list(plugins), disable_plugin_autoload=disable_autoload)
        self.config = SimpleNamespace(known_args_namespace=namespace)

    def is_blocked(self, name):
        return name in self.blocked

    def has_plugin(self, name):
        return name in self.registered

    def get_plugin(self, name):
        return self.config if name == "pytestconfig" else None


@pytest.mark.parametrize(("manager", "installed", "environ", "owns"), [
    pytest.param(FakePluginManager(), False, {}, False, id="not-installed"),
    pytest.param(FakePluginManager(), True, {}, True, id="installed-autoloaded-later"),
    pytest.param(FakePluginManager(registered={"base_url"}), True, {}, True, id="registered-first"),
    pytest.param(FakePluginManager(registered={"pytest_base_url.plugin"}), False, {}, True,
                 id="registered-by-module-name"),
    pytest.param(FakePluginManager(blocked={"base_url"}), True, {}, False, id="blocked"),
    pytest.param(FakePluginManager(plugins=["no:base_url"]), True, {}, False, id="blocked-by-a-later-p"),
    pytest.param(FakePluginManager(), True, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, False, id="autoload-off-env"),
    pytest.param(FakePluginManager(disable_autoload=True), True, {}, False, id="autoload-off-flag"),
    pytest.param(FakePluginManager(plugins=["base_url"], disable_autoload=True), True, {}, True,
                 id="autoload-off-but-named-by-p"),
    pytest.param(FakePluginManager(), True, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                                              "PYTEST_PLUGINS": "pytest_base_url.plugin"}, True,
                 id="autoload-off-but-in-PYTEST_PLUGINS"),
])
def test_base_url_plugin_detection(monkeypatch, manager, installed, environ, owns):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    entries = [SimpleNamespace(name="base_url")] if installed else [SimpleNamespace(name="timeout")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: entries)
    assert plugin.base_url_plugin_owns_the_option(manager) is owns


def test_an_autoloaded_plugin_is_inert_in_another_projects_run(pytester):
    """Registered without being asked for (as an installed entry point is): no header, no requirement
    check, no profile. Where geopool is installed with its entry points, it is autoloaded already."""
    pytester.makeconftest("from geopool.conformance import plugin\n\n"
                          "def pytest_configure(config):\n"
                          "    if not config.pluginmanager.is_registered(plugin):\n"
                          "        config.pluginmanager.register(plugin, 'autoloaded')\n")
    pytester.makepyfile(test_other='import pytest\n\n@pytest.mark.requirement("THEIR-OWN-1")\n'
                        'def test_theirs():\n    from hypothesis import settings\n'
                        '    assert settings.default.max_examples == 100\n')
    pytester.makeini("[pytest]\nmarkers =\n    requirement: theirs\n")
    result = pytester.runpytest_subprocess(*COMMON)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "conformance target" not in result.stdout.str()
