"""``geopool compare`` and ``--stop-on-breach`` against the session's real vLLM server (and the fault proxy).

Each comparison is between the two halves of one 1-user closed-loop run (45 s, ~0.3-0.7 s a request),
its requests of even and of odd sequence numbers: two samples taken at one time, so whatever else the
machine runs weighs on both alike (two consecutive runs drift as a whole on a busy box: +17.7 % at p50
with a load average of 5, and a 100 ms delay measured +43 to +309 ms). Through the proxy without a fault
the halves show "no significant change" (exit 0); through its ``slow-every:2:0.5``, which delays every
second pooling request by 500 ms, the odd half is "regressed" by about 500 ms at p50 (exit 14): a busy box
spread ~25 samples of each half over 200-800 ms, where +100 ms and once +333 ms were not significant. Then a
run that breaches its SLO from the first request stops within seconds (exit 10) instead of its 60 s.

The delayed run and the breaching run hold on a busy box (a 500 ms delay against bounds of 250-900 ms; a breach
from the first request): they run among the other units. The unfaulted run, whose halves must not differ,
runs in one of the last units, with as little else on the machine as the schedule allows (tests/conftest.py).
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
#: 1 user, 45 s: ~0.3-0.7 s a request, so 60-150 samples, 30-75 in each interleaved half. Window means of 5
#: requests drift a lot on 2 shared cores; a run's validity is not what is tested here, so the steady-state
#: tolerance is wide.
# steadiness is not what compare is judged on here: window means swing by 100 % and more while other
# test workers' servers compute
RUN = ("--scenario", "closed", "--users", "1", "--duration", "45", "--warmup", "5", "--window-requests", "5",
       "--stability-tolerance", "3")


def load_command(folder: Path, url: str, *args: str, slo: str | None = None) -> list[str]:
    command = [GEOPOOL, "load", "--base-url", url, "--input-dtype", "float32", "--report-dir", str(folder), *args]
    if slo is not None:
        (folder.parent / f"{folder.name}-slo.toml").write_text(slo)
        command += ["--slo", str(folder.parent / f"{folder.name}-slo.toml")]
    return command


def finished(folder: Path, result: subprocess.CompletedProcess[str]) -> dict:
    summary = folder / "summary.json"
    assert summary.is_file(), f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(summary.read_text())


def load_run(folder: Path, url: str, *args: str, slo: str | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                                                   dict]:
    result = subprocess.run(load_command(folder, url, *args, slo=slo), capture_output=True, text=True, timeout=300,
                            cwd=folder.parent)
    return result, finished(folder, result)


def compare(base: Path, new: Path, report: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = subprocess.run([GEOPOOL, "compare", str(base), str(new), "--report-dir", str(report)], capture_output=True,
                            text=True, timeout=120)
    assert (report / "compare.json").is_file(), result.stderr
    return result, json.loads((report / "compare.json").read_text())


def proxied_run(embedded_server, folder: Path, fault: str) -> Path:
    """A 1-user run through the proxy planting ``fault`` (relaying ~4 MB a request costs the proxy ~60 ms
    itself: both halves pay it alike)."""
    with FaultProxy(embedded_server.url, fault, max_seconds=300) as proxy:
        load_run(folder, proxy.url, *RUN)
    return folder


@pytest.fixture(scope="module")
def baseline(embedded_server, tmp_path_factory) -> Path:
    return proxied_run(embedded_server, tmp_path_factory.mktemp("compare") / "base", "none")


def interleaved_halves(run: Path, into: Path) -> tuple[Path, Path]:
    """The run's requests split into two runs, even and odd sequence numbers: two samples of one server at
    one time, so no change between them is real (two runs side by side on 2 cores fall into lockstep)."""
    halves = (into / "even", into / "odd")
    lines = (run / "records.jsonl").read_text().splitlines()
    for parity, half in enumerate(halves):
        half.mkdir(parents=True)
        (half / "summary.json").write_text((run / "summary.json").read_text())
        (half / "records.jsonl").write_text("".join(f"{line}\n" for line in lines
                                                    if json.loads(line)["seq"] % 2 == parity))
    return halves


def test_two_samples_of_one_server_show_no_significant_change(baseline, tmp_path):
    even, odd = interleaved_halves(baseline, tmp_path)
    result, compared = compare(even, odd, tmp_path / "same")
    assert compared["verdict"] == "no significant change", (compared["line"], compared["figures"])
    assert result.returncode == exitcodes.OK, result.stdout + result.stderr
    assert all(row["verdict"] == "no significant change" for row in compared["figures"]), compared["figures"]
    assert all(facts["samples"] >= 20 for facts in (compared["base"], compared["new"])), compared


def test_requests_behind_a_500_ms_delay_are_a_regression_of_about_500_ms(embedded_server, tmp_path):
    # one user's closed loop after the preflight's seed request (the proxy's 1st pooling request): the proxy's
    # 2nd, 4th, ... pooling request is the run's sequence number 0, 2, ...
    delayed, prompt = interleaved_halves(proxied_run(embedded_server, tmp_path / "slow", "slow-every:2:0.5"),
                                         tmp_path / "halves")
    result, compared = compare(prompt, delayed, tmp_path / "regressed")
    assert result.returncode == exitcodes.REGRESSED, result.stdout + result.stderr
    assert compared["verdict"] == "regressed" and "geopool compare: regressed at 95% confidence" in result.stdout
    p50 = compared["figures"][0]
    assert p50["figure"] == "p50" and p50["verdict"] == "regressed"
    low, high = p50["interval"]
    # the proxy's 500 ms, within what a busy box adds to one half's median and not the other's: a 50 ms
    # or a 2 s "regression" fails
    assert 250 <= p50["difference"] <= 900 and low >= 50 and high <= 1300, p50
    page = (tmp_path / "regressed" / "compare.html").read_text()
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
