"""One load run as seen by one Locust process: its share of the work, its records, and (on the master
or the only process) the whole run's records, metrics scrapes and final verdict.

Distributed runs: at test start the master sends each worker a *plan* (its slot, the number of slots,
the resolved scenario, the model), so open-loop arrivals are split by slot and the total rate is the
target. Workers send their records every second; when the run stops the master asks them to close
(no new requests, wait for those in flight) and waits for each one's final batch before computing.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

import gevent
import httpx
import numpy as np

from geopool.contract import load_contract
from geopool.errors import ConfigError, GeopoolError
from geopool.load import report, serverview, slo
from geopool.load.payloads import PayloadItem, build_pool
from geopool.load.records import RecordLog, clock
from geopool.load.scenario import Scenario, load_scenarios, scenario_from
from geopool.load.schedule import arrival_offsets, quota_share, slot_share
from geopool.load.verify import TRANSPORT_ERROR, UNFINISHED, verify_response

log = logging.getLogger("geopool.load")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per /metrics scrape drowns Locust's output

MSG_PLAN, MSG_CLOSE, MSG_RECORDS = "geopool_plan", "geopool_close", "geopool_records"
EXIT_USAGE, EXIT_NO_TARGET = slo.EXIT_USAGE, slo.EXIT_NO_TARGET
REPORTS = Path("reports") / "load"
SCRAPE_INTERVAL_S = 1.0
FLUSH_INTERVAL_S = 1.0
FINAL_WAIT_S = 15.0


class Session:
    def __init__(self) -> None:
        self.scenario: Scenario | None = None
        self.spawn_rate: float | None = None
        self.request_timeout_s = 120.0
        self.exit_code: int | None = None
        self.all_finished = False
        self.run_t0: float | None = None
        self._reset_share()

    def elapsed(self) -> float:
        """Seconds since every load-generating process was ready (0 until then): the shape's clock."""
        return 0.0 if self.run_t0 is None else clock() - self.run_t0

    # ------------------------------------------------------------------ master / only process
    def configure(self, options: Any, host: str | None) -> None:
        """Resolve the scenario and options once, before the test starts (errors are usage errors)."""
        if not host:
            raise ConfigError("no target: pass --host URL (e.g. --host http://127.0.0.1:8000), "
                              "or use `geopool load`, which starts the embedded server")
        scenarios = load_scenarios(options.scenario_file)
        if options.scenario not in scenarios:
            raise ConfigError(f"unknown scenario {options.scenario!r}; the scenario file has: "
                              f"{', '.join(sorted(scenarios))}")
        scenario = scenarios[options.scenario]
        scenario = scenario.with_overrides(
            users=options.num_users if not scenario.stages else None,
            duration_s=float(options.run_time) if options.run_time else None,
            rate=options.rate, arrival=options.arrival, max_requests=options.max_requests,
            warmup_s=options.warmup, window_requests=options.window_requests,
            stability_tolerance=options.stability_tolerance, payload=options.payload,
            pool_size=options.pool_size, verify=options.verify)
        if scenario.verify == "reference" and not options.reference_dir:
            raise ConfigError("--verify reference needs --reference-dir (the folder the server serves)")
        self.slo = slo.load_slo(options.slo) if options.slo else None
        self.scenario, self.host, self.options = scenario, host.rstrip("/"), options
        self.spawn_rate = options.spawn_rate
        self.request_timeout_s = scenario.request_timeout_s
        self.tail_end_s = scenario.end_s + min(scenario.request_timeout_s, 30.0) + 10.0
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.report_dir = Path(options.report_dir or REPORTS / f"{scenario.name}-{stamp}")
        if (self.report_dir / "records.jsonl").exists():
            raise ConfigError(f"{self.report_dir} already holds a run's records; pick a new --report-dir")

    def start_run(self, runner: Any) -> None:
        self._reset_share()  # a web-UI rerun starts from nothing the last run left (closing, counters)
        self.runs = getattr(self, "runs", 0) + 1
        if self.runs > 1:  # another run from the web UI: its own folder, never appended to the last one
            self.report_dir = self.report_dir.with_name(f"{self.report_dir.name.split('.run')[0]}.run{self.runs}")
            self._closed = self._finished = False
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.records = RecordLog(self.report_dir / "records.jsonl")
        self.samples: list[dict[str, Any]] = []
        self.slots_state: dict[int, dict[str, Any]] = {}
        self.fatal: tuple[int, str] | None = None
        self.missing_slots: list[int] = []
        self.all_finished = False
        self.run_t0 = None
        self.target = self._target_facts()
        if "error" in self.target:
            self._fail(runner, EXIT_NO_TARGET, f"target {self.host} is not reachable: {self.target['error']}")
            return
        self.model = self.options.model or self.target.get("model")
        self.scrape_greenlet = gevent.spawn(self._scrape_loop)
        plan = {"scenario": self.scenario.to_dict(), "model": self.model, "host": self.host,
                "model_config": self.options.model_config, "input_dtype": self.options.input_dtype,
                "reference_dir": self.options.reference_dir, "api_key": self.options.api_key}
        self.started = clock()
        if hasattr(runner, "clients"):  # master: one slot per connected worker
            workers = sorted(client.id for client in runner.clients.all)
            for slot, client_id in enumerate(workers):
                self.slots_state[slot] = {"final": False, "finished": False}
                runner.send_message(MSG_PLAN, {**plan, "slot": slot, "slots": len(workers)}, client_id=client_id)
            log.info("geopool: %s split over %d worker(s)", self.scenario.name, len(workers))
            return
        self.slots_state[0] = {"final": False, "finished": False}
        try:
            self.accept_plan({**plan, "slot": 0, "slots": 1})
            self._prepare()
        except (GeopoolError, OSError, ValueError) as exc:
            self._fail(runner, EXIT_USAGE, str(exc))
            return
        self.run_t0 = self.t0
        self.flusher = gevent.spawn(self._flush_loop, None)

    def receive(self, data: dict[str, Any], runner: Any) -> None:
        """A worker's batch of records (and its state) arrives at the master."""
        state = self.slots_state.setdefault(data["slot"], {"final": False, "finished": False})
        if data.get("error"):
            self._fail(runner, EXIT_USAGE, f"worker {data['slot']}: {data['error']}")
        self.records.append(data["records"])
        state.update(t0=state.get("t0") or data.get("t0"), issued=data.get("issued"),
                     finished=state["finished"] or data.get("finished", False),
                     final=state["final"] or data.get("final", False))
        starts = [s.get("t0") for s in self.slots_state.values()]
        if self.run_t0 is None and all(t is not None for t in starts):
            self.run_t0 = max(starts)  # the last worker's start: no stage is cut short anywhere
        self._maybe_finish(runner)

    def close_run(self, runner: Any) -> None:
        """Stop issuing requests everywhere and wait (bounded) for the ones in flight and the last records."""
        if getattr(self, "_closed", False) or not hasattr(self, "records"):
            return
        self._closed = True
        if hasattr(runner, "clients"):
            runner.send_message(MSG_CLOSE, None)
            deadline = time.monotonic() + self._grace_s() + FINAL_WAIT_S
            while time.monotonic() < deadline and not all(s["final"] for s in self.slots_state.values()):
                gevent.sleep(0.1)
            missing = [slot for slot, state in self.slots_state.items() if not state["final"]]
            if missing:
                log.error("geopool: no final records from worker slot(s) %s; their last second may be missing",
                          missing)
                self.missing_slots = missing
        else:
            self._drain()
            self._flush(final=True)

    def finish_run(self, environment: Any) -> None:
        """Compute, report, gate — once per test run — and set the exit code."""
        if getattr(self, "_finished", False) or not hasattr(self, "records"):
            return
        self._finished = True
        for greenlet in (getattr(self, "scrape_greenlet", None), getattr(self, "flusher", None)):
            if greenlet is not None:
                greenlet.kill(block=False)
        self.records.close()
        if self.fatal:
            self.exit_code = self.fatal[0]
            report.write_failure(self.report_dir, self.fatal[1], self.scenario, self.target)
            print(f"geopool: run failed: {self.fatal[1]} (exit {self.exit_code}; {self.report_dir})", flush=True)
            return
        self.samples.append(serverview.scrape(self.host, api_key=self.options.api_key))
        try:
            self.exit_code = report.finalize(
                self.report_dir, scenario=self.scenario, slo_spec=self.slo,
                target={**self.target, "model": self.model}, samples=self.samples, slots=self.slots_state,
                missing_slots=self.missing_slots, locust_stats=environment.runner.stats)
        except Exception as exc:  # a report bug must not hide the run: the records are on disk
            log.exception("geopool: computing the report failed")
            print(f"geopool: computing the report failed ({type(exc).__name__}: {exc}); the records are in "
                  f"{self.report_dir / 'records.jsonl'}", flush=True)
            self.exit_code = EXIT_NO_TARGET

    # ------------------------------------------------------------------ every load-generating process
    def accept_plan(self, plan: dict[str, Any]) -> None:
        self.plan = plan

    def start_worker(self, runner: Any) -> None:
        self._reset_share()
        if not getattr(self, "plan", None):
            log.error("geopool: this worker got no plan from the master; is the master running geopool's locustfile?")
            return
        try:
            self._prepare()
        except (GeopoolError, OSError, ValueError) as exc:
            runner.send_message(MSG_RECORDS, {"slot": self.plan["slot"], "records": [], "error": str(exc),
                                              "final": True, "finished": True})
            return
        self._flush(final=False, runner=runner)  # tells the master this worker is ready (its t0)
        self.flusher = gevent.spawn(self._flush_loop, runner)

    def close_worker(self, runner: Any) -> None:
        if getattr(self, "flusher", None) is not None:
            self.flusher.kill(block=False)
        self._drain()
        self._flush(final=True, runner=runner)
        self.plan = None

    def next_job(self) -> dict[str, Any] | None:
        """The next request this process should send, waiting for its intended time in an open loop."""
        if not self.ready or self.closing:
            return None
        if self.offsets is not None:
            if self.next_index >= len(self.offsets):
                return self._exhausted()
            index = self.next_index
            self.next_index += 1
            intended = self.t0 + float(self.offsets[index])
            global_index = index * self.slots + self.slot
            delay = intended - clock()
            if delay > 0:
                self.waiting += 1  # taken but not yet sent: the share is not done until it is
                try:
                    gevent.sleep(delay)
                finally:
                    self.waiting -= 1
            if self.closing:
                return None
        else:
            if self.issued >= self.quota:
                return self._exhausted()
            intended = None
            global_index = self.issued * self.slots + self.slot
        self.issued += 1
        return {"seq": global_index, "item": global_index % len(self.pool), "intended": intended}

    def send(self, job: dict[str, Any], http: Any, path: str) -> tuple[dict[str, Any], bytes]:
        item: PayloadItem = self.pool[job["item"]]
        record = {"slot": self.slot, "seq": job["seq"], "item": item.index, "intended": job["intended"],
                  "sent": None, "first_byte": None, "done": None, "status": 0, "bytes": 0,
                  "verdict": UNFINISHED, "detail": ""}
        token = object()
        self.in_flight[token] = record
        body = b""
        record["sent"] = clock()
        try:
            response = http.request("POST", path, body=item.body, headers=self.headers)
            record["first_byte"] = clock()
            body = response.read()
            record["done"] = clock()
            record["status"] = response.status_code
            response.release()
        except Exception as exc:  # any transport failure is a recorded outcome, never a crash
            record["done"] = clock()
            record["verdict"], record["detail"] = TRANSPORT_ERROR, f"{type(exc).__name__}: {exc}"[:300]
        else:
            record["verdict"], record["detail"] = verify_response(record["status"], body, self.contract, item.expected)
        record["bytes"] = len(body)
        del self.in_flight[token]
        self.buffer.append(record)
        return record, body

    # ------------------------------------------------------------------ internals
    def _reset_share(self) -> None:
        self.ready = self.closing = self.finished = False
        self.offsets: np.ndarray | None = None
        self.next_index = self.issued = self.waiting = 0
        self.in_flight: dict[object, dict[str, Any]] = {}
        self.buffer: list[dict[str, Any]] = []

    def _prepare(self) -> None:
        plan = self.plan
        scenario = scenario_from(plan["scenario"]["name"],
                                 {k: v for k, v in plan["scenario"].items() if k != "name"})
        self.scenario_share, self.slot, self.slots = scenario, plan["slot"], plan["slots"]
        self.request_timeout_s = scenario.request_timeout_s
        self.contract = load_contract(plan["model_config"], input_dtype=plan["input_dtype"])
        self.headers = {"Content-Type": "application/json"}
        if plan.get("api_key"):
            self.headers["Authorization"] = f"Bearer {plan['api_key']}"
        self.pool = build_pool(scenario, self.contract, plan["model"], plan.get("reference_dir"))
        self.quota = quota_share(scenario.max_requests, self.slot, self.slots)
        self.offsets = slot_share(arrival_offsets(scenario), self.slot, self.slots) if scenario.open_loop else None
        self.t0 = clock()
        self.ready = True

    def _exhausted(self) -> None:
        if not self.finished:
            self.finished = True
            log.info("geopool: slot %d has taken the last request of its share", self.slot)
        return None

    def _drain(self) -> None:
        self.closing = True
        deadline = time.monotonic() + self._grace_s()
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for record in list(self.in_flight.values()):
            record["detail"] = "still in flight when the run stopped"
            self.buffer.append(record)
        self.in_flight.clear()

    def _grace_s(self) -> float:
        return min(self.request_timeout_s, 30.0)

    def _flush_loop(self, runner: Any) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self._flush(final=False, runner=runner)

    def _flush(self, *, final: bool, runner: Any = None) -> None:
        batch, self.buffer = self.buffer, []
        finished = self.finished and not self.in_flight and not self.waiting
        if runner is None:  # the only process: straight to the file
            self.records.append(batch)
            self.slots_state[0].update(t0=getattr(self, "t0", None), finished=finished, final=final,
                                       issued=self.issued)
            self._maybe_finish(None)
            return
        runner.send_message(MSG_RECORDS, {"slot": self.slot, "records": batch, "t0": getattr(self, "t0", None),
                                          "finished": finished, "final": final, "issued": self.issued})

    def _maybe_finish(self, runner: Any) -> None:
        """Every slot has sent its whole share: stop the run now rather than idle until the time bound."""
        if self.slots_state and all(s["finished"] for s in self.slots_state.values()) and not self.all_finished:
            self.all_finished = True
            log.info("geopool: every request of the run is done; stopping")

    def _scrape_loop(self) -> None:
        while True:
            self.samples.append(serverview.scrape(self.host, api_key=self.options.api_key))
            gevent.sleep(SCRAPE_INTERVAL_S)

    def _target_facts(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.options.api_key}"} if self.options.api_key else {}
        facts: dict[str, Any] = {"url": self.host}
        try:
            with httpx.Client(base_url=self.host, timeout=10.0, headers=headers) as client:
                client.get("/health").raise_for_status()
                version = client.get("/version")
                facts["vllm_version"] = version.json().get("version") if version.is_success else None
                models = client.get("/v1/models")
                listed = [m.get("id") for m in models.json().get("data", [])] if models.is_success else []
                facts["model"] = listed[0] if listed else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            facts["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return facts

    def _fail(self, runner: Any, code: int, message: str) -> None:
        log.error("geopool: %s", message)
        if self.fatal is None:
            self.fatal = (code, message)
        self.all_finished = True
        gevent.spawn(runner.quit)


STATE = Session()
