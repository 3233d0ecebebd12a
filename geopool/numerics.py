"""Served-vs-offline comparison: the one numeric criterion of conformance POOL-NUM-002 and load's
``--verify reference``.

An answer is compared with the offline reference pass of its own input (:mod:`geopool.reference`, run
in the server's dtype) by two figures, each with a bound per server dtype (:data:`CRITERIA`):

- ``relative_error``, ``||served - offline|| / ||offline||`` (L2 over the whole answer): a scaling by
  ``1 + e`` gives ``e``; deterministic noise of std ``s`` gives ``s / rms(offline)``; another model ~1;
- ``agreement``, the fraction of pixels whose argmax over the classes (the segmentation a user reads
  off the answer) is the offline one's.

The max abs diff is reported, not judged. Numpy only: no torch is needed to judge an answer.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["CRITERIA", "OTHER_KERNEL_CRITERIA", "KERNELS", "Criterion", "Comparison", "Figures", "bounds_for",
           "compare_to_reference", "difference_figures"]


@dataclasses.dataclass(frozen=True)
class Criterion:
    """Bounds for one server dtype: the largest relative L2 error, the smallest class agreement."""

    max_relative_error: float
    min_agreement: float


#: Bounds per server dtype, set from the measured served-vs-offline spread: ``benchmarks/numeric_spread.py``
#: (the seed input, then uniform/normal/constant/gradient tensors of magnitude 1e-2..1e4 with in-range
#: coordinates) against the embedded vLLM 0.32 CPU server serving prithvi-tiny-tl, December 2026:
#:
#: - float32, 30 inputs: relative L2 error median 5.6e-7, max 1.5e-6; class agreement min 0.999996
#:   (one pixel in 262144); max abs diff up to 1e-3 where answers reach ~600. Bounds: 1e-4 (68x the
#:   worst) and 0.999 (the worst disagreement x260). Caught (benchmarks/oracle_sensitivity.py, through
#:   the proxy): scale >= 1.0001, fixed noise sigma >= 1.2e-5 on the seed input (7e-6 on load item 0).
#: - float16, 8 inputs (~100 s an input on CPU; magnitudes 1e-2 and 1): relative L2 error median 8.3e-4,
#:   max 9.0e-4; class agreement min 0.99977 (max abs diff 4.9e-4). Bounds: 5e-3 (5.6x the worst), 0.995 (x21).
#: - bfloat16: not measured (no bfloat16 CPU run fits the time); the float16 bounds scaled by the 8x
#:   coarser rounding of bfloat16 (8 significand bits against 11).
#:
#: Before, allclose with atol 5e-3 + rtol 1e-3 let a x1.005 scaling and fixed noise of sigma 5e-4 pass
#: on answers of magnitude ~0.1 (the seed input's, load's pool's); only inputs ~100x larger showed them.
#: The spread is this small only because the reference pass runs the kernels vLLM's CPU backend runs
#: (geopool.reference: no oneDNN); other kernels move this random-weight model's answers by up to
#: 8.7e-3 (measured with oneDNN on), which these bounds reject: a server on a GPU fails NUM-002 here.
CRITERIA: dict[str, Criterion] = {
    "float32": Criterion(max_relative_error=1e-4, min_agreement=0.999),
    "float16": Criterion(max_relative_error=5e-3, min_agreement=0.995),
    "bfloat16": Criterion(max_relative_error=4e-2, min_agreement=0.96),
}

#: Bounds for a server whose kernels are not the reference pass's (a GPU, another CPU build): any server
#: at a URL unless the user says it runs vLLM's CPU build (``--numeric-bounds same-kernels``). float32:
#: the reference with oneDNN on against the served answers (the same 30 inputs) differs by relative L2
#: error up to 8.7e-3 and class agreement down to 0.986 on this random-weight model, which turns one ulp
#: of an input into 8e-4 of its answer; bounds 3e-2 and 0.95 (3.4x). Half precision on other kernels was
#: not measured (no GPU here): its bounds are float32's widened by the measured same-kernel float16 and
#: bfloat16 spreads, and say so in every verdict. A trained model (Prithvi's real weights) amplifies far
#: less, so these bounds are loose for it: a scaling under ~3 % is not seen on other kernels.
#: These spreads were measured on the fixture's earlier 12-block, UperNet(64) version. The 2-block,
#: UperNet(16) one moves ~6x less under the same input change (one ulp up on every value of a random
#: input: relative L2 change 1.5e-7, against 8.7e-7), so the bounds are, if anything, looser for it;
#: they have not been re-measured on it.
OTHER_KERNEL_CRITERIA: dict[str, Criterion] = {
    "float32": Criterion(max_relative_error=3e-2, min_agreement=0.95),
    "float16": Criterion(max_relative_error=5e-2, min_agreement=0.93),
    "bfloat16": Criterion(max_relative_error=1e-1, min_agreement=0.85),
}

#: ``--numeric-bounds``: ``same-kernels`` (the server runs the reference's CPU kernels: the embedded
#: server), ``other-kernels`` (any other server), ``auto`` (same for the embedded server, other for a URL).
KERNELS = ("auto", "same-kernels", "other-kernels")


def bounds_for(choice: str | None, *, embedded: bool) -> str:
    """``same-kernels`` or ``other-kernels`` for a ``--numeric-bounds`` choice (None/auto: by target)."""
    if choice in (None, "auto"):
        return "same-kernels" if embedded else "other-kernels"
    if choice not in KERNELS:
        raise ValueError(f"--numeric-bounds {choice!r} is not one of {', '.join(KERNELS)}")
    return choice


@dataclasses.dataclass(frozen=True)
class Figures:
    """How one answer differs from its reference (see the module docstring)."""

    relative_error: float
    agreement: float
    max_abs_diff: float


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The figures of one answer against its reference, the bounds they were held to, and the verdict."""

    figures: Figures
    criterion: Criterion
    dtype: str
    kernels: str = "same-kernels"

    @property
    def failures(self) -> list[str]:
        """The figures outside their bounds, by name (empty: the answer passes)."""
        f, c = self.figures, self.criterion
        return [name for name, held in (("relative_error", f.relative_error <= c.max_relative_error),
                                        ("agreement", f.agreement >= c.min_agreement)) if not held]

    @property
    def passed(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        """One line with every figure and its bound, for evidence and load verification details."""
        f, c = self.figures, self.criterion
        bounds = f"{self.dtype} {self.kernels} bounds"
        verdict = (f"outside the {bounds} ({', '.join(self.failures)})" if self.failures
                   else f"within the {bounds}")
        return (f"{verdict}: relative L2 error {f.relative_error:.3g} (bound {c.max_relative_error:.3g}), "
                f"class agreement {f.agreement:.6f} (bound {c.min_agreement}), max abs diff {f.max_abs_diff:.3g}")

    def evidence(self) -> dict[str, float | str]:
        return {**dataclasses.asdict(self.figures), **dataclasses.asdict(self.criterion), "dtype": self.dtype,
                "kernels": self.kernels}


def difference_figures(served: np.ndarray, offline: np.ndarray) -> Figures:
    """How ``served`` differs from ``offline``; both ``(1, classes, ...)`` (classes on axis 1).

    Positions where both hold the same non-finite value count as equal; any other non-finite value, or
    another shape, makes the error infinite.
    """
    served, offline = np.asarray(served, np.float64), np.asarray(offline, np.float64)
    if served.shape != offline.shape:
        return Figures(math.inf, 0.0, math.inf)
    both_finite = np.isfinite(served) & np.isfinite(offline)
    same_special = ~np.isfinite(offline) & ((served == offline) | (np.isnan(served) & np.isnan(offline)))
    agreement = _agreement(served, offline)
    if not (both_finite | same_special).all():
        return Figures(math.inf, agreement, math.inf)
    difference = np.where(both_finite, served - offline, 0.0)
    num, den = float(np.linalg.norm(difference)), float(np.linalg.norm(np.where(both_finite, offline, 0.0)))
    relative = num / den if den > 0 else (0.0 if num == 0 else math.inf)
    return Figures(relative, agreement, float(np.abs(difference).max(initial=0.0)))


def _agreement(served: np.ndarray, offline: np.ndarray) -> float:
    if served.ndim < 2 or served.shape[1] < 2:
        return 1.0  # one output channel (regression): no class to agree on
    with np.errstate(invalid="ignore"):
        return float(np.mean(np.argmax(served, axis=1) == np.argmax(offline, axis=1)))


def compare_to_reference(served: np.ndarray, offline: np.ndarray, dtype: str,
                         kernels: str = "same-kernels") -> Comparison:
    """Judge one served answer against the offline pass of the same input on a ``dtype`` server whose
    kernels are the reference's (``same-kernels``) or not (``other-kernels``)."""
    table = OTHER_KERNEL_CRITERIA if kernels == "other-kernels" else CRITERIA
    return Comparison(difference_figures(served, offline), table[dtype], dtype, kernels)
