"""geopool's Locust scenarios for vLLM ``/pooling`` (``load/locustfile.py`` re-exports this module).

    locust -f load/locustfile.py --headless --host http://127.0.0.1:8000 -u 8 -r 8 -t 60s
    locust -f load/locustfile.py --headless --host URL --scenario open-poisson --slo load/slo/example.toml

Each process sends pre-encoded bodies from the payload pool, verifies every answer, and keeps one
record per request; the master (or the only process) appends them to ``records.jsonl`` as they come
in and, when the test stops, computes exact statistics, writes ``summary.json`` and ``report.html``
and sets the exit code (see :data:`geopool.load.judge.slo.EXIT_CODES`).

Everything here is an adapter: the event listeners hand over to the process's
:class:`~geopool.load.run.runtime.Runtime` (kept per Locust environment), the user is configuration plus
one task, and the shape asks the pure :func:`~geopool.load.run.shape.shape_tick`.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import locust.runners
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from geopool.errors import GeopoolError
from geopool.load.judge.slo import EXIT_INVALID, EXIT_USAGE
from geopool.load.judge.verify import OK, TRANSPORT_ERROR
from geopool.load.records import clock
from geopool.load.run.http import Connection
from geopool.load.run.options import add_locust_arguments
from geopool.load.run.plan import MSG_CLOSE, MSG_PLAN, MSG_RECORDS
from geopool.load.run.runtime import Runtime, attach, configure, runtime_of

__all__ = ["PoolingUser", "ScenarioShape"]

log = logging.getLogger("geopool.load")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per /metrics scrape drowns Locust's output

#: 256 KiB reads (https targets, through geventhttpclient): answers are ~3.7 MB, and the default 4 KiB costs
#: ~900 parser rounds each.
READ_BLOCK_BYTES = 262_144
#: How long a user with nothing to send waits before asking again.
IDLE_S = 0.2
#: Seconds (heartbeats) a worker may go silent before the master drops it as missing (Locust: 3). A worker
#: encoding its payload pool, or importing torch for it, on a busy machine holds its only loop for longer,
#: and the master then ended the run with no load measured (seen on 2 shared cores).
WORKER_SILENCE_HEARTBEATS = 30


class RequestFailed(Exception):
    """What Locust's own statistics show for a request that was not a verified success."""


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    add_locust_arguments(parser)  # Locust's parser (not an argument group) knows is_secret / include_in_web_ui


@events.init.add_listener
def _init(environment: Any, runner: Any, **_: Any) -> None:
    if isinstance(runner, WorkerRunner):
        runtime = Runtime(None)
        attach(environment, runtime)
        runner.register_message(MSG_PLAN, lambda environment, msg: runtime.accept_plan(msg.data))
        runner.register_message(MSG_CLOSE, lambda environment, msg: runtime.close_worker(runner), concurrent=True)
        return
    try:
        runtime = Runtime(configure(environment.parsed_options, environment.host))
    except GeopoolError as exc:
        log.error("geopool: %s", exc)
        raise SystemExit(EXIT_USAGE) from None
    attach(environment, runtime)
    if isinstance(runner, MasterRunner):
        locust.runners.HEARTBEAT_LIVENESS = max(locust.runners.HEARTBEAT_LIVENESS, WORKER_SILENCE_HEARTBEATS)
        runner.register_message(MSG_RECORDS, lambda environment, msg: runtime.receive(msg.data))


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runtime_of(environment).start_worker(runner)
    else:
        runtime_of(environment).start_run(runner, distributed=isinstance(runner, MasterRunner))


@events.test_stopping.add_listener
def _test_stopping(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        runtime_of(environment).close_run()


@events.test_stop.add_listener
def _test_stop(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        runtime_of(environment).finish_run(environment.runner.stats)


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    runtime = runtime_of(environment)
    if runtime.exit_code is not None:
        environment.process_exit_code = runtime.exit_code
    elif runtime.runs:
        # a run that started but never reached its report (e.g. every worker lost before it sent a
        # request) measured nothing: never Locust's 0
        print("geopool: the run ended before geopool could compute its report: no load was measured "
              f"(exit {EXIT_INVALID})", flush=True)
        environment.process_exit_code = EXIT_INVALID


class PoolingUser(User):
    """Sends the payload pool's bodies to ``/pooling``: closed loop, or the open-loop schedule's arrivals."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.runtime = runtime_of(self.environment)
        self._connect()

    def on_stop(self) -> None:
        self.http.close()

    def _connect(self) -> None:
        url = URL(self.host)
        timeout = self.runtime.endpoint(self.host).timeout
        self.path = url.path.rstrip("/") + "/pooling"
        if url.scheme == "http":  # geopool's own client: no copies of the 8 MB body or the answer
            self.http = Connection(url.host, url.port, connect_timeout=timeout.connect, read_timeout=timeout.read,
                                   clock=clock)
        else:
            self.http = HTTPClient.from_url(url, concurrency=1, connection_timeout=timeout.connect,
                                            block_size=READ_BLOCK_BYTES, network_timeout=timeout.read)

    @task
    def pool(self) -> None:
        worker = self.runtime.worker
        job = worker.next_job() if worker is not None else None
        if job is None:
            gevent.sleep(IDLE_S)
            return
        record, body = worker.send(job, self.http, self.path)
        if record.verdict == TRANSPORT_ERROR:
            self.http.close()
            self._connect()
        failure = None if record.verdict == OK else RequestFailed(f"{record.verdict}: {record.detail}")
        self.environment.events.request.fire(
            request_type="POST", name="/pooling", response_time=(record.done - record.sent) * 1000.0,
            response_length=len(body), exception=failure, context={"item": record.item}, response=None,
            url=self.path, start_time=record.sent)


class ScenarioShape(LoadTestShape):
    """Users over time from the scenario's stages; ``None`` (stop) at the end of the run."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        return runtime_of(self.runner.environment).tick()
