"""Every load option, declared once, and the one scenario resolver both entry points use.

The target options (``--base-url``, ``--model``, ``--api-key`` ...) are :mod:`geopool.options`'s
shared rows, so they mean the same here as in the CLI and the conformance plugin; the load-only rows
below are declared into the same table (:func:`geopool.options.declare`).

:data:`OPTIONS` is ``geopool load``'s subset. It is rendered into Locust's parser
(:func:`add_locust_arguments`), into the click options of ``geopool load`` (:func:`click_options`)
and into the command line ``geopool load`` gives its Locust child (:func:`locust_arguments`). An
option whose ``locust_flag`` is set is one of Locust's own (``-u``, ``-t``, ``--processes``,
``--host``): geopool only reads it.

Either path collects a ``values`` dict keyed by :attr:`geopool.options.Option.dest` and passes it
through :func:`resolve`, so ``--users`` on a staged scenario is the same
:class:`~geopool.errors.ConfigError` whether it came from ``geopool load`` or from ``locust``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from geopool import options as shared
from geopool.errors import ConfigError, InvalidArgument
from geopool.load.scenario import (
    ARRIVALS,
    MAX_STABILITY,
    PAYLOADS,
    RESPONSE_ENCODINGS,
    STABILITY,
    VERIFY,
    Scenario,
    resolve_scenario,
)
from geopool.modes import IMAGE_TO_IMAGE, TENSOR_TO_TENSOR
from geopool.options import Option

__all__ = ["OPTIONS", "add_locust_arguments", "click_options",
           "default_report_dir", "locust_arguments", "mode_of", "option", "overrides", "require_input_dtype", "resolve"]

REPORTS = Path("reports") / "load"


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


#: The load-only rows, declared into geopool's one option table.
_LOAD_ROWS = shared.declare(
    Option("--scenario", "Scenario name in the scenario file (closed, open-constant, open-poisson, ramp, "
               "step, spike, soak, gate).", default="closed"),
    Option("--scenario-file", "TOML scenario file [load/scenarios.toml].", kind=Path),
    Option("--slo", "SLO TOML file the run is judged against (a sweep: each step), or a packaged one by name "
               "(example); a breach exits 10, an "
               "invalid run 11 (geopool compare: each run's verdict and goodput are shown, the exit code is "
               "compare's own).", kind=Path),
    Option("--stop-on-breach", "Stop the run as soon as an SLO bound is breached beyond doubt (exit 10; "
               "needs --slo).", kind=bool, default=False),
    Option("--users", "Concurrent users; open loop: the most requests in flight (overrides the scenario's; not "
               "for a scenario with stages).", kind=int, low=1, field="users", locust_flag="-u",
               locust_dest="num_users"),
    Option("--rate", "Open loop: arrivals per second (overrides).", kind=float, low=0, low_open=True,
               field="rate"),
    Option("--arrival", "Open loop arrivals (overrides).", choices=ARRIVALS, field="arrival"),
    Option("--duration", "Seconds (overrides).", kind=float, low=1, field="duration_s", locust_flag="-t",
               locust_dest="run_time", to_locust=_seconds),
    Option("--max-requests", "Request budget: the load run's (overrides the scenario's); the proxy stops by itself "
               "after this many.", kind=int, low=1, field="max_requests"),
    Option("--warmup", "Seconds excluded from statistics (overrides; a sweep: in each step).", kind=float, low=0,
               field="warmup_s"),
    Option("--window-requests", "Steady-state window size (overrides).", kind=int, low=2,
               field="window_requests"),
    Option("--stability-tolerance", "Steady state: the last 3 windows' throughput and mean latency within this "
           f"fraction (max/min - 1) [{STABILITY:.2f}].", kind=float, low=0, high=MAX_STABILITY, low_open=True,
           field="stability_tolerance"),
    Option("--payload", "Payload pool or the seed input (overrides).", choices=PAYLOADS, field="payload"),
    Option("--pool-size", "Distinct pre-encoded inputs (overrides).", kind=int, low=1, field="pool_size"),
    Option("--verify", "Check answers against the contract, or also against the reference output of "
               "their input (overrides).", choices=VERIFY, field="verify"),
    Option("--response-encoding", "encoding_format of the answers asked for: base64 (JSON) or bytes (raw values "
               "and a metadata header); both are verified alike (overrides).", choices=RESPONSE_ENCODINGS,
               field="response_encoding"),
    Option("--processes", "Locust --processes: a master and this many worker processes.", kind=int, low=1,
               locust_flag="--processes", locust_dest="processes"),
    Option("--report-dir", "Output folder [load: reports/load/SCENARIO-TIMESTAMP; sweep: reports/sweep/TIMESTAMP; "
               "gate: reports/gate-UTC-TIME; compare: NEW/compare].", kind=Path),
)
_LOAD = {row.dest: row for row in _LOAD_ROWS}

#: ``geopool load``'s options (and Locust's, but for Locust's own: ``-u``, ``-t``, ``--processes``, ``--host``).
OPTIONS: tuple[Option, ...] = (
    shared.BASE_URL,
    *(_LOAD[dest] for dest in ("scenario", "scenario_file", "slo", "stop_on_breach", "users", "rate", "arrival",
                               "duration", "max_requests", "warmup", "window_requests", "stability_tolerance",
                               "payload", "pool_size", "verify", "response_encoding")),
    shared.REFERENCE_CHECKPOINT,
    _LOAD["processes"],
    _LOAD["report_dir"],
    shared.NUMERIC_BOUNDS,
    shared.MODEL,
    shared.MODEL_CONFIG,
    shared.INPUT_DTYPE,
    shared.API_KEY,
    shared.MODE,
    shared.PLUGIN,
    shared.IO_INPUT_DIR,
)


def option(dest: str) -> Option:
    """The option whose ``dest`` is ``dest`` (KeyError names it)."""
    for candidate in OPTIONS:
        if candidate.dest == dest:
            return candidate
    raise InvalidArgument(f"dest={dest!r} names no load option; they are {[entry.dest for entry in OPTIONS]}")


# ----------------------------------------------------------------------------------- rendering


def add_locust_arguments(parser: Any) -> None:
    """Declare geopool's options in Locust's parser (Locust's own, like ``-u``, are left to Locust)."""
    shared.add_argparse(parser, OPTIONS)


def click_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option of ``geopool load``."""
    return shared.click_options(OPTIONS)(func)


def locust_arguments(values: Mapping[str, Any]) -> list[str]:
    """The Locust command-line arguments that carry ``values`` (secrets never: they go by environment)."""
    arguments: list[str] = []
    for entry in OPTIONS:
        value = values.get(entry.dest)
        if value is None or entry.secret:
            continue
        if entry.kind is bool:
            arguments += [entry.flag] if value else []
            continue
        arguments += [entry.locust_flag or entry.flag, entry.to_locust(value)]
    return arguments


# ---------------------------------------------------------------------------------- resolution


def values_from_locust(options: Any, host: str | None) -> dict[str, Any]:
    """The table's values from Locust's parsed options (``host``: the environment's)."""
    values = {entry.dest: getattr(options, entry.locust_dest or entry.dest) for entry in OPTIONS}
    values["base_url"] = host
    return values


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
    if values.get("stop_on_breach") and not values.get("slo"):
        raise ConfigError("--stop-on-breach needs --slo FILE: the bounds whose breach stops the run")
    if mode_of(values) == IMAGE_TO_IMAGE:
        _check_image_to_image(values, scenario, embedded=embedded)
    elif values.get("io_input_dir") is not None or values.get("plugin") is not None:
        raise ConfigError("--io-input-dir and --plugin are for --mode image-to-image; this run sends tensors")
    if scenario.verify == "reference" and not embedded and not values.get("reference_checkpoint"):
        raise ConfigError("--verify reference against a URL needs --reference-checkpoint "
                          "(the folder the server serves: config.json + .pt)")
    return scenario


def mode_of(values: Mapping[str, Any]) -> str:
    """The run's serving mode (tensor-to-tensor when not given)."""
    return values.get("mode") or TENSOR_TO_TENSOR


def _check_image_to_image(values: Mapping[str, Any], scenario: Scenario, *, embedded: bool) -> None:
    if scenario.verify == "reference":
        raise ConfigError("--verify reference compares tensors with the offline model; image-to-image answers "
                          "are verified against their input's georeferencing (use --verify contract)")
    if scenario.response_encoding != "base64":
        raise ConfigError("--response-encoding bytes is a tensor-to-tensor setting; image-to-image answers "
                          "are base64 GeoTIFFs in JSON")
    if not embedded and values.get("io_input_dir") is None:
        raise ConfigError("--mode image-to-image against a URL needs --io-input-dir DIR: a folder the server "
                          "reads by the same absolute paths (the GeoTIFFs are sent by path)")


def require_input_dtype(values: Mapping[str, Any], *, embedded: bool = False) -> None:
    """Against a URL the server's dtype must be given (tensor-to-tensor: image-to-image sends no tensors,
    the plugin builds them): checked after every file, before any request."""
    if not embedded and mode_of(values) == TENSOR_TO_TENSOR and values.get("input_dtype") is None:
        raise ConfigError(shared.missing_input_dtype(values.get("base_url") or "the target"))


def default_report_dir(scenario_name: str) -> Path:
    """``reports/load/SCENARIO-TIMESTAMP``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS / f"{scenario_name}-{stamp}"
