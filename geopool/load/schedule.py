"""The open-loop arrival schedule, fixed before the run from the scenario and its seed.

Arrivals follow the rate of each stage (piecewise constant): ``constant`` puts arrival k where the
cumulative rate reaches k; ``poisson`` puts them at cumulative unit-exponential gaps (a Poisson
process, time-changed by the rate). The same scenario and seed give the same schedule everywhere, so
a distributed run splits it by taking every ``slots``-th arrival: the total rate is the target.
"""

from __future__ import annotations

import numpy as np

from geopool.errors import InvalidArgument
from geopool.load.scenario import Scenario

__all__ = ["arrival_offsets", "slot_share"]


def arrival_offsets(scenario: Scenario) -> np.ndarray:
    """Intended send times in seconds after the start, ascending, at most ``max_requests`` of them."""
    stages = scenario.stages or ()
    bounds = [0.0, *(min(stage.until_s, scenario.end_s) for stage in stages)]
    rates = [stage.rate for stage in stages]
    if not stages:
        bounds, rates = [0.0, scenario.end_s], [scenario.rate]
    elif bounds[-1] < scenario.end_s:
        bounds.append(scenario.end_s)
        rates.append(scenario.rate)
    # cumulative expected arrivals at each stage boundary
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(bounds) * np.asarray(rates))])
    total = cumulative[-1]
    if scenario.arrival == "constant":
        marks = np.arange(0.0, total, 1.0)
    else:
        rng = np.random.default_rng(scenario.seed)
        expected = int(total + 10 * np.sqrt(total + 1) + 10)
        marks = np.cumsum(rng.exponential(1.0, size=expected)) - 0.0
        marks = np.concatenate([[0.0], marks])
        marks = marks[marks < total]
    marks = marks[: scenario.max_requests]
    # invert the cumulative rate: which stage each mark falls in, then how far into it
    stage_index = np.clip(np.searchsorted(cumulative, marks, side="right") - 1, 0, len(rates) - 1)
    stage_rates = np.asarray(rates, dtype=float)[stage_index]
    into = np.divide(marks - cumulative[stage_index], stage_rates,
                     out=np.zeros_like(marks), where=stage_rates > 0)
    return np.asarray(bounds, dtype=float)[stage_index] + into


def slot_share(offsets: np.ndarray, slot: int, slots: int) -> np.ndarray:
    """The arrivals one of ``slots`` load-generating processes sends: every slots-th, from ``slot``."""
    if not 0 <= slot < slots:
        raise InvalidArgument(f"slot {slot} is not in 0..{slots - 1}")
    return offsets[slot::slots]


def quota_share(total: int, slot: int, slots: int) -> int:
    """This slot's part of a request budget, the parts summing to ``total``."""
    return total // slots + (1 if slot < total % slots else 0)
