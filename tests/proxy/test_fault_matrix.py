"""Every conformance check can fail: run the suite through the fault proxy, one fault at a time, in
front of the real embedded vLLM server, and check exactly the requirements the matrix names fail."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geopool.conformance.matrix import MATRIX, markdown
from geopool.conformance.registry import EXPECTATIONS_DIR, SUITE_DIR, load_registry
from geopool.proxy import FaultProxy

# verdicts, not timings: the plain conformance run may share the machine (tests/conftest.py)
pytestmark = [pytest.mark.live, pytest.mark.usefixtures("plain_conformance_run_alongside")]
REPO = SUITE_DIR.parent
RESULTS: dict[str, tuple[frozenset[str], float]] = {}


def run_through_proxy(server, fault: str, selection: tuple[str, ...], report: Path) -> tuple[dict, float]:
    """Run the selected conformance tests through a proxy planting ``fault``; return per-test outcomes."""
    started = time.monotonic()
    with FaultProxy(server.url, fault, max_seconds=900) as proxy:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--hypothesis-profile", "fast",
             *[f"conformance/{path}" for path in selection], "--base-url", proxy.url, "--input-dtype", server.dtype,
             "--model", server.model_name,
             "--reference-checkpoint", str(server.served_dir), "--expectations",
             str(EXPECTATIONS_DIR / "vllm-0.32.toml"), "--conformance-report", str(report),
             "--junitxml", str(report.with_suffix(".xml"))],
            capture_output=True, text=True, cwd=REPO, timeout=900)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-2000:]
    outcomes = {(entry["id"], test["test"]): test["outcome"]
                for entry in json.loads(report.read_text())["requirements"] for test in entry["tests"]}
    return {"returncode": result.returncode, "outcomes": outcomes, "stdout": result.stdout}, \
        time.monotonic() - started


@pytest.fixture(scope="module")
def baseline(embedded_server, tmp_path_factory):
    """--fault none over every selected test: passes, and says which (requirement, test) pairs pass."""
    selection = tuple(sorted({path.split("::")[0] for paths, _ in MATRIX.values() for path in paths}))
    run, seconds = run_through_proxy(embedded_server, "none", selection, tmp_path_factory.mktemp("none") / "r.json")
    RESULTS["none"] = (frozenset(), seconds)
    return run


def test_no_fault_passes(baseline):
    assert baseline["returncode"] == 0, baseline["stdout"][-4000:]
    failing = {key for key, outcome in baseline["outcomes"].items() if outcome in ("fail", "error")}
    assert failing == set()


@pytest.mark.parametrize("fault", list(MATRIX))
def test_fault_is_caught_by_exactly_its_requirements(embedded_server, baseline, fault, tmp_path):
    selection, expected = MATRIX[fault]
    run, seconds = run_through_proxy(embedded_server, fault, selection, tmp_path / "r.json")
    passing_before = {key for key, outcome in baseline["outcomes"].items() if outcome == "pass"}
    caught = frozenset(rid for (rid, test), outcome in run["outcomes"].items()
                       if (rid, test) in passing_before and outcome in ("fail", "error", "expected-fail"))
    RESULTS[fault] = (caught, seconds)
    assert caught == expected, f"{fault}: caught {sorted(caught)}, the matrix says {sorted(expected)}"


def test_every_requirement_is_caught_or_says_why():
    registry = load_registry()
    caught = set().union(*(ids for _, ids in MATRIX.values()))
    assert caught <= set(registry), sorted(caught - set(registry))
    missing = sorted(rid for rid, requirement in registry.items() if rid not in caught and not requirement.uncatchable)
    assert missing == [], f"requirements no fault catches and the registry gives no reason for: {missing}"
    needless = sorted(rid for rid in caught if registry[rid].uncatchable)
    assert needless == [], f"caught requirements still marked uncatchable: {needless}"


def test_docs_table_is_generated_from_the_code():
    assert (REPO / "docs" / "fault-matrix.md").read_text().endswith(markdown())


def teardown_module() -> None:
    if RESULTS:
        table = markdown({fault: result for fault, result in RESULTS.items() if fault in MATRIX})
        total = sum(seconds for _, seconds in RESULTS.values())
        (REPO / "reports").mkdir(exist_ok=True)
        (REPO / "reports" / "fault-matrix.md").write_text(table + f"\nnone: {RESULTS.get('none', ('', 0))[1]:.0f} s; "
                                                          f"total {total:.0f} s\n")
        print("\n" + table + f"total wall time {total:.0f} s")
