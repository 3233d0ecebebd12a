"""The fault matrix's baseline: the whole tensor-mode suite through the fault proxy's ``die-on-killer``
(vLLM 0.32's engine deaths played by the proxy, everything else answered by the real server), with
``--destructive`` and vLLM 0.32's expectations, exits 0 with nothing failing. Its rows (one fault each)
are tests/proxy/test_fault_matrix.py; the plain gate's test and the client install compare with this run.
"""

from __future__ import annotations

import pytest
from selections import PLAIN_RUN_TEST  # tests/ is on sys.path

pytestmark = [pytest.mark.live, pytest.mark.timeout(3600)]


@pytest.fixture(autouse=True, scope="module")
def plain_gate_alongside(request: pytest.FixtureRequest) -> None:
    """The plain gate judges verdicts too (tests/conformance/test_suite_runs.py): started first, in the
    background, it runs alongside the baseline; its test, a unit placed late, waits for it."""
    if any(item.name == PLAIN_RUN_TEST for item in request.session.items):
        request.getfixturevalue("plain_conformance_run").start()


def test_the_baseline_passes(matrix_baseline):
    assert matrix_baseline["requirements"] is not None, "no conformance report\n" + matrix_baseline["stdout"][-3000:]
    assert matrix_baseline["returncode"] == 0, matrix_baseline["stdout"][-4000:]
    failing = {(rid, test) for rid, test, outcome in matrix_baseline["tests"] if outcome in ("fail", "error")}
    assert failing == set()
