"""The conformance pytest plugin (geopool.conformance.plugin) on its own, with pytester: no server.

Inner runs load the plugins with ``-p`` (the repository's root conftest is outside pytester's folder).
They run in-process, except two that run in a subprocess: collecting the real suite (in this session
``conformance`` is already the package ``tests/conformance``), and connecting to a server (pytester drops
the modules an in-process run imported, and httpx's lazily imported transport modules, imported again,
would no longer raise the exception classes geopool.client catches).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from geopool.conformance import plugin
from geopool.conformance.hooks import session
from geopool.conformance.registry import load_registry
from geopool.resources import SUITE_PACKAGE, suite_dir
from geopool.server import free_port

PLUGINS = ("-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin", "-p", "no:cacheprovider",
           "-o", "asyncio_default_fixture_loop_scope=function")
OPTIONS = ["--base-url", "--model", "--model-config", "--input-dtype", "--api-key", "--reference-checkpoint",
           "--conformance-report", "--conformance-html", "--expectations", "--strict-expectations", "--destructive",
           "--requirements-map", "--embedded-model", "--embedded-dtype"]
#: Two tests naming requirements, one naming none.
SUITE = """
import pytest

@pytest.mark.requirement("POOL-ENV-001", "POOL-ENV-002")
def test_envelope():
    pass

@pytest.mark.requirement("POOL-ENV-002")
def test_ids():
    pass

def test_plain():
    pass
"""


pytestmark = pytest.mark.usefixtures("no_target_from_the_environment")


def test_every_option_and_the_ini_key_are_registered(pytester):
    result = pytester.runpytest(*PLUGINS, "--help")
    assert result.ret == 0
    text = result.stdout.str()
    assert [option for option in OPTIONS if option not in text] == []
    result.stdout.fnmatch_lines(["*base_url (string):*base URL of the server under test*"])


def test_the_markers_are_registered(pytester):
    result = pytester.runpytest(*PLUGINS, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.requirement([*]ids)*", "@pytest.mark.destructive*"])


def test_collect_only_writes_the_requirements_map_and_contacts_no_server(pytester):
    pytester.makepyfile(test_suite=SUITE)
    target = pytester.path / "out" / "map.json"
    result = pytester.runpytest(*PLUGINS, "--collect-only", "-q", "--requirements-map", str(target),
                                "--base-url", f"http://127.0.0.1:{free_port()}")
    assert result.ret == 0, result.stdout.str()
    found = json.loads(target.read_text())
    assert set(found) == set(load_registry())
    assert found["POOL-ENV-001"] == ["test_suite.py::test_envelope"]
    assert found["POOL-ENV-002"] == ["test_suite.py::test_envelope", "test_suite.py::test_ids"]
    assert sum(map(len, found.values())) == 3  # test_plain names no requirement


def test_an_unknown_requirement_id_is_refused_at_collection(pytester):
    pytester.makepyfile(test_suite=SUITE + '\n@pytest.mark.requirement("POOL-NOPE-999")\ndef test_nope():\n    pass\n')
    result = pytester.runpytest(*PLUGINS, "--base-url", f"http://127.0.0.1:{free_port()}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *requirements.toml*POOL-NOPE-999*"])
    result.assert_outcomes()  # nothing ran


def test_an_unreachable_base_url_exits_12_with_one_message_and_runs_nothing(pytester):
    pytester.makepyfile(test_suite=SUITE)
    url = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest_subprocess(*PLUGINS, "--base-url", url, "--input-dtype", "float32")
    assert result.ret == 12
    output = result.stdout.str() + result.stderr.str()
    assert output.count("is not reachable") == 1, output
    assert f"conformance target {url} is not reachable" in output
    result.assert_outcomes()
    assert "Traceback" not in output


def test_a_url_without_input_dtype_is_a_usage_error_before_any_connection(pytester):
    """As in ``geopool load`` and the gate: exit 4 naming --input-dtype, even when the URL is unreachable."""
    pytester.makepyfile(test_suite=SUITE)
    url = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest_subprocess(*PLUGINS, "--base-url", url)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 4, output
    assert output.count("pass --input-dtype") == 1 and "not reachable" not in output, output
    result.assert_outcomes()


def test_a_run_without_requirement_marks_leaves_the_plugin_inert(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    report = pytester.path / "conformance.json"
    result = pytester.runpytest(*PLUGINS, "--base-url", f"http://127.0.0.1:{free_port()}",
                                "--conformance-report", str(report))
    result.assert_outcomes(passed=1)  # no target is resolved, so the unreachable URL does not matter
    assert not report.exists() and "geopool conformance" not in result.stdout.str()


def test_the_report_header_names_the_target(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(*PLUGINS, "--collect-only", "--base-url", "http://gpu-box:8000")
    result.stdout.fnmatch_lines(["conformance target: *base_url=http://gpu-box:8000*"])
    result = pytester.runpytest(*PLUGINS, "--collect-only")
    result.stdout.fnmatch_lines(["conformance target: *base_url=embedded*"])


def test_the_report_header_names_a_target_given_by_the_environment(pytester, monkeypatch):
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("PYTEST_BASE_URL", "http://gpu-box:8000")
    result = pytester.runpytest(*PLUGINS, "--collect-only")
    result.stdout.fnmatch_lines(["conformance target: *http://gpu-box:8000*"])


@pytest.mark.parametrize(("args", "pyargs", "suite"), [
    pytest.param(lambda: [str(suite_dir())], False, True, id="suite-folder"),
    pytest.param(lambda: [f"{suite_dir() / 'test_envelope.py'}::test_envelope_of_a_valid_request"], False, True,
                 id="suite-node-id"),
    pytest.param(lambda: ["tests", str(suite_dir() / "test_encoding.py")], False, True, id="suite-among-others"),
    pytest.param(lambda: [SUITE_PACKAGE], True, True, id="pyargs-package"),
    pytest.param(lambda: [f"{SUITE_PACKAGE}.test_envelope"], True, True, id="pyargs-module"),
    pytest.param(lambda: [SUITE_PACKAGE], False, False, id="package-name-without-pyargs"),
    pytest.param(lambda: [f"{SUITE_PACKAGE}_other"], True, False, id="pyargs-other-package"),
    pytest.param(lambda: [str(suite_dir().parent / "tests")], False, False, id="project-tests"),
    pytest.param(lambda: [], False, False, id="no-arguments"),
])
def test_runs_the_suite_recognises_the_suite_on_the_command_line(args, pyargs, suite):
    # A stand-in config: pytester.parseconfig would import the suite's conftest as ``conformance.conftest``,
    # which this session's ``conformance`` (tests/conformance) does not hold.
    config = SimpleNamespace(args=args(), option=SimpleNamespace(pyargs=pyargs))
    assert session.runs_the_suite(config) is suite


def test_running_the_suite_writes_junit_beside_the_report(pytester):
    report = pytester.path / "out" / "conformance.json"
    result = pytester.runpytest_subprocess(*PLUGINS, str(suite_dir()), "--collect-only", "-q",
                                           "--conformance-report", str(report))
    assert result.ret == 0, result.stdout.str()[-2000:] + result.stderr.str()[-2000:]
    assert report.with_suffix(".junit.xml").is_file()
    assert not (suite_dir() / "out").exists()


def test_a_torch_only_test_is_skipped_as_not_checked_without_torch(monkeypatch):
    from types import SimpleNamespace

    from geopool import wire

    item = SimpleNamespace(get_closest_marker=lambda name: object() if name == "needs_torch" else None)
    monkeypatch.setattr(wire, "torch_available", lambda: False)
    with pytest.raises(pytest.skip.Exception, match=r"not checked: .*geopool\[reference\]"):
        plugin.pytest_runtest_setup(item)
    monkeypatch.setattr(wire, "torch_available", lambda: True)
    assert plugin.pytest_runtest_setup(item) is None


# ------------------------------------------------------------------------------- another project's run
#: A project of its own, with options of its own named like geopool's.
FOREIGN_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--model", default="theirs")
    parser.addoption("--mode", default="theirs")
"""
FOREIGN_TEST = """
def test_their_options(request):
    assert request.config.getoption("model") == "mine"
    assert request.config.getoption("mode") == "theirs"
"""
GEOPOOL_OPTIONS = ("--expectations", "--destructive", "--api-key", "--conformance-report", "--embedded-model")


def _files(folder) -> list[str]:
    """The project's files (not pytester's own: its base temp folders runpytest-N, a subprocess's stdout and
    stderr)."""
    def pytesters(path) -> bool:
        top = path.relative_to(folder).parts[0]
        return top.startswith("runpytest-") or top in ("stdout", "stderr")

    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                  if "__pycache__" not in path.parts and not pytesters(path))


def test_a_project_with_its_own_model_option_runs_beside_an_installed_geopool(pytester):
    """geopool's plugins autoloaded from its entry points (a subprocess, as in the project's venv) declare no
    option and write nothing in a run that does not ask for geopool."""
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(test_theirs=FOREIGN_TEST)
    before = _files(pytester.path)
    markers = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.requirement([*]ids)*"])  # geopool's plugin is loaded
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model", "mine")
    result.assert_outcomes(passed=1)
    assert pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "--model", "mine").ret == 0
    shown = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help").stdout.str()
    assert [option for option in GEOPOOL_OPTIONS if option in shown] == []
    assert _files(pytester.path) == before  # no reports/, no .hypothesis/


@pytest.mark.parametrize(("listed", "declared"), [
    ("geopool.conformance.plugin", GEOPOOL_OPTIONS),
    ("geopool.pytest_plugin", ("--embedded-model",)),
])
def test_a_root_conftest_listing_a_plugin_gets_its_options(pytester, listed, declared):
    pytester.makeconftest(f"pytest_plugins = [{listed!r}]\n")
    shown = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help").stdout.str()
    assert [option for option in GEOPOOL_OPTIONS if option in shown] == list(declared)


@pytest.mark.parametrize(("args", "addopts", "asked"), [
    ([str(suite_dir())], "", True),
    ([f"{suite_dir()}/test_envelope.py::test_envelope_fields", "-q"], "", True),
    (["--pyargs", SUITE_PACKAGE, "-k", "envelope"], "", True),
    (["-p", "geopool.conformance.plugin", "tests/"], "", True),
    (["-pgeopool.pytest_plugin"], "", True),
    (["tests/", "-k", "model"], "-p geopool.conformance.plugin", True),
    (["tests/", "-k", "model", "--pyargs", "other_package"], "", False),
    (["-p", "no:cacheprovider", "--model", "mine"], "", False),
])
def test_what_asks_for_geopool_on_the_command_line(monkeypatch, tmp_path, args, addopts, asked):
    from geopool.pytest_asked import asked_by_the_command_line

    monkeypatch.setenv("PYTEST_ADDOPTS", addopts)
    config = SimpleNamespace(invocation_params=SimpleNamespace(args=args, dir=tmp_path))
    assert asked_by_the_command_line(config) is asked
