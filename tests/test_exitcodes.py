"""The one exit-code table: pytest's codes keep pytest's meanings, the README shows the table as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from geopool import exitcodes
from geopool.load.judge import slo


def test_pytest_codes_keep_pytest_meanings_and_geopool_codes_are_others():
    assert {code for code in exitcodes.TABLE if code < 10} == {int(code) for code in pytest.ExitCode}
    for code in pytest.ExitCode:
        assert exitcodes.name(int(code)).replace("-", "_").upper().startswith(
            {"OK": "OK", "TESTS_FAILED": "CONFORMANCE", "INTERRUPTED": "INTERRUPTED", "INTERNAL_ERROR": "INTERNAL",
             "USAGE_ERROR": "USAGE", "NO_TESTS_COLLECTED": "NO_TESTS", "MAX_WARNINGS_ERROR": "TOO_MANY_WARNINGS",
             }[code.name]), code
    assert set(slo.EXIT_CODES) <= set(exitcodes.TABLE)
    assert {slo.EXIT_BREACH, slo.EXIT_INVALID, slo.EXIT_NO_TARGET}.isdisjoint(int(code) for code in pytest.ExitCode)


@pytest.mark.parametrize("codes, expected", [
    ([], exitcodes.OK),
    ([exitcodes.SLO_BREACHED, exitcodes.FAILED], exitcodes.FAILED),
    ([exitcodes.LOAD_INVALID, exitcodes.SLO_BREACHED], exitcodes.SLO_BREACHED),
    ([exitcodes.UNCHECKED_MUST, exitcodes.SLO_BREACHED], exitcodes.UNCHECKED_MUST),
    ([exitcodes.FAILED, exitcodes.TARGET_UNUSABLE], exitcodes.TARGET_UNUSABLE),
    ([exitcodes.OK, 77], exitcodes.INTERNAL),
])
def test_the_first_code_by_precedence_wins(codes, expected):
    assert exitcodes.worst(codes) == expected


def test_the_readme_shows_the_table_as_the_code_has_it():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert exitcodes.markdown_table() in readme
    order = ", ".join(str(code) for code in exitcodes.PRECEDENCE if code != exitcodes.OK)
    assert f"the first of {order} that does" in readme
