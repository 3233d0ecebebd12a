"""The load suite's pieces without a server: scenarios, schedule, statistics, SLO gate, records, verification."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool import exitcodes
from geopool.contract import SEN1FLOODS11
from geopool.errors import ConfigError
from geopool.load.judge import serverview, slo, stats
from geopool.load.judge.verify import HTTP_ERROR, OK, VERIFY_FAILED, verify_response
from geopool.load.records import RecordLog, read_records
from geopool.load.scenario import Scenario, load_scenarios, scenario_from
from geopool.load.schedule import arrival_offsets, quota_share, slot_share

# ------------------------------------------------------------------------------------ scenarios


def test_shipped_scenarios_load_and_include_every_kind():
    scenarios = load_scenarios()
    assert {"closed", "open-constant", "open-poisson", "ramp", "step", "spike", "soak"} <= set(scenarios)
    assert scenarios["ramp"].stages and scenarios["step"].open_loop and not scenarios["closed"].open_loop


@pytest.mark.parametrize(("table", "message"), [
    ({"mode": "half-open"}, "mode='half-open' is not one of closed, open"),
    ({"users": 0}, "users must be > 0"),
    ({"rate": "fast"}, "rate must be float"),
    ({"speed": 3}, "unknown key 'speed'"),
    ({"warmup_s": 90.0, "duration_s": 60.0}, "warmup_s must be >= 0 and below duration_s"),
    ({"stages": [{"until_s": 10, "users": 2}, {"until_s": 5, "users": 4}]}, "stage 2 ends at until_s=5.0"),
    ({"stages": [{"until_s": 10, "people": 2}]}, "stage 1 has unknown key(s) ['people']"),
    ({"window_requests": 1}, "window_requests must be >= 2"),
])
def test_bad_scenarios_name_the_problem(table, message):
    with pytest.raises(ConfigError, match="scenario 'x'") as info:
        scenario_from("x", table)
    assert message in str(info.value)


def test_bad_scenario_file_is_named(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text("[scenario.a\nmode = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_scenarios(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenarios(tmp_path / "missing.toml")
    (tmp_path / "empty.toml").write_text("title = 'no scenarios'\n")
    with pytest.raises(ConfigError, match=r"has no \[scenario.NAME\] tables"):
        load_scenarios(tmp_path / "empty.toml")


def test_stages_end_the_run_and_give_users_per_stage():
    ramp = load_scenarios()["ramp"]
    assert [ramp.stage_at(t).users for t in (0, 14.9, 15, 44, 59.9)] == [1, 1, 2, 4, 8]
    assert ramp.stage_at(60) is None


# ------------------------------------------------------------------------------------- schedule


def test_constant_schedule_is_exactly_the_rate():
    scenario = Scenario("c", mode="open", arrival="constant", rate=2.0, duration_s=30.0, warmup_s=0)
    offsets = arrival_offsets(scenario)
    assert len(offsets) == 60
    assert np.allclose(np.diff(offsets), 0.5)


def test_poisson_schedule_is_seeded_and_has_the_rate():
    scenario = Scenario("p", mode="open", arrival="poisson", rate=5.0, duration_s=2000.0, warmup_s=0)
    first, second = arrival_offsets(scenario), arrival_offsets(scenario)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, arrival_offsets(scenario.with_overrides(seed=1)))
    assert abs(len(first) / 2000.0 - 5.0) < 0.15  # 10,000 expected; sd 100
    gaps = np.diff(first)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05  # exponential gaps: coefficient of variation 1


def test_stage_rates_shape_the_schedule():
    step = load_scenarios()["step"]
    offsets = arrival_offsets(step)
    per_stage = np.histogram(offsets, bins=[0, 20, 40, 60, 80])[0]
    assert per_stage.tolist() == [10, 20, 30, 40]


def test_max_requests_caps_the_schedule():
    scenario = Scenario("c", mode="open", arrival="constant", rate=10.0, duration_s=60.0, max_requests=7, warmup_s=0)
    assert len(arrival_offsets(scenario)) == 7


@given(st.integers(1, 5000), st.integers(1, 9))
@settings(max_examples=50, deadline=None)
def test_slot_shares_add_up_to_the_whole(total, slots):
    offsets = np.arange(total, dtype=float)
    shares = [slot_share(offsets, slot, slots) for slot in range(slots)]
    assert sorted(np.concatenate(shares).tolist()) == offsets.tolist()
    assert sum(quota_share(total, slot, slots) for slot in range(slots)) == total


# ----------------------------------------------------------------------------------- statistics


def test_early_stopping_numbers_match_mlperf_loadgen():
    # LoadGen (c = 0.99, d = 0): fewest queries for an estimate and server-scenario needs.
    assert [stats.min_samples(p) for p in (90, 95, 99, 99.9)] == [64, 130, 662, 6636]
    assert stats.under_latency_needed(0, 99) == 459
    assert stats.under_latency_needed(1, 99) + 1 == 662
    assert stats.under_latency_needed(10, 90) + 10 == 197
    assert stats.under_latency_needed(100, 99) + 100 == 12571


def test_early_stopping_check_states():
    fast = np.full(700, 100.0)
    assert stats.early_stopping_check(fast, 99, 200)["state"] == "met"
    assert stats.early_stopping_check(fast[:100], 99, 200)["state"] == "insufficient"
    slow = np.concatenate([np.full(50, 100.0), np.full(50, 500.0)])
    assert stats.early_stopping_check(slow, 90, 200)["state"] == "breached"



def test_summary_excludes_warmup_and_separates_corrected_latency():
    scenario = Scenario("o", mode="open", rate=1.0, duration_s=100.0, warmup_s=10.0, window_requests=10)
    records = [record(1000.0 + i, 1000.0 + i + 0.5, seq=i, intended=1000.0 + i) for i in range(100)]
    records[50] = record(1052.0, 1052.5, seq=50, intended=1050.0)  # sent 2 s late: corrected 2.5 s, uncorrected 0.5 s
    records[12] = record(1012.0, 1012.1, seq=12, intended=1012.0, verdict=HTTP_ERROR)
    records[13] = record(1013.0, 1013.2, seq=13, intended=1013.0, verdict=VERIFY_FAILED)
    summary = stats.summarize(records, scenario, t0=1000.0)
    assert summary["requests"]["warmup_excluded"] == 10
    assert summary["requests"]["measured"] == 90
    assert summary["requests"]["ok"] == 88
    assert summary["requests"]["http_errors"] == 1 and summary["requests"]["verification_failures"] == 1
    assert summary["error_rate"] == pytest.approx(1 / 90)
    assert summary["latency_ms"]["corrected"]["max"] == pytest.approx(2500.0)
    assert summary["latency_ms"]["uncorrected"]["max"] == pytest.approx(500.0)
    assert summary["late_sends"]["count"] == 1 and summary["late_sends"]["max_ms"] == pytest.approx(2000.0)
    assert summary["steady_state"]["reached"], summary["steady_state"]
    assert summary["valid"]


def test_unsteady_run_is_invalid():
    scenario = Scenario("c", duration_s=100.0, warmup_s=0.0, window_requests=10)
    latency = [0.5] * 20 + [2.0] * 10  # the last window is four times slower
    t, records = 0.0, []
    for i, value in enumerate(latency):
        records.append(record(t, t + value, seq=i))
        t += value
    summary = stats.summarize(records, scenario, t0=0.0)
    assert not summary["valid"]
    assert "no steady state" in summary["invalid_reasons"][0]


def test_no_success_is_invalid():
    scenario = Scenario("c", duration_s=100.0, warmup_s=0.0)
    records = [record(float(i), i + 0.1, seq=i, verdict=HTTP_ERROR) for i in range(30)]
    summary = stats.summarize(records, scenario, t0=0.0)
    assert summary["error_rate"] == 1.0
    assert "no successful request after warm-up" in summary["invalid_reasons"]


# ------------------------------------------------------------------------------------------ SLO


def test_slo_file_errors_name_the_field(tmp_path):
    cases = {
        "[latency.corrected]\np98 = 10\n": "latency.corrected.p98 is not one of",
        "[latency.fast]\np50 = 10\n": "[latency.fast] is not corrected or uncorrected",
        "[latency.corrected]\np50 = -1\n": "must be a finite positive number",
        "[throughput]\nmin_rps = inf\n": "must be a finite positive number",
        "[errors]\nmax_error_rate = 2\n": "max_error_rate must be within 0..1",
        "[errors]\nmax_verification_failures = -1\n": "max_verification_failures must be an integer >= 0",
        "[throughput]\nmin_qps = 3\n": "[throughput] has unknown key(s) ['min_qps']",
        "[gates]\n": "unknown table(s) ['gates']",
        "": "sets no bound",
        "[latency\n": "is not valid TOML",
    }
    for number, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"slo{number}.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            slo.load_slo(path)
        assert message in str(info.value), (text, str(info.value))


def test_slo_gate_verdicts_and_exit_codes():
    spec = slo.slo_from({"latency": {"corrected": {"p50": 1000.0}}, "throughput": {"min_rps": 2.0},
                         "errors": {"max_error_rate": 0.0}})
    summary = {"requests": {"verification_failures": 0, "http_errors": 1, "transport_errors": 0, "finished": 100},
               "throughput_rps": 1.5, "error_rate": 0.01}
    checks = slo.evaluate(spec, summary, {"corrected": np.full(100, 500.0), "uncorrected": np.full(100, 500.0)})
    states = {check["bound"]: check["state"] for check in checks}
    assert states == {"latency.corrected.p50 <= 1000 ms": "met", "throughput >= 2 req/s": "breached",
                      "error rate <= 0": "breached", "verification failures <= 0": "met"}
    assert "0.500 req/s short" in next(c["by"] for c in checks if c["bound"].startswith("throughput"))
    assert slo.exit_code(checks, valid=True) == slo.EXIT_BREACH
    assert slo.exit_code([c for c in checks if c["state"] == "met"], valid=False) == slo.EXIT_INVALID
    assert slo.exit_code([c for c in checks if c["state"] == "met"], valid=True) == slo.EXIT_OK


# -------------------------------------------------------------------------- records and metrics


def test_records_survive_a_torn_last_line(tmp_path):
    log = RecordLog(tmp_path / "records.jsonl")
    log.append([record(1.0, 1.5, seq=1), record(2.0, 2.5, seq=2)])
    log.close()
    with (tmp_path / "records.jsonl").open("a") as file:
        file.write('{"slot": 0, "seq": 3, "verd')  # the writer died mid-line
    assert [r.seq for r in read_records(tmp_path / "records.jsonl")] == [1, 2]
    good = (tmp_path / "records.jsonl").read_text().splitlines()[0]
    (tmp_path / "bad.jsonl").write_text(f"{good}\nnot json\n{good}\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2 is not a JSON record"):
        read_records(tmp_path / "bad.jsonl")
    (tmp_path / "foreign.jsonl").write_text(f'{good}\n{{"seq": 2}}\n')  # JSON, but not a record
    with pytest.raises(ConfigError, match=r"foreign.jsonl:2 is not a geopool record"):
        read_records(tmp_path / "foreign.jsonl")


def test_a_record_is_written_as_the_same_json_object_as_before_it_had_a_type(tmp_path):
    """records.jsonl's form is the dict the worker used to write: the same keys, in the same order."""
    log = RecordLog(tmp_path / "records.jsonl")
    log.append([record(1.0, 1.5, intended=0.5, seq=7, item=3, verdict=HTTP_ERROR, detail="HTTP 503")])
    log.close()
    line = (tmp_path / "records.jsonl").read_text()
    assert line == json.dumps({"slot": 0, "seq": 7, "item": 3, "intended": 0.5, "sent": 1.0, "first_byte": 1.01,
                               "done": 1.5, "status": 503, "bytes": 10, "verdict": HTTP_ERROR, "detail": "HTTP 503"},
                              separators=(",", ":")) + "\n"
    assert read_records(tmp_path / "records.jsonl") == [record(1.0, 1.5, intended=0.5, seq=7, item=3,
                                                                verdict=HTTP_ERROR, detail="HTTP 503")]


def test_bucket_quantile_is_the_bucket_upper_bound():
    buckets = {"0.3": 90.0, "0.5": 99.0, "1.0": 100.0, "+Inf": 100.0}
    assert serverview.bucket_quantile(buckets, 0.5) == 0.3
    assert serverview.bucket_quantile(buckets, 0.95) == 0.5
    assert serverview.bucket_quantile(buckets, 1.0) == 1.0
    assert serverview.bucket_quantile({"+Inf": 0.0}, 0.5) is None


# --------------------------------------------------------------------------------- verification


def _answer(values: np.ndarray) -> bytes:
    data = base64.b64encode(values.astype("<f4").tobytes()).decode()
    return json.dumps({"data": [{"index": 0, "object": "pooling", "data": data}]}).encode()


def test_verification_separates_http_errors_from_wrong_tensors():
    shape = SEN1FLOODS11.output_shape
    good = np.zeros(shape, np.float32)
    assert verify_response(200, _answer(good), SEN1FLOODS11) == (OK, "")
    assert verify_response(503, b'{"error": "busy"}', SEN1FLOODS11)[0] == HTTP_ERROR
    bad = good.copy()
    bad[0, 0, 0, :3] = np.nan
    verdict, detail = verify_response(200, _answer(bad), SEN1FLOODS11)
    assert verdict == VERIFY_FAILED and "3 non-finite values" in detail
    verdict, detail = verify_response(200, _answer(good[:, :1]), SEN1FLOODS11)
    assert verdict == VERIFY_FAILED and "malformed" in detail
    verdict, detail = verify_response(200, _answer(good + 0.1), SEN1FLOODS11, expected=good)
    assert verdict == VERIFY_FAILED and "differs from the reference" in detail


# ---------------------------------------------------------------------------------------- report


@pytest.mark.parametrize("verdict", [OK, VERIFY_FAILED, HTTP_ERROR])
def test_report_is_written_whatever_the_verdicts(tmp_path, verdict, capsys):
    from geopool.load.report import run_report

    scenario = Scenario("o", mode="open", rate=1.0, duration_s=40.0, warmup_s=5.0, window_requests=5)
    log = RecordLog(tmp_path / "records.jsonl")
    log.append(record(1000.0 + i, 1000.5 + i, seq=i, intended=1000.0 + i, verdict=verdict) for i in range(40))
    log.close()
    spec = slo.slo_from({"latency": {"corrected": {"p50": 1000.0}}, "errors": {"max_error_rate": 0.0}})
    code = run_report.finalize(tmp_path, scenario=scenario, slo_spec=spec, target={"url": "http://127.0.0.1:1"},
                           samples=[], slots={0: {"t0": 1000.0}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "report.html").stat().st_size > 100_000  # plotly.js is inlined
    expected = {OK: slo.EXIT_OK, VERIFY_FAILED: slo.EXIT_BREACH, HTTP_ERROR: slo.EXIT_BREACH}[verdict]
    assert code == summary["exit_code"] == expected, capsys.readouterr().out
    assert f"(exit {expected})" in capsys.readouterr().out


@pytest.mark.parametrize(("verdict", "at"), [(OK, 20), (VERIFY_FAILED, 20), (HTTP_ERROR, 20), (VERIFY_FAILED, 2)],
                         ids=["ok", "wrong-answer", "http-error", "wrong-answer-in-warm-up"])
def test_without_an_slo_a_wrong_answer_or_an_error_still_fails_the_run(tmp_path, verdict, at, capsys):
    """No --slo: latency and throughput go ungated, correctness does not (and the summary says which); a
    wrong answer fails the run in warm-up too."""
    from geopool.load.report import run_report

    scenario = Scenario("o", mode="open", rate=1.0, duration_s=40.0, warmup_s=5.0, window_requests=5)
    log = RecordLog(tmp_path / "records.jsonl")
    log.append(record(1000.0 + i, 1000.5 + i, seq=i, intended=1000.0 + i,
                      verdict=verdict if i == at else OK) for i in range(40))  # one request of 40
    log.close()
    code = run_report.finalize(tmp_path, scenario=scenario, slo_spec=None, target={"url": "http://127.0.0.1:1"},
                               samples=[], slots={0: {"t0": 1000.0}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == summary["exit_code"] == (slo.EXIT_OK if verdict == OK else slo.EXIT_BREACH)
    assert summary["slo"]["file"] is None and summary["slo"]["gated"] == slo.CORRECTNESS_ONLY_TEXT
    assert {check["bound"] for check in summary["slo"]["checks"]} == {"error rate <= 0", "verification failures <= 0"}
    assert not any(check["bound"].startswith(("latency", "throughput")) for check in summary["slo"]["checks"])
    assert "latency and throughput not gated" in capsys.readouterr().out


@pytest.mark.parametrize(("code", "verdict_written", "expected"), [
    (0, True, exitcodes.OK), (10, True, exitcodes.SLO_BREACHED), (11, True, exitcodes.LOAD_INVALID),
    (12, True, exitcodes.TARGET_UNUSABLE), (2, True, exitcodes.INTERRUPTED),
    (2, False, exitcodes.USAGE),  # Locust's argparse refused its command line
    (1, False, exitcodes.INTERNAL), (1, True, exitcodes.INTERNAL),  # a crash is never "conformance failed"
    (-9, False, exitcodes.INTERNAL),
])
def test_locusts_own_exit_codes_map_into_geopools_table(code, verdict_written, expected):
    from geopool.load.run.command import geopool_code

    assert geopool_code(code, verdict_written=verdict_written) == expected


def test_a_packaged_slo_file_is_found_by_name_and_by_its_source_path(tmp_path, monkeypatch):
    from geopool.resources import slo_examples

    monkeypatch.chdir(tmp_path)  # as from an installed geopool: no load/slo/example.toml here
    packaged = {path.stem: path for path in slo_examples()}
    assert "example" in packaged
    by_name, by_path = slo.load_slo("example"), slo.load_slo("load/slo/example.toml")
    assert by_name == by_path and by_name.source == str(packaged["example"])
    (tmp_path / "example").write_text("[errors]\nmax_error_rate = 0.5\n")  # a file of that name comes first
    assert slo.load_slo("example").source == "example"
    with pytest.raises(ConfigError, match=r"'exampel' does not exist \(packaged SLO files, by name: example\)"):
        slo.load_slo("exampel")
    with pytest.raises(ConfigError, match="does not exist"):
        slo.load_slo("elsewhere/slo/example.toml")  # only the source tree's path names the packaged file


def _scrapes(values: list[float | None], every: float = 1.0) -> list[dict]:
    return [{"t": index * every, "running": value, "waiting": 0.0} for index, value in enumerate(values)]


def test_a_queue_gauge_counts_only_once_it_moved_under_the_runs_load():
    busy = [record(0.5, 20.5)]  # one request in flight from 0.5 s to 20.5 s: scrapes at 1..20 s see it
    flat = serverview.gauge_movement(_scrapes([0.0] * 30), busy)
    assert flat["state"] == "flat" and flat["loaded_scrapes"] == 20 and flat["max_in_flight"] == 1
    assert flat["line"].startswith("not measurable: vllm:num_requests_running stayed 0 at all 20 scrapes")
    moved = serverview.gauge_movement(_scrapes([0.0] * 10 + [1.0] + [0.0] * 19), busy)
    assert moved["state"] == "moved"
    # a rise while nothing of this run was in flight (another client's request) is not this run's evidence
    idle = serverview.gauge_movement(_scrapes([0.0] * 25 + [1.0] * 5), busy)
    assert idle["state"] == "flat"
    few = serverview.gauge_movement(_scrapes([0.0] * 30), [record(0.5, 3.5)])
    assert few["state"] == "unknown" and few["loaded_scrapes"] == 3
    assert serverview.gauge_movement(_scrapes([None] * 30), busy)["state"] == "absent"
    # an unfinished request stays in flight; a request never sent never was
    unfinished = serverview.gauge_movement(_scrapes([0.0] * 30), [record(0.5, None), record(None, None)])
    assert unfinished["loaded_scrapes"] == 29 and unfinished["max_in_flight"] == 1


def test_a_run_whose_queue_gauge_never_moved_says_so_in_its_summary_report_and_output(tmp_path, capsys):
    from geopool.load.report import run_report

    scenario = Scenario("o", mode="open", rate=1.0, duration_s=40.0, warmup_s=5.0, window_requests=5)
    log = RecordLog(tmp_path / "records.jsonl")
    log.append(record(1000.0 + i, 1000.8 + i, seq=i, intended=1000.0 + i) for i in range(40))
    log.close()
    samples = [{"t": 1000.5 + i, "running": 0.0, "waiting": 0.0} for i in range(40)]
    run_report.finalize(tmp_path, scenario=scenario, slo_spec=None, target={"url": "http://127.0.0.1:1"},
                        samples=samples, slots={0: {"t0": 1000.0}})
    gauges = json.loads((tmp_path / "summary.json").read_text())["server"]["gauges"]
    assert gauges["state"] == "flat" and gauges["loaded_scrapes"] == 40
    assert f"server queue gauges: {gauges['line']}" in capsys.readouterr().out
    assert "not measurable: vllm:num_requests_running stayed 0" in (tmp_path / "report.html").read_text()
