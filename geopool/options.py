"""Every option of geopool's commands, declared once, and rendered into click, pytest and Locust.

An :class:`Option` is a row: flag, type, default, help, bounds, environment variable. :data:`TABLE` holds
every row of every ``geopool`` command (and of its pytest plugins and Locust's parser), by flag: a row
enters it with :func:`declare`, which refuses a flag declared twice, so a concept cannot get a second
name, help or default somewhere else. A command takes a *subset* (a tuple of rows); a subset may change
a row's ``default`` or ``required`` only (e.g. the gate's scenario is ``gate``), never its help, type or
bounds. The rows that belong to one command live beside it (the load rows in
:mod:`geopool.load.run.options`, sweep's in :mod:`geopool.load.study.sweep`, the gate's in
:mod:`geopool.gate.options`) but are declared into this one table (importing :mod:`geopool.cli` declares
them all). The same concept has the same name everywhere:

===========================  ========================================================================
``--base-url``               the server under test (``$GEOPOOL_BASE_URL``; pytest also reads
                             ``$PYTEST_BASE_URL`` and the ``base_url`` ini key, as pytest-base-url does)
``--model``                  the *served* model name (default: the one ``/v1/models`` lists)
``--model-config``           the served model's TerraTorch ``config.json`` (the contract)
``--input-dtype``            the dtype the server was loaded with; inputs are sent in it
``--api-key``                Bearer token (``$GEOPOOL_API_KEY``; never printed, never in a child's argv)
``--reference-checkpoint``   the served model folder (config.json + .pt) for the numeric oracle
``--embedded-model``         the fixture (or folder) the *embedded* server serves
``--embedded-dtype``         the embedded server's vLLM ``--dtype``
``--embedded-device``        the embedded server's device: ``auto`` (the vLLM build's own), ``cpu``, ``cuda``
``--mode``                   tensor-to-tensor or image-to-image (GeoTIFFs through an IO-processor plugin)
``--plugin``                 image-to-image: the IO-processor plugin (the embedded server's, or the URL's)
``--io-input-dir``           image-to-image against a URL: a folder the server reads by the same paths
``--strict-expectations``    an expected failure that passes fails the run (pytest's own ``--strict``
                             is pytest's: it also fails on an unchecked MUST requirement)
===========================  ========================================================================

Renderers: :func:`click_options` (the ``geopool`` CLI), :func:`add_argparse` (Locust's parser),
:func:`add_pytest` (the pytest plugins), and :meth:`Option.to_argv` (a child's command line, from a
value the parent has checked already). Per-value checks (choices, bounds) are the row's
(:meth:`Option.check`) in every renderer.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from geopool.contract import INPUT_DTYPES
from geopool.errors import InvalidArgument
from geopool.fixture_models import DEFAULT_MODEL
from geopool.modes import MODES, TENSOR_TO_TENSOR
from geopool.server import DEFAULT_DEVICE, DEFAULT_DTYPE, DEFAULT_MAX_NUM_SEQS, DEFAULT_PLUGIN, DEVICES, PLUGINS

__all__ = ["API_KEY", "BASE_URL", "CONFORMANCE", "DESTRUCTIVE", "DEVICE", "EMBEDDED", "EMBEDDED_DTYPE",
           "EMBEDDED_MODEL", "EXPECTATIONS", "INPUT_DTYPE", "IO_INPUT_DIR", "IO_MODE", "MODE", "MODEL", "MODEL_CONFIG",
           "PLUGIN", "REFERENCE_CHECKPOINT", "STRICT_EXPECTATIONS", "TABLE", "Option", "add_argparse", "add_pytest",
           "argv", "click_options", "declare", "entry", "missing_input_dtype", "secret_env", "union"]


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its flag, type and default, and where it goes.

    ``field`` is the load :class:`~geopool.load.scenario.Scenario` field it overrides (None: not a
    scenario setting). ``low``/``high`` bound a number (``low_open``/``high_open``: strictly).
    ``multiple`` collects a repeatable flag into a tuple; ``required`` binds click only.
    ``locust_flag``/``locust_dest`` mark one of Locust's own options (``-u``, ``-t``, ``--host``):
    geopool only reads it there. ``kind=bool`` is an on/off flag without a value (off by default).
    """

    flag: str
    help: str
    kind: type = str
    default: Any = None
    choices: tuple[str, ...] = ()
    field: str | None = None
    env: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    secret: bool = False
    multiple: bool = False
    required: bool = False
    metavar: str | None = None
    locust_flag: str | None = None
    locust_dest: str | None = None
    to_locust: Callable[[Any], str] = str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def but(self, **changes: Any) -> Option:
        """The same option with a context's own ``default`` or ``required`` (nothing else: help, type and
        bounds are the table's, so the same flag means the same thing in every command)."""
        if set(changes) - {"default", "required"}:
            raise InvalidArgument(f"{self.flag}: a command may change only default/required, not "
                                  f"{sorted(set(changes) - {'default', 'required'})}")
        return dataclasses.replace(self, **changes)

    def check(self, value: Any) -> Any:
        """``value`` converted to the row's type and checked against its choices and bounds (the one
        per-value check every renderer applies); InvalidArgument names the flag."""
        if value is None or self.kind is bool:
            return value
        if self.multiple and isinstance(value, (tuple, list)):
            return tuple(self.check(item) for item in value)
        try:
            converted = self.kind(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"{self.flag} {value!r} is not {_kind_name(self.kind)}") from None
        if self.choices and converted not in self.choices:
            raise InvalidArgument(f"{self.flag} {value!r} is not one of {', '.join(self.choices)}")
        if self.low is not None and (converted < self.low or (self.low_open and converted == self.low)):
            raise InvalidArgument(f"{self.flag} {value!r} must be {'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None and (converted > self.high or (self.high_open and converted == self.high)):
            raise InvalidArgument(f"{self.flag} {value!r} must be {'<' if self.high_open else '<='} {self.high:g}")
        return converted

    def to_argv(self, value: Any) -> list[str]:
        """The arguments that give a child process ``value`` for this option ([] for not given, or off).

        A secret is never rendered: argv shows in ``ps``; it goes by environment (:func:`secret_env`)."""
        if value is None or self.secret or value is False or (self.multiple and not value):
            return []
        if self.kind is bool:
            return [self.flag]
        if self.multiple:
            return [f"{self.flag}={item}" for item in value]
        return [self.flag, str(value)]


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", Path: "a path"}.get(kind, kind.__name__)


#: Every option of geopool's commands, by flag (see :func:`declare`).
TABLE: dict[str, Option] = {}


def declare(*rows: Option) -> tuple[Option, ...]:
    """Enter ``rows`` in :data:`TABLE`; a flag declared twice is a bug (an import-time error), because a
    second declaration is how a concept gets two helps, two defaults or two validations."""
    for row in rows:
        if row.flag in TABLE and TABLE[row.flag] != row:
            raise InvalidArgument(f"{row.flag} is declared twice: {TABLE[row.flag]!r} and {row!r}")
        TABLE[row.flag] = row
    return rows


def entry(flag: str) -> Option:
    """The table's row for ``flag`` (InvalidArgument names the known flags)."""
    try:
        return TABLE[flag]
    except KeyError:
        raise InvalidArgument(f"{flag} is no geopool option; the table has {sorted(TABLE)}") from None


def union(*subsets: Iterable[Option]) -> tuple[Option, ...]:
    """The rows of several subsets, each flag once, in order; a flag whose rows differ between subsets
    (another default) is refused, so a command made of phases passes each phase the same value."""
    found: dict[str, Option] = {}
    for subset in subsets:
        for row in subset:
            if row.flag in found and found[row.flag] != row:
                raise InvalidArgument(f"{row.flag} differs between the subsets: {found[row.flag]!r} and {row!r}")
            found.setdefault(row.flag, row)
    return tuple(found.values())


def argv(rows: Iterable[Option], values: Mapping[str, Any]) -> list[str]:
    """A child's command line for ``rows`` from checked ``values`` (keyed by ``dest``): each row renders
    its own value (:meth:`Option.to_argv`), so no flag is spelled and no default repeated by hand."""
    return [arg for row in rows for arg in row.to_argv(values.get(row.dest))]


def secret_env(rows: Iterable[Option], values: Mapping[str, Any]) -> dict[str, str]:
    """The secrets among ``rows`` as the environment variables a child reads them from."""
    return {row.env: str(values[row.dest]) for row in rows
            if row.secret and row.env and values.get(row.dest) is not None}


# ------------------------------------------------------------------------------------ the target

BASE_URL, MODEL, MODEL_CONFIG, INPUT_DTYPE, API_KEY, REFERENCE_CHECKPOINT, NUMERIC_BOUNDS = declare(
    Option("--base-url", "Server under test, e.g. http://127.0.0.1:8000; without it, conformance, load, sweep "
           "and gate start the embedded server.", env="GEOPOOL_BASE_URL", locust_flag="--host", locust_dest="host"),
    Option("--model", "Served model name [default: the one /v1/models lists]."),
    Option("--model-config", "TerraTorch config.json of the served model, or its folder (geopool compat: also a "
           "fixture name) [default: Sen1Floods11's contract; the embedded model's when embedded].", kind=Path),
    Option("--input-dtype", "dtype the server was loaded with (its vLLM --dtype); inputs are sent in "
           "it. Required against a URL (a server does not say it, and vLLM 0.32 dies on another "
           "dtype); the embedded server's is known.", choices=INPUT_DTYPES),
    Option("--api-key", "Bearer token (or $GEOPOOL_API_KEY; never printed).", env="GEOPOOL_API_KEY", secret=True),
    Option("--reference-checkpoint", "Served model folder (config.json + .pt checkpoint) for the numeric oracle: "
           "conformance's POOL-NUM-002 and load's --verify reference [automatic for the embedded server].",
           kind=Path),
    Option("--numeric-bounds", "Served-vs-reference bounds (geopool.numerics): same-kernels for a "
           "vLLM CPU build like the reference's, other-kernels for any other server (GPU); auto: "
           "same-kernels for the embedded server, other-kernels for a URL.",
           choices=("auto", "same-kernels", "other-kernels"), default="auto"),
)

# ------------------------------------------------------------------------------ the embedded server

EMBEDDED_MODEL, EMBEDDED_DTYPE, DEVICE, MAX_NUM_SEQS, VLLM_ARGS, STARTUP_TIMEOUT, PORT = declare(
    Option("--embedded-model", "Fixture name (prithvi-tiny-tl, prithvi-300m-tl) or TerraTorch model "
           "folder for the embedded server.", default=DEFAULT_MODEL),
    Option("--embedded-dtype", "vLLM --dtype of the embedded server; clients send inputs in it.",
           default=DEFAULT_DTYPE, choices=INPUT_DTYPES),
    # --embedded-device, like --embedded-model: the embedded server's, and pytest's option namespace is
    # shared with every other plugin (a bare --device would be anyone's).
    Option("--embedded-device", "Device of the embedded server: auto (the installed vLLM build's own), cpu or "
           "cuda.", default=DEFAULT_DEVICE, choices=DEVICES),
    Option("--max-num-seqs", "vLLM --max-num-seqs of the embedded server.", kind=int,
           default=DEFAULT_MAX_NUM_SEQS, low=1),
    Option("--vllm-arg", "Extra vLLM flag for the embedded server, repeatable "
           "(e.g. --vllm-arg=--max-model-len=512).", multiple=True, metavar="FLAG"),
    Option("--startup-timeout", "Seconds to wait for the embedded server's /health.", kind=float,
           default=600.0, low=1),
    Option("--port", "TCP port of the embedded server [default: a free one].", kind=int, low=1, high=65535),
)

# ----------------------------------------------------------------------------------------- modes

MODE, PLUGIN, IO_INPUT_DIR = declare(
    Option("--mode", "How the server is served: tensor-to-tensor (tensors in /pooling requests) or "
           "image-to-image (GeoTIFFs through TerraTorch's IO-processor plugin).", choices=MODES,
           default=TENSOR_TO_TENSOR),
    # no default in the table: against a URL the server runs a plugin of its own, which geopool cannot name
    Option("--plugin", "Image-to-image: the IO-processor plugin: the one the embedded server runs "
           f"[{DEFAULT_PLUGIN}] — geopool (TerraTorch's terratorch_segmentation with geopool's fixes for D8 and "
           "D9, nothing else), loopfix (the D8 fix only) or stock (TerraTorch's own) — or, for conformance "
           "against a URL, the one that server runs (it picks the expectations file); reports name it.",
           choices=PLUGINS),
    Option("--io-input-dir", "Image-to-image against a URL: a folder this machine writes GeoTIFFs into and the "
           "server reads by the same absolute paths (a shared file system) [embedded: a folder of the run's "
           "own].", kind=Path),
)
#: The serving mode, and the embedded server's plugin in image-to-image mode.
IO_MODE = (MODE, PLUGIN)

# ------------------------------------------------------------------------------------ conformance

(EXPECTATIONS, STRICT_EXPECTATIONS, DESTRUCTIVE, CONFORMANCE_REPORT, CONFORMANCE_HTML, REPRO_DIR,
 TERRATORCH_VERSION, REQUIREMENTS_MAP) = declare(
    Option("--expectations", "Expected-failures TOML, applied whatever the server's version [default: the newest "
           "file under conformance/expectations whose range holds the server's version]; 'none' disables."),
    Option("--strict-expectations", "An expected failure that passes (unexpected-pass: a known defect that no "
           "longer fails) fails the run.", kind=bool),
    Option("--destructive", "Send inputs known to kill servers (marker 'destructive') to an external --base-url "
           "too; the embedded server gets them always, and is restarted after each death.", kind=bool),
    Option("--conformance-report", "JSON report path.", default="reports/conformance.json", metavar="PATH"),
    Option("--conformance-html", "HTML report path [default: the JSON report's path with .html].", metavar="PATH"),
    Option("--repro-dir", "Write a standalone reproducer <REQ-ID>.py (httpx + numpy only) per failing "
           "requirement here.", default="reports/repro", metavar="DIR"),
    Option("--terratorch-version", "The server's TerraTorch version (a server does not say it): conformance in "
           "image-to-image against a URL picks its expectations file by it, geopool compat checks a config "
           "against it [default: the installed one, which compat also builds with].", metavar="X.Y.Z"),
    Option("--requirements-map", "Write {requirement id: [test ids]} as JSON after collection (use with "
           "--collect-only).", metavar="PATH"),
)


# ------------------------------------------------------------------------- contract, proxy, compat, compare

INPUT_SHAPE, NUM_CLASSES = declare(
    Option("--input-shape", "Override one input's shape (repeatable).", multiple=True, metavar="NAME=D,D,..."),
    Option("--num-classes", "Override the class count.", kind=int, low=1),
)
# (the proxy's request budget is load's --max-requests row, with the proxy's own default)
UPSTREAM, FAULT, LISTEN, HOST, MAX_SECONDS, LIST_FAULTS = declare(
    Option("--upstream", "URL of the real server to stand in front of.", required=True),
    Option("--fault", "The fault to plant; --list-faults shows them.", default="none", metavar="NAME[:PARAM...]"),
    Option("--listen", "Port the proxy listens on [default: a free one].", kind=int, low=0, high=65535, default=0),
    Option("--host", "Address to listen on; anything but loopback exposes the proxy to the network.",
           default="127.0.0.1"),
    Option("--max-seconds", "Stop by itself after this long.", kind=float, low=1, default=3600.0),
    Option("--list-faults", "List the faults and exit.", kind=bool),
)
NO_BUILD, THRESHOLD, CONFIDENCE, ALLOW_INVALID = declare(
    Option("--no-build", "Only the known-change rules: do not build the model.", kind=bool),
    Option("--threshold", "Practical size, in percent: a significant change smaller than this is no regression.",
           kind=float, low=0, default=10.0),
    Option("--confidence", "Confidence level of the intervals.", kind=float, low=0, high=1, low_open=True,
           high_open=True, default=0.95),
    Option("--allow-invalid", "An invalid run does not by itself exit 11.", kind=bool),
)


def missing_input_dtype(url: str) -> str:
    """Why geopool sends no pooling request to ``url`` until it is told the server's dtype."""
    return (f"{url}: pass --input-dtype float32|float16|bfloat16, the dtype the server was loaded with "
            "(its vLLM --dtype). A server does not say it, and vLLM 0.32 does not cast inputs: a tensor of "
            "another dtype kills its engine, so no pooling request was sent")


#: The embedded server's options, as ``geopool load``/``sweep`` take them (serve/demo add ``--port``).
EMBEDDED = (EMBEDDED_MODEL, EMBEDDED_DTYPE, DEVICE, MAX_NUM_SEQS, VLLM_ARGS, STARTUP_TIMEOUT)
#: The target options of the conformance suite (its pytest plugin; the suite's own options follow).
CONFORMANCE_TARGET = (MODEL, MODEL_CONFIG, INPUT_DTYPE, API_KEY, REFERENCE_CHECKPOINT, NUMERIC_BOUNDS, MODE, PLUGIN,
                      IO_INPUT_DIR, TERRATORCH_VERSION)
#: The conformance suite's own options.
CONFORMANCE = (CONFORMANCE_REPORT, CONFORMANCE_HTML, REPRO_DIR, EXPECTATIONS, STRICT_EXPECTATIONS, DESTRUCTIVE,
               REQUIREMENTS_MAP)
#: The embedded server's options in pytest (:mod:`geopool.pytest_plugin`), for the suite and other suites.
PYTEST_EMBEDDED = (EMBEDDED_MODEL, EMBEDDED_DTYPE, DEVICE)


# ----------------------------------------------------------------------------------- rendering


def click_options(entries: Iterable[Option]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding ``entries`` to a click command (click checks choices and bounds from the row)."""
    import click

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for entry in reversed(tuple(entries)):
            if entry.kind is bool:  # an on/off flag: no value
                func = click.option(entry.flag, entry.dest, is_flag=True, default=bool(entry.default),
                                    help=entry.help)(func)
                continue
            func = click.option(entry.flag, entry.dest, type=_click_type(entry), default=entry.default,
                                envvar=entry.env, show_default=entry.default is not None, help=entry.help,
                                multiple=entry.multiple, metavar=entry.metavar, required=entry.required)(func)
        return func

    return decorate


def _click_type(entry: Option) -> Any:
    import click

    if entry.choices:
        return click.Choice(entry.choices)
    if entry.kind is Path:
        return click.Path(path_type=Path)
    if entry.kind is int:
        return click.IntRange(min=entry.low, max=entry.high)
    if entry.kind is float:
        return click.FloatRange(min=entry.low, max=entry.high, min_open=entry.low_open, max_open=entry.high_open)
    return str


def _argparse_type(entry: Option) -> Callable[[str], Any]:
    """argparse's ``type=``: the row's own check, so Locust and pytest refuse what click refuses."""
    def convert(text: str) -> Any:
        try:
            return entry.check(text)
        except InvalidArgument as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = _kind_name(entry.kind)  # argparse names the type in "invalid <name> value" errors
    return convert


def add_argparse(parser: Any, entries: Iterable[Option]) -> None:
    """Declare ``entries`` in Locust's parser (an argparse parser that also knows ``env_var``, ``is_secret``
    and ``include_in_web_ui``); Locust's own options, like ``-u``, are left to Locust."""
    for entry in entries:
        if entry.locust_flag is not None:
            continue
        if entry.kind is bool:
            parser.add_argument(entry.flag, action="store_true", default=bool(entry.default), help=_help(entry))
            continue
        kwargs: dict[str, Any] = {"default": entry.default, "help": _help(entry)}
        if entry.kind in (int, float):
            kwargs["type"] = _argparse_type(entry)
        if entry.choices:
            kwargs["choices"] = list(entry.choices)
        if entry.env:
            kwargs["env_var"] = entry.env
        if entry.secret:
            kwargs["is_secret"] = True
        parser.add_argument(entry.flag, **kwargs)


def add_pytest(group: Any, entries: Iterable[Option], *, dests: Mapping[str, str] | None = None) -> None:
    """Declare ``entries`` in a pytest option group; ``dests`` renames a destination (``model`` is
    ``conformance_model`` there, as other plugins may own ``model``). Environment defaults are read now."""
    dests = dests or {}
    for entry in entries:
        dest = dests.get(entry.dest, entry.dest)
        if entry.kind is bool:
            group.addoption(entry.flag, dest=dest, action="store_true", default=bool(entry.default),
                            help=_help(entry))
            continue
        default = os.environ.get(entry.env) if entry.env else None
        kwargs: dict[str, Any] = {"dest": dest, "help": _help(entry),
                                  "default": default if default is not None else entry.default}
        if entry.choices:
            kwargs["choices"] = list(entry.choices)
        if entry.kind in (int, float):
            kwargs["type"] = _argparse_type(entry)
        if entry.metavar:
            kwargs["metavar"] = entry.metavar
        group.addoption(entry.flag, **kwargs)


def _help(entry: Option) -> str:
    """The row's help as argparse shows it (click shows env and default itself)."""
    env = f" (or ${entry.env})" if entry.env and "$" not in entry.help else ""
    default = f" [{entry.default}]" if entry.default is not None and entry.kind is not bool else ""
    return entry.help + env + default
