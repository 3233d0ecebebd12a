"""geopool's Locust scenarios for vLLM ``/pooling`` (``load/locustfile.py`` re-exports this module).

    locust -f load/locustfile.py --headless --host http://127.0.0.1:8000 -u 8 -r 8 -t 60s
    locust -f load/locustfile.py --headless --host URL --scenario open-poisson --slo load/slo/example.toml

Each process sends pre-encoded bodies from the payload pool, verifies every answer, and keeps one
record per request; the master (or the only process) appends them to ``records.jsonl`` as they come
in and, when the test stops, computes exact statistics, writes ``summary.json`` and ``report.html``
and sets the exit code (see :data:`geopool.load.slo.EXIT_CODES`).
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from geopool.errors import GeopoolError
from geopool.load import session
from geopool.load.session import STATE

__all__ = ["PoolingUser", "ScenarioShape"]

log = logging.getLogger("geopool.load")


class RequestFailed(Exception):
    """What Locust's own statistics show for a request that was not a verified success."""


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser  # Locust's parser (not an argument group) knows is_secret / include_in_web_ui
    group.add_argument("--scenario", default="closed", help="Scenario name in the scenario file [closed].")
    group.add_argument("--scenario-file", default=None, help="TOML scenario file [load/scenarios.toml].")
    group.add_argument("--slo", default=None, help="SLO TOML file; breaches set a non-zero exit code.")
    group.add_argument("--rate", type=float, default=None, help="Open loop: arrivals per second (overrides).")
    group.add_argument("--arrival", choices=["constant", "poisson"], default=None, help="Open loop arrivals.")
    group.add_argument("--max-requests", type=int, default=None, help="Request budget of the run (overrides).")
    group.add_argument("--warmup", type=float, default=None, help="Seconds excluded from statistics (overrides).")
    group.add_argument("--window-requests", type=int, default=None, help="Steady-state window size (overrides).")
    group.add_argument("--stability-tolerance", type=float, default=None,
                       help="Steady state: the last 3 windows within this fraction [0.10].")
    group.add_argument("--payload", choices=["pool", "seed"], default=None, help="Payload pool or the seed input.")
    group.add_argument("--pool-size", type=int, default=None, help="Distinct pre-encoded inputs (overrides).")
    group.add_argument("--verify", choices=["contract", "reference"], default=None,
                       help="Check answers against the contract, or also against the reference output.")
    group.add_argument("--reference-dir", default=None, help="Served model folder, for --verify reference.")
    group.add_argument("--model", default=None, help="Model name [the one /v1/models lists].")
    group.add_argument("--model-config", default=None, help="TerraTorch config.json of the served model.")
    group.add_argument("--input-dtype", default="float32", help="dtype the server was loaded with [float32].")
    group.add_argument("--api-key", default=None, is_secret=True, env_var="LOCUST_API_KEY",
                       help="Bearer token for the server (or $LOCUST_API_KEY).")
    group.add_argument("--report-dir", default=None, help="Where records, summary and report go "
                                                          "[reports/load/SCENARIO-TIMESTAMP].")


@events.init.add_listener
def _init(environment: Any, runner: Any, **_: Any) -> None:
    options = environment.parsed_options
    if isinstance(runner, WorkerRunner):
        runner.register_message(session.MSG_PLAN, lambda environment, msg: STATE.accept_plan(msg.data))
        runner.register_message(session.MSG_CLOSE, lambda environment, msg: STATE.close_worker(runner),
                                concurrent=True)
        return
    try:
        STATE.configure(options, environment.host)
    except GeopoolError as exc:
        log.error("geopool: %s", exc)
        raise SystemExit(session.EXIT_USAGE) from None
    if isinstance(runner, MasterRunner):
        runner.register_message(session.MSG_RECORDS, lambda environment, msg: STATE.receive(msg.data, runner))


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        STATE.start_worker(runner)
    else:
        STATE.start_run(runner)


@events.test_stopping.add_listener
def _test_stopping(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        STATE.close_run(environment.runner)


@events.test_stop.add_listener
def _test_stop(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        STATE.finish_run(environment)


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner) and STATE.exit_code is not None:
        environment.process_exit_code = STATE.exit_code


class PoolingUser(User):
    """Sends the payload pool's bodies to ``/pooling``: closed loop, or the open-loop schedule's arrivals."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self._connect()

    def on_stop(self) -> None:
        self.http.close()

    def _connect(self) -> None:
        url = URL(self.host)
        self.path = url.path.rstrip("/") + "/pooling"
        # 256 KiB reads: answers are ~3.7 MB, and the default 4 KiB costs ~900 parser rounds each
        self.http = HTTPClient.from_url(url, concurrency=1, connection_timeout=10.0, block_size=262_144,
                                        network_timeout=STATE.request_timeout_s)

    @task
    def pool(self) -> None:
        job = STATE.next_job()
        if job is None:
            gevent.sleep(0.2)
            return
        record, body = STATE.send(job, self.http, self.path)
        if record["verdict"] == "transport":
            self.http.close()
            self._connect()
        failure = None if record["verdict"] == "ok" else RequestFailed(f"{record['verdict']}: {record['detail']}")
        self.environment.events.request.fire(
            request_type="POST", name="/pooling", response_time=(record["done"] - record["sent"]) * 1000.0,
            response_length=len(body), exception=failure, context={"item": record["item"]}, response=None,
            url=self.path, start_time=record["sent"])


class ScenarioShape(LoadTestShape):
    """Users over time from the scenario's stages; ``None`` (stop) at the end of the run."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        scenario = STATE.scenario
        if scenario is None or STATE.all_finished:
            return None
        elapsed = STATE.elapsed()
        if scenario.open_loop and elapsed >= scenario.end_s:
            # the schedule started after the pool was built: give its last arrivals time to finish
            return (scenario.users, STATE.spawn_rate or scenario.users) if elapsed < STATE.tail_end_s else None
        stage = scenario.stage_at(elapsed)
        if stage is None:
            return None
        users = scenario.users if scenario.open_loop else stage.users
        return users, STATE.spawn_rate or max(users, 1)
