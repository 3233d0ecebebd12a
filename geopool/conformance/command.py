"""``geopool conformance``: pytest on the installed suite, every other argument passed through.

The command adds only the suite's folder (and, where pytest would not autoload geopool's plugins, the
``-p`` flags that load them); pytest parses everything else — ``--base-url``, ``--model``,
``--conformance-report``, ``-k``, ``--hypothesis-profile`` … — exactly as in ``pytest --pyargs
geopool_conformance``. It runs from the current folder, so reports go under ``./reports``.

    >>> pytest_argv(["--base-url", "http://gpu:8000"], plugins=[])[1:]
    ['--base-url', 'http://gpu:8000']
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Sequence

from geopool.pytest_asked import PLUGIN_NAMES
from geopool.resources import suite_dir

__all__ = ["PLUGINS", "plugin_args", "pytest_argv", "run_pytest"]

#: geopool's pytest plugins, by module name (which is also their pytest11 entry point name).
PLUGINS = PLUGIN_NAMES


def plugin_args(environ: os._Environ[str] | dict[str, str] | None = None) -> list[str]:
    """``-p`` flags for the plugins pytest will not autoload: all of them when entry point autoloading
    is off (``$PYTEST_DISABLE_PLUGIN_AUTOLOAD``), else those without an installed entry point (a
    checkout on ``PYTHONPATH``). Naming an autoloaded plugin again is harmless, just not needed."""
    environ = os.environ if environ is None else environ
    if environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        missing = list(PLUGINS)
    else:
        installed = {entry.name for entry in importlib.metadata.entry_points(group="pytest11")}
        missing = [name for name in PLUGINS if name not in installed]
    return [arg for name in missing for arg in ("-p", name)]


def pytest_argv(extra: Sequence[str], *, plugins: Sequence[str] | None = None) -> list[str]:
    """pytest's arguments: the suite's folder, the plugin flags (default :func:`plugin_args`), then ``extra``."""
    return [str(suite_dir()), *(plugin_args() if plugins is None else plugins), *extra]


def run_pytest(argv: list[str]) -> int:
    """Replace this process with ``python -m pytest ARGV``: its exit code is pytest's (4: the target is
    unreachable), Ctrl-C reaches pytest alone, and pytest imports geopool itself (imported here before
    pytest, geopool's modules would miss assertion rewriting, and pytest would warn about it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *argv])
    return 1  # not reached
