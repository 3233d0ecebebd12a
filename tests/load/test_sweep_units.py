"""Goodput, per-stage statistics, the sweep's step logic and knee rules, on synthetic records (no server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.judge import goodput, slo
from geopool.load.judge.verify import HTTP_ERROR, UNFINISHED, VERIFY_FAILED
from geopool.load.records import RecordLog
from geopool.load.scenario import Scenario, Stage
from geopool.load.study import knee
from geopool.load.study.sweep import SweepStep, result_of, step_from_summary, step_rates, sweep_document

REPO = Path(__file__).resolve().parents[2]



# ------------------------------------------------------------------------------------- goodput bounds


P50 = {"corrected": {"p50": 100}}


@pytest.mark.parametrize(("table", "message"), [
    ({"goodput": {"min_share": 1.0}, "latency": P50}, "goodput.min_share must be within (0, 1)"),
    ({"goodput": {"min_share": 0}, "latency": P50}, "goodput.min_share must be within (0, 1)"),
    ({"goodput": {"min_share": "most"}, "latency": P50}, "goodput.min_share must be a finite number"),
    ({"goodput": {"max_latency_ms": -5}}, "goodput.max_latency_ms must be a finite positive number"),
    ({"goodput": {"min_rps": 0}, "latency": P50}, "goodput.min_rps must be a finite positive"),
    ({"goodput": {"min_share": 0.5}}, "[goodput] needs max_latency_ms"),
    ({"goodput": {"max_share": 0.5}}, "[goodput] has unknown key(s) ['max_share']"),
    ({"goodput": 3}, "goodput must be a table"),
])
def test_goodput_table_errors_name_the_field(table, message):
    with pytest.raises(ConfigError) as caught:
        slo.slo_from(table, source="s.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_goodput_limit_defaults_to_the_smallest_latency_bound_and_is_absent_without_one():
    spec = slo.slo_from({"latency": {"corrected": {"p99": 900}, "uncorrected": {"p50": 400}}})
    assert spec.goodput == slo.Goodput(400.0)
    assert slo.slo_from({"throughput": {"min_rps": 1.0}}).goodput is None
    assert slo.slo_from({"goodput": {"max_latency_ms": 250, "min_rps": 2}}).goodput == slo.Goodput(250.0, None, 2.0)


def test_goodput_counts_verified_requests_within_the_bound_among_finished_ones():
    scenario = Scenario("o", mode="open", rate=1.0, duration_s=100.0, warmup_s=0.0)
    records = [record(10.0, 10.2, seq=0, intended=10.0),  # 200 ms
               record(11.5, 11.7, seq=1, intended=11.0),  # 700 ms corrected
               record(12.0, 12.1, seq=2, intended=12.0, verdict=VERIFY_FAILED),
               record(13.0, 13.1, seq=3, intended=13.0, verdict=HTTP_ERROR),
               record(14.0, None, seq=4, intended=14.0, verdict=UNFINISHED),  # unfinished
               record(5.0, 5.1, seq=5, intended=5.0)]  # before 10 s
    effective = goodput.effective_latencies_ms(records, scenario, measure_from=10.0)
    assert sorted(effective.round(6).tolist()) == [200.0, 700.0, np.inf, np.inf]
    figures = goodput.goodput_figures(effective, 500.0, span_s=4.0, open_loop=True)
    assert figures == {"max_latency_ms": 500.0, "latency": "corrected", "good": 1, "of": 4, "share": 0.25,
                       "rps": 0.25}
    closed = Scenario("c", mode="closed", duration_s=100.0, warmup_s=0.0)
    assert goodput.effective_latencies_ms(records[1:2], closed, 10.0).round(6).tolist() == [200.0]  # uncorrected


def _judge(spec_table, latencies_ms, span_s=10.0):
    spec = slo.slo_from(spec_table)
    effective = np.asarray(latencies_ms, dtype=float)
    summary = {"requests": {"verification_failures": 0}, "goodput": goodput.goodput_figures(
        effective, spec.goodput.max_latency_ms, span_s, True)}
    return {check["bound"]: check["state"]
            for check in slo.evaluate(spec, summary, {"goodput": effective}) if check["bound"].startswith("goodput")}


def test_goodput_share_is_judged_by_early_stopping_and_the_rate_like_throughput():
    table = {"goodput": {"max_latency_ms": 100, "min_share": 0.5, "min_rps": 1.0}}
    assert set(_judge(table, [50.0] * 20).values()) == {"met"}  # 20 good in 10 s: 2 req/s
    assert _judge(table, [50.0] * 5) == {"goodput share >= 0.5 (within 100 ms and verified)": "insufficient",
                                         "goodput >= 1 good req/s": "breached"}
    assert _judge(table, [50.0] * 8 + [np.inf] * 12)["goodput share >= 0.5 (within 100 ms and verified)"] == "breached"
    assert _judge(table, [])["goodput >= 1 good req/s"] == "insufficient"


def test_report_carries_goodput_in_summary_console_and_html(tmp_path, capsys):
    from geopool.load.report import run_report

    scenario = Scenario("o", mode="open", rate=1.0, duration_s=40.0, warmup_s=5.0, window_requests=5)
    log = RecordLog(tmp_path / "records.jsonl")
    log.append(record(1000.0 + i, 1000.0 + i + (0.2 if i % 4 else 0.9), seq=i, intended=1000.0 + i) for i in range(40))
    log.close()
    spec = slo.slo_from({"latency": {"corrected": {"p50": 1000.0}}, "goodput": {"max_latency_ms": 500}})
    run_report.finalize(tmp_path, scenario=scenario, slo_spec=spec, target={"url": "http://127.0.0.1:1"}, samples=[],
                    slots={0: {"t0": 1000.0}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["goodput"]["of"] == 35 and summary["goodput"]["good"] == 27  # 8 of them took 900 ms
    assert "goodput" in capsys.readouterr().out
    assert 'id="goodput"' in (tmp_path / "report.html").read_text()


# ------------------------------------------------------------------------------------- stages


def _step_run():
    """Two 20 s stages at 1 req/s: 100 ms answers in the first, 2 s in the second (1 s after its start)."""
    scenario = Scenario("s", mode="open", arrival="constant", duration_s=40.0, warmup_s=2.0, window_requests=3,
                        stability_tolerance=1.0, stages=(Stage(20.0, 1, 1.0), Stage(40.0, 1, 1.0)))
    records = [record(100.0 + i, 100.0 + i + (0.1 if i < 21 else 2.0), seq=i, intended=100.0 + i) for i in range(40)]
    return scenario, records


def test_each_stage_has_its_own_figures_after_its_settle_time():
    scenario, records = _step_run()
    first, second = goodput.stage_summaries(records, scenario, 100.0, None)
    assert (first["from_s"], first["until_s"], second["from_s"]) == (0.0, 20.0, 20.0)
    assert first["settle_s"] == 2.0 and second["settle_s"] == 2.0  # the warm-up; 10 % of 20 s
    assert first["requests"] == 18 and second["requests"] == 18
    assert first["latency_ms"]["corrected"]["max"] == pytest.approx(100.0)
    assert second["latency_ms"]["corrected"]["p50"] == pytest.approx(2000.0)  # not mixed with the first stage's
    assert first["rate"] == 1.0 and first["valid"] and second["valid"]


def test_a_stage_is_invalid_with_too_few_samples_for_the_slo_and_is_judged_separately():
    scenario, records = _step_run()
    spec = slo.slo_from({"latency": {"corrected": {"p50": 500, "p90": 500}}})
    first, second = goodput.stage_summaries(records, scenario, 100.0, spec)
    assert first["goodput"]["good"] == 18 and second["goodput"]["good"] == 0
    assert not first["valid"] and "too few samples for latency.corrected.p90 <= 500 ms" in first["invalid_reasons"]
    assert second["slo_breached"] and not first["slo_breached"]


def test_a_scenario_without_stages_has_none():
    scenario = Scenario("o", mode="open", rate=1.0, duration_s=40.0, warmup_s=5.0)
    assert goodput.stage_summaries([record(1.0, 1.1, seq=0, intended=1.0)], scenario, 0.0, None) == []


# ------------------------------------------------------------------------------------- sweep logic


def test_step_rates_from_a_list_or_a_progression():
    assert step_rates("0.5, 1,1.5", None, None, None) == [0.5, 1.0, 1.5]
    assert step_rates(None, 0.4, 0.3, 1.6) == [0.4, 0.7, 1.0, 1.3, 1.6]


@pytest.mark.parametrize(("args", "message"), [
    (("1,0.5", None, None, None), "must increase"),
    (("1,x", None, None, None), "not a comma-separated list"),
    ((",", None, None, None), "--rates is empty"),
    (("0,1", None, None, None), "positive"),
    (("1", 1.0, None, None), "not both"),
    ((None, 1.0, 0.5, None), "all three"),
    ((None, 2.0, 0.5, 1.0), "max >= start"),
    ((None, 0.01, 0.01, 10.0), "at most 50"),
])
def test_bad_rates_name_the_problem(args, message):
    with pytest.raises(ConfigError, match=message):
        step_rates(*args)


def _step(rate, state):
    code = {"met": 0, "breached": 10, "invalid": 11, "failed": 12}[state]
    return SweepStep(rate, state, code, {})


@pytest.mark.parametrize(("states", "best", "code"), [
    (["met", "met", "breached"], 1.0, exitcodes.OK),
    (["met", "invalid", "met", "breached"], 1.5, exitcodes.OK),
    (["breached"], None, exitcodes.SLO_BREACHED),
    (["invalid", "breached"], None, exitcodes.SLO_BREACHED),
    (["invalid", "invalid", "invalid"], None, exitcodes.LOAD_INVALID),
    (["met", "failed"], 0.5, exitcodes.TARGET_UNUSABLE),
    (["met", "met", "met"], 1.5, exitcodes.OK),
])
def test_result_is_the_highest_rate_that_met_the_slo(states, best, code):
    steps = [_step(0.5 * (index + 1), state) for index, state in enumerate(states)]
    assert result_of(steps) == (best, code)


def test_a_step_reads_its_run_summary():
    summary = {"requests": {"measured": 20, "ok": 19}, "throughput_rps": 0.95, "valid": True, "invalid_reasons": [],
               "latency_ms": {"corrected": {"mean": 300.0, "p50": 250.0, "p90": 500.0, "p99": 800.0}},
               "goodput": {"rps": 0.9, "good": 18, "of": 20}, "slo": {"checks": [{"bound": "b", "state": "met"}]}}
    step = step_from_summary(1.0, exitcodes.SLO_BREACHED, summary)
    assert step.state == "breached" and step.figures["latency_ms"]["p50"] == 250.0
    assert step.figures["goodput"]["rps"] == 0.9
    failed = step_from_summary(1.0, exitcodes.TARGET_UNUSABLE, {"error": "gone"})
    assert failed.state == "failed" and failed.figures == {"error": "gone"}


def test_kneedle_finds_the_bend_of_a_hockey_stick_and_none_on_a_line():
    rates = [0.4, 0.7, 1.0, 1.3, 1.6]
    found = knee.kneedle(rates, [400, 410, 430, 2500, 6000])
    assert found["rate"] == 1.0
    assert knee.kneedle(rates, [100, 200, 300, 400, 500])["rate"] is None
    assert knee.kneedle(rates[:2], [1, 2])["rate"] is None
    assert knee.kneedle(rates, [400, None, 430, 2500, 6000])["rate"] == 1.0
    late = knee.kneedle([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [100, 100, 390, 690, 980, 1270])
    assert late["rate"] == 1.0 and late["bend"] == pytest.approx(0.2 - 0.0)  # the bend is the knee's own


def test_saturation_is_the_first_rate_throughput_does_not_follow():
    result = knee.saturation([0.5, 1.0, 1.5, 2.0], [0.5, 0.99, 1.05, 1.0])
    assert result["rate"] == 1.5 and result["last_tracking_rate"] == 1.0
    assert knee.saturation([0.5, 1.0], [0.5, 1.0])["rate"] is None


def test_sweep_report_shows_the_result_and_both_plots(tmp_path):
    from geopool.load.report.sweep_report import render_sweep_html

    def figures(p50, throughput):
        return {"latency_ms": {"mean": p50, "p50": p50, "p90": p50 * 2, "p99": p50 * 3},
                "throughput_rps": throughput, "goodput": {"rps": throughput, "good": 10, "of": 10},
                "valid": True, "invalid_reasons": [], "checks": [], "requests": 10, "ok": 10}
    steps = [SweepStep(0.5, "met", 0, figures(400, 0.5)), SweepStep(1.0, "met", 0, figures(420, 1.0)),
             SweepStep(1.5, "breached", 10, figures(3000, 1.0))]
    document = sweep_document(steps, [0.5, 1.0, 1.5, 2.0], 1.0, 0, "slo.toml", "http://127.0.0.1:1", 20.0, 2.0)
    assert document["stopped_early"] and document["knee"]["latency_p50"]["rate"] == 1.0
    assert document["knee"]["saturation"]["rate"] == 1.5
    page = render_sweep_html(json.loads(json.dumps(document)))
    assert 'id="plot-latency"' in page and 'id="plot-rates"' in page
    assert "Highest rate meeting the SLO:\n 1.0 req/s" in page


# ------------------------------------------------------------------------------------- command line


@pytest.mark.parametrize(("args", "message"), [
    (["--rates", "1,0.5"], "--rates must increase"),
    (["--start", "1"], "all three of --start, --step and --max"),
    (["--rates", "1", "--step-duration", "5", "--warmup", "5"], "--warmup 5 must be below --step-duration 5"),
    (["--rates", "1", "--slo", "missing.toml"], "missing.toml"),
    (["--rates", "1", "--no-slo"], "No such option"),
])
def test_sweep_usage_errors_exit_4_with_one_line(args, message, tmp_path):
    slo_args = [] if "--slo" in args else ["--slo", str(REPO / "load" / "slo" / "example.toml")]
    result = subprocess.run(
        [sys.executable, "-m", "geopool.cli", "sweep", "--base-url", "http://127.0.0.1:9", "--input-dtype",
         "float32", "--report-dir", str(tmp_path / "r"), *slo_args, *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**__import__("os").environ,
                                                                           "PYTHONPATH": str(REPO)})
    assert result.returncode == exitcodes.USAGE, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()  # nothing started


def test_sweep_without_slo_is_a_usage_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "geopool.cli", "sweep", "--rates", "1"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env={**__import__("os").environ,
                                                                        "PYTHONPATH": str(REPO)})
    assert result.returncode == exitcodes.USAGE and "needs --slo FILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_staged_run_reports_its_stages_in_summary_console_and_html(tmp_path, capsys):
    from geopool.load.report import run_report

    scenario, records = _step_run()
    log = RecordLog(tmp_path / "records.jsonl")
    log.append(records)
    log.close()
    spec = slo.slo_from({"latency": {"corrected": {"p50": 500}}})
    code = run_report.finalize(tmp_path, scenario=scenario, slo_spec=spec, target={"url": "http://127.0.0.1:1"},
                           samples=[], slots={0: {"t0": 100.0}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [stage["slo_breached"] for stage in summary["stages"]] == [False, True]
    assert code == slo.EXIT_BREACH  # the run as a whole: its p50 is the second stage's 2 s
    out = capsys.readouterr().out
    assert "stage 1 (0-20 s, rate 1/s): 18 ok" in out and "stage 2 (20-40 s, rate 1/s)" in out
    page = (tmp_path / "report.html").read_text()
    assert 'id="stages"' in page and "2000.0" in page


def test_the_gate_summary_shows_goodput_next_to_throughput():
    from geopool.gate.markdown import render_markdown

    data = Path(__file__).resolve().parents[1] / "gate" / "data" / "load" / "summary.json"
    summary = json.loads(data.read_text())
    gate = {"line": "PASS", "verdict": "pass", "exit_code": 0, "load": {"exit_code": 0}, "target": {}}
    without = render_markdown(gate, None, summary)
    summary["goodput"] = {"max_latency_ms": 6000.0, "latency": "corrected", "good": 19, "of": 20, "share": 0.95,
                          "rps": 0.87}
    text = render_markdown(gate, None, summary)
    assert "goodput" not in without
    assert "req/s, goodput 0.87 req/s (19/20 within 6000 ms)" in text
