"""geopool.options: one row per concept, rendered alike into click, argparse (Locust) and pytest."""

from __future__ import annotations

import argparse

import click
import pytest
from click.testing import CliRunner

from geopool import options
from geopool.cli import main


class LocustLikeParser(argparse.ArgumentParser):
    """argparse plus the keywords Locust's parser adds (importing locust would monkey-patch this process)."""

    def add_argument(self, *flags, env_var=None, is_secret=False, include_in_web_ui=True, **kwargs):
        return super().add_argument(*flags, **kwargs)


SHARED = (options.BASE_URL, options.MODEL, options.MODEL_CONFIG, options.INPUT_DTYPE, options.API_KEY,
          options.REFERENCE_CHECKPOINT, options.EMBEDDED_MODEL, options.EMBEDDED_DTYPE)


def _click_flags(command: click.Command) -> set[str]:
    return {flag for param in command.params for flag in getattr(param, "opts", ()) if not getattr(param, "hidden", 0)}


def test_every_renderer_gives_the_same_flags_and_choices():
    command = options.click_options(SHARED)(click.command()(lambda **_: None))
    parser = LocustLikeParser()
    options.add_argparse(parser, SHARED)

    class Group:
        def __init__(self) -> None:
            self.seen: dict = {}

        def addoption(self, flag, **kwargs):
            self.seen[flag] = kwargs

    group = Group()
    options.add_pytest(group, SHARED, dests={"model": "conformance_model"})
    flags = {entry.flag for entry in SHARED}
    assert _click_flags(command) == flags
    # --base-url is Locust's own --host there: geopool only reads it
    assert {action.option_strings[0] for action in parser._actions if action.option_strings[0] != "-h"} == \
        flags - {"--base-url"}
    assert set(group.seen) == flags and group.seen["--model"]["dest"] == "conformance_model"
    dtype = next(action for action in parser._actions if "--input-dtype" in action.option_strings)
    assert tuple(dtype.choices) == tuple(group.seen["--input-dtype"]["choices"]) == options.INPUT_DTYPE.choices


def test_the_same_concept_has_one_name_in_cli_pytest_and_locust():
    from geopool.conformance.hooks import options as plugin_options
    from geopool.load.run.options import OPTIONS

    load_flags = {entry.flag for entry in OPTIONS}
    for shared in (options.BASE_URL, options.MODEL, options.MODEL_CONFIG, options.INPUT_DTYPE, options.API_KEY,
                   options.REFERENCE_CHECKPOINT):
        assert shared.flag in load_flags
        assert shared.flag in _click_flags(main.commands["request"]) or shared.flag == "--reference-checkpoint"
    assert {entry.env for entry in OPTIONS if entry.dest == "api_key"} == {"GEOPOOL_API_KEY"}
    assert "add_pytest" in plugin_options._declare.__code__.co_names  # what pytest_addoption declares when asked


@pytest.mark.parametrize("old", [["--model", "x"], ["--dtype", "float16"], ["--device", "cpu"]])
def test_old_spellings_are_gone(old):
    """0.1.0 keeps no deprecated spelling (CHANGELOG): an old flag is click's usage error, not a warning."""
    result = CliRunner().invoke(main, ["serve", *old])
    assert result.exit_code == 4 and f"No such option '{old[0]}'" in result.output


def test_serve_takes_the_fixture_under_its_one_name():
    result = CliRunner().invoke(main, ["serve", "--embedded-model", "no-such-fixture"])
    assert result.exit_code == 4 and "neither a folder with a config.json nor a fixture" in result.output
