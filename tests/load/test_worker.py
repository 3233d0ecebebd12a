"""One process's share of a run: schedule, quota, the send's bookkeeping, drain and batches.

The HTTP object is a fake with ``request()``: these are unit tests of geopool's records, not of vLLM.
"""

from __future__ import annotations

import base64
import json

import gevent
import msgpack
import numpy as np

from geopool.contract import SEN1FLOODS11
from geopool.load.judge.verify import OK, TRANSPORT_ERROR, UNFINISHED
from geopool.load.records import clock, record_from
from geopool.load.run.payloads import PayloadItem
from geopool.load.run.plan import Plan
from geopool.load.run.worker import Worker, as_message, failed_batch
from geopool.load.scenario import Scenario
from geopool.load.schedule import arrival_offsets

POOL = [PayloadItem(index, b'{"model": "m"}') for index in range(3)]


def _worker(scenario: Scenario, slot: int = 0, slots: int = 1, *, api_key: str | None = None) -> Worker:
    plan = Plan(scenario=scenario, host="http://127.0.0.1:1", input_dtype="float32", model="m", api_key=api_key,
                slot=slot, slots=slots)
    return Worker(plan, SEN1FLOODS11, POOL, t0=clock() - 1_000.0)  # every arrival is already due


def _drain_jobs(worker: Worker) -> list:
    jobs = []
    while (job := worker.next_job()) is not None:
        jobs.append(job)
    return jobs


class FakeResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self._body, self.released = status, body, False

    def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.released = True


class FakeHTTP:
    """``request()`` answers, raises, or sleeps (a request still in flight)."""

    def __init__(self, answer=None, *, error: Exception | None = None, sleep_s: float = 0.0) -> None:
        self.answer, self.error, self.sleep_s, self.calls = answer, error, sleep_s, []

    def request(self, method, path, body, headers):
        self.calls.append((method, path, body, headers))
        if self.sleep_s:
            gevent.sleep(self.sleep_s)
        if self.error is not None:
            raise self.error
        return self.answer


def _good_answer() -> bytes:
    data = base64.b64encode(np.zeros(SEN1FLOODS11.output_shape, "<f4").tobytes()).decode()
    return json.dumps({"data": [{"index": 0, "object": "pooling", "data": data}]}).encode()


def test_open_loop_schedule_is_split_by_slot():
    scenario = Scenario("o", mode="open", arrival="constant", rate=2.0, duration_s=10.0, warmup_s=0.0)
    offsets = arrival_offsets(scenario)
    shares = [_drain_jobs(_worker(scenario, slot, 3)) for slot in range(3)]
    assert sorted(job.seq for jobs in shares for job in jobs) == list(range(len(offsets))) == list(range(20))
    assert [job.seq for job in shares[1]] == list(range(1, 20, 3))
    first = shares[1][0]
    assert first.item == 1 % len(POOL) and first.intended is not None


def test_closed_loop_takes_its_quota_and_then_is_exhausted():
    scenario = Scenario("c", max_requests=10, duration_s=10.0, warmup_s=0.0)
    jobs = [_drain_jobs(_worker(scenario, slot, 3)) for slot in range(3)]
    assert [len(share) for share in jobs] == [4, 3, 3]
    assert sorted(job.seq for share in jobs for job in share) == list(range(10))
    assert all(job.intended is None for share in jobs for job in share)
    worker = _worker(scenario, 0, 3)
    _drain_jobs(worker)
    assert worker.exhausted and worker.finished and worker.batch(final=False)["finished"]


def test_send_records_a_verified_answer_with_the_endpoints_headers():
    worker = _worker(Scenario("c", duration_s=10.0, warmup_s=0.0), api_key="sekrit")
    http = FakeHTTP(FakeResponse(200, _good_answer()))
    record, body = worker.send(worker.next_job(), http, "/pooling")
    method, path, sent_body, headers = http.calls[0]
    assert (method, path, sent_body) == ("POST", "/pooling", POOL[0].body)
    assert headers["Authorization"] == "Bearer sekrit" and headers["Content-Type"] == "application/json"
    assert record.verdict == OK and record.status == 200 and record.bytes == len(body)
    assert record.sent <= record.first_byte <= record.done
    assert worker.batch(final=True)["records"] == [record] and worker.buffer == []


def test_a_batch_reaches_a_master_in_another_process_as_the_same_records():
    """Locust packs a message's data with msgpack, which knows no Struct: the records travel as plain data and
    the master types them again, unchanged."""
    worker = _worker(Scenario("c", duration_s=10.0, warmup_s=0.0))
    worker.send(worker.next_job(), FakeHTTP(FakeResponse(200, _good_answer())), "/pooling")
    worker.send(worker.next_job(), FakeHTTP(error=ConnectionResetError("peer reset")), "/pooling")
    batch = worker.batch(final=True)
    carried = msgpack.unpackb(msgpack.packb(as_message(batch)))
    assert [record_from(found) for found in carried["records"]] == batch["records"]
    assert {key: value for key, value in carried.items() if key != "records"} == \
        {key: value for key, value in batch.items() if key != "records"}


def test_send_records_a_transport_error_instead_of_raising():
    worker = _worker(Scenario("c", duration_s=10.0, warmup_s=0.0))
    record, body = worker.send(worker.next_job(), FakeHTTP(error=ConnectionResetError("peer reset")), "/pooling")
    assert body == b"" and record.verdict == TRANSPORT_ERROR and record.status == 0
    assert record.detail == "ConnectionResetError: peer reset" and record.done is not None
    assert not worker.in_flight and worker.buffer == [record]


def test_drain_records_requests_still_in_flight_as_unfinished():
    worker = _worker(Scenario("c", duration_s=10.0, warmup_s=0.0, request_timeout_s=0.2))
    job = worker.next_job()
    sender = gevent.spawn(worker.send, job, FakeHTTP(FakeResponse(200, _good_answer()), sleep_s=5.0), "/pooling")
    gevent.sleep(0.01)
    assert len(worker.in_flight) == 1
    worker.drain()  # waits at most the plan's grace (0.2 s)
    batch = worker.batch(final=True)
    assert [r.verdict for r in batch["records"]] == [UNFINISHED]
    assert batch["records"][0].detail == "still in flight when the run stopped" and batch["final"]
    assert worker.next_job() is None  # closing: nothing new
    sender.kill()


def test_a_late_answer_after_drain_is_not_recorded_twice():
    worker = _worker(Scenario("c", duration_s=10.0, warmup_s=0.0, request_timeout_s=0.05))
    sender = gevent.spawn(worker.send, worker.next_job(), FakeHTTP(FakeResponse(200, _good_answer()), sleep_s=0.2),
                          "/pooling")
    gevent.sleep(0.01)
    worker.drain()
    assert len(worker.batch(final=True)["records"]) == 1
    sender.join()
    assert worker.buffer == []


def test_a_failed_preparation_closes_the_slot():
    batch = failed_batch(2, "bad config")
    assert batch == {"slot": 2, "records": [], "error": "bad config", "t0": None, "finished": True, "final": True,
                     "issued": 0}
