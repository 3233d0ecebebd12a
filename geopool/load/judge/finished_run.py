"""One finished load run, read back from its folder (``records.jsonl`` + ``summary.json``) for comparing.

Its own module, below both the comparison and its report (which draws a :class:`Run`'s figures), so that
neither has to import the other to name the type.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from geopool.errors import ConfigError
from geopool.load.judge import stats
from geopool.load.records import Record, read_records
from geopool.load.scenario import Scenario, scenario_from

__all__ = ["Run", "read_run"]


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run, read back: its folder, summary, scenario and measured sample (completion order)."""

    folder: Path
    summary: dict[str, Any]
    scenario: Scenario
    latencies_ms: dict[str, np.ndarray]
    done: np.ndarray
    measure_from: float
    records: list[Record] = dataclasses.field(default_factory=list, repr=False)

    @property
    def main_latency(self) -> str:
        return "corrected" if self.scenario.open_loop else "uncorrected"


def read_run(path: str | Path) -> Run:
    """A run folder (or a gate folder's ``load/``) read back; ConfigError names what is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder (expected a `geopool load` run or gate folder)")
    if not (folder / "records.jsonl").is_file() and (folder / "load" / "summary.json").is_file():
        folder = folder / "load"
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{str(folder)!r} holds no summary.json: not a `geopool load` run folder")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{summary_path} is not JSON: {exc}") from None
    if not isinstance(summary, dict) or "requests" not in summary or "scenario" not in summary:
        why = summary.get("error") if isinstance(summary, dict) else None
        raise ConfigError(f"{str(folder)!r}: the run produced no statistics" + (f" ({why})" if why else ""))
    try:
        records = read_records(folder / "records.jsonl")
    except ConfigError as exc:  # a torn or foreign line, said as the rest of a damaged folder is
        raise ConfigError(f"{str(folder)!r}: summary.json or records.jsonl is not a geopool run's ({exc})") from None
    try:
        settings = summary["scenario"]
        scenario = scenario_from(settings["name"], {key: value for key, value in settings.items() if key != "name"})
        t0 = float(summary["t0"])
        ok = sorted(stats.measured_ok_records(records, scenario, t0), key=lambda record: float(record.done))
        latencies = stats.measured_latencies_ms(ok, scenario, t0)
        done = np.array([record.done for record in ok], dtype=float)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited or foreign folder
        raise ConfigError(f"{str(folder)!r}: summary.json or records.jsonl is not a geopool run's "
                          f"({type(exc).__name__}: {exc})") from None
    if not ok:
        raise ConfigError(f"{str(folder)!r}: no verified request after warm-up to compare")
    return Run(folder, summary, scenario, latencies, done, t0 + scenario.warmup_s, records)
