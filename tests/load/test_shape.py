"""The load shape: users over time as a pure function of the scenario and the elapsed time."""

from __future__ import annotations

import pytest

from geopool.load.run.shape import shape_tick, tail_end_s
from geopool.load.scenario import Scenario, Stage, load_scenarios


def _tick(scenario, elapsed, *, all_finished=False, spawn_rate=None):
    return shape_tick(scenario, elapsed, all_finished=all_finished, spawn_rate=spawn_rate)


def test_closed_stages_set_the_users_and_end_the_run():
    ramp = load_scenarios()["ramp"]
    assert [_tick(ramp, t) for t in (0, 14.9, 15, 44, 59.9)] == [(1, 1), (1, 1), (2, 2), (4, 4), (8, 8)]
    assert _tick(ramp, 60) is None


def test_spawn_rate_is_used_when_given():
    closed = Scenario("c", users=6, duration_s=20.0, warmup_s=0.0)
    assert _tick(closed, 5.0) == (6, 6)
    assert _tick(closed, 5.0, spawn_rate=2.0) == (6, 2.0)
    assert _tick(closed, 20.0) is None


def test_open_loop_keeps_its_senders_through_the_tail():
    step = Scenario("s", mode="open", users=5, duration_s=40.0, warmup_s=0.0, request_timeout_s=12.0,
                    stages=(Stage(20.0, 1, 0.5), Stage(40.0, 1, 2.0)))
    assert tail_end_s(step) == pytest.approx(40.0 + 12.0 + 10.0)
    assert _tick(step, 0.0) == (5, 5) and _tick(step, 25.0) == (5, 5)  # stages set the rate, not the users
    assert _tick(step, 45.0) == (5, 5)  # past the schedule: the last arrivals are still answered
    assert _tick(step, 61.9) == (5, 5) and _tick(step, 62.0) is None


def test_a_finished_run_stops_at_once():
    closed = Scenario("c", users=2, duration_s=60.0, warmup_s=0.0)
    assert _tick(closed, 1.0, all_finished=True) is None
    assert _tick(Scenario("o", mode="open", duration_s=60.0, warmup_s=0.0), 61.0, all_finished=True) is None
