"""How long a child process may run before it is stopped: one policy, composed here once, for every command
that starts one (``geopool load`` its Locust run; the gate its load phase, ``geopool load`` itself).

A load run's deadline is the scenario's own end, then two grace periods (the requests in flight stop,
then the workers' last batches come in), then :data:`LOCUST_OVERHEAD_S`. A command around it adds the
embedded server's start-up deadline when it starts one, and :data:`COMMAND_OVERHEAD_S`. The conformance
phase has no scenario to derive one from: its deadline is ``--conformance-timeout``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["COMMAND_OVERHEAD_S", "LOCUST_OVERHEAD_S", "load_command_s", "locust_run_s"]

#: Locust's start, the payload pools (built before the first request) and the report after the last.
LOCUST_OVERHEAD_S = 180.0
#: A geopool command's own start and end around its child: imports and checks; when its child overruns,
#: stopping it (a minute's grace after SIGTERM, :func:`geopool.progress.watch_child`) and its embedded
#: server (up to a minute), then its report — so that the command, not its parent, reports its own timeout.
COMMAND_OVERHEAD_S = 240.0


class _Timed(Protocol):
    end_s: float
    grace_s: float


def locust_run_s(scenario: _Timed) -> float:
    """The headless Locust run of ``scenario`` (:class:`geopool.load.scenario.Scenario`)."""
    return scenario.end_s + 2 * scenario.grace_s + LOCUST_OVERHEAD_S


def load_command_s(scenario: _Timed, *, server_startup_s: float | None) -> float:
    """``geopool load`` as a whole: the embedded server's start-up deadline (``None``: against a URL, no
    server to start), the Locust run, and the command's own overhead."""
    return (server_startup_s or 0.0) + locust_run_s(scenario) + COMMAND_OVERHEAD_S
