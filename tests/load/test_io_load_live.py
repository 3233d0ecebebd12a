"""The load suite in image-to-image mode against the session's real image-to-image server (geopool's plugin).

One closed-loop run (2 users, 30 requests or 50 s: a busy box answered 8 in 22 s once) through the SLO gate,
with the GeoTIFFs in a folder of the test's that the server on this machine reads by the same paths: the gate's
verdict, verified answers and the mode in summary.json, and the report drawn by headless Chromium. What it
asserts does not depend on the machine's speed beyond the SLO's wide bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from page_text import PageText, assert_plots_drawn, rendered_dom  # tests/ is on sys.path (its conftest.py)

pytestmark = pytest.mark.live

GEOPOOL = str(Path(sys.executable).with_name("geopool"))
#: Wide bounds: the run checks the gate's mechanics in this mode, not the machine's speed (~1 s a tile).
HOLDING_SLO = """
[latency.uncorrected]
p50 = 20000
[throughput]
min_rps = 0.1
[errors]
max_error_rate = 0.0
max_verification_failures = 0
[goodput]
max_latency_ms = 20000
min_share = 0.5
"""
POOL_SIZE = 3


@pytest.fixture(scope="module")
def io_run(io_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("io-load")
    (folder / "slo.toml").write_text(HOLDING_SLO)
    report_dir, input_dir = folder / "run", folder / "inputs"
    command = [GEOPOOL, "load", "--base-url", io_server.url, "--mode", "image-to-image",
               "--io-input-dir", str(input_dir), "--scenario", "closed", "--users", "2", "--duration", "50",
               "--max-requests", "30", "--warmup", "3", "--pool-size", str(POOL_SIZE),
               # windows of 3 requests (~1.5 s each here): a busy box answered only 8-14 in 22 s, and
               # their means drift by 100 % and more while other test workers' servers compute: steadiness
               # is not judged here
               "--window-requests", "3", "--stability-tolerance", "10",
               "--slo", str(folder / "slo.toml"), "--report-dir", str(report_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=folder)
    summary_path = report_dir / "summary.json"
    assert summary_path.is_file(), f"no summary.json; exit {result.returncode}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result, json.loads(summary_path.read_text()), report_dir, input_dir, io_server


def test_an_image_to_image_run_passes_the_gate_with_every_answer_verified(io_run):
    result, summary, report_dir, input_dir, server = io_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert summary["verdict"] == "pass" and summary["valid"]
    assert summary["mode"] == "image-to-image"
    assert [check["state"] for check in summary["slo"]["checks"]] == ["met"] * 5
    requests = summary["requests"]
    assert requests["ok"] == requests["measured"] >= 11  # p50 and goodput need 11 samples
    assert requests["verification_failures"] == requests["http_errors"] == requests["transport_errors"] == 0
    records = [json.loads(line) for line in (report_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == requests["total"] and {r["verdict"] for r in records} == {"ok"}
    assert {r["item"] for r in records} == set(range(POOL_SIZE))  # every input of the pool was sent
    # the pool's GeoTIFFs are in the folder the server read them from, under the same absolute paths
    assert sorted(p.name for p in input_dir.glob("*.tif")) == [f"geopool-load-0-{k}.tif" for k in range(POOL_SIZE)]
    io = summary["io"]
    assert io["input_dir"] == str(input_dir.resolve()) and io["inputs"] == POOL_SIZE
    assert io["plugin"] is None  # a server at a URL does not say which plugin answers
    assert summary["target"]["model"] == server.model_name
    assert "mode: image-to-image through the server's IO-processor plugin" in result.stdout
    assert "verdict: pass (exit 0)" in result.stdout


def test_the_image_to_image_report_renders_in_headless_chromium(io_run, tmp_path):
    summary, report_dir = io_run[1], io_run[2]
    dom = rendered_dom(report_dir / "report.html", tmp_path / "profile")
    body = dom[dom.index("<body"):]
    drawn = PageText(body)
    assert "Verdict: pass (exit 0)" in drawn.text
    mode = body[body.index('id="mode"'):body.index('id="verdict"')]
    assert "image-to-image through the server's IO-processor plugin" in mode
    assert f"{summary['io']['inputs']}" in mode and summary["io"]["input_dir"] in mode
    order = [drawn.ids.index(i) for i in ("mode", "verdict", "requests", "slo", "plot-latency")]
    assert order == sorted(order)
    assert_plots_drawn(body, ("latency", "throughput", "cdf", "queue"))
