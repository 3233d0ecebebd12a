"""Where a sweep's curve bends: two named rules over (offered rate, figure) points.

- :func:`kneedle` — Kneedle (Satopää, Albrecht, Irwin, Raghavan, "Finding a 'Kneedle' in a
  Haystack", ICDCSW 2011), offline, for a convex increasing curve such as latency against offered
  rate: scale both axes to [0, 1]; the knee is the point farthest below the chord from the first to
  the last point (the maximum of the difference curve x' − y'). A curve that never bends below its
  chord (straight, or concave) has no knee. (The ``kneed`` package implements the same; it is not a
  dependency, the offline rule is a few lines.)
- :func:`saturation` — the first offered rate whose throughput falls short of it by more than
  :data:`TRACKING_TOLERANCE`: the server stopped keeping up, the rate is past capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TRACKING_TOLERANCE", "kneedle", "saturation"]

TRACKING_TOLERANCE = 0.10
#: Smallest bend (in the scaled units) that counts as a knee rather than noise on a straight line.
MIN_BEND = 0.05


def kneedle(rates: Sequence[float], values: Sequence[float | None]) -> dict[str, Any]:
    """``{"method", "rate", "index", "bend"}`` — rate None (with ``reason``) when there is no knee."""
    points = [(rate, value) for rate, value in zip(rates, values, strict=True) if value is not None]
    result: dict[str, Any] = {"method": "Kneedle (offline, convex increasing)", "rate": None}
    if len(points) < 3:
        return {**result, "reason": f"{len(points)} point(s); Kneedle needs at least 3"}
    x, y = (np.asarray(axis, dtype=float) for axis in zip(*points, strict=True))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**result, "reason": "a flat curve has no knee"}
    difference = (x - x.min()) / np.ptp(x) - (y - y.min()) / np.ptp(y)
    index = int(np.argmax(difference))
    if difference[index] < MIN_BEND:
        return {**result, "reason": f"the curve bends by at most {difference[index]:.3f} (< {MIN_BEND}): no knee"}
    return {**result, "rate": float(x[index]), "index": index, "bend": float(difference[index])}


def saturation(rates: Sequence[float], throughputs: Sequence[float]) -> dict[str, Any]:
    """The first rate whose throughput is below ``(1 − TRACKING_TOLERANCE) × rate``, and the last that kept up."""
    result: dict[str, Any] = {"method": f"throughput below {1 - TRACKING_TOLERANCE:.0%} of the offered rate",
                              "rate": None, "last_tracking_rate": None}
    for rate, throughput in zip(rates, throughputs, strict=True):
        if throughput < (1 - TRACKING_TOLERANCE) * rate:
            return {**result, "rate": float(rate)}
        result["last_tracking_rate"] = float(rate)
    return {**result, "reason": "every step's throughput kept up with its offered rate"}
