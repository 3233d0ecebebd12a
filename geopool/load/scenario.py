"""Load scenarios: what traffic a run sends, read from a TOML file and validated before anything starts.

A scenario is closed loop (``users`` concurrent users, each sending its next request when the last
one finished) or open loop (arrivals at ``rate`` per second, ``constant`` or ``poisson``, from a
schedule fixed before the run; ``users`` is then the most requests in flight). ``stages`` make it a
shape (ramp, step, spike, soak): each stage holds until ``until_s`` with its own ``users`` (closed) or
``rate`` (open). Every run is bounded by ``duration_s`` and ``max_requests``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geopool import resources
from geopool.errors import ConfigError
from geopool.tomlfile import read_toml

__all__ = ["DEFAULT_SCENARIO_FILE", "Scenario", "Stage", "load_scenarios", "resolve_scenario", "scenario_from"]

DEFAULT_SCENARIO_FILE = resources.scenarios_file()

#: A scenario's loop (its ``mode`` field), not to be confused with the serving modes of :mod:`geopool.modes`.
LOOP_MODES = ("closed", "open")
ARRIVALS = ("constant", "poisson")
PAYLOADS = ("pool", "seed")
VERIFY = ("contract", "reference")
#: The ``encoding_format`` the load suite asks for: base64 JSON answers, or raw bytes with a metadata header.
RESPONSE_ENCODINGS = ("base64", "bytes")

#: Default steady-state tolerance (perf_analyzer's -s: the last windows' max/min within 1.10): the one place
#: it is written. It lives with the scenario, whose field it defaults, so that the statistics (which read a
#: Scenario) sit above this module and never the other way round.
STABILITY = 0.10
#: The loosest steady state a scenario may ask for: the last windows' max/min within 11× (a machine whose
#: cores the server shares swings by 100 % and more; steadiness is then not what the run judges).
MAX_STABILITY = 10.0

#: Longest a closing process waits for requests in flight.
MAX_GRACE_S = 30.0


@dataclasses.dataclass(frozen=True)
class Stage:
    """Until ``until_s`` seconds after the start: ``users`` users (closed) or ``rate`` arrivals/s (open)."""

    until_s: float
    users: int
    rate: float


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    mode: str = "closed"
    users: int = 8
    rate: float = 1.0
    arrival: str = "poisson"
    duration_s: float = 60.0
    max_requests: int = 10_000
    warmup_s: float = 10.0
    stages: tuple[Stage, ...] = ()
    payload: str = "pool"
    pool_size: int = 8
    seed: int = 0
    verify: str = "contract"
    response_encoding: str = "base64"
    window_requests: int = 20
    stability_tolerance: float = STABILITY
    late_threshold_ms: float = 10.0
    request_timeout_s: float = 120.0
    description: str = ""

    def __post_init__(self) -> None:
        where = f"scenario {self.name!r}"
        _choice(where, "mode", self.mode, LOOP_MODES)
        _choice(where, "arrival", self.arrival, ARRIVALS)
        _choice(where, "payload", self.payload, PAYLOADS)
        _choice(where, "verify", self.verify, VERIFY)
        _choice(where, "response_encoding", self.response_encoding, RESPONSE_ENCODINGS)
        _positive(where, "users", self.users)
        _positive(where, "rate", self.rate)
        _positive(where, "duration_s", self.duration_s)
        _positive(where, "max_requests", self.max_requests)
        _positive(where, "pool_size", self.pool_size)
        _positive(where, "request_timeout_s", self.request_timeout_s)
        if self.window_requests < 2:
            raise ConfigError(f"{where}: window_requests must be >= 2, got {self.window_requests!r}")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ConfigError(f"{where}: warmup_s must be >= 0 and below duration_s ({self.duration_s}), "
                              f"got {self.warmup_s!r}")
        if not 0 < self.stability_tolerance <= MAX_STABILITY:
            raise ConfigError(f"{where}: stability_tolerance must be within (0, {MAX_STABILITY:g}], "
                              f"got {self.stability_tolerance!r}")
        if self.late_threshold_ms < 0:
            raise ConfigError(f"{where}: late_threshold_ms must be >= 0, got {self.late_threshold_ms!r}")
        previous = 0.0
        for number, stage in enumerate(self.stages, 1):
            if stage.until_s <= previous:
                raise ConfigError(f"{where}: stage {number} ends at until_s={stage.until_s}, not after "
                                  f"the previous stage ({previous})")
            previous = stage.until_s

    @property
    def open_loop(self) -> bool:
        return self.mode == "open"

    @property
    def grace_s(self) -> float:
        """How long a stopping run waits for the requests in flight: their timeout, at most 30 s."""
        return min(self.request_timeout_s, MAX_GRACE_S)

    @property
    def end_s(self) -> float:
        """When the run stops: the last stage's end, or ``duration_s``, whichever is first."""
        return min(self.duration_s, self.stages[-1].until_s) if self.stages else self.duration_s

    def stage_at(self, elapsed_s: float) -> Stage | None:
        """The stage in force ``elapsed_s`` after the start, or None once the run is over."""
        if elapsed_s >= self.end_s:
            return None
        for stage in self.stages:
            if elapsed_s < stage.until_s:
                return stage
        return Stage(self.end_s, self.users, self.rate)

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with the non-None ``changes`` applied (validated like the original)."""
        kept = {key: value for key, value in changes.items() if value is not None}
        unknown = set(kept) - {field.name for field in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown scenario setting(s): {', '.join(sorted(unknown))}")
        if "stages" in kept:
            kept["stages"] = _stages(f"scenario {self.name!r}", kept["stages"])
        try:
            return dataclasses.replace(self, **kept)
        except TypeError as exc:
            raise ConfigError(f"scenario {self.name!r}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scenario_from(name: str, table: Mapping[str, Any]) -> Scenario:
    """One ``[scenario.NAME]`` table → Scenario; unknown keys and wrong types are named."""
    where = f"scenario {name!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
    fields = {field.name: field for field in dataclasses.fields(Scenario)}
    values: dict[str, Any] = {"name": name}
    for key, value in table.items():
        if key not in fields or key == "name":
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: "
                              f"{', '.join(sorted(set(fields) - {'name'}))}")
        if key == "stages":
            values[key] = _stages(where, value)
            continue
        default = fields[key].default
        values[key] = _typed(where, key, value, type(default))
    return Scenario(**values)


def load_scenarios(path: str | Path | None = None) -> dict[str, Scenario]:
    """Every scenario in a TOML file (``[scenario.NAME]`` tables), by name."""
    path = Path(path) if path is not None else DEFAULT_SCENARIO_FILE
    document = read_toml(path, "scenario file")
    tables = document.get("scenario")
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(f"scenario file {str(path)!r} has no [scenario.NAME] tables")
    return {name: scenario_from(name, table) for name, table in tables.items()}


def resolve_scenario(name: str, path: str | Path | None, overrides: Mapping[str, Any]) -> Scenario:
    """Scenario ``name`` of the file at ``path`` (None: the shipped one) with the non-None ``overrides``.

    The one resolver of every entry point: an unknown name, or ``users`` on a scenario with stages
    (whose stages set the users), is a :class:`ConfigError`.
    """
    scenarios = load_scenarios(path)
    if name not in scenarios:
        raise ConfigError(f"unknown scenario {name!r}; the scenario file has: {', '.join(sorted(scenarios))}")
    scenario = scenarios[name]
    if overrides.get("users") is not None and scenario.stages:
        raise ConfigError(f"scenario {name!r} has stages; --users applies only to scenarios without")
    return scenario.with_overrides(**overrides)


def _stages(where: str, value: Any) -> tuple[Stage, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: stages must be a list of tables, got {type(value).__name__}")
    stages = []
    for number, item in enumerate(value, 1):
        if isinstance(item, Stage):
            stages.append(item)
            continue
        if not isinstance(item, Mapping) or "until_s" not in item:
            raise ConfigError(f"{where}: stage {number} must be a table with until_s, got {item!r}")
        extra = set(item) - {"until_s", "users", "rate"}
        if extra:
            raise ConfigError(f"{where}: stage {number} has unknown key(s) {sorted(extra)}; use until_s, users, rate")
        until = _typed(where, f"stages[{number}].until_s", item["until_s"], float)
        users = _typed(where, f"stages[{number}].users", item.get("users", 1), int)
        rate = _typed(where, f"stages[{number}].rate", item.get("rate", 1.0), float)
        if users < 0 or rate < 0:
            raise ConfigError(f"{where}: stage {number} has a negative users or rate")
        stages.append(Stage(until, users, rate))
    return tuple(stages)


def _typed(where: str, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _choice(where: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {key}={value!r} is not one of {', '.join(choices)}")


def _positive(where: str, key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{where}: {key} must be > 0, got {value!r}")
