"""The image-to-image conformance family against the plugins geopool does not ship, each on a server the run
starts itself (no URL): TerraTorch's stock plugin (D8 on 1.2.10) and the D8-only plugin on float32 (D9: the
engine dies)."""

from __future__ import annotations

import pytest
from io_runs import conformance, evidence, outcomes  # tests/ is on sys.path

from geopool import exitcodes
from geopool.server import terratorch_version

pytestmark = pytest.mark.live


def test_the_stock_plugin_on_terratorch_1_2_10_fails_every_request_with_d8(tmp_path):
    if terratorch_version() != "1.2.10":
        pytest.skip(f"D8 is TerraTorch 1.2.10-1.2.12's; installed: {terratorch_version()}")
    # one pass, no shrinking: under D8 every generated raster fails at once, and shrinking only repeats that
    result, report = conformance(tmp_path, "--plugin", "stock", "--hypothesis-profile", "fast")
    assert result.returncode == exitcodes.OK, result.stdout[-5000:]  # every failure is the stock file's
    found = outcomes(report)
    assert found["POOL-IO-001"] == "expected-fail" and "asyncio.run() cannot be called" in evidence(report,
                                                                                                   "POOL-IO-001")
    for rid in ("POOL-IO-006", "POOL-IO-012", "POOL-IO-015", "POOL-IO-018", "POOL-IO-021"):
        assert found[rid] == "expected-fail", (rid, found[rid])
    assert {"POOL-IO-002", "POOL-IO-003"} <= {row["id"] for row in report["unchecked_must"]}  # D8 hides them
    assert "terratorch_segmentation (TerraTorch's own, unmodified)" in report["target"]["plugin"]


def test_the_d8_only_plugin_on_float32_shows_d9(tmp_path):
    result, report = conformance(tmp_path, "--plugin", "loopfix", "-k", "own_dtype", timeout=900)
    assert result.returncode == exitcodes.OK, result.stdout[-5000:]
    assert outcomes(report)["POOL-IO-012"] == "expected-fail"
    shown = evidence(report, "POOL-IO-012")
    assert "died" in shown or "fails" in shown, shown
    # its only test killed the engine: no restart after the session's last test (a vLLM start-up saved)
    assert "server restarted 0×" in result.stdout, result.stdout[-3000:]
