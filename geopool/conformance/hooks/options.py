"""The conformance suite's command-line options, and ``--base-url`` shared with pytest-base-url.

They are declared only in a run that asks for the suite (:mod:`geopool.pytest_asked`): an installed geopool
adds no ``--model`` or ``--expectations`` to another project's pytest.

Target selection follows pytest-base-url: ``--base-url``, else ``$PYTEST_BASE_URL``, else the ``base_url``
ini key (:func:`base_url`). When the pytest-base-url plugin is installed (and not disabled with
``-p no:base_url``), it owns ``--base-url`` and the ``base_url`` ini key, and this plugin reads them:
declaring them twice is an error in pytest.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
from pathlib import Path
from typing import Any

import pytest

from geopool import options
from geopool.conformance.hooks.stash import PLUGIN_NAME
from geopool.pytest_asked import declare_if_listed, declare_when_asked

__all__ = ["BASE_URL_MODULE", "BASE_URL_PLUGIN", "DECLARED", "as_path", "base_url",
           "base_url_plugin_owns_the_option", "pytest_addoption", "pytest_plugin_registered"]


#: pytest-base-url's entry point name (pytest11), and its module.
BASE_URL_PLUGIN, BASE_URL_MODULE = "base_url", "pytest_base_url.plugin"


#: Whether this run declared the suite's options: it asked for the suite (:mod:`geopool.pytest_asked`).
DECLARED = pytest.StashKey[bool]()
#: What asks for the suite's options: the suite itself, or this plugin by name (not the embedded-server one).
ASKING = (PLUGIN_NAME,)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    declare_when_asked(DECLARED, _declare, parser, pluginmanager, ASKING)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    declare_if_listed(DECLARED, plugin, manager)


def _declare(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
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



def as_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def base_url(config: pytest.Config) -> str | None:
    """pytest-base-url's order: the option, then $PYTEST_BASE_URL, then the ini key; None: embedded.

    The option and the key are this plugin's, or pytest-base-url's (then its ini key's default is "").
    """
    try:
        ini = config.getini("base_url")
    except ValueError:  # nobody declared it: pytest-base-url was expected but -p no:base_url came later
        ini = None
    return config.getoption("base_url", None) or os.environ.get("PYTEST_BASE_URL") or ini or None


