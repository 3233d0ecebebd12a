"""Every load option, declared once, and the one scenario resolver both entry points use.

:data:`OPTIONS` is the table. It is rendered into Locust's parser (:func:`add_locust_arguments`),
into the click options of ``geopool load`` (:func:`click_options`) and into the command line
``geopool load`` gives its Locust child (:func:`locust_arguments`). An option whose ``locust_flag``
is set is one of Locust's own (``-u``, ``-t``, ``--processes``, ``--host``): geopool only reads it.

Either path collects a ``values`` dict keyed by :attr:`LoadOption.dest`, passes it through
:func:`apply_deprecations` and :func:`resolve`, so ``--users`` on a staged scenario is the same
:class:`~geopool.errors.ConfigError` whether it came from ``geopool load`` or from ``locust``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from geopool.contract import INPUT_DTYPES
from geopool.errors import ConfigError
from geopool.load.scenario import ARRIVALS, PAYLOADS, VERIFY, Scenario, resolve_scenario
from geopool.load.stats import STABILITY

__all__ = ["OPTIONS", "LoadOption", "add_locust_arguments", "apply_deprecations", "click_options",
           "default_report_dir", "locust_arguments", "option", "overrides", "resolve"]

REPORTS = Path("reports") / "load"


@dataclasses.dataclass(frozen=True)
class LoadOption:
    """One load option: its flag, type and default, and where it goes.

    ``field`` is the :class:`~geopool.load.scenario.Scenario` field it overrides (None: it is not a
    scenario setting). ``low``/``high`` bound a number on ``geopool load``'s command line (Locust's
    path is checked by the Scenario itself). ``deprecated_flag``/``deprecated_env`` are old names still
    accepted for one release, with a warning.
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


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


OPTIONS: tuple[LoadOption, ...] = (
    LoadOption("--base-url", "Server URL [default: start the embedded server and load it].", env="GEOPOOL_BASE_URL",
               locust_flag="--host", locust_dest="host"),
    LoadOption("--scenario", "Scenario name in the scenario file (closed, open-constant, open-poisson, ramp, "
               "step, spike, soak).", default="closed"),
    LoadOption("--scenario-file", "TOML scenario file [load/scenarios.toml].", kind=Path),
    LoadOption("--slo", "SLO TOML file; a breach exits 3, an invalid run 4.", kind=Path),
    LoadOption("--users", "Concurrent users (overrides; not for a scenario with stages).", kind=int, low=1,
               field="users", locust_flag="-u", locust_dest="num_users"),
    LoadOption("--rate", "Open loop: arrivals per second (overrides).", kind=float, low=0, low_open=True,
               field="rate"),
    LoadOption("--arrival", "Open loop arrivals (overrides).", choices=ARRIVALS, field="arrival"),
    LoadOption("--duration", "Seconds (overrides).", kind=float, low=1, field="duration_s", locust_flag="-t",
               locust_dest="run_time", to_locust=_seconds),
    LoadOption("--max-requests", "Request budget of the run (overrides).", kind=int, low=1, field="max_requests"),
    LoadOption("--warmup", "Seconds excluded from statistics (overrides).", kind=float, low=0, field="warmup_s"),
    LoadOption("--window-requests", "Steady-state window size (overrides).", kind=int, low=2,
               field="window_requests"),
    LoadOption("--stability-tolerance", f"Steady state: the last 3 windows within this fraction [{STABILITY:.2f}].",
               kind=float, low=0, high=1, low_open=True, field="stability_tolerance"),
    LoadOption("--payload", "Payload pool or the seed input (overrides).", choices=PAYLOADS, field="payload"),
    LoadOption("--pool-size", "Distinct pre-encoded inputs (overrides).", kind=int, low=1, field="pool_size"),
    LoadOption("--verify", "Check answers against the contract, or also against the reference output of "
               "their input (overrides).", choices=VERIFY, field="verify"),
    LoadOption("--reference-checkpoint", "Served model folder (config.json + .pt), for --verify reference "
               "against a URL.", kind=Path, deprecated_flag="--reference-dir"),
    LoadOption("--processes", "Locust --processes: a master and this many worker processes.", kind=int, low=1,
               locust_flag="--processes", locust_dest="processes"),
    LoadOption("--report-dir", "Output folder [reports/load/SCENARIO-TIMESTAMP].", kind=Path),
    LoadOption("--model", "Model name [the one /v1/models lists]."),
    LoadOption("--model-config", "TerraTorch config.json of the served model [Sen1Floods11's contract].",
               kind=Path),
    LoadOption("--input-dtype", "dtype the server was loaded with (its --dtype); inputs are sent in it.",
               default="float32", choices=INPUT_DTYPES),
    LoadOption("--api-key", "Bearer token (or $GEOPOOL_API_KEY; never printed).", env="GEOPOOL_API_KEY",
               secret=True, deprecated_env="LOCUST_API_KEY"),
)


def option(dest: str) -> LoadOption:
    """The option whose ``dest`` is ``dest`` (KeyError names it)."""
    for candidate in OPTIONS:
        if candidate.dest == dest:
            return candidate
    raise KeyError(dest)


# ----------------------------------------------------------------------------------- rendering


def add_locust_arguments(parser: Any) -> None:
    """Declare geopool's options in Locust's parser (Locust's own, like ``-u``, are left to Locust)."""
    for entry in OPTIONS:
        if entry.locust_flag is not None:
            continue
        kwargs: dict[str, Any] = {"default": entry.default, "help": _locust_help(entry)}
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


def _locust_help(entry: LoadOption) -> str:
    env = f" (or ${entry.env})" if entry.env and "$" not in entry.help else ""
    default = f" [{entry.default}]" if entry.default is not None else ""
    return entry.help + env + default


def click_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option of the table (deprecated names hidden)."""
    import click

    for entry in reversed(OPTIONS):
        if entry.deprecated_flag:
            func = click.option(entry.deprecated_flag, entry.deprecated_dest, type=_click_type(entry), default=None,
                                hidden=True)(func)
        func = click.option(entry.flag, entry.dest, type=_click_type(entry), default=entry.default,
                            envvar=entry.env, show_default=entry.default is not None, help=entry.help)(func)
    return func


def _click_type(entry: LoadOption) -> Any:
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


def locust_arguments(values: Mapping[str, Any]) -> list[str]:
    """The Locust command-line arguments that carry ``values`` (secrets never: they go by environment)."""
    arguments: list[str] = []
    for entry in OPTIONS:
        value = values.get(entry.dest)
        if value is None or entry.secret:
            continue
        arguments += [entry.locust_flag or entry.flag, entry.to_locust(value)]
    return arguments


# ---------------------------------------------------------------------------------- resolution


def values_from_locust(options: Any, host: str | None) -> dict[str, Any]:
    """The table's values from Locust's parsed options (``host``: the environment's)."""
    values = {entry.dest: getattr(options, entry.locust_dest or entry.dest) for entry in OPTIONS}
    values.update({entry.deprecated_dest: getattr(options, entry.deprecated_dest)
                   for entry in OPTIONS if entry.deprecated_dest})
    values["base_url"] = host
    return values


def apply_deprecations(values: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                       warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``values`` with every deprecated name folded into its new one (a warning each); the new name wins."""
    environ = os.environ if environ is None else environ
    warn = _warn if warn is None else warn
    result = dict(values)
    for entry in OPTIONS:
        if entry.deprecated_dest:
            old = result.pop(entry.deprecated_dest, None)
            if old is not None:
                warn(f"{entry.deprecated_flag} is deprecated; use {entry.flag}")
                if result.get(entry.dest) is None:
                    result[entry.dest] = old
        if entry.deprecated_env and result.get(entry.dest) is None and environ.get(entry.deprecated_env):
            warn(f"${entry.deprecated_env} is deprecated; use ${entry.env}")
            result[entry.dest] = environ[entry.deprecated_env]
    return result


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario fields the given values override (None: not given)."""
    result = {}
    for entry in OPTIONS:
        if entry.field is not None:
            value = values.get(entry.dest)
            result[entry.field] = None if value is None else entry.kind(value)
    return result


def resolve(values: Mapping[str, Any], *, embedded: bool = False) -> Scenario:
    """The scenario a run uses: the named one, with the values' overrides, checked for both paths alike.

    ``embedded``: the embedded server supplies the reference checkpoint itself.
    """
    scenario_file = values.get("scenario_file")
    scenario = resolve_scenario(values.get("scenario") or option("scenario").default,
                                Path(scenario_file) if scenario_file else None, overrides(values))
    if scenario.verify == "reference" and not embedded and not values.get("reference_checkpoint"):
        raise ConfigError("--verify reference against a URL needs --reference-checkpoint "
                          "(the folder the server serves: config.json + .pt)")
    return scenario


def default_report_dir(scenario_name: str) -> Path:
    """``reports/load/SCENARIO-TIMESTAMP``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS / f"{scenario_name}-{stamp}"
