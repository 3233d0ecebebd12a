"""Users over time: a pure function of the scenario and the elapsed time (Locust's ``tick``, without Locust).

>>> from geopool.load.scenario import Scenario, Stage
>>> ramp = Scenario("ramp", stages=(Stage(10.0, 1, 1.0), Stage(20.0, 4, 1.0)), duration_s=20.0, warmup_s=0.0)
>>> shape_tick(ramp, 5.0, all_finished=False, spawn_rate=None), shape_tick(ramp, 15.0, all_finished=False,
...                                                                          spawn_rate=None)
((1, 1), (4, 4))
>>> shape_tick(ramp, 20.0, all_finished=False, spawn_rate=None) is None
True
"""

from __future__ import annotations

from geopool.load.scenario import Scenario

__all__ = ["shape_tick", "tail_end_s"]

TAIL_EXTRA_S = 10.0


def tail_end_s(scenario: Scenario) -> float:
    """When an open loop stops: its schedule's end plus time for the last arrivals to be answered."""
    return scenario.end_s + scenario.grace_s + TAIL_EXTRA_S


def shape_tick(scenario: Scenario, elapsed: float, *, all_finished: bool,
               spawn_rate: float | None) -> tuple[int, float] | None:
    """``(users, spawn rate)`` ``elapsed`` seconds into the run, or None: stop.

    ``all_finished``: every process has sent its whole share (stop now). ``spawn_rate`` None means
    all users at once. An open loop keeps its ``users`` senders (its stages set the *rate*, which the
    schedule carries) until :func:`tail_end_s`; a closed loop has each stage's users until ``end_s``.
    """
    if all_finished:
        return None
    if scenario.open_loop and elapsed >= scenario.end_s:
        # the schedule started after the pool was built: give its last arrivals time to finish
        return (scenario.users, spawn_rate or scenario.users) if elapsed < tail_end_s(scenario) else None
    stage = scenario.stage_at(elapsed)
    if stage is None:
        return None
    users = scenario.users if scenario.open_loop else stage.users
    return users, spawn_rate or max(users, 1)
