"""The order `./run test` deals its units of work in (tests/conftest.py) names units that exist: a unit
misspelt there would silently fall back among the others and stretch the run's end."""

from __future__ import annotations

import re
from pathlib import Path

import conftest  # tests/conftest.py (tests/ is on sys.path)

TESTS = Path(__file__).parent


def known_unit(unit: str) -> bool:
    groups = set(conftest.SHARED_FIXTURE_GROUPS.values())
    matrix = {f"fault-matrix-{index}" for index in range(conftest.MATRIX_UNITS)}
    if unit in groups | matrix | {"plain-gate"}:
        return True
    module, _, test = unit.partition("::")
    path = TESTS / module
    if not path.is_file():
        return False
    return not test or re.search(rf"^def {re.escape(test)}\(", path.read_text(), re.MULTILINE) is not None


def test_the_ordered_units_exist():
    ordered = [*conftest.LONGEST_FIRST, *conftest.TIMING_LAST]
    assert len(ordered) == len(set(ordered))
    assert [unit for unit in ordered if not known_unit(unit)] == []


def test_a_unit_name_that_does_not_exist_is_caught():
    assert not known_unit("load/test_no_such_module.py")
    assert not known_unit("load/test_compare_live.py::test_no_such_test")
    assert known_unit("load/test_compare_live.py::test_a_breaching_run_stops_early_with_exit_10")


def test_each_test_of_a_busy_box_is_a_unit_of_its_own_in_its_module():
    for name in conftest.JUDGED_ON_A_BUSY_BOX:
        nodeid = f"tests/load/test_compare_live.py::{name}"
        assert conftest.work_unit(nodeid) == nodeid.removeprefix("tests/")
        assert known_unit(conftest.work_unit(nodeid))


def test_each_last_unit_holds_more_than_one_test():
    """xdist hands a worker its next unit once one test of its current unit is left: a last unit of one test
    would take the other last unit with it onto one worker, one after the other."""
    for unit in conftest.TIMING_LAST:
        modules = [module for module, group in conftest.SHARED_FIXTURE_GROUPS.items() if group == unit]
        tests = sum(len(re.findall(r"^(?:async )?def test_", (TESTS / module).read_text(), re.MULTILINE))
                    for module in modules)
        assert tests > 1, (unit, modules)
