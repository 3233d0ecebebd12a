"""``geopool compare`` without a server: the statistics on synthetic samples, reading run folders (written
from synthetic records through the run's own statistics), the verdict, the exit codes and the usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import record, write_records  # tests/ is on sys.path (its conftest.py)

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.judge import stats
from geopool.load.judge.finished_run import read_run
from geopool.load.scenario import Scenario
from geopool.load.study import comparison
from geopool.load.study.compare import compare_runs

T0 = 1_700_000_000.0


def _gamma(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(20.0, 10.0, n) + shift  # ~200 ms, a right tail


def test_identical_distributions_show_no_significant_change():
    rows = comparison.compare_latencies(_gamma(1, 400), _gamma(2, 400))
    assert [row["figure"] for row in rows] == ["p50", "p90", "p95"]
    assert {row["verdict"] for row in rows} == {comparison.NO_CHANGE}
    assert all(row["interval"][0] < 0 < row["interval"][1] for row in rows)
    assert comparison.overall_verdict(rows) == comparison.NO_CHANGE


def test_a_100_ms_shift_is_a_regression_of_the_right_size():
    rows = comparison.compare_latencies(_gamma(1, 400), _gamma(2, 400, shift=100.0))
    p50 = rows[0]
    assert p50["verdict"] == comparison.REGRESSED
    assert 85 < p50["difference"] < 115 and p50["interval"][0] < 100 < p50["interval"][1]
    assert p50["relative_interval"][0] > 0
    assert comparison.overall_verdict(rows) == comparison.REGRESSED


def test_a_faster_run_is_an_improvement():
    rows = comparison.compare_latencies(_gamma(1, 400, shift=100.0), _gamma(2, 400))
    assert {row["verdict"] for row in rows} == {comparison.IMPROVED}


def test_a_significant_change_below_the_threshold_is_no_regression():
    rows = comparison.compare_latencies(_gamma(1, 3000), _gamma(2, 3000, shift=8.0), threshold=0.10)
    p50 = rows[0]
    assert p50["interval"][0] > 0  # significant...
    assert p50["verdict"] == comparison.NO_CHANGE and "within the 10% threshold" in p50["note"]  # ...but small
    assert comparison.compare_latencies(_gamma(1, 3000), _gamma(2, 3000, shift=8.0),
                                        threshold=0.01)[0]["verdict"] == comparison.REGRESSED


def test_percentiles_are_compared_only_when_both_runs_have_samples_beyond_them():
    assert comparison.comparable_percentiles(9, 1000) == []
    assert comparison.comparable_percentiles(60, 1000) == [50.0, 90.0]
    assert comparison.comparable_percentiles(500, 800) == [50.0, 90.0, 95.0, 99.0]


def test_intervals_cover_the_true_difference_about_as_often_as_stated():
    covered = 0
    trials = 150
    for trial in range(trials):
        rows = comparison.compare_latencies(_gamma(1000 + trial, 200), _gamma(5000 + trial, 200, shift=30.0),
                                            resamples=400, seed=trial)
        low, high = rows[0]["interval"]
        covered += low <= 30.0 <= high
    assert 0.85 <= covered / trials <= 1.0, covered


def test_blocks_widen_the_interval_of_autocorrelated_latencies():
    rng = np.random.default_rng(3)
    drift = np.zeros(600)
    for i in range(1, 600):  # AR(1): consecutive requests share the server's state
        drift[i] = 0.95 * drift[i - 1] + rng.normal(0, 10)
    latencies = 200 + drift
    block = comparison.block_resample_indices(600, 1000, np.random.default_rng(0))
    iid = np.random.default_rng(0).integers(0, 600, size=(1000, 600))
    assert np.median(latencies[block], axis=1).std() > 1.5 * np.median(latencies[iid], axis=1).std()


def test_window_rates_and_throughput_comparison():
    steady = np.arange(1, 201) * 0.1  # 10 completions/s for 20 s
    rates = comparison.window_rates(steady, 0.0)
    assert len(rates) == 20 and np.allclose(rates, 10.0, rtol=0.1)
    assert len(comparison.window_rates(steady[:40], 0.0)) == 0  # fewer than 5 windows of ~10
    slower = comparison.window_rates(np.arange(1, 201) * 0.2, 0.0)
    row = comparison.compare_throughput(rates + np.random.default_rng(0).normal(0, 0.3, 20), slower)
    assert row["verdict"] == comparison.REGRESSED and -0.55 < row["relative"] < -0.45
    assert comparison.compare_throughput(rates, rates[:3]) is None


def test_shift_test_reports_the_direction():
    shifted = comparison.shift_test(_gamma(1, 200), _gamma(2, 200, shift=100.0))
    assert shifted["p_value"] < 1e-6 and shifted["p_new_slower"] > 0.9


# ------------------------------------------------------------------------------------ run folders


def write_run(folder: Path, latencies_ms: np.ndarray, *, mode: str = "closed", valid_tolerance: float = 1.0,
              name: str = "closed") -> Path:
    """A run folder as `geopool load` leaves it, from synthetic records through the run's own statistics."""
    scenario = Scenario(name, mode=mode, users=1, duration_s=60.0, warmup_s=1.0, window_requests=20,
                        stability_tolerance=valid_tolerance)
    records, now = [], T0 + 1.0
    for seq, latency in enumerate(latencies_ms):
        done = now + latency / 1000.0
        records.append(record(now, done, first_byte=done, intended=now if mode == "open" else None, seq=seq))
        now = done
    folder.mkdir(parents=True)
    write_records(folder / "records.jsonl", records)
    summary = stats.summarize(records, scenario, T0)
    summary.update(scenario=scenario.to_dict(), t0=T0, target={"url": "http://127.0.0.1:8000",
                                                                "vllm_version": "0.32.0", "model": "m"})
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_a_regressed_run_is_found_from_its_folder_and_a_gate_folder_is_read_through_its_load(tmp_path):
    base = read_run(write_run(tmp_path / "base", _gamma(1, 300)))
    gate = tmp_path / "gate"
    write_run(gate / "load", _gamma(2, 300, shift=100.0))
    new = read_run(gate)
    assert new.folder == gate / "load" and len(new.done) == len(new.latencies_ms["uncorrected"])
    assert np.all(np.diff(new.done) >= 0)  # completion order: the blocks are runs of consecutive requests
    result = compare_runs(base, new)
    assert result["verdict"] == comparison.REGRESSED and result["exit_code"] == exitcodes.REGRESSED
    assert result["latency"] == "uncorrected" and result["line"].startswith("regressed at 95% confidence")
    throughput = next(row for row in result["figures"] if row["figure"] == "throughput")
    assert throughput["verdict"] == comparison.REGRESSED and throughput["relative"] < -0.2


def test_an_invalid_run_exits_11_unless_allowed(tmp_path):
    base = read_run(write_run(tmp_path / "base", _gamma(1, 300)))
    new = read_run(write_run(tmp_path / "new", _gamma(2, 300), valid_tolerance=1e-9))
    assert new.summary["valid"] is False
    result = compare_runs(base, new)
    assert result["verdict"] == comparison.NO_CHANGE and result["exit_code"] == exitcodes.LOAD_INVALID
    assert "NEW run is invalid: no steady state" in result["line"]
    assert compare_runs(base, new, allow_invalid=True)["exit_code"] == exitcodes.OK


def test_runs_of_different_loops_are_refused_and_other_differences_warned(tmp_path):
    base = read_run(write_run(tmp_path / "base", _gamma(1, 300)))
    with pytest.raises(ConfigError, match="BASE ran a closed loop and NEW a open loop"):
        compare_runs(base, read_run(write_run(tmp_path / "open", _gamma(2, 300), mode="open", name="open")))
    renamed = read_run(write_run(tmp_path / "renamed", _gamma(2, 300), name="closed-2"))
    assert "scenario name differs: 'closed' in BASE, 'closed-2' in NEW" in compare_runs(base, renamed)["warnings"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geopool.cli", "compare", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_the_command_writes_its_outputs_and_exits_by_the_verdict(tmp_path):
    base = write_run(tmp_path / "base", _gamma(1, 300))
    new = write_run(tmp_path / "new", _gamma(2, 300, shift=100.0))
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text("[latency.uncorrected]\np50 = 250\n")
    result = _cli(str(base), str(new), "--slo", str(slo_file), "--report-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == exitcodes.REGRESSED, result.stderr
    assert "geopool compare: regressed at 95% confidence" in result.stdout
    assert "on BASE: ok" in result.stdout and "on NEW: slo-breached" in result.stdout
    written = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert written["figures"][0]["figure"] == "p50" and written["slo"]["new"]["exit_code"] == exitcodes.SLO_BREACHED
    page = (tmp_path / "out" / "compare.html").read_text()
    assert 'id="plot-cdf"' in page and "regressed at 95% confidence" in page and "0.32.0" in page
    same = _cli(str(base), str(write_run(tmp_path / "again", _gamma(3, 300))), cwd=tmp_path)
    assert same.returncode == exitcodes.OK and "no significant change" in same.stdout
    assert (tmp_path / "again" / "compare" / "compare.json").is_file()


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("empty", "holds no summary.json"),
    ("no-records", "records file"),
    ("failed-run", "the run produced no statistics (target down)"),
    ("open", "compare runs of one mode"),
])
def test_usage_errors_are_one_line_and_exit_4(tmp_path, case, message):
    base = write_run(tmp_path / "base", _gamma(1, 100))
    other = tmp_path / case
    if case == "empty":
        other.mkdir()
    elif case == "no-records":
        write_run(other, _gamma(2, 100))
        (other / "records.jsonl").unlink()
    elif case == "failed-run":
        other.mkdir()
        (other / "summary.json").write_text(json.dumps({"verdict": "error", "error": "target down"}))
    elif case == "open":
        write_run(other, _gamma(2, 100), mode="open", name="open")
    result = _cli(str(base), str(other), cwd=tmp_path)
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr, \
        result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_runs_too_small_for_any_figure_are_not_compared_and_exit_11(tmp_path):
    base = read_run(write_run(tmp_path / "base", _gamma(1, 8)))
    new = read_run(write_run(tmp_path / "new", _gamma(2, 8, shift=400.0)))
    result = compare_runs(base, new, allow_invalid=True)
    assert result["figures"] == [] and result["verdict"] == "not compared"
    assert result["exit_code"] == exitcodes.LOAD_INVALID  # nothing compared is never a pass
    assert any("not compared" in warning and "p50" in warning for warning in result["warnings"])


def test_skipped_tail_percentiles_are_named(tmp_path):
    result = compare_runs(read_run(write_run(tmp_path / "base", _gamma(1, 60))),
                          read_run(write_run(tmp_path / "new", _gamma(2, 60))), allow_invalid=True)
    assert [row["figure"] for row in result["figures"] if row["unit"] == "ms"] == ["p50", "p90"]
    assert any(warning.endswith("p95, p99") for warning in result["warnings"]), result["warnings"]


def test_goodput_under_slo_is_recomputed_from_the_records_with_its_bound(tmp_path):
    from geopool.load.judge import slo

    run = read_run(write_run(tmp_path / "base", _gamma(1, 100)))
    spec = slo.slo_from({"goodput": {"max_latency_ms": 10_000.0, "min_share": 0.5}})
    view = compare_runs(run, run, slo_spec=spec, allow_invalid=True)["slo"]["base"]
    assert view["goodput"]["good"] == view["goodput"]["of"] == 100
    share = next(check for check in view["checks"] if check["bound"].startswith("goodput share"))
    assert share["state"] == "met" and share["samples"] == 100


@pytest.mark.parametrize("damage", ["no-t0", "scenario-text", "record-without-done"])
def test_a_damaged_run_folder_is_a_usage_error_not_a_traceback(tmp_path, damage):
    folder = write_run(tmp_path / "base", _gamma(1, 50))
    summary = json.loads((folder / "summary.json").read_text())
    if damage == "no-t0":
        del summary["t0"]
    elif damage == "scenario-text":
        summary["scenario"] = "x"
    else:
        (folder / "records.jsonl").write_text(json.dumps({"seq": 0, "verdict": "ok", "sent": T0 + 5}) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match="is not a geopool run's"):
        read_run(folder)
