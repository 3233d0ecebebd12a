"""One run as the master (or the only process) coordinates it: slots, records, scrapes, verdict.

:class:`RunSettings` is what the options resolve to once per Locust process; each test run (each
Start in the web UI) is a new :class:`Master` with its own folder. In a distributed run the master
gives each connected worker a slot and the plan, receives their record batches, asks them to close
when the run stops and waits (bounded) for their final batches; alone, it receives the batches of its
own process's :class:`~geopool.load.run.worker.Worker` the same way. Then it computes, reports and gates.

``runner`` is anything with ``send_message(type, data, client_id=None)``, ``clients.all`` (items with
an ``id``; read only when ``distributed``) and ``quit()`` — Locust's runner, or a fake in a test.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gevent

from geopool import client, events
from geopool.client import Endpoint
from geopool.contract import load_contract
from geopool.errors import ERROR_PREFIX, GeopoolError
from geopool.load.judge import breach, serverview, slo
from geopool.load.records import Record, RecordLog, clock, record_from
from geopool.load.report import run_report
from geopool.load.run.plan import MSG_CLOSE, MSG_PLAN, Plan
from geopool.load.run.shape import shape_tick
from geopool.load.run.tally import LoadTally
from geopool.load.schedule import arrival_offsets
from geopool.preflight import refusal

__all__ = ["Master", "RunSettings", "SlotState", "target_facts"]

log = logging.getLogger("geopool.load")

SCRAPE_INTERVAL_S = 1.0
PROGRESS_INTERVAL_S = 1.0
FINAL_WAIT_S = 15.0


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The options, resolved once: the plan (no model yet, slot 0 of 1), the SLO, the folder, the spawn rate."""

    plan: Plan
    slo: slo.Slo | None
    report_dir: Path
    spawn_rate: float | None = None
    stop_on_breach: bool = False

    def run_dir(self, run: int) -> Path:
        """Run 1 writes to ``report_dir``; each further run (web UI) to ``<report_dir>.run<N>``."""
        return self.report_dir if run == 1 else self.report_dir.with_name(f"{self.report_dir.name}.run{run}")

    def tick(self, master: Master | None) -> tuple[int, float] | None:
        """The shape's answer now: ``master`` is the current run (None: none has started)."""
        elapsed, finished = (master.elapsed(), master.all_finished) if master is not None else (0.0, False)
        return shape_tick(self.plan.scenario, elapsed, all_finished=finished, spawn_rate=self.spawn_rate)


@dataclasses.dataclass
class SlotState:
    """What the master knows of one slot: its start, requests issued, whether it is done and has closed."""

    t0: float | None = None
    issued: int = 0
    finished: bool = False
    final: bool = False


def target_facts(probed: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`geopool.client.probe`'s answer as summary.json's ``target``: url, vllm_version, model (or error)."""
    if "error" in probed:
        return {"url": probed["url"], "error": probed["error"]}
    models = probed.get("models") or []
    return {"url": probed["url"], "vllm_version": probed.get("vllm_version"), "model": models[0] if models else None}


def plan_refusal(plan: Plan) -> str | None:
    """:func:`geopool.preflight.refusal` of the plan's target (tensor mode; an image-to-image request needs a
    raster the server can read, so that mode has no preflight)."""
    if plan.image_to_image or plan.model is None:
        return None
    try:
        contract = load_contract(plan.model_config, input_dtype=plan.input_dtype)
    except GeopoolError:
        return None  # a bad model config is the worker's usage error, reported when it prepares
    return refusal(plan.endpoint, contract, plan.model)


class Master:
    """One test run on the master or only process. Construct it at test start; it opens the run's folder."""

    def __init__(self, settings: RunSettings, runner: Any, *, run: int = 1, distributed: bool,
                 probe: Callable[[Endpoint], dict[str, Any]] = client.probe,
                 scrape: Callable[[Endpoint], dict[str, Any]] | None = None,
                 preflight: Callable[[Plan], str | None] | None = None,
                 final_wait_s: float = FINAL_WAIT_S) -> None:
        self.settings = settings
        self.runner = runner
        self.distributed = distributed
        self.plan = settings.plan
        self.endpoint = settings.plan.endpoint
        self.report_dir = settings.run_dir(run)
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.records = RecordLog(self.report_dir / "records.jsonl")
        self.tally = LoadTally(settings.plan.scenario.max_requests, settings.plan.scenario.duration_s)
        self.samples: list[dict[str, Any]] = []
        self.slots: dict[int, SlotState] = {}
        self.target: dict[str, Any] = {"url": self.plan.host}
        self.fatal: tuple[int, str] | None = None
        self.missing_slots: list[int] = []
        self.run_t0: float | None = None
        self.all_finished = False
        self.closed = False
        self.finished = False
        self.exit_code: int | None = None
        self._kept_scraper = serverview.Scraper() if scrape is None else None  # one connection for the run
        #: --stop-on-breach: every record so far (the watcher's sample) and, once it stops the run, why.
        self.seen: list[Record] | None = [] if settings.stop_on_breach and settings.slo else None
        self.stopped_early: dict[str, Any] | None = None
        self._probe, self._scrape, self._final_wait_s = probe, scrape or self._kept_scraper, final_wait_s
        self._preflight = preflight or plan_refusal
        self._scraper: gevent.Greenlet | None = None

    def elapsed(self) -> float:
        """Seconds since every load-generating process was ready (0 until then): the shape's clock."""
        return 0.0 if self.run_t0 is None else clock() - self.run_t0

    def start(self) -> bool:
        """Probe the target, start scraping, and (distributed) give every worker its slot; False: failed."""
        self.target = target_facts(self._probe(self.endpoint))
        if "error" in self.target:
            self.fail(slo.EXIT_NO_TARGET, f"target {self.plan.host} is not reachable: {self.target['error']}")
            return False
        self.plan = self.plan.with_model(self.plan.model or self.target.get("model"))
        refused = self._preflight(self.plan)
        if refused:
            self.target["error"] = refused
            self.fail(slo.EXIT_NO_TARGET, f"target {self.plan.host}: {refused}")
            return False
        self._scraper = gevent.spawn(self._scrape_loop)
        gevent.spawn(self._progress_loop)
        if self.seen is not None:
            gevent.spawn(self._watch_breach)
        if self.distributed:
            workers = sorted(worker.id for worker in self.runner.clients.all)
            for slot, client_id in enumerate(workers):
                self.slots[slot] = SlotState()
                self.runner.send_message(MSG_PLAN, self.plan.for_slot(slot, len(workers)).to_message(),
                                         client_id=client_id)
            log.info("geopool: %s split over %d worker(s)", self.plan.scenario.name, len(workers))
        return True

    def local_plan(self) -> Plan:
        """The plan of the only process (slot 0 of 1): its worker's batches come to :meth:`receive`.

        Slot 0 is known once its first batch arrives: a worker that fails to prepare sends none, and the
        run must not wait for its final batch."""
        return self.plan.for_slot(0, 1)

    def receive(self, data: Mapping[str, Any]) -> None:
        """A batch of records (and the state of its slot) from a worker."""
        slot = data["slot"]
        state = self.slots.setdefault(slot, SlotState())
        if data.get("error"):
            self.fail(slo.EXIT_USAGE, f"worker {slot}: {data['error']}")
        records = [record_from(found) for found in data["records"]]  # plain data when from another process
        self.records.append(records)
        self.tally.add(records)
        if self.seen is not None:
            self.seen.extend(records)
        state.t0 = state.t0 or data.get("t0")
        state.issued = data.get("issued") or 0
        state.finished = state.finished or data.get("finished", False)
        state.final = state.final or data.get("final", False)
        starts = [s.t0 for s in self.slots.values()]
        if self.run_t0 is None and all(t is not None for t in starts):
            self.run_t0 = max(starts)  # the last worker's start: no stage is cut short anywhere
        if all(s.finished for s in self.slots.values()) and not self.all_finished:
            self.all_finished = True
            log.info("geopool: every request of the run is done; stopping")

    def close(self) -> None:
        """Stop issuing requests everywhere and wait (bounded) for the last records of every slot."""
        if self.closed:
            return
        self.closed = True
        if self.distributed:
            self.runner.send_message(MSG_CLOSE, None)
        deadline = time.monotonic() + self.plan.grace_s + self._final_wait_s
        while time.monotonic() < deadline and not all(s.final for s in self.slots.values()):
            gevent.sleep(0.1)
        self.missing_slots = [slot for slot, state in self.slots.items() if not state.final]
        if self.missing_slots:
            log.error("geopool: no final records from worker slot(s) %s; their last second may be missing",
                      self.missing_slots)

    def finish(self, locust_stats: Any = None) -> int | None:
        """Compute, report and gate, once; returns (and keeps) the exit code."""
        if self.finished:
            return self.exit_code
        self.finished = True
        if self._scraper is not None:
            self._scraper.kill(block=False)
        self.records.close()
        if events.listening():
            events.emit("load", **self.tally.snapshot())
        if self.fatal:
            if self._kept_scraper is not None:
                self._kept_scraper.close()
            self.exit_code = self.fatal[0]
            run_report.write_failure(self.report_dir, self.fatal[1], self.plan.scenario, self.target)
            print(f"{ERROR_PREFIX}the run failed: {self.fatal[1]} (exit {self.exit_code}; {self.report_dir})",
                  file=sys.stderr, flush=True)
            return self.exit_code
        self.samples.append(self._scrape(self.endpoint))
        if self._kept_scraper is not None:
            self._kept_scraper.close()
        try:
            self.exit_code = run_report.finalize(
                self.report_dir, scenario=self.plan.scenario, slo_spec=self.settings.slo,
                target={**self.target, "model": self.plan.model}, samples=self.samples,
                slots={slot: dataclasses.asdict(state) for slot, state in self.slots.items()},
                missing_slots=self.missing_slots, locust_stats=locust_stats, stopped_early=self.stopped_early,
                mode=self.plan.mode, io=self._io_summary())
        except Exception as exc:  # a report bug must not hide the run: the records are on disk
            log.exception("geopool: computing the report failed")
            print(f"geopool: computing the report failed ({type(exc).__name__}: {exc}); the records are in "
                  f"{self.report_dir / 'records.jsonl'}", flush=True)
            self.exit_code = slo.EXIT_NO_TARGET
        return self.exit_code

    def _io_summary(self) -> dict[str, Any] | None:
        if not self.plan.image_to_image:
            return None
        from geopool.load.run.io_payloads import io_summary  # rasterio's module, only in this mode

        return io_summary(self.plan.scenario, self.plan.io_input_dir, self.plan.io_plugin)

    def fail(self, code: int, message: str) -> None:
        """End the run with ``code``; the first failure is the one reported."""
        log.error("geopool: %s", message)
        if self.fatal is None:
            self.fatal = (code, message)
        self.all_finished = True
        gevent.spawn(self.runner.quit)

    def check_breach(self) -> dict[str, Any] | None:
        """--stop-on-breach: the bound breached beyond doubt by the records so far (see geopool.load.judge.breach)."""
        starts = [state.t0 for state in self.slots.values() if state.t0 is not None]
        if self.seen is None or self.settings.slo is None or not starts:
            return None
        scenario = self.plan.scenario
        scheduled = len(arrival_offsets(scenario)) if scenario.open_loop else None
        # requests in flight have no record yet and may still come in under the bound: they count as remaining
        answered = len(self.seen)
        return breach.breach_beyond_doubt(
            self.settings.slo, scenario, self.seen, min(starts),
            remaining=breach.remaining_requests(scenario.max_requests, answered, scheduled),
            looks=max(1, math.ceil(scenario.end_s / breach.CHECK_INTERVAL_S)))

    def _watch_breach(self) -> None:
        while not self.all_finished:
            gevent.sleep(breach.CHECK_INTERVAL_S)
            found = self.check_breach()
            if found:
                self.stopped_early = {"at_s": round(self.elapsed(), 3), **found}
                log.warning("geopool: stopping early at %.1f s: %s breached (%s)", self.elapsed(), found["bound"],
                            found["why"])
                self.all_finished = True  # the shape stops the run; close() then collects the last records
                return

    def _progress_loop(self) -> None:
        """The tally so far, every second, to whoever started this run (``geopool load``), until it ends."""
        while not self.finished and events.listening():
            events.emit("load", **self.tally.snapshot())
            gevent.sleep(PROGRESS_INTERVAL_S)

    def _scrape_loop(self) -> None:
        while True:
            self.samples.append(self._scrape(self.endpoint))
            gevent.sleep(SCRAPE_INTERVAL_S)
