"""The image-to-image conformance family run as a user runs it (``geopool conformance --mode image-to-image``):
against geopool's plugin (the session's ``io_server``, as a URL), and through the fault proxy shifting
the answer's transform (POOL-IO-002 fails). TerraTorch's stock plugin and the D8-only plugin start servers of
their own: tests/conformance/test_io_plugins_live.py, a unit of work of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from io_runs import conformance, evidence, outcomes  # tests/ is on sys.path

from geopool import exitcodes
from geopool.conformance.registry import load_registry
from geopool.proxy import FaultProxy
from geopool.server import terratorch_version

pytestmark = pytest.mark.live

IO_IDS = set(load_registry(mode="image-to-image"))


def against(server, folder: Path, *args: str) -> list[str]:
    return ["--base-url", server.url, "--io-input-dir", str(folder / "inputs"), "--plugin", server.plugin,
            "--terratorch-version", terratorch_version() or "", *args]


def test_geopools_plugin_passes_but_the_listed_defects(io_server, tmp_path):
    result, report = conformance(tmp_path, *against(io_server, tmp_path, "--destructive",
                                                    "--reference-checkpoint", str(io_server.served_dir)))
    assert result.returncode == exitcodes.OK, result.stdout[-5000:]
    found = outcomes(report)
    assert set(found) == IO_IDS  # the tensor mode's requirements are not part of this run
    passed = {rid for rid, outcome in found.items() if outcome == "pass"}
    assert {"POOL-IO-001", "POOL-IO-002", "POOL-IO-003", "POOL-IO-004", "POOL-IO-011", "POOL-IO-012"} <= passed
    expected = {rid for rid, outcome in found.items() if outcome == "expected-fail"}
    assert {"POOL-IO-006", "POOL-IO-015", "POOL-IO-018", "POOL-IO-021", "POOL-IO-023"} <= expected, found
    assert found["POOL-IO-019"] == "skip" and "POOL-IO-019" in report["unchecked_line"]
    assert "geopool_segmentation" in report["target"]["plugin"] and "image-to-image through" in result.stdout
    stall = json.loads(evidence(report, "POOL-IO-023"))
    print("POOL-IO-023 evidence:", stall)  # the measured /health stall, for the note
    assert "longest_health_stall_s" in json.dumps(stall)


def test_a_shifted_transform_through_the_proxy_fails_georeferencing(io_server, tmp_path):
    with FaultProxy(io_server.url, "geotiff-shift:30", max_seconds=300) as proxy:
        result, report = conformance(tmp_path, "--base-url", proxy.url, "--io-input-dir", str(tmp_path / "inputs"),
                                     "--plugin", "geopool", "--terratorch-version", terratorch_version() or "",
                                     "-k", "test_a_valid_geotiff_gets_a_geotiff_with_its_georeferencing")
    assert result.returncode == exitcodes.FAILED, result.stdout[-4000:]
    found = outcomes(report)
    assert found["POOL-IO-002"] == "fail" and found["POOL-IO-001"] == "pass" and found["POOL-IO-003"] == "pass"
    assert "transform" in evidence(report, "POOL-IO-002")
