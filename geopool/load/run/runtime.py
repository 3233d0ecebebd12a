"""geopool's state in one Locust process, held per Locust ``Environment`` (no module state).

:class:`Runtime` connects Locust's events to the units: on the master or only process it holds the
:class:`~geopool.load.run.master.RunSettings` and the current run's :class:`~geopool.load.run.master.Master`;
on every load-generating process, the current run's :class:`~geopool.load.run.worker.Worker`. A new run
builds new ones. :func:`attach` / :func:`runtime_of` keep the Runtime of each Environment.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent

from geopool import client
from geopool.client import Endpoint
from geopool.errors import ConfigError, GeopoolError
from geopool.load.judge.slo import EXIT_USAGE, load_slo
from geopool.load.run import options as load_options
from geopool.load.run.master import Master, RunSettings
from geopool.load.run.plan import MSG_RECORDS, Plan
from geopool.load.run.worker import Worker, as_message, failed_batch
from geopool.numerics import bounds_for

__all__ = ["Runtime", "attach", "configure", "runtime_of"]

log = logging.getLogger("geopool.load")

FLUSH_INTERVAL_S = 1.0
PREPARE_ERRORS = (GeopoolError, OSError, ValueError)  # a bad config, checkpoint or payload: the run ends

_RUNTIMES: weakref.WeakKeyDictionary[Any, Runtime] = weakref.WeakKeyDictionary()


def attach(environment: Any, runtime: Runtime) -> None:
    _RUNTIMES[environment] = runtime


def runtime_of(environment: Any) -> Runtime:
    """The Runtime geopool's ``init`` listener attached to ``environment``."""
    return _RUNTIMES[environment]


def configure(options: Any, host: str | None) -> RunSettings:
    """Locust's parsed options → the run's settings (every error is a usage error, before any run)."""
    if not host:
        raise ConfigError("no target: pass --host URL (e.g. --host http://127.0.0.1:8000), "
                          "or use `geopool load`, which starts the embedded server")
    values = load_options.values_from_locust(options, host)
    scenario = load_options.resolve(values)
    report_dir = Path(values["report_dir"] or load_options.default_report_dir(scenario.name))
    if (report_dir / "records.jsonl").exists():
        raise ConfigError(f"{report_dir} already holds a run's records; pick a new --report-dir")
    slo = load_slo(values["slo"]) if values["slo"] else None
    load_options.require_input_dtype(values)
    plan = Plan(scenario=scenario, host=host, input_dtype=values["input_dtype"], model=values["model"],
                model_config=_text(values["model_config"]), reference_checkpoint=_text(values["reference_checkpoint"]),
                api_key=values["api_key"], numeric_bounds=bounds_for(values.get("numeric_bounds"), embedded=False),
                mode=load_options.mode_of(values), io_input_dir=_absolute(values["io_input_dir"]),
                io_plugin=values["plugin"])
    return RunSettings(plan, slo, report_dir, options.spawn_rate, stop_on_breach=bool(values.get("stop_on_breach")))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _absolute(value: Any) -> str | None:
    """A folder as the server must see it: the absolute path (the server's cwd is not ours)."""
    return None if value is None else str(Path(value).resolve())


class Runtime:
    """One Locust process. ``settings`` is None on a worker process (its master sends each run's plan)."""

    def __init__(self, settings: RunSettings | None, *, probe: Callable[[Endpoint], dict[str, Any]] = client.probe,
                 scrape: Callable[[Endpoint], dict[str, Any]] | None = None) -> None:
        self.settings = settings
        self._probe, self._scrape = probe, scrape
        self.runs = 0
        self.master: Master | None = None
        self.worker: Worker | None = None
        self.plan: Plan | None = None  # a worker process: the plan of the next run, from the master
        self._flusher: gevent.Greenlet | None = None

    # -------------------------------------------------------------------- every process
    def endpoint(self, host: str) -> Endpoint:
        """Where this process's users send, with the plan's auth and timeouts (defaults before any plan)."""
        plan = self.worker.plan if self.worker else self.plan or (self.settings.plan if self.settings else None)
        return plan.endpoint if plan is not None else Endpoint(host)

    def tick(self) -> tuple[int, float] | None:
        return self.settings.tick(self.master) if self.settings is not None else None

    @property
    def exit_code(self) -> int | None:
        return self.master.exit_code if self.master is not None else None

    # -------------------------------------------------------------------- master or only process
    def start_run(self, runner: Any, *, distributed: bool) -> None:
        if self.settings is None:
            raise ConfigError("this process has no run settings; it is a worker")
        self._stop_flusher()
        self.worker = None
        self.runs += 1
        master = self.master = Master(self.settings, runner, run=self.runs, distributed=distributed,
                                      probe=self._probe, scrape=self._scrape)
        if not master.start() or distributed:
            return
        try:
            worker = Worker.prepare(master.local_plan())
        except PREPARE_ERRORS as exc:
            master.fail(EXIT_USAGE, str(exc))
            return
        self.worker = worker
        master.receive(worker.batch(final=False))  # its start: the shape's clock runs from here
        self._flusher = gevent.spawn(_every_second, lambda: master.receive(worker.batch(final=False)))

    def receive(self, data: dict[str, Any]) -> None:
        if self.master is not None:
            self.master.receive(data)

    def close_run(self) -> None:
        master = self.master
        if master is None or master.closed:
            return
        self._stop_flusher()
        if self.worker is not None:
            self.worker.drain()
            master.receive(self.worker.batch(final=True))
        master.close()

    def finish_run(self, locust_stats: Any) -> None:
        if self.master is not None:
            self.master.finish(locust_stats)

    # -------------------------------------------------------------------- worker process
    def accept_plan(self, data: dict[str, Any]) -> None:
        self.plan = Plan.from_message(data)

    def start_worker(self, runner: Any) -> None:
        self._stop_flusher()
        self.worker = None
        plan = self.plan
        if plan is None:
            log.error("geopool: this worker got no plan from the master; is the master running geopool's locustfile?")
            return
        try:
            worker = Worker.prepare(plan)
        except PREPARE_ERRORS as exc:
            runner.send_message(MSG_RECORDS, failed_batch(plan.slot, str(exc)))
            return
        self.worker = worker
        runner.send_message(MSG_RECORDS, as_message(worker.batch(final=False)))  # tells the master this worker is ready
        self._flusher = gevent.spawn(_every_second,
                                     lambda: runner.send_message(MSG_RECORDS, as_message(worker.batch(final=False))))

    def close_worker(self, runner: Any) -> None:
        self._stop_flusher()
        if self.worker is not None and not self.worker.closing:
            self.worker.drain()
            runner.send_message(MSG_RECORDS, as_message(self.worker.batch(final=True)))
        self.plan = None

    def _stop_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None


def _every_second(deliver: Callable[[], None]) -> None:
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        deliver()
