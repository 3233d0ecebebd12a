"""The master's bookkeeping with a fake runner (``send_message``, ``clients``, ``quit``) and fake probes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gevent
import msgspec
import pytest
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool.load.judge import slo
from geopool.load.records import read_records
from geopool.load.run.master import Master, RunSettings, target_facts
from geopool.load.run.plan import MSG_CLOSE, MSG_PLAN, Plan
from geopool.load.scenario import Scenario


class FakeRunner:
    def __init__(self, *client_ids: str) -> None:
        self.clients = SimpleNamespace(all=[SimpleNamespace(id=i) for i in client_ids])
        self.sent: list[tuple] = []
        self.quits = 0

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append((msg_type, data, client_id))

    def quit(self):
        self.quits += 1


def _probe_ok(endpoint):
    return {"url": endpoint.base_url, "vllm_version": "0.32.0", "models": ["served", "other"]}


def _probe_down(endpoint):
    return {"url": endpoint.base_url, "error": "connection refused"}


def _scrape(endpoint):
    return {"t": 0.0, "error": "no metrics here"}


def _settings(tmp_path, **scenario) -> RunSettings:
    plan = Plan(scenario=Scenario("c", duration_s=10.0, warmup_s=0.0, request_timeout_s=0.1, **scenario),
                host="http://127.0.0.1:1", input_dtype="float32", api_key="sekrit")
    return RunSettings(plan, None, tmp_path / "run")


def _accepts(plan):
    return None


def _master(tmp_path, runner, *, distributed=True, probe=_probe_ok, preflight=_accepts, **scenario) -> Master:
    return Master(_settings(tmp_path, **scenario), runner, distributed=distributed, probe=probe, scrape=_scrape,
                  preflight=preflight, final_wait_s=0.2)


def _batch(slot, records=(), *, t0=None, finished=False, final=False):
    return {"slot": slot, "records": list(records), "t0": t0, "finished": finished, "final": final, "issued": 1}


def test_target_facts_keep_the_summary_keys():
    assert target_facts(_probe_ok(SimpleNamespace(base_url="u"))) == {"url": "u", "vllm_version": "0.32.0",
                                                                       "model": "served"}
    assert target_facts({"url": "u", "vllm_version": None, "models": None})["model"] is None
    assert target_facts(_probe_down(SimpleNamespace(base_url="u"))) == {"url": "u", "error": "connection refused"}


def test_start_gives_each_worker_a_slot_and_the_plan(tmp_path):
    runner = FakeRunner("w-b", "w-a")
    master = _master(tmp_path, runner)
    assert master.start()
    master._scraper.kill()
    plans = [(Plan.from_message(data), client) for kind, data, client in runner.sent if kind == MSG_PLAN]
    assert [(plan.slot, plan.slots, client) for plan, client in plans] == [(0, 2, "w-a"), (1, 2, "w-b")]
    assert all(plan.model == "served" and plan.api_key == "sekrit" for plan, _ in plans)
    assert sorted(master.slots) == [0, 1] and master.elapsed() == 0.0


def test_receive_starts_the_clock_at_the_last_worker_and_finishes_when_all_are_done(tmp_path):
    master = _master(tmp_path, FakeRunner("a", "b"))
    master.start()
    master._scraper.kill()
    # records from another process come as plain data (Locust's messages), and are typed again
    master.receive(_batch(0, [msgspec.to_builtins(record(100.0, 100.5, seq=0))], t0=100.0))
    assert master.run_t0 is None  # slot 1 is not ready yet
    master.receive(_batch(1, t0=102.0))
    assert master.run_t0 == 102.0
    master.receive(_batch(0, [msgspec.to_builtins(record(101.0, 101.5, seq=2))], finished=True))
    assert not master.all_finished
    master.receive(_batch(1, [msgspec.to_builtins(record(102.0, 102.5, seq=1, slot=1))], finished=True, final=True))
    assert master.all_finished and master.slots[1].final and master.slots[0].t0 == 100.0
    master.records.close()
    assert [found.seq for found in read_records(tmp_path / "run" / "records.jsonl")] == [0, 2, 1]


def test_close_asks_workers_and_names_the_slots_that_never_answered(tmp_path):
    runner = FakeRunner("a", "b")
    master = _master(tmp_path, runner)
    master.start()
    master._scraper.kill()
    master.receive(_batch(0, final=True))
    master.close()
    master.close()  # once
    assert [kind for kind, _, _ in runner.sent].count(MSG_CLOSE) == 1
    assert master.missing_slots == [1]


def test_a_worker_error_fails_the_run_with_a_usage_exit(tmp_path, capsys):
    runner = FakeRunner("a")
    master = _master(tmp_path, runner)
    master.start()
    master.receive({"slot": 0, "records": [], "error": "no such config", "finished": True, "final": True})
    gevent.sleep(0)  # the quit is spawned
    assert runner.quits == 1 and master.all_finished
    assert master.finish() == slo.EXIT_USAGE == master.finish()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["verdict"] == "error" and summary["error"] == "worker 0: no such config"
    assert "error: the run failed: worker 0: no such config (exit 4" in capsys.readouterr().err


def test_an_unreachable_target_ends_the_run_with_exit_5(tmp_path):
    runner = FakeRunner()
    master = _master(tmp_path, runner, distributed=False, probe=_probe_down)
    assert not master.start()
    gevent.sleep(0)
    assert runner.quits == 1 and master.finish() == slo.EXIT_NO_TARGET
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["target"] == {"url": "http://127.0.0.1:1", "error": "connection refused"}
    assert "is not reachable: connection refused" in summary["error"]


def test_a_target_that_refuses_the_seed_request_ends_the_run_before_any_load(tmp_path, capsys):
    runner, asked = FakeRunner("a"), []

    def refuses(plan):
        asked.append(plan.model)
        return "it refuses the contract's own valid request: /pooling answered HTTP 400: 'Token id 1 is out'"

    master = _master(tmp_path, runner, preflight=refuses)
    assert not master.start()
    gevent.sleep(0)
    assert asked == ["served"], "the preflight sends to the model the run will use"
    assert runner.sent == [] and runner.quits == 1, "no worker was given a plan"
    assert master.finish() == slo.EXIT_NO_TARGET == 12
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["verdict"] == "error" and "Token id 1 is out" in summary["target"]["error"]
    assert summary["error"].startswith("target http://127.0.0.1:1: it refuses the contract's own valid request")
    assert not (tmp_path / "run" / "records.jsonl").read_text()


def test_a_local_run_computes_the_verdict_from_its_records(tmp_path, capsys):
    master = _master(tmp_path, FakeRunner(), distributed=False, window_requests=5)
    assert master.start()
    plan = master.local_plan()
    assert (plan.slot, plan.slots, plan.model) == (0, 1, "served")
    records = [record(1000.0 + i, 1000.5 + i, first_byte=1000.1 + i, seq=i) for i in range(30)]
    master.receive(_batch(0, records, t0=1000.0, finished=True, final=True))
    master.close()
    code = master.finish()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert code == summary["exit_code"] == slo.EXIT_OK
    assert summary["target"] == {"url": "http://127.0.0.1:1", "vllm_version": "0.32.0", "model": "served"}
    assert summary["requests"]["ok"] == 30 and summary["slots"] == 1


@pytest.mark.parametrize(("run", "folder"), [(1, "run"), (2, "run.run2"), (3, "run.run3")])
def test_each_web_ui_run_has_its_own_folder(tmp_path, run, folder):
    assert _settings(tmp_path).run_dir(run) == tmp_path / folder
