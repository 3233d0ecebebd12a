"""--stop-on-breach without a server: the decision rules, the option's usage checks, the master's watcher."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import gevent
import pytest
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool.errors import ConfigError
from geopool.load.judge import breach
from geopool.load.judge.slo import slo_from
from geopool.load.judge.verify import VERIFY_FAILED
from geopool.load.run import options
from geopool.load.run.master import Master, RunSettings
from geopool.load.run.plan import Plan
from geopool.load.scenario import Scenario

T0 = 1_700_000_000.0


def _records(latencies_ms, *, start=T0, verdict="ok"):
    out, now = [], start
    for seq, latency in enumerate(latencies_ms):
        done = now + latency / 1000.0
        out.append(record(now, done, first_byte=done, seq=seq, verdict=verdict))
        now = done
    return out


def test_certain_breach_counts_the_remaining_requests_as_all_good():
    # 10 of 10 over: p50 of 15 still lands on an over (sorted index 7 of 0..14 >= 5 unders)...
    assert breach.certainly_over(unders=0, overs=10, remaining=5, percentile=50)
    # ...but 20 more good ones could bring it under
    assert not breach.certainly_over(unders=0, overs=10, remaining=20, percentile=50)
    assert not breach.certainly_over(unders=5, overs=0, remaining=0, percentile=50)
    # the boundary: p50 of 4 values interpolates between index 1 and 2; with 2 unders, index 1 is under
    assert not breach.certainly_over(unders=2, overs=2, remaining=0, percentile=50)
    assert breach.certainly_over(unders=1, overs=3, remaining=0, percentile=50)


def test_the_binomial_rule_needs_more_evidence_the_more_looks_a_run_takes():
    assert breach.significantly_over(20, 20, 50, looks=60)[0]          # 0.5**20 ≈ 1e-6 < 0.01/60
    assert not breach.significantly_over(10, 10, 50, looks=60)[0]      # 0.5**10 ≈ 1e-3 > 0.01/60
    assert breach.significantly_over(10, 10, 50, looks=1)[0]           # ...but < 0.01 for a single look
    assert not breach.significantly_over(100, 2, 99, looks=1)[0]       # 2 % over p99's bound: could be chance
    assert breach.significantly_over(100, 10, 99, looks=60)[0]         # 10 % over it: not chance
    assert not breach.significantly_over(0, 0, 50, looks=1)[0]


def test_one_slow_first_request_does_not_stop_a_run():
    spec = slo_from({"latency": {"uncorrected": {"p50": 100}}})
    scenario = Scenario("c", duration_s=60.0, warmup_s=0.0)
    assert breach.breach_beyond_doubt(spec, scenario, _records([900]), T0, remaining=1000, looks=60) is None
    healthy = _records([50] * 200 + [900] * 5)
    assert breach.breach_beyond_doubt(spec, scenario, healthy, T0, remaining=1000, looks=60) is None
    slow = _records([150] * 25)
    found = breach.breach_beyond_doubt(spec, scenario, slow, T0, remaining=1000, looks=60)
    assert found["bound"] == "latency.uncorrected.p50 <= 100 ms" and "binomial" in found["why"]
    certain = breach.breach_beyond_doubt(spec, scenario, _records([150] * 5), T0, remaining=2, looks=60)
    assert "even if all 2 remaining requests were under it" in certain["why"]


def test_warm_up_requests_do_not_count():
    spec = slo_from({"latency": {"uncorrected": {"p50": 100}}})
    scenario = Scenario("c", duration_s=60.0, warmup_s=10.0)
    assert breach.breach_beyond_doubt(spec, scenario, _records([150] * 40), T0, remaining=1000, looks=60) is None


def test_verification_failures_over_the_allowed_count_stop_at_once():
    spec = slo_from({"errors": {"max_verification_failures": 1}})
    scenario = Scenario("c", duration_s=60.0, warmup_s=0.0)
    one = _records([50]) + _records([50], start=T0 + 1, verdict=VERIFY_FAILED)
    assert breach.breach_beyond_doubt(spec, scenario, one, T0, remaining=10, looks=60) is None
    two = one + _records([50], start=T0 + 2, verdict=VERIFY_FAILED)
    assert breach.breach_beyond_doubt(spec, scenario, two, T0, remaining=10, looks=60) == {
        "bound": "verification failures <= 1", "why": "2 responses failed verification"}


def test_remaining_requests_take_the_smaller_budget():
    assert breach.remaining_requests(100, 30) == 70
    assert breach.remaining_requests(100, 30, scheduled=50) == 20
    assert breach.remaining_requests(10, 30) == 0


def test_the_option_needs_an_slo_on_both_paths_and_renders_as_a_bare_flag(tmp_path):
    with pytest.raises(ConfigError, match="--stop-on-breach needs --slo"):
        options.resolve({"stop_on_breach": True, "scenario": "closed"})
    assert options.resolve({"stop_on_breach": False, "scenario": "closed"}).name == "closed"
    assert "--stop-on-breach" in options.locust_arguments({"stop_on_breach": True})
    assert "--stop-on-breach" not in options.locust_arguments({"stop_on_breach": False})
    parser = _PlainParser()
    options.add_locust_arguments(parser)
    assert parser.parse_args(["--stop-on-breach", "--input-dtype", "float32"]).stop_on_breach is True
    assert parser.parse_args([]).stop_on_breach is False


class _PlainParser(argparse.ArgumentParser):
    """Locust's parser knows ``env_var``, ``is_secret`` and ``include_in_web_ui``; argparse does not."""

    def add_argument(self, *args, **kwargs):
        for key in ("env_var", "is_secret", "include_in_web_ui"):
            kwargs.pop(key, None)
        return super().add_argument(*args, **kwargs)


class _Runner:
    clients = SimpleNamespace(all=[])

    def send_message(self, *args, **kwargs):
        pass

    def quit(self):
        pass


def _started_master(plan: Plan, spec, tmp_path) -> Master:
    """A --stop-on-breach master of one local slot, started against a probe that always answers."""
    master = Master(RunSettings(plan, spec, tmp_path / "run", stop_on_breach=True), _Runner(), distributed=False,
                    probe=lambda endpoint: {"url": endpoint.base_url, "vllm_version": "x", "models": ["m"]},
                    scrape=lambda endpoint: {"t": 0.0, "error": "none"})
    assert master.start()
    return master


def test_the_master_stops_a_breaching_run_and_says_why(tmp_path):
    plan = Plan(scenario=Scenario("c", duration_s=60.0, warmup_s=0.0), host="http://127.0.0.1:1",
                input_dtype="float32")
    spec = slo_from({"latency": {"uncorrected": {"p50": 100}}})
    master = _started_master(plan, spec, tmp_path)
    master.receive({"slot": 0, "records": _records([50] * 10), "t0": T0, "finished": False, "final": False,
                    "issued": 10})
    gevent.sleep(1.3)
    assert master.stopped_early is None and not master.all_finished
    master.receive({"slot": 0, "records": _records([150] * 40, start=T0 + 1), "t0": T0, "finished": False,
                    "final": False, "issued": 50})
    gevent.sleep(1.3)
    assert master.all_finished and master.stopped_early["bound"] == "latency.uncorrected.p50 <= 100 ms"
    assert set(master.stopped_early) == {"at_s", "bound", "why"}
    master._scraper.kill()


def test_without_the_option_the_master_keeps_no_copy_of_the_records(tmp_path):
    plan = Plan(scenario=Scenario("c"), host="http://127.0.0.1:1", input_dtype="float32")
    spec = slo_from({"errors": {"max_verification_failures": 0}})
    master = Master(RunSettings(plan, spec, tmp_path / "run"), _Runner(), distributed=False)
    assert master.seen is None and master.check_breach() is None


def test_requests_in_flight_are_not_counted_as_answered(tmp_path):
    """20 requests issued, 4 answered over the p50 bound: the 16 in flight may still pull p50 under it."""
    plan = Plan(scenario=Scenario("c", users=16, max_requests=20, duration_s=60.0, warmup_s=0.0),
                host="http://127.0.0.1:1", input_dtype="float32")
    spec = slo_from({"latency": {"uncorrected": {"p50": 100}}})
    master = _started_master(plan, spec, tmp_path)
    master.receive({"slot": 0, "records": _records([150] * 4), "t0": T0, "finished": False, "final": False,
                    "issued": 20})
    assert master.check_breach() is None
    master.receive({"slot": 0, "records": _records([150] * 7, start=T0 + 1), "t0": T0, "finished": False,
                    "final": False, "issued": 20})
    assert "even if all 9 remaining requests were under it" in master.check_breach()["why"]
    master._scraper.kill()
