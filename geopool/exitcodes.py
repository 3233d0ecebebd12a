"""One exit-code table for ``geopool gate``, ``geopool load`` and ``geopool conformance`` (and every other
geopool command).

pytest's own codes keep pytest's meanings (0-6), so a conformance run's code reads the same whether it
came from ``pytest`` or from geopool; geopool's own outcomes take codes pytest never uses (10-14).
When several apply, a command exits with the first of :data:`PRECEDENCE` that does.

    >>> describe(UNCHECKED_MUST)
    'a MUST requirement was not checked and no waiver names it'
"""

from __future__ import annotations

__all__ = ["OK", "FAILED", "INTERRUPTED", "INTERNAL", "USAGE", "NO_TESTS", "TOO_MANY_WARNINGS", "SLO_BREACHED",
           "LOAD_INVALID", "TARGET_UNUSABLE", "UNCHECKED_MUST", "REGRESSED", "TABLE", "PRECEDENCE", "describe", "name",
           "worst", "markdown_table"]

OK = 0
FAILED = 1            # pytest: tests failed
INTERRUPTED = 2       # pytest: interrupted (Ctrl-C, or errors during collection)
INTERNAL = 3          # pytest: internal error
USAGE = 4             # pytest: usage error
NO_TESTS = 5          # pytest: no tests collected
TOO_MANY_WARNINGS = 6  # pytest 9: more warnings than --max-warnings
SLO_BREACHED = 10
LOAD_INVALID = 11
TARGET_UNUSABLE = 12
UNCHECKED_MUST = 13
REGRESSED = 14

#: code → (short name, meaning). The README's table is generated from this (a test checks it).
TABLE: dict[int, tuple[str, str]] = {
    OK: ("ok", "passed: every checked requirement held or failed as expected, the load run was valid and met "
               "its SLO, and every MUST requirement was checked or waived"),
    FAILED: ("conformance-failed", "a conformance requirement failed or errored (with --strict-expectations "
                                   "or pytest's --strict also: an expected failure passed)"),
    INTERRUPTED: ("interrupted", "interrupted before the verdict: Ctrl-C, or pytest stopped on errors "
                                 "collecting the suite"),
    INTERNAL: ("internal-error", "internal error: a bug in geopool, pytest or a plugin"),
    USAGE: ("usage", "bad command line, scenario, SLO, expectations or waiver file (one error: line)"),
    NO_TESTS: ("no-tests", "no conformance test was selected (e.g. -k matched nothing)"),
    TOO_MANY_WARNINGS: ("too-many-warnings", "pytest counted more warnings than --max-warnings allows"),
    SLO_BREACHED: ("slo-breached", "a load SLO bound was breached (even if the run is also invalid)"),
    LOAD_INVALID: ("load-invalid", "invalid load run: no steady state, too few samples for a gated percentile, "
                                   "or no successful request"),
    TARGET_UNUSABLE: ("target-unusable", "the target could not be reached or used, the embedded server could "
                                         "not start, or a run did not stop by its deadline"),
    UNCHECKED_MUST: ("unchecked-must", "a MUST requirement was not checked and no waiver names it"),
    REGRESSED: ("regressed", "geopool compare: the new run is slower or serves less than the base run, "
                             "significantly and by more than the threshold (even if a run is also invalid)"),
}

#: When several codes apply, the first of these is the exit code (the others are still reported).
PRECEDENCE = (USAGE, INTERRUPTED, INTERNAL, TARGET_UNUSABLE, NO_TESTS, FAILED, UNCHECKED_MUST, SLO_BREACHED,
              REGRESSED, LOAD_INVALID, TOO_MANY_WARNINGS, OK)


def describe(code: int) -> str:
    """The meaning of ``code`` (an unknown code is described as such, never raises)."""
    return TABLE[code][1] if code in TABLE else f"unknown exit code {code}"


def name(code: int) -> str:
    return TABLE[code][0] if code in TABLE else f"exit-{code}"


def worst(codes: list[int] | tuple[int, ...] | set[int]) -> int:
    """The code to exit with when ``codes`` all apply: the first of :data:`PRECEDENCE` among them (unknown
    codes rank as internal errors)."""
    known = {code if code in TABLE else INTERNAL for code in codes}
    return next((code for code in PRECEDENCE if code in known), OK)


def markdown_table() -> str:
    lines = ["| exit code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, (_, meaning) in sorted(TABLE.items())]
    return "\n".join(lines)
