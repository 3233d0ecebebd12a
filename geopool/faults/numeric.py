"""Faults that bend the numbers of every answer alike, so only an absolute oracle (the offline reference
pass, or a golden answer) can see them: comparing two answers of the same server never will."""

from __future__ import annotations

import numpy as np

from geopool.faults.base import Exchange
from geopool.faults.outputs import _OutputFault

__all__ = ["FixedNoise", "Scale"]

#: The seed of :class:`FixedNoise`: one noise pattern, the same in every answer and every run.
FIXED_NOISE_SEED = 20261201


class Scale(_OutputFault):
    name, summary = "scale", "every output value multiplied by a factor (param: factor [1.005])"

    def edit(self, values: np.ndarray, exchange: Exchange) -> np.ndarray:
        return values * self._float(0, 1.005)


class FixedNoise(_OutputFault):
    name, summary = ("fixed-noise", "the same Gaussian noise (param: sigma [5e-4]) added to every answer, "
                                    "seeded, independent of the request")

    def edit(self, values: np.ndarray, exchange: Exchange) -> np.ndarray:
        noise = np.random.default_rng(FIXED_NOISE_SEED).normal(0.0, self._float(0, 5e-4), values.size)
        return values + noise.reshape(values.shape)
