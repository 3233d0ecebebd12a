"""Options shared by geopool's entry points, declared once and rendered into click, pytest and Locust.

An :class:`Option` is a row: flag, type, default, help, environment variable, and an old spelling
still accepted for one release (with a warning). The same concept has the same name everywhere:

=========================  ==========================================================================
``--base-url``             the server under test (``$GEOPOOL_BASE_URL``; pytest also reads
                           ``$PYTEST_BASE_URL`` and the ``base_url`` ini key, as pytest-base-url does)
``--model``                the *served* model name (default: the one ``/v1/models`` lists)
``--model-config``         the served model's TerraTorch ``config.json`` (the contract)
``--input-dtype``          the dtype the server was loaded with; inputs are sent in it
``--api-key``              Bearer token (``$GEOPOOL_API_KEY``; never printed)
``--reference-checkpoint`` the served model folder (config.json + .pt) for the numeric oracle
``--embedded-model``       the fixture (or folder) the *embedded* server serves
``--embedded-dtype``       the embedded server's vLLM ``--dtype``
``--device``               the embedded server's device: ``auto`` (the vLLM build's own), ``cpu``, ``cuda``
``--mode``                 tensor-to-tensor or image-to-image (GeoTIFFs through an IO-processor plugin)
``--plugin``               image-to-image: the embedded server's plugin (geopool, loopfix, stock)
``--io-input-dir``         image-to-image against a URL: a folder the server reads by the same paths
=========================  ==========================================================================

Renderers: :func:`click_options` (the ``geopool`` CLI), :func:`add_argparse` (Locust's parser),
:func:`add_pytest` (the conformance plugin). :func:`apply_deprecations` folds old spellings into the
new ones, whichever entry point read them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from geopool.contract import INPUT_DTYPES
from geopool.fixture_models import DEFAULT_MODEL
from geopool.modes import MODES, TENSOR_TO_TENSOR
from geopool.server import DEFAULT_DEVICE, DEFAULT_DTYPE, DEFAULT_MAX_NUM_SEQS, DEFAULT_PLUGIN, DEVICES, PLUGINS

__all__ = ["API_KEY", "BASE_URL", "DEVICE", "EMBEDDED", "EMBEDDED_DTYPE", "EMBEDDED_MODEL", "INPUT_DTYPE",
           "IO_INPUT_DIR", "IO_MODE", "MODE", "MODEL", "PLUGIN",
           "MODEL_CONFIG", "REFERENCE_CHECKPOINT", "Option", "add_argparse", "add_pytest", "apply_deprecations",
           "click_options", "missing_input_dtype"]


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its flag, type and default, and where it goes.

    ``field`` is the load :class:`~geopool.load.scenario.Scenario` field it overrides (None: not a
    scenario setting). ``low``/``high`` bound a number on the command line. ``multiple`` collects a
    repeatable flag into a tuple; ``required`` binds click only. ``locust_flag``/``locust_dest`` mark
    one of Locust's own options (``-u``, ``-t``, ``--host``): geopool only reads it there.
    ``kind=bool`` is an on/off flag without a value (off by default).
    ``deprecated_flag``/``deprecated_env`` are old names still accepted for one release, with a warning.
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
    secret: bool = False
    multiple: bool = False
    required: bool = False
    metavar: str | None = None
    locust_flag: str | None = None
    locust_dest: str | None = None
    to_locust: Callable[[Any], str] = str
    deprecated_flag: str | None = None
    deprecated_env: str | None = None

    @property
    def dest(self) -> str:
        return _dest(self.flag)

    @property
    def deprecated_dest(self) -> str | None:
        return _dest(self.deprecated_flag) if self.deprecated_flag else None

    def but(self, **changes: Any) -> Option:
        """The same option with some attributes changed (a context's own help or default)."""
        return dataclasses.replace(self, **changes)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


BASE_URL = Option("--base-url", "Server URL, e.g. http://127.0.0.1:8000.", env="GEOPOOL_BASE_URL")
MODEL = Option("--model", "Served model name [default: the one /v1/models lists].")
MODEL_CONFIG = Option("--model-config", "TerraTorch config.json of the served model (or its folder) "
                      "[default: Sen1Floods11's contract; the embedded model's when embedded].", kind=Path)
INPUT_DTYPE = Option("--input-dtype", "dtype the server was loaded with (its vLLM --dtype); inputs are sent in "
                     "it. Required against a URL (a server does not say it, and vLLM 0.32 dies on another "
                     "dtype); the embedded server's is known.", choices=INPUT_DTYPES)
API_KEY = Option("--api-key", "Bearer token (or $GEOPOOL_API_KEY; never printed).", env="GEOPOOL_API_KEY",
                 secret=True)
REFERENCE_CHECKPOINT = Option("--reference-checkpoint", "Served model folder (config.json + .pt checkpoint) for "
                              "the numeric oracle [automatic for the embedded server].", kind=Path)
NUMERIC_BOUNDS = Option("--numeric-bounds", "Served-vs-reference bounds (geopool.numerics): same-kernels for a "
                        "vLLM CPU build like the reference's, other-kernels for any other server (GPU); auto: "
                        "same-kernels for the embedded server, other-kernels for a URL.",
                        choices=("auto", "same-kernels", "other-kernels"), default="auto")
EMBEDDED_MODEL = Option("--embedded-model", "Fixture name (prithvi-tiny-tl, prithvi-300m-tl) or TerraTorch model "
                        "folder for the embedded server.", default=DEFAULT_MODEL)
EMBEDDED_DTYPE = Option("--embedded-dtype", "vLLM --dtype of the embedded server; clients send inputs in it.",
                        default=DEFAULT_DTYPE, choices=INPUT_DTYPES)
DEVICE = Option("--device", "Device of the embedded server: auto (the installed vLLM build's own), cpu or cuda.",
                default=DEFAULT_DEVICE, choices=DEVICES)
MAX_NUM_SEQS = Option("--max-num-seqs", "vLLM --max-num-seqs of the embedded server.", kind=int,
                      default=DEFAULT_MAX_NUM_SEQS, low=1)
VLLM_ARGS = Option("--vllm-arg", "Extra vLLM flag for the embedded server, repeatable "
                   "(e.g. --vllm-arg=--max-model-len=512).", multiple=True, metavar="FLAG")
STARTUP_TIMEOUT = Option("--startup-timeout", "Seconds to wait for the embedded server's /health.", kind=float,
                         default=600.0, low=1)

MODE = Option("--mode", "How the server is served: tensor-to-tensor (tensors in /pooling requests) or "
              "image-to-image (GeoTIFFs through TerraTorch's IO-processor plugin).", choices=MODES,
              default=TENSOR_TO_TENSOR)
PLUGIN = Option("--plugin", "Image-to-image: the embedded server's IO-processor plugin: geopool (TerraTorch's "
                "terratorch_segmentation with geopool's fixes for D8 and D9, nothing else), loopfix (the D8 fix "
                "only) or stock (TerraTorch's own).", choices=PLUGINS, default=DEFAULT_PLUGIN)
IO_INPUT_DIR = Option("--io-input-dir", "Image-to-image against a URL: a folder the server reads by the same "
                      "absolute paths (a shared file system); geopool writes the GeoTIFFs it names there "
                      "[embedded: a folder of the run's own].", kind=Path)
#: The serving mode, and the embedded server's plugin in image-to-image mode.
IO_MODE = (MODE, PLUGIN)


def missing_input_dtype(url: str) -> str:
    """Why geopool sends no pooling request to ``url`` until it is told the server's dtype."""
    return (f"{url}: pass --input-dtype float32|float16|bfloat16, the dtype the server was loaded with "
            "(its vLLM --dtype). A server does not say it, and vLLM 0.32 does not cast inputs: a tensor of "
            "another dtype kills its engine, so no pooling request was sent")


#: The embedded server's options, as ``geopool serve``/``demo``/``load`` take them.
EMBEDDED = (EMBEDDED_MODEL, EMBEDDED_DTYPE, DEVICE, MAX_NUM_SEQS, VLLM_ARGS, STARTUP_TIMEOUT)


# ----------------------------------------------------------------------------------- rendering


def click_options(entries: Iterable[Option]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding ``entries`` to a click command (old spellings hidden, same destination)."""
    import click

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for entry in reversed(tuple(entries)):
            if entry.deprecated_flag:
                func = click.option(entry.deprecated_flag, entry.deprecated_dest, type=_click_type(entry),
                                    default=None, hidden=True, multiple=entry.multiple)(func)
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
        return click.FloatRange(min=entry.low, max=entry.high, min_open=entry.low_open)
    return str


def add_argparse(parser: Any, entries: Iterable[Option]) -> None:
    """Declare ``entries`` in Locust's parser (an argparse parser that also knows ``env_var``, ``is_secret``
    and ``include_in_web_ui``); Locust's own options, like ``-u``, are left to Locust."""
    for entry in entries:
        if entry.locust_flag is not None:
            continue
        if entry.kind is bool:
            parser.add_argument(entry.flag, action="store_true", default=bool(entry.default), help=entry.help)
            continue
        kwargs: dict[str, Any] = {"default": entry.default, "help": _help(entry)}
        if entry.kind in (int, float):
            kwargs["type"] = entry.kind
        if entry.choices:
            kwargs["choices"] = list(entry.choices)
        if entry.env:
            kwargs["env_var"] = entry.env
        if entry.secret:
            kwargs["is_secret"] = True
        parser.add_argument(entry.flag, **kwargs)
        if entry.deprecated_flag:
            parser.add_argument(entry.deprecated_flag, default=None, help=argparse.SUPPRESS, include_in_web_ui=False)


def add_pytest(group: Any, entries: Iterable[Option], *, dests: Mapping[str, str] | None = None) -> None:
    """Declare ``entries`` in a pytest option group; ``dests`` renames a destination (``model`` is
    ``conformance_model`` there, as other plugins may own ``model``). Environment defaults are read now."""
    dests = dests or {}
    for entry in entries:
        default = os.environ.get(entry.env) if entry.env else None
        kwargs: dict[str, Any] = {"dest": dests.get(entry.dest, entry.dest), "help": _help(entry),
                                  "default": default if default is not None else entry.default}
        if entry.choices:
            kwargs["choices"] = list(entry.choices)
        if entry.kind in (int, float):
            kwargs["type"] = entry.kind
        group.addoption(entry.flag, **kwargs)


def _help(entry: Option) -> str:
    env = f" (or ${entry.env})" if entry.env and "$" not in entry.help else ""
    default = f" [{entry.default}]" if entry.default is not None else ""
    return entry.help + env + default


# ---------------------------------------------------------------------------------- deprecations


def apply_deprecations(values: Mapping[str, Any], entries: Iterable[Option], environ: Mapping[str, str] | None = None,
                       warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``values`` with every deprecated name folded into its new one (a warning each); the new name wins."""
    environ = os.environ if environ is None else environ
    warn = _warn if warn is None else warn
    result = dict(values)
    for entry in entries:
        if entry.deprecated_dest:
            old = result.pop(entry.deprecated_dest, None)
            if old not in (None, ()):
                warn(f"{entry.deprecated_flag} is deprecated; use {entry.flag}")
                if result.get(entry.dest) in (None, entry.default):
                    result[entry.dest] = old
        if entry.deprecated_env and result.get(entry.dest) is None and environ.get(entry.deprecated_env):
            warn(f"${entry.deprecated_env} is deprecated; use ${entry.env}")
            result[entry.dest] = environ[entry.deprecated_env]
    return result


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
