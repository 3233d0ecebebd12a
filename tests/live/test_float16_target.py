"""A float16 server and a user who does not say so: geopool must not kill it with float32 inputs.

vLLM 0.32 does not cast inputs, and a tensor of another dtype kills its engine; a server does not
report the dtype it was loaded with. So against a URL every entry point refuses to send a pooling
request until ``--input-dtype`` is given, and says so in one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from geopool.client import PoolingClient
from geopool.resources import suite_dir

pytestmark = pytest.mark.live
GEOPOOL = str(Path(sys.executable).with_name("geopool"))


def _lines_naming_input_dtype(output: str) -> list[str]:
    return [line for line in output.splitlines() if "pass --input-dtype" in line]


def test_no_input_dtype_stops_every_entry_point_before_any_pooling_request(float16_server, pooling_requests,
                                                                            tmp_path):
    url = float16_server.url
    before = pooling_requests(url)
    conformance = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite_dir()), "-p", "no:cacheprovider", "--base-url", url,
         "--conformance-report", str(tmp_path / "r.json")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    load = subprocess.run([GEOPOOL, "load", "--base-url", url, "--report-dir", str(tmp_path / "load")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    request = subprocess.run([GEOPOOL, "request", "--base-url", url], capture_output=True, text=True, cwd=tmp_path,
                             timeout=120)
    assert conformance.returncode == 4, conformance.stdout[-3000:]
    assert len(_lines_naming_input_dtype(conformance.stdout + conformance.stderr)) == 1
    assert " passed" not in conformance.stdout and " failed" not in conformance.stdout
    for result in (load, request):
        assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
        assert len(_lines_naming_input_dtype(result.stderr)) == 1, result.stderr
    assert pooling_requests(url) == before, "a pooling request reached the server"
    with PoolingClient(url) as client:
        assert client.health(), "the float16 server is no longer healthy"
