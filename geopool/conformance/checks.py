"""Per-requirement checks inside a test, with evidence for the report.

A test takes the ``checks`` fixture and calls :meth:`Checks.that` once per requirement fact; every
failed fact is kept (a test reports all of its broken requirements, not only the first), and the
plugin raises :class:`RequirementFailure` naming exactly those requirements after the test body.

Every fact, held or failed, is also recorded as *evaluated* for the running test (:func:`evaluated`):
the plugin opens a record around each test body, and a requirement the test is marked with but never
evaluated is reported "not-run" for that test, never "pass". ``case`` names the situation a fact is
about inside its requirement (a named bad request, a payload kind); None means the test's own case
(its parametrize id, else its function name), filled in by the plugin.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from geopool.conformance.recipes import capture

__all__ = ["RequirementFailure", "Checks", "array_diff", "Evidence", "Evaluations", "evaluated", "recording"]


@dataclasses.dataclass
class Evidence:
    requirement: str
    message: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    case: str | None = None
    #: The failing check's recipe for a standalone reproducer (geopool.conformance.recipes.capture).
    repro: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        found = {**self.details, "requirement": self.requirement, "case": self.case, "message": self.message}
        return found if self.repro is None else {**found, "repro": self.repro}


class RequirementFailure(AssertionError):
    """One or more requirements failed; ``evidence`` holds one entry per failed fact."""

    def __init__(self, evidence: list[Evidence]) -> None:
        self.evidence = evidence
        self.requirements = sorted({item.requirement for item in evidence})
        lines = [f"{item.requirement}" + (f" [{item.case}]" if item.case else "") + f": {item.message}"
                 + "".join(f"\n    {k}: {v}" for k, v in item.details.items()) for item in evidence]
        super().__init__("\n".join(lines))


class Evaluations:
    """The (requirement, case) pairs one test evaluated; case None is the test's own case."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str | None]] = set()

    def add(self, requirement: str, case: str | None) -> None:
        self.pairs.add((requirement, case))

    def cases(self, requirement: str, default: str) -> set[str]:
        return {case or default for rid, case in self.pairs if rid == requirement}


_CURRENT: contextvars.ContextVar[Evaluations | None] = contextvars.ContextVar("geopool_evaluations", default=None)


def evaluated(requirement: str, case: str | None = None) -> None:
    """Record that the running test evaluated ``requirement`` (in ``case``); outside a test, nothing."""
    record = _CURRENT.get()
    if record is not None:
        record.add(requirement, case)


@contextlib.contextmanager
def recording() -> Iterator[Evaluations]:
    """Collect what the code run inside evaluates (the plugin wraps each test body in one)."""
    record = Evaluations()
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)


class Checks:
    """Collects failed facts; ``context`` (request id, status, …) is attached to each of them.

    ``expect`` (geopool.conformance.recipes' builders) says what a fact wanted, so its reproducer can
    judge the answer again; ``default_expect`` applies to facts given none; False: a fact no reproducer
    can judge.
    """

    def __init__(self) -> None:
        self.failures: list[Evidence] = []
        self.context: dict[str, Any] = {}
        self.default_expect: dict[str, Any] | None = None

    def that(self, requirement: str, condition: object, message: str, *, case: str | None = None,
             expect: dict[str, Any] | bool | None = None, **details: Any) -> bool:
        evaluated(requirement, case)
        if not condition:
            self.failures.append(Evidence(requirement, message, {**self.context, **details}, case,
                                          capture(self.default_expect if expect is None else expect or None)))
        return bool(condition)

    def fail(self, requirement: str, message: str, *, case: str | None = None,
             expect: dict[str, Any] | bool | None = None, **details: Any) -> None:
        self.that(requirement, False, message, case=case, expect=expect, **details)


def array_diff(actual: np.ndarray, expected: np.ndarray, *, limit: int = 3) -> str:
    """A short diff of two arrays: shapes, max abs difference and the worst positions."""
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    difference = np.where(np.isnan(actual) != np.isnan(expected), np.inf, np.nan_to_num(difference, nan=0.0))
    worst = np.argsort(difference, axis=None)[::-1][:limit]
    positions = [np.unravel_index(i, actual.shape) for i in worst]
    parts = [f"{tuple(int(p) for p in pos)}: got {actual[pos]:.7g}, expected {expected[pos]:.7g}" for pos in positions]
    mismatched = int((difference > 0).sum())
    return f"max |diff| {difference.max():.3g}, {mismatched}/{difference.size} differ; worst " + "; ".join(parts)
