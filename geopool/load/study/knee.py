"""Where a sweep's curve bends: two named rules over (offered rate, figure) points.

- :func:`kneedle` — Kneedle (Satopää, Albrecht, Irwin, Raghavan, "Finding a 'Kneedle' in a
  Haystack", ICDCSW 2011), offline, for a convex increasing curve such as latency against offered
  rate: scale both axes to [0, 1]; the knee is the point farthest below the chord from the first to
  the last point (the maximum of the difference curve x' − y'). A curve that never bends below its
  chord (straight, or concave) has no knee. Computed by the ``kneed`` package (``KneeLocator``,
  offline); a bend smaller than :data:`MIN_BEND` counts as noise on a straight line.
- :func:`saturation` — the first offered rate whose throughput falls short of it by more than
  :data:`TRACKING_TOLERANCE`: the server stopped keeping up, the rate is past capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TRACKING_TOLERANCE", "kneedle", "saturation"]

TRACKING_TOLERANCE = 0.10
#: Kneedle's S. Not the default 1: a sweep has 3–8 points, and on so few the threshold (the peak minus
#: S × the mean x spacing) falls below zero, so a plain hockey stick is never declared a knee.
SENSITIVITY = 0.5
#: Smallest bend (in the scaled units) that counts as a knee rather than noise on a straight line.
MIN_BEND = 0.05


def kneedle(rates: Sequence[float], values: Sequence[float | None]) -> dict[str, Any]:
    """``{"method", "rate", "index", "bend"}`` — rate None (with ``reason``) when there is no knee."""
    points = [(rate, value) for rate, value in zip(rates, values, strict=True) if value is not None]
    result: dict[str, Any] = {"method": f"Kneedle (kneed, offline, convex increasing, S={SENSITIVITY})", "rate": None}
    if len(points) < 3:
        return {**result, "reason": f"{len(points)} point(s); Kneedle needs at least 3"}
    from kneed import KneeLocator  # here: only a sweep needs it

    x, y = (np.asarray(axis, dtype=float) for axis in zip(*points, strict=True))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**result, "reason": "a flat curve has no knee"}
    locator = KneeLocator(x, y, curve="convex", direction="increasing", online=False, S=SENSITIVITY)
    if locator.knee is None:
        return {**result, "reason": "the curve never bends below its chord: no knee"}
    index = int(np.flatnonzero(x == locator.knee)[0])
    # the knee's distance below the chord, in scaled units (kneed keeps its difference curve flipped
    # for a convex increasing curve, so it is not indexed like x)
    bend = float((x[index] - x.min()) / np.ptp(x) - (y[index] - y.min()) / np.ptp(y))
    if bend < MIN_BEND:
        return {**result, "reason": f"the curve bends by at most {bend:.3f} (< {MIN_BEND}): no knee"}
    return {**result, "rate": float(locator.knee), "index": index, "bend": bend}

def saturation(rates: Sequence[float], throughputs: Sequence[float]) -> dict[str, Any]:
    """The first rate whose throughput is below ``(1 − TRACKING_TOLERANCE) × rate``, and the last that kept up."""
    result: dict[str, Any] = {"method": f"throughput below {1 - TRACKING_TOLERANCE:.0%} of the offered rate",
                              "rate": None, "last_tracking_rate": None}
    for rate, throughput in zip(rates, throughputs, strict=True):
        if throughput < (1 - TRACKING_TOLERANCE) * rate:
            return {**result, "rate": float(rate)}
        result["last_tracking_rate"] = float(rate)
    return {**result, "reason": "every step's throughput kept up with its offered rate"}
