"""The image-to-image conformance family run as a user runs it (``geopool conformance --mode image-to-image``):
against geopool's plugin (the session's ``io_server``, as a URL), and through the fault proxy: the
image-to-image rows of the fault matrix (``IO_MATRIX``, ``IO_CONTROLS`` of geopool.conformance.matrix).
TerraTorch's stock plugin and the D8-only plugin start servers of their own: tests/conformance/
test_io_plugins_live.py, a unit of work of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from io_runs import conformance, evidence, outcomes  # tests/ is on sys.path

from geopool import exitcodes
from geopool.conformance.matrix import IO_CONTROLS, IO_MATRIX
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


@pytest.mark.parametrize("row", [*IO_MATRIX, *IO_CONTROLS])
def test_the_image_to_image_rows_of_the_fault_matrix(io_server, tmp_path, row):
    """Each row as a user runs it through the proxy, with no --reference-checkpoint: a catch row's requirements
    fail (the class map judged by the golden maps alone), the others it selects hold; a control's pass."""
    control = row in IO_CONTROLS
    selection, ids = (IO_CONTROLS if control else IO_MATRIX)[row]
    names = " or ".join(test.split("::")[1] for test in selection)
    with FaultProxy(io_server.url, row, max_seconds=300) as proxy:
        result, report = conformance(tmp_path, "--base-url", proxy.url, "--io-input-dir", str(tmp_path / "inputs"),
                                     "--plugin", "geopool", "--terratorch-version", terratorch_version() or "",
                                     *(["--expectations", "none"] if control else []), "-k", names)
    found = outcomes(report)
    if control:
        assert result.returncode == exitcodes.OK, result.stdout[-4000:]
        assert {rid: found[rid] for rid in ids} == dict.fromkeys(ids, "pass"), found
        return
    assert result.returncode == exitcodes.FAILED, result.stdout[-4000:]
    assert {rid: found[rid] for rid in ids} == dict.fromkeys(ids, "fail"), found
    unjudged = ("skip", "partial", "not-run")
    others = {rid: outcome for rid, outcome in found.items() if rid not in ids and outcome not in unjudged}
    assert others and set(others.values()) <= {"pass", "expected-fail"}, found  # only the planted defect fails
    if row.startswith("geotiff-shift"):
        assert "transform" in evidence(report, "POOL-IO-002")
    else:
        failed = json.loads(evidence(report, "POOL-IO-011"))
        assert sum("does not match the golden class map" in json.dumps(test) for test in failed) == 2, failed
