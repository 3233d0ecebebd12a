"""One load-generating process's share of a run: its schedule or quota, the send, its records.

A :class:`Worker` is built from a :class:`~geopool.load.run.plan.Plan` when the run starts (a new run is
a new Worker). Its users ask :meth:`Worker.next_job` what to send next (an open loop waits for the
arrival's intended time), :meth:`Worker.send` it with their own HTTP client and keep one record per
request. :meth:`Worker.batch` hands the records gathered since the last batch to whoever collects
them (the master's :meth:`~geopool.load.run.master.Master.receive`, in this process or over Locust's
messages); :meth:`Worker.drain` stops new requests and waits, bounded, for those in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import msgspec
import numpy as np

from geopool.contract import ModelContract, load_contract
from geopool.errors import ConfigError
from geopool.load.judge.verify import TRANSPORT_ERROR, UNFINISHED, verify_response
from geopool.load.records import Record, clock
from geopool.load.run.payloads import PayloadItem, build_pool
from geopool.load.run.plan import Plan
from geopool.load.schedule import arrival_offsets, quota_share, slot_share

__all__ = ["Job", "Verifier", "Worker", "failed_batch"]

log = logging.getLogger("geopool.load")

#: ``(status, body, pool item, metadata header) -> (verdict, detail)``: one answer's check.
Verifier = Callable[[int, bytes, Any, "str | None"], tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Job:
    """One request to send: its run-wide sequence number, pool item and intended send time (open loop)."""

    seq: int
    item: int
    intended: float | None


class Worker:
    """Slot ``plan.slot`` of ``plan.slots``: every ``slots``-th arrival of the schedule, or its part of the budget."""

    def __init__(self, plan: Plan, contract: ModelContract | None, pool: Sequence[Any], *,
                 t0: float | None = None, verify: Verifier | None = None) -> None:
        scenario = plan.scenario
        self.plan = plan
        self.contract = contract
        self.pool = list(pool)
        #: ``verify(status, body, item, metadata) -> (verdict, detail)``: the mode's answer check.
        self.verify: Verifier = verify or self._verify_tensor
        self.headers = plan.endpoint.headers(content_type="application/json")
        self.encoding = scenario.response_encoding
        self.quota = quota_share(scenario.max_requests, plan.slot, plan.slots)
        self.offsets: np.ndarray | None = (slot_share(arrival_offsets(scenario), plan.slot, plan.slots)
                                           if scenario.open_loop else None)
        self.t0 = clock() if t0 is None else t0
        self.next_index = 0  # open loop: the next arrival of this slot's schedule
        self.issued = 0
        self.waiting = 0  # jobs taken but still waiting for their intended time
        #: Requests sent and not yet answered, as their record so far (what drain records if they never finish).
        self.in_flight: dict[object, Record] = {}
        self.buffer: list[Record] = []
        self.closing = False
        self.exhausted = False

    @classmethod
    def prepare(cls, plan: Plan) -> Worker:
        """Load the contract and encode the payload pool (the slow part), then start the clock.
        Image-to-image: write the GeoTIFFs and keep their facts (:mod:`geopool.load.run.io_payloads`)."""
        if plan.image_to_image:
            from geopool.load.run import io_payloads  # rasterio, only in this mode

            if plan.io_input_dir is None:
                raise ConfigError("image-to-image needs the folder the server reads its inputs from "
                                  "(--io-input-dir)")
            pool = io_payloads.build_io_pool(plan.scenario, plan.model, plan.io_input_dir)
            return cls(plan, None, pool, verify=io_payloads.verify_io_item)
        contract = load_contract(plan.model_config, input_dtype=plan.input_dtype)
        pool = build_pool(plan.scenario, contract, plan.model, plan.reference_checkpoint)
        return cls(plan, contract, pool)

    @property
    def finished(self) -> bool:
        """Every request of the share was taken and answered (or recorded as failed)."""
        return self.exhausted and not self.in_flight and not self.waiting

    def next_job(self) -> Job | None:
        """The next request to send, after waiting for its intended time in an open loop; None: nothing."""
        if self.closing:
            return None
        if self.offsets is None:
            if self.issued >= self.quota:
                return self._exhaust()
            intended = None
            global_index = self.issued * self.plan.slots + self.plan.slot
        else:
            if self.next_index >= len(self.offsets):
                return self._exhaust()
            index = self.next_index
            self.next_index += 1
            intended = self.t0 + float(self.offsets[index])
            global_index = index * self.plan.slots + self.plan.slot
            self._wait_until(intended)
            if self.closing:
                return None
        self.issued += 1
        return Job(global_index, global_index % len(self.pool), intended)

    def send(self, job: Job, http: Any, path: str) -> tuple[Record, bytes]:
        """POST the job's body with ``http`` (``request(method, path, body=, headers=)``); record what happened."""
        item = self.pool[job.item]
        token = object()
        # What is known once it is sent: drain records this if the answer never comes.
        sending = Record(slot=self.plan.slot, seq=job.seq, item=item.index, intended=job.intended, sent=clock(),
                         first_byte=None, done=None, status=0, bytes=0, verdict=UNFINISHED, detail="")
        self.in_flight[token] = sending
        body = b""
        metadata = None
        first_byte = done = None
        status = 0
        try:
            response = http.request("POST", path, body=item.body, headers=self.headers)
            # geopool's own client reads the whole answer in request(): it says when the head came in
            first_byte = getattr(response, "head_at", None) or clock()
            body = response.read()
            done = clock()
            status = response.status_code
            if self.encoding == "bytes":
                metadata = response.get("metadata")
            response.release()
        except Exception as exc:  # any transport failure is a recorded outcome, never a crash
            done = clock()
            verdict, detail = TRANSPORT_ERROR, f"{type(exc).__name__}: {exc}"[:300]
        else:
            verdict, detail = self.verify(status, body, item, metadata)
        record = msgspec.structs.replace(sending, first_byte=first_byte, done=done, status=status, bytes=len(body),
                                         verdict=verdict, detail=detail)
        if self.in_flight.pop(token, None) is not None:  # else drain already recorded it as unfinished
            self.buffer.append(record)
        return record, body

    def _verify_tensor(self, status: int, body: bytes, item: PayloadItem, metadata: str | None) -> tuple[str, str]:
        return verify_response(status, body, self.contract, item.expected, self.plan.numeric_bounds,
                               encoding=self.encoding, metadata=metadata)

    def drain(self) -> None:
        """Take no new job; wait (at most the plan's grace) for requests in flight, then record the rest."""
        self.closing = True
        deadline = time.monotonic() + self.plan.grace_s
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for record in self.in_flight.values():
            self.buffer.append(msgspec.structs.replace(record, detail="still in flight when the run stopped"))
        self.in_flight.clear()

    def batch(self, *, final: bool) -> dict[str, Any]:
        """The records since the last batch, with this slot's state, as the master's ``receive`` takes them."""
        records, self.buffer = self.buffer, []
        return {"slot": self.plan.slot, "records": records, "t0": self.t0, "finished": self.finished,
                "final": final, "issued": self.issued}

    def _wait_until(self, intended: float) -> None:
        delay = intended - clock()
        if delay <= 0:
            return
        self.waiting += 1  # taken but not yet sent: the share is not done until it is
        try:
            gevent.sleep(delay)
        finally:
            self.waiting -= 1

    def _exhaust(self) -> None:
        if not self.exhausted:
            self.exhausted = True
            log.info("geopool: slot %d has taken the last request of its share", self.plan.slot)
        return None


def as_message(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch as Locust's messages carry it to a master in another process: its records as plain data
    (Locust packs messages with msgpack, which knows no Struct); the master types them again."""
    return {**batch, "records": msgspec.to_builtins(batch["records"])}


def failed_batch(slot: int, error: str) -> dict[str, Any]:
    """What a worker that could not prepare its share tells the master (it ends the run)."""
    return {"slot": slot, "records": [], "error": error, "t0": None, "finished": True, "final": True, "issued": 0}
