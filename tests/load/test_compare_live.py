"""``geopool compare`` and ``--stop-on-breach`` against the session's real vLLM server (and the fault proxy).

One baseline run serves both comparisons: a second run of the same server ("no significant change",
exit 0) and a run behind the proxy's ``slow-tail:100:0.1`` (every pooling request 100 ms later:
"regressed", the p50 difference's interval around 100 ms, exit 14). Runs are 1-user closed loops of
30 s: a few hundred samples each, enough for p50-p95 intervals. Then a run that breaches its SLO from
the first request stops within seconds (exit 10) instead of running its 60 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from geopool import exitcodes
from geopool.proxy import FaultProxy

pytestmark = pytest.mark.live

GEOPOOL = str(Path(sys.executable).with_name("geopool"))
#: 1 user, 30 s; window means drift on 2 cores shared with the server: validity is not what is tested here.
RUN = ("--scenario", "closed", "--users", "1", "--duration", "30", "--warmup", "5", "--window-requests", "20",
       "--stability-tolerance", "0.5")


def load_run(folder: Path, url: str, *args: str, slo: str | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                                                   dict]:
    command = [GEOPOOL, "load", "--base-url", url, "--input-dtype", "float32", "--report-dir", str(folder), *args]
    if slo is not None:
        (folder.parent / f"{folder.name}-slo.toml").write_text(slo)
        command += ["--slo", str(folder.parent / f"{folder.name}-slo.toml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=folder.parent)
    summary = folder / "summary.json"
    assert summary.is_file(), f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result, json.loads(summary.read_text())


def compare(base: Path, new: Path, report: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = subprocess.run([GEOPOOL, "compare", str(base), str(new), "--report", str(report)], capture_output=True,
                            text=True, timeout=120)
    assert (report / "compare.json").is_file(), result.stderr
    return result, json.loads((report / "compare.json").read_text())


@pytest.fixture(scope="module")
def baseline(embedded_server, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compare") / "base"
    result, summary = load_run(folder, embedded_server.url, *RUN)
    assert result.returncode in (exitcodes.OK, exitcodes.LOAD_INVALID), result.stdout[-2000:]
    assert summary["requests"]["ok"] >= 50, summary["requests"]
    return folder


def test_two_runs_of_one_server_show_no_significant_change(embedded_server, baseline):
    again = baseline.parent / "again"
    load_run(again, embedded_server.url, *RUN)
    result, compared = compare(baseline, again, baseline.parent / "same")
    assert compared["verdict"] == "no significant change", (compared["line"], compared["figures"])
    assert result.returncode == exitcodes.OK, result.stdout + result.stderr
    assert all(row["verdict"] == "no significant change" for row in compared["figures"]), compared["figures"]


def test_a_run_behind_a_100_ms_delay_is_a_regression_of_about_100_ms(embedded_server, baseline):
    slow = baseline.parent / "slow"
    with FaultProxy(embedded_server.url, "slow-tail:100:0.1", max_seconds=300) as proxy:
        load_run(slow, proxy.url, *RUN)
    result, compared = compare(baseline, slow, baseline.parent / "regressed")
    assert result.returncode == exitcodes.REGRESSED, result.stdout + result.stderr
    assert compared["verdict"] == "regressed" and "geopool compare: regressed at 95% confidence" in result.stdout
    p50 = compared["figures"][0]
    assert p50["figure"] == "p50" and p50["verdict"] == "regressed"
    low, high = p50["interval"]
    assert 60 <= low <= p50["difference"] <= high <= 160, p50  # the proxy's 100 ms, give or take the noise
    page = (baseline.parent / "regressed" / "compare.html").read_text()
    assert 'id="plot-cdf"' in page and compared["line"] in page


def test_a_breaching_run_stops_early_with_exit_10(embedded_server, tmp_path):
    with FaultProxy(embedded_server.url, "slow-tail:100:0.1", max_seconds=300) as proxy:
        result, summary = load_run(tmp_path / "stopped", proxy.url, "--scenario", "closed", "--users", "1",
                                   "--duration", "60", "--warmup", "0", "--stop-on-breach",
                                   slo="[latency.uncorrected]\np50 = 50\n")
    assert result.returncode == exitcodes.SLO_BREACHED, result.stdout[-2000:]
    stop = summary["stopped_early"]
    assert stop["bound"] == "latency.uncorrected.p50 <= 50 ms" and "binomial" in stop["why"]
    assert stop["at_s"] < 30 and summary["measured_seconds"] < 35, (stop, summary["measured_seconds"])
    assert "STOPPED EARLY at" in result.stdout
    assert 'id="stopped-early"' in (tmp_path / "stopped" / "report.html").read_text()
