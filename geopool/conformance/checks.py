"""Per-requirement checks inside a test, with evidence for the report.

A test takes the ``checks`` fixture and calls :meth:`Checks.that` once per requirement fact; every
failed fact is kept (a test reports all of its broken requirements, not only the first), and the
plugin raises :class:`RequirementFailure` naming exactly those requirements after the test body.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["RequirementFailure", "Checks", "array_diff", "Evidence"]


@dataclasses.dataclass
class Evidence:
    requirement: str
    message: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.details, "requirement": self.requirement, "message": self.message}


class RequirementFailure(AssertionError):
    """One or more requirements failed; ``evidence`` holds one entry per failed fact."""

    def __init__(self, evidence: list[Evidence]) -> None:
        self.evidence = evidence
        self.requirements = sorted({item.requirement for item in evidence})
        lines = [f"{item.requirement}: {item.message}" + "".join(f"\n    {k}: {v}" for k, v in item.details.items())
                 for item in evidence]
        super().__init__("\n".join(lines))


class Checks:
    """Collects failed facts; ``context`` (request id, status, …) is attached to each of them."""

    def __init__(self) -> None:
        self.failures: list[Evidence] = []
        self.checked: set[str] = set()
        self.context: dict[str, Any] = {}

    def that(self, requirement: str, condition: object, message: str, **details: Any) -> bool:
        self.checked.add(requirement)
        if not condition:
            self.failures.append(Evidence(requirement, message, {**self.context, **details}))
        return bool(condition)

    def fail(self, requirement: str, message: str, **details: Any) -> None:
        self.that(requirement, False, message, **details)


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
