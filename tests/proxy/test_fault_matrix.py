"""Every conformance check can fail, and every known defect can be seen fixed: run the suite through the
fault proxy, one row at a time, in front of the real embedded vLLM server. Each test worker's rows run in
one child process (tests/proxy/matrix_session.py: a pytest session per row, switching the proxy's fault per
row); the rows are split into units (tests/conftest.py) that run on different workers.

A fault row is *caught* when the run a user would do (the row's expectations file applied) exits
non-zero with exactly the row's requirements reported ``fail``. A positive control (``repair-*``) must
exit 0 with its requirements reported ``pass``. The rows live in geopool/conformance/matrix.py.
"""

from __future__ import annotations

import os
import tomllib

import pytest

from geopool.conformance.matrix import CONTROLS, MATRIX, NOT_SEEN_PASSING, OPTIONS, Measured, markdown, options_of
from geopool.conformance.registry import EXPECTATIONS_DIR, SUITE_DIR, load_registry

# verdicts, not timings: other test workers share the machine (tests/conftest.py). A worker's first row pays
# the matrix process's imports (TerraTorch, the reference model) and the embedded server's start.
pytestmark = [pytest.mark.live, pytest.mark.timeout(1800)]
REPO = SUITE_DIR.parent
RESULTS: dict[str, Measured] = {}


def row_result(matrix_row, row: str) -> dict:
    """A row's run: exit code, requirement outcomes, per-test outcomes ((id, test) → outcome), output."""
    run = dict(matrix_row(row))
    assert run["requirements"] is not None, f"{row}: no conformance report\n" + run["stdout"][-3000:]
    run["tests"] = {(rid, test): outcome for rid, test, outcome in run["tests"]}
    return run


def masked_by_whole_requirement_entries(stem: str) -> frozenset[str]:
    """Requirements an expectations file excuses whatever the failing case (entries without ``case``): a
    fault can only be seen as an expected failure there. Per-case entries mask nothing a row plants."""
    if stem == "none":
        return frozenset()
    entries = tomllib.loads((EXPECTATIONS_DIR / f"{stem}.toml").read_text()).get("expected-fail", [])
    return frozenset(entry["id"] for entry in entries if "case" not in entry)


@pytest.mark.parametrize("fault", list(MATRIX))
def test_fault_is_caught_by_exactly_its_requirements(matrix_row, fault):
    _, expected = MATRIX[fault]
    run = row_result(matrix_row, fault)
    failing = frozenset(rid for rid, outcome in run["requirements"].items() if outcome == "fail")
    RESULTS[fault] = (run["returncode"], failing, run["seconds"])
    masked = expected & masked_by_whole_requirement_entries(options_of(fault).expectations)
    assert failing == expected - masked, (f"{fault}: failing {sorted(failing)}, the matrix says {sorted(expected)} "
                                          f"({sorted(masked)} excused whole by the expectations file)\n"
                                          + run["stdout"][-3000:])
    assert {rid: run["requirements"][rid] for rid in masked} == dict.fromkeys(masked, "expected-fail")
    if expected - masked:
        assert run["returncode"] == 1, run["stdout"][-3000:]
    else:  # every caught id is still excused whole: the row waits for per-case expectations to fail the run
        assert run["returncode"] == 0, run["stdout"][-3000:]


@pytest.mark.parametrize("repair", list(CONTROLS))
def test_positive_control_makes_its_requirements_pass(matrix_row, repair):
    _, expected = CONTROLS[repair]
    run = row_result(matrix_row, repair)
    passing = frozenset(rid for rid, outcome in run["requirements"].items() if outcome == "pass")
    RESULTS[repair] = (run["returncode"], passing & expected, run["seconds"])
    assert run["returncode"] == 0, f"{repair}: exit code {run['returncode']}\n" + run["stdout"][-4000:]
    assert expected <= passing, {rid: run["requirements"][rid] for rid in expected - passing}
    for rid in expected:  # a check of each one ran and held: at least one of its tests passed
        assert "pass" in {outcome for (other, _), outcome in run["tests"].items() if other == rid}, rid


def test_every_requirement_is_caught_or_says_why():
    registry = load_registry()
    caught = set().union(*(ids for _, ids in MATRIX.values()))
    assert caught <= set(registry), sorted(caught - set(registry))
    missing = sorted(rid for rid, requirement in registry.items() if rid not in caught and not requirement.uncatchable)
    assert missing == [], f"requirements no fault catches and the registry gives no reason for: {missing}"
    needless = sorted(rid for rid in caught if registry[rid].uncatchable)
    assert needless == [], f"caught requirements still marked uncatchable: {needless}"


def test_every_known_defect_is_seen_passing_under_a_positive_control():
    known = {entry["id"] for entry in tomllib.loads((EXPECTATIONS_DIR / "vllm-0.32.toml").read_text())["expected-fail"]}
    seen = set().union(*(ids for _, ids in CONTROLS.values()))
    assert sorted(known - seen - set(NOT_SEEN_PASSING)) == []
    assert set(NOT_SEEN_PASSING) <= known - seen, "a requirement seen passing is still listed as not seen"
    assert all(spec.startswith("repair-") for spec in CONTROLS)


def test_docs_table_is_generated_from_the_code():
    assert (REPO / "docs" / "fault-matrix.md").read_text().endswith(markdown())


def teardown_module() -> None:
    if RESULTS:
        table = markdown(dict(RESULTS))
        total = sum(seconds for *_, seconds in RESULTS.values())
        (REPO / "reports").mkdir(exist_ok=True)
        footer = f"\nrows: total {total:.0f} s (the baseline: tests/proxy/test_matrix_baseline.py)\n"
        # the rows are split over the test workers: each writes the rows it ran
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        (REPO / "reports" / f"fault-matrix{'-' + worker if worker else ''}.md").write_text(table + footer)
        print("\n" + table + f"total wall time {total:.0f} s")


def test_run_options_name_existing_rows():
    assert set(OPTIONS) <= set(MATRIX) | set(CONTROLS), sorted(set(OPTIONS) - set(MATRIX) - set(CONTROLS))
