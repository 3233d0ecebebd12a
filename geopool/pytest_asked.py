"""Whether a pytest run asked for geopool, so that an installed geopool stays out of every other run.

An installed geopool registers its plugins (entry point group ``pytest11``) in every pytest run of its
venv. Their options (``--model``, ``--mode``, ``--expectations``, ...) would then be every project's, and a
project that declares its own ``--model`` would crash with argparse's conflict. So the plugins declare
their options only in a run that asks for geopool: its command line (or ``$PYTEST_ADDOPTS``) names the
conformance suite (a path in its folder, or its package with ``--pyargs``) or names a plugin with ``-p``,
``$PYTEST_PLUGINS`` names one, or the root conftest lists one in ``pytest_plugins``. pytest declares a
plugin's options when it registers the plugin, before any conftest is read; for the conftest case the
declaration waits until the conftest registers (still before pytest parses the command line for good).
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from geopool.resources import SUITE_PACKAGE, suite_dir

__all__ = ["PLUGIN_NAMES", "asked_by_the_command_line", "declare_if_listed", "declare_when_asked", "declared",
           "lists_a_plugin"]

#: The modules pytest loads as geopool's plugins (``-p NAME``, ``pytest_plugins``, the entry points' names), in
#: the order ``geopool conformance`` names them.
PLUGIN_NAMES = ("geopool.pytest_plugin", "geopool.conformance.plugin")

Declare = Callable[[pytest.Parser, pytest.PytestPluginManager], None]


def _named_plugins(args: list[str]) -> list[str]:
    named = [value for flag, value in itertools.pairwise(args) if flag == "-p"]
    named += [arg[2:] for arg in args if arg.startswith("-p") and len(arg) > 2]
    return [*named, *os.environ.get("PYTEST_PLUGINS", "").split(",")]


def asked_by_the_command_line(config: pytest.Config, names: tuple[str, ...] = PLUGIN_NAMES) -> bool:
    """Whether the command line (with ``$PYTEST_ADDOPTS``) or ``$PYTEST_PLUGINS`` names the suite or one of
    the plugins ``names``."""
    args = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *map(str, config.invocation_params.args)]
    if any(name.strip() in names for name in _named_plugins(args)):
        return True
    suite, here = suite_dir().resolve(), Path(config.invocation_params.dir)
    for arg in args:
        where = arg.split("::")[0]
        if not where or where.startswith("-"):
            continue
        if "--pyargs" in args and (where == SUITE_PACKAGE or where.startswith(SUITE_PACKAGE + ".")):
            return True
        try:
            if (here / where).resolve().is_relative_to(suite):
                return True
        except (OSError, ValueError):  # not a path
            continue
    return False


def lists_a_plugin(plugin: object, names: tuple[str, ...] = PLUGIN_NAMES) -> bool:
    """Whether ``plugin`` (a conftest module) lists one of the plugins ``names`` in ``pytest_plugins``."""
    wanted = getattr(plugin, "pytest_plugins", ())
    return any(name in names for name in ([wanted] if isinstance(wanted, str) else wanted))


def declare_when_asked(key: pytest.StashKey[bool], declare: Declare, parser: pytest.Parser,
                       pluginmanager: pytest.PytestPluginManager, names: tuple[str, ...] = PLUGIN_NAMES) -> None:
    """From a plugin's ``pytest_addoption``: ``declare(parser, pluginmanager)`` now if the command line names
    the suite or one of the plugins ``names``, else keep the parser for :func:`declare_if_listed`."""
    config = pluginmanager.get_plugin("pytestconfig")
    if config is None or asked_by_the_command_line(config, names):
        _declare_once(config, key, declare, parser, pluginmanager)
    else:
        config.stash.setdefault(_PENDING, {})[key] = (declare, parser, names)


def declare_if_listed(key: pytest.StashKey[bool], plugin: object, manager: pytest.PytestPluginManager) -> None:
    """From a plugin's ``pytest_plugin_registered``: declare the kept options once a conftest lists a plugin
    that asks for them."""
    config = manager.get_plugin("pytestconfig")
    pending = None if config is None else config.stash.get(_PENDING, {}).get(key)
    if pending is None or not lists_a_plugin(plugin, pending[2]):
        return
    declare, parser, _ = pending
    _declare_once(config, key, declare, parser, manager)


def declared(config: pytest.Config, key: pytest.StashKey[bool]) -> bool:
    """Whether this run declared the plugin's options (it asked for geopool)."""
    return config.stash.get(key, False)


#: Per plugin (its DECLARED key): what to declare once a conftest asks for it.
_PENDING = pytest.StashKey[dict[pytest.StashKey[bool], tuple[Declare, pytest.Parser, tuple[str, ...]]]]()


def _declare_once(config: pytest.Config | None, key: pytest.StashKey[bool], declare: Declare, parser: pytest.Parser,
                  pluginmanager: pytest.PytestPluginManager) -> None:
    if config is not None:
        if config.stash.get(key, False):
            return
        config.stash[key] = True
    declare(parser, pluginmanager)
