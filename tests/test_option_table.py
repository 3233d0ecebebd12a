"""Every option of every command comes from the one table (:data:`geopool.options.TABLE`).

Each command's click options, the pytest plugins' options and Locust's parser are rendered from table
rows: same flag, help, type, choices, bounds and default. A command may change a row's default or
``required`` only, and every such change is listed here (:data:`CONTEXT`), so a new one is a decision.
The gate offers exactly the union of its phases' options plus its own, and hands each phase its values
back through the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from geopool import options
from geopool.cli import main
from geopool.conformance import plugin as conformance_plugin
from geopool.errors import InvalidArgument
from geopool.gate import command as gate_command
from geopool.gate.options import CONFORMANCE_PHASE, GATE_OPTIONS, LOAD_PHASE, OWN
from geopool.load.run import options as load_options
from geopool.options import TABLE

#: Every command with options (``geopool conformance`` passes everything to pytest: its options are the
#: pytest plugins', checked below).
COMMANDS = ("serve", "demo", "request", "contract", "compat", "proxy", "load", "sweep", "compare", "gate")
#: The only places a command changes a row: (command, flag) → (default, required).
CONTEXT = {
    ("gate", "--scenario"): ("gate", False),  # the gate's own short scenario (load/scenarios.toml)
    ("sweep", "--warmup"): (5.0, False),
    ("sweep", "--slo"): (None, True),
    ("request", "--base-url"): (None, True),  # nothing to start: it sends the seed to a server
    ("compat", "--model-config"): (Path("prithvi-tiny-tl"), False),  # the default fixture's config
    ("proxy", "--max-requests"): (100_000, False),  # a proxy left running stops by itself
}


def _params(command: str) -> list[click.Option]:
    return [param for param in main.commands[command].params if isinstance(param, click.Option)
            and param.name != "help"]


def _row_as_offered(command: str, flag: str) -> options.Option:
    row = TABLE[flag]
    if (command, flag) in CONTEXT:
        default, required = CONTEXT[command, flag]
        row = dataclasses.replace(row, default=default, required=required)
    return row


def _click_type_matches(param: click.Option, row: options.Option) -> None:
    kind = param.type
    if row.choices:
        assert tuple(kind.choices) == row.choices
    elif row.kind in (int, float):
        assert (kind.min, kind.max) == (row.low, row.high)
        assert (kind.min_open, kind.max_open) == (row.low_open, row.high_open)
    elif row.kind is bool:
        assert param.is_flag
    elif row.kind is Path:
        assert isinstance(kind, click.Path)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_click_option_of_a_command_is_a_table_row(command):
    params = _params(command)
    flags = [param.opts[0] for param in params]
    assert len(flags) == len(set(flags)), f"{command}: a flag offered twice"
    for param in params:
        flag = param.opts[0]
        assert flag in TABLE, f"{command} {flag}: not a row of geopool.options.TABLE"
        row = _row_as_offered(command, flag)
        assert param.opts == [flag] and param.name == row.dest and param.help == row.help, (command, flag)
        assert param.default == (row.default if row.kind is not bool else bool(row.default)), (command, flag)
        assert param.required == row.required and param.multiple == row.multiple, (command, flag)
        assert param.envvar == row.env or row.kind is bool, (command, flag)
        _click_type_matches(param, row)


def test_a_command_changes_a_row_only_where_it_says_so():
    """Every override in the code is in CONTEXT, and every CONTEXT entry is still in use."""
    used = set()
    for command in COMMANDS:
        for param in _params(command):
            row = TABLE[param.opts[0]]
            if (param.default, param.required) != (row.default if row.kind is not bool else bool(row.default),
                                                   row.required):
                used.add((command, param.opts[0]))
    assert used == set(CONTEXT)


def test_a_row_cannot_be_declared_twice_or_get_another_help():
    with pytest.raises(InvalidArgument, match="--base-url is declared twice"):
        options.declare(dataclasses.replace(options.BASE_URL, help="another help"))
    assert options.declare(options.BASE_URL) == (options.BASE_URL,)  # the same row again is no second declaration
    with pytest.raises(InvalidArgument, match="only default/required"):
        options.MODEL.but(help="another help")
    with pytest.raises(InvalidArgument, match="--users differs between the subsets"):
        options.union((load_options.option("users"),), (load_options.option("users").but(default=3),))


# ------------------------------------------------------------------------------------------- the gate


def test_the_gates_options_are_its_phases_plus_its_own_with_identical_help_and_defaults():
    gate = {param.opts[0]: param for param in _params("gate")}
    phases = {row.flag for row in (*CONFORMANCE_PHASE, *LOAD_PHASE)}
    own = {row.flag for row in OWN}
    assert set(gate) == phases | own and not phases & own
    assert [row.flag for row in GATE_OPTIONS] == list(gate)
    for phase in (CONFORMANCE_PHASE, LOAD_PHASE):
        for row in phase:
            assert gate[row.flag].help == row.help and gate[row.flag].default == \
                (row.default if row.kind is not bool else bool(row.default)), row.flag


def test_the_load_phase_is_geopool_loads_own_rows():
    """What the gate offers for its load phase is what ``geopool load`` offers (help, type, bounds); the
    default differs only for --scenario, which the gate therefore always passes on."""
    load = {param.opts[0]: param for param in _params("load")}
    for row in LOAD_PHASE:
        assert load[row.flag].help == row.help, row.flag
        if load[row.flag].default != row.default:
            assert row.flag == "--scenario" and row.to_argv(row.default) == ["--scenario", "gate"]


def test_the_conformance_phase_is_the_pytest_plugins_own_rows():
    offered = _pytest_options()
    for row in CONFORMANCE_PHASE:
        if row.flag == "--base-url":  # pytest-base-url's option (see test_pytest_options_are_the_table_rows)
            continue
        assert offered[row.flag]["help"] == options._help(row), row.flag
        assert offered[row.flag]["default"] == (row.default if row.kind is not bool else bool(row.default)), row.flag


def _gate_values(*argv: str) -> dict:
    context = main.commands["gate"].make_context("gate", list(argv))
    return dict(context.params)


def test_each_phase_gets_the_gates_values_back_through_the_same_rows(tmp_path):
    values = _gate_values("--base-url", "http://h:1", "--input-dtype", "float16", "--model", "m",
                          "--api-key", "sekrit", "--users", "3", "--duration", "20", "--slo", "s.toml",
                          "--strict-expectations", "--destructive", "--expectations", "none",
                          "--embedded-model", "ignored-against-a-url")
    load_argv = gate_command.load_command(values, tmp_path)
    assert load_argv[1:4] == ["-m", "geopool.cli", "load"]
    parsed = main.commands["load"].make_context("load", load_argv[4:]).params
    for row in LOAD_PHASE:
        expected = None if row.secret or row.flag.startswith("--embedded") else values[row.dest]
        assert parsed.get(row.dest) == (expected if expected is not None else parsed.get(row.dest)), row.flag
    assert (parsed["users"], parsed["duration"], parsed["scenario"], parsed["base_url"]) == (3, 20.0, "gate",
                                                                                              "http://h:1")
    assert parsed["report_dir"] == tmp_path / "load"

    pytest_argv = gate_command.conformance_command(values, tmp_path, ("-k", "envelope"))
    assert "sekrit" not in " ".join(load_argv + pytest_argv), "the key goes by environment, never argv"
    assert "ignored-against-a-url" not in " ".join(load_argv + pytest_argv)
    parser = argparse.ArgumentParser()
    shim = SimpleNamespace(addoption=lambda flag, **kwargs: parser.add_argument(flag, **kwargs))
    options.add_pytest(shim, CONFORMANCE_PHASE)
    known, _ = parser.parse_known_args(pytest_argv[3:])
    for row in CONFORMANCE_PHASE:
        if not (row.secret or row.flag.startswith("--embedded")):
            assert getattr(known, row.dest) == (str(values[row.dest]) if isinstance(values[row.dest], Path)
                                                else values[row.dest]), row.flag
    assert pytest_argv[-2:] == ["-k", "envelope"]


def test_the_embedded_servers_rows_reach_both_phases_when_there_is_no_url(tmp_path):
    values = _gate_values("--embedded-dtype", "float16", "--embedded-device", "cpu")
    for argv in (gate_command.load_command(values, tmp_path), gate_command.conformance_command(values, tmp_path)):
        text = " ".join(argv)
        assert "--embedded-dtype float16" in text and "--embedded-device cpu" in text
        assert "--embedded-model prithvi-tiny-tl" in text


# ------------------------------------------------------------------------------------ pytest and Locust


def _pytest_options() -> dict[str, dict]:
    from _pytest.config.argparsing import Parser

    from geopool import pytest_plugin

    parser = Parser()
    # pytest-base-url blocked: the suite declares --base-url; no pytest config: the options are declared at once
    blocked = SimpleNamespace(is_blocked=lambda name: True, get_plugin=lambda name: None)
    conformance_plugin.pytest_addoption(parser, blocked)
    pytest_plugin.pytest_addoption(parser, blocked)
    return {option.names()[0]: option.attrs() for group in parser._groups for option in group.options}


def test_pytest_options_are_the_table_rows(monkeypatch):
    for row in TABLE.values():
        if row.env:
            monkeypatch.delenv(row.env, raising=False)
    offered = _pytest_options()
    assert "--strict-expectations" in offered and "--embedded-device" in offered
    for flag, attrs in offered.items():
        row = TABLE[flag]
        if flag == "--base-url":  # pytest-base-url's option, declared as that plugin does: its own help
            assert attrs["default"] is None and "$PYTEST_BASE_URL" in attrs["help"]
            continue
        assert attrs["help"] == options._help(row), flag
        assert attrs["default"] == (bool(row.default) if row.kind is bool else row.default), flag
        assert tuple(attrs["choices"] or ()) == row.choices, flag


class _RecordingParser:
    """Locust's parser (argparse plus env_var, is_secret, include_in_web_ui); importing Locust would patch."""

    def __init__(self) -> None:
        self.declared: dict[str, dict] = {}

    def add_argument(self, flag, **kwargs):
        self.declared[flag] = kwargs


def test_locust_options_are_the_table_rows():
    parser = _RecordingParser()
    load_options.add_locust_arguments(parser)
    geopools = {row.flag for row in load_options.OPTIONS if row.locust_flag is None}
    assert set(parser.declared) == geopools
    for flag, kwargs in parser.declared.items():
        row = TABLE[flag]
        assert load_options.option(row.dest) is row
        assert kwargs["help"] == options._help(row) and kwargs.get("default") == row.default, flag
        assert tuple(kwargs.get("choices") or ()) == row.choices, flag
        assert kwargs.get("env_var") == row.env and kwargs.get("is_secret", False) == row.secret, flag


# ------------------------------------------------------------------------------------------ one name


@pytest.mark.parametrize("command, old", [
    ("serve", "--model"), ("serve", "--dtype"), ("serve", "--device"), ("demo", "--device"), ("load", "--device"),
    ("sweep", "--device"), ("load", "--reference-dir"), ("sweep", "--reference-dir"), ("gate", "--strict"),
    ("compare", "--report"),
])
def test_a_dropped_spelling_is_a_usage_error_naming_it(command, old):
    result = CliRunner().invoke(main, [command, old, "x"])
    assert result.exit_code == 4 and f"No such option '{old}'" in result.output


def test_every_dropped_spelling_is_in_the_changelog():
    changelog = (Path(__file__).parents[1] / "CHANGELOG.md").read_text()
    for old in ("--model", "--dtype", "--device", "--reference-dir", "$LOCUST_API_KEY", "--strict", "--report"):
        assert f"`{old}`" in changelog, old


def test_one_concept_one_name_across_commands():
    """No two rows share a destination (two flags for one value), and the strict flag is one row."""
    dests = [row.dest for row in TABLE.values()]
    assert len(dests) == len(set(dests))
    assert "--strict" not in TABLE and "--device" not in TABLE
