"""The load options, declared once: the table, its three renderings, the one resolver."""

from __future__ import annotations

import argparse
import dataclasses
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from geopool.cli import main
from geopool.errors import ConfigError
from geopool.load.run import options
from geopool.load.run.command import locust_command, run_load
from geopool.load.run.runtime import configure
from geopool.load.scenario import STABILITY, Scenario


class RecordingParser:
    """Stands in for Locust's parser: keeps what was declared (Locust's own flags are not)."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser()
        self.declared: dict[str, dict] = {}

    def add_argument(self, flag, **kwargs):
        self.declared[flag] = dict(kwargs)
        for key in ("env_var", "is_secret", "include_in_web_ui"):
            kwargs.pop(key, None)
        return self.parser.add_argument(flag, **kwargs)


def _locust_options(*argv: str, **locust_own) -> SimpleNamespace:
    """Locust's parsed options; the server's dtype is given unless a test says otherwise."""
    if "--input-dtype" not in argv and not locust_own.pop("no_dtype", False):
        argv = ("--input-dtype", "float32", *argv)
    parser = RecordingParser()
    options.add_locust_arguments(parser)
    parsed = vars(parser.parser.parse_args(list(argv)))
    own = {"num_users": None, "run_time": None, "processes": None, "host": None, "spawn_rate": None}
    return SimpleNamespace(**parsed, **{**own, **locust_own})


def test_every_scenario_override_names_a_scenario_field_and_defaults_are_not_repeated():
    fields = {field.name for field in dataclasses.fields(Scenario)}
    assert {entry.field for entry in options.OPTIONS if entry.field} <= fields
    assert Scenario("x").stability_tolerance == STABILITY
    assert f"[{STABILITY:.2f}]" in options.option("stability_tolerance").help


def test_locust_parser_gets_geopools_options_but_not_locusts_own():
    parser = RecordingParser()
    options.add_locust_arguments(parser)
    assert "--rate" in parser.declared and "--reference-checkpoint" in parser.declared
    assert not {"--users", "--duration", "--processes", "--base-url"} & set(parser.declared)
    assert parser.declared["--api-key"]["env_var"] == "GEOPOOL_API_KEY" and parser.declared["--api-key"]["is_secret"]
    assert "--reference-dir" not in parser.declared  # 0.1.0: no deprecated spellings
    assert parser.declared["--input-dtype"]["default"] is None  # required against a URL: see below


def test_the_child_command_line_renders_the_table(tmp_path):
    values = {"base_url": "http://h:1", "scenario": "open-constant", "users": 4, "duration": 12.2, "rate": 1.5,
              "stability_tolerance": 0.25, "processes": 2, "input_dtype": "float32", "api_key": "sekrit",
              "reference_checkpoint": None}
    command = locust_command(values, tmp_path)
    text = " ".join(command)
    for part in ("--host http://h:1", "--scenario open-constant", "-u 4", "-t 13s", "--rate 1.5",
                 "--stability-tolerance 0.25", "--processes 2", "--input-dtype float32",
                 f"--report-dir {tmp_path}", "--headless"):
        assert part in text, part
    assert "sekrit" not in text and "--reference" not in text


def test_the_child_command_parses_back_to_the_same_values(tmp_path):
    values = {"scenario": "closed", "rate": 2.0, "warmup": 3.0, "pool_size": 2, "verify": "contract",
              "model": "m", "input_dtype": "float16", "report_dir": tmp_path}
    geopool_own = options.locust_arguments(values)
    parsed = _locust_options(*geopool_own)
    for dest, value in values.items():
        assert str(getattr(parsed, dest)) == str(value), dest


def test_users_on_a_staged_scenario_is_the_same_error_on_both_paths(tmp_path):
    with pytest.raises(ConfigError, match="scenario 'ramp' has stages; --users applies only"):
        configure(_locust_options("--scenario", "ramp", "--report-dir", str(tmp_path / "r"), num_users=3),
                  "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="scenario 'ramp' has stages; --users applies only"):
        run_load({**_values(), "scenario": "ramp", "users": 3}, embedded={})
    result = CliRunner().invoke(main, ["load", "--base-url", "http://127.0.0.1:9", "--scenario", "ramp",
                                       "--users", "3"])
    assert result.exit_code == 4 and "scenario 'ramp' has stages" in result.output


def _values(**changes):
    values = {entry.dest: entry.default for entry in options.OPTIONS}
    values["base_url"] = "http://127.0.0.1:9"
    return {**values, **changes}


def test_locust_path_resolves_overrides_and_the_plan(tmp_path):
    settings = configure(_locust_options("--scenario", "open-constant", "--rate", "3", "--report-dir",
                                         str(tmp_path / "r"), num_users=2, run_time=30, spawn_rate=2.0),
                         "http://127.0.0.1:1/")
    scenario = settings.plan.scenario
    assert (scenario.rate, scenario.users, scenario.duration_s) == (3.0, 2, 30.0)
    assert settings.plan.host == "http://127.0.0.1:1" and settings.spawn_rate == 2.0
    assert settings.report_dir == tmp_path / "r"


def test_verify_reference_needs_a_checkpoint_against_a_url(tmp_path):
    with pytest.raises(ConfigError, match="--verify reference against a URL needs --reference-checkpoint"):
        configure(_locust_options("--verify", "reference", "--report-dir", str(tmp_path / "r")), "http://h:1")
    assert options.resolve(_values(verify="reference"), embedded=True).verify == "reference"


def test_the_locust_parser_checks_bounds_as_click_does(capsys):
    """The row's bounds hold in Locust's parser too (argparse's ``type=`` is the row's own check)."""
    with pytest.raises(SystemExit):
        _locust_options("--rate", "0")
    assert "--rate '0' must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _locust_options("--pool-size", "x")
    assert "--pool-size 'x' is not an integer" in capsys.readouterr().err


def test_no_host_and_an_old_report_dir_are_usage_errors(tmp_path):
    with pytest.raises(ConfigError, match="no target: pass --host URL"):
        configure(_locust_options(), None)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "records.jsonl").write_text("")
    with pytest.raises(ConfigError, match="already holds a run's records"):
        configure(_locust_options("--report-dir", str(tmp_path / "r")), "http://h:1")


def test_a_url_without_input_dtype_is_a_usage_error_on_every_path(tmp_path):
    """A server does not say its dtype and vLLM 0.32 dies on another: nothing is sent until it is given."""
    with pytest.raises(ConfigError, match="pass --input-dtype float32"):
        configure(_locust_options("--report-dir", str(tmp_path / "r"), no_dtype=True), "http://h:1")
    result = CliRunner().invoke(main, ["load", "--base-url", "http://127.0.0.1:1", "--report-dir", str(tmp_path / "c")])
    assert result.exit_code == 4 and "pass --input-dtype" in result.output
    assert options.resolve(_values(), embedded=True).name == "closed"  # the embedded server's dtype is known
