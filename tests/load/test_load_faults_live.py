"""The load suite's verdicts on what a run counts, against the real embedded vLLM server through the fault
proxy: which bound failed, counts of requests, errors and verification failures, the corrected/uncorrected
gap a stall opens, the users a shape asks for. (The split of an open-loop schedule across Locust workers, on
one host and across network namespaces: test_distributed_netns.py.)

What these assert holds however busy the machine is (a delay or stall the proxy plants is seconds long),
so, unlike the latency-measuring runs (test_compare_live.py, test_sweep_live.py), they
share the machine with the other test workers. Runs are short: at most 20-60 s, and those that judge counts
end sooner, after the requests they need (--max-requests). (A slow tail that breaches a latency bound is
judged in the gate's run of the load phase: tests/gate/test_gate_live.py.)
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest
from load_runs import GEOPOOL, LOCUSTFILE, check_lines, records, run_load  # tests/ is on sys.path

from geopool.proxy import FaultProxy

pytestmark = pytest.mark.live

ERROR_SLO = """
[errors]
max_error_rate = 0.0
"""


def test_gate_trips_on_503s(embedded_server, tmp_path):
    with FaultProxy(embedded_server.url, "503:30", max_seconds=300) as proxy:
        # ended by its request budget: 15 s gave a busy box's 2 senders too few answers for one window of 20
        result, summary, _ = run_load(tmp_path, "--base-url", proxy.url, "--scenario", "closed", "--users", "2",
                                      "--duration", "60", "--max-requests", "40", "--warmup", "2",
                                      "--window-requests", "5", "--stability-tolerance", "10", slo=ERROR_SLO)
    assert result.returncode == 10, check_lines(result.stdout)
    requests = summary["requests"]
    assert requests["http_errors"] > 0 and requests["verification_failures"] == 0 and requests["ok"] > 0
    assert "SLO BREACHED     error rate <= 0: " in check_lines(result.stdout)
    assert f"{requests['http_errors']} HTTP + 0 transport errors" in result.stdout
    assert summary["locust"]["failures"] >= requests["http_errors"]  # Locust's own stats count them too


@pytest.mark.parametrize("encoding", ["base64", "bytes"])
def test_a_200_with_a_wrong_tensor_is_a_verification_failure(embedded_server, tmp_path, encoding):
    with FaultProxy(embedded_server.url, "nan:7", max_seconds=300) as proxy:
        result, summary, report_dir = run_load(tmp_path, "--base-url", proxy.url, "--scenario", "closed",
                                               "--users", "2", "--duration", "30", "--max-requests", "16",
                                               "--warmup", "0",
                                               "--response-encoding", encoding, slo=ERROR_SLO)
    assert summary["scenario"]["response_encoding"] == encoding
    assert result.returncode == 10, check_lines(result.stdout)
    requests = summary["requests"]
    assert requests["http_errors"] == 0 and requests["ok"] == 0
    assert requests["verification_failures"] == requests["finished"] > 0
    assert {r["status"] for r in records(report_dir)} == {200}
    assert all(r["detail"] == "1 non-finite values" for r in records(report_dir))
    assert "SLO BREACHED     verification failures <= 0" in check_lines(result.stdout)
    assert "INVALID: no successful request after warm-up" in result.stdout


def test_a_stall_shows_in_corrected_but_not_uncorrected_latency(embedded_server, tmp_path):
    # One sender, 1.5 arrivals/s, the server path held for 6 s: arrivals queue behind the stall.
    with FaultProxy(embedded_server.url, "stall:8:6", max_seconds=300) as proxy:
        _, summary, _ = run_load(tmp_path, "--base-url", proxy.url, "--scenario", "open-constant", "--rate", "1.5",
                                 "--users", "1", "--duration", "30", "--warmup", "2")
    corrected, uncorrected = summary["latency_ms"]["corrected"], summary["latency_ms"]["uncorrected"]
    assert corrected["p99"] > uncorrected["p99"] + 500, (corrected, uncorrected)
    assert corrected["p90"] > 2 * uncorrected["p90"], (corrected, uncorrected)
    assert summary["late_sends"]["count"] >= 5


def test_reference_verification_passes_exact_answers_and_catches_wrong_values_the_contract_check_passes(
        embedded_server, tmp_path):
    # One run, every second answer noised by the proxy: the exact answers must each match the reference of
    # their own input, the noised ones (right shape and dtype: the contract check passes them) must not. One
    # user: vLLM 0.32 mixes up location_coords between requests batched together (POOL-DET-003), so a lone
    # sender is what makes every answer comparable with its own input's reference.
    with FaultProxy(embedded_server.url, "noise:0.05:2", max_seconds=300) as proxy:
        result, summary, report_dir = run_load(
            tmp_path, "--base-url", proxy.url, "--scenario", "closed", "--users", "1", "--duration", "40",
            "--max-requests", "12", "--warmup", "0", "--pool-size", "3", "--verify", "reference",
            "--window-requests", "2",
            # a valid run (steady state) from a lone sender on a busy box: 12 s and windows of 3 gave 5 answers
            # at p50 2.5 s, one window; steadiness is not what this run judges
            "--stability-tolerance", "10",
            "--model-config", str(embedded_server.served_dir / "config.json"),
            "--reference-checkpoint", str(embedded_server.served_dir), "--numeric-bounds", "same-kernels",
            slo=ERROR_SLO)
    assert result.returncode == 10, check_lines(result.stdout) + str(summary["invalid_reasons"])
    requests = summary["requests"]
    assert requests["http_errors"] == 0 and requests["finished"] >= 6, requests
    answered = sorted((record for record in records(report_dir) if record["done"] is not None),
                      key=lambda record: record["done"])
    verdicts = [record["verdict"] for record in answered]
    # the proxy noised every second answer it passed on: in the order they came back, they alternate
    assert set(verdicts) == {"ok", "verify"} and all(a != b for a, b in itertools.pairwise(verdicts)), verdicts
    assert requests["ok"] == verdicts.count("ok") and requests["verification_failures"] == verdicts.count("verify")
    assert {record["item"] for record in answered if record["verdict"] == "ok"} == {0, 1, 2}
    assert all("differs from the reference of its own input" in record["detail"]
               for record in answered if record["verdict"] == "verify")


def test_a_shape_changes_the_number_of_users(embedded_server, tmp_path):
    (tmp_path / "scenarios.toml").write_text("""
[scenario.two-step]
mode = "closed"
duration_s = 24
warmup_s = 0
stages = [{ until_s = 10, users = 1 }, { until_s = 24, users = 3 }]
""")
    _, summary, report_dir = run_load(tmp_path, "--base-url", embedded_server.url, "--scenario", "two-step",
                                      "--scenario-file", str(tmp_path / "scenarios.toml"))
    rows = [r for r in records(report_dir) if r["done"] is not None]
    t0 = summary["t0"]

    def most_in_flight(start: float, end: float) -> int:
        inside = [r for r in rows if start <= r["sent"] - t0 < end]
        return max(sum(1 for other in rows if other["sent"] <= r["sent"] < other["done"]) for r in inside)

    assert most_in_flight(1, 8) == 1
    assert most_in_flight(14, 22) == 3


def _free_port() -> int:
    from geopool.server import free_port

    return free_port()


def test_bad_input_is_one_clear_line(tmp_path):
    unknown = subprocess.run([GEOPOOL, "load", "--base-url", "http://127.0.0.1:9", "--scenario", "nope"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 4 and "Traceback" not in unknown.stderr
    assert "error: unknown scenario 'nope'; the scenario file has: closed" in unknown.stderr
    (tmp_path / "bad.toml").write_text("[latency.corrected]\np97 = 3\n")
    bad_slo = subprocess.run([GEOPOOL, "load", "--base-url", "http://127.0.0.1:9", "--slo", str(tmp_path / "bad.toml")],
                             capture_output=True, text=True, timeout=60)
    assert bad_slo.returncode == 4 and "latency.corrected.p97 is not one of p50, p90, p95, p99, p99.9" in bad_slo.stderr
    no_host = subprocess.run([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "-t", "5s"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert no_host.returncode == 4 and "no target: pass --host URL" in no_host.stderr


def test_an_unreachable_target_exits_12_quickly(tmp_path):
    started = time.monotonic()
    result = subprocess.run([GEOPOOL, "load", "--base-url", f"http://127.0.0.1:{_free_port()}", "--input-dtype",
                             "float32", "--duration", "30",
                             "--report-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 12, result.stdout[-2000:] + result.stderr[-2000:]
    assert "is not reachable" in result.stdout + result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["verdict"] == "error"
    assert time.monotonic() - started < 60
