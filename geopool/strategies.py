"""Hypothesis strategies for /pooling payloads, shared by the conformance and load suites.

Full-size inputs (6×512×512) cannot be drawn element by element: health checks fail and arrays come
out nearly constant. So Hypothesis draws the *parameters* of a tensor — seed, value distribution and
range, a few special values (NaN, ±inf, subnormals, dtype extremes) at drawn positions — and
:meth:`TensorRecipe.build` expands them deterministically. Shrinking works on the parameters, and a
failing example prints as a short, replayable recipe.

>>> recipe = TensorRecipe(seed=1, distribution="uniform", low=0.0, high=1.0)
>>> recipe.build((2, 3), "float32").shape
(2, 3)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from hypothesis import strategies as st

from geopool import wire
from geopool.contract import INPUT_DTYPES, ModelContract
from geopool.errors import InvalidArgument

__all__ = ["TensorRecipe", "PayloadRecipe", "tensor_recipes", "payload_recipes", "special_values"]

Distribution = Literal["uniform", "normal", "constant", "gradient"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("uniform", "normal", "constant", "gradient")


def special_values(dtype: str) -> dict[str, float]:
    """Edge values representable in ``dtype``: NaN, ±inf, extremes, smallest normal and subnormal."""
    info = {"float32": np.finfo(np.float32), "float16": np.finfo(np.float16)}.get(dtype)
    if dtype == "bfloat16":
        largest, tiny, subnormal = 3.3895313892515355e38, 1.1754943508222875e-38, 9.183549615799121e-41
    elif info is not None:
        largest, tiny, subnormal = float(info.max), float(info.tiny), float(info.smallest_subnormal)
    else:
        raise InvalidArgument(f"dtype={dtype!r} is not one of {INPUT_DTYPES}")
    return {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf"), "max": largest,
            "min": -largest, "tiny": tiny, "subnormal": subnormal, "-zero": -0.0}


@dataclasses.dataclass(frozen=True)
class TensorRecipe:
    """A tensor described by a few parameters; :meth:`build` makes it.

    ``specials`` holds ``(position, name)`` pairs: the flat index (taken modulo the size) gets the
    named :func:`special_values` entry of the build dtype.
    """

    seed: int
    distribution: Distribution
    low: float
    high: float
    specials: tuple[tuple[int, str], ...] = ()

    def build(self, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
        """A float32 array of ``shape`` holding values exactly representable in ``dtype``."""
        rng = np.random.default_rng(self.seed)
        size = int(np.prod(shape))
        if self.distribution == "uniform":
            flat = rng.uniform(self.low, self.high, size)
        elif self.distribution == "normal":
            flat = rng.normal((self.low + self.high) / 2, max(self.high - self.low, 0.0) / 4 or 1e-3, size)
        elif self.distribution == "constant":
            flat = np.full(size, self.low)
        else:
            flat = np.linspace(self.low, self.high, size)
        flat = _representable(flat.astype(np.float32), dtype)
        table = special_values(dtype)
        for position, name in self.specials:
            flat[position % size] = table[name]
        return flat.reshape(shape)


def _representable(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` rounded to ``dtype`` (to nearest even, as the server's cast) and widened back to float32."""
    if dtype == "float32":
        return values
    return wire.decode_values(wire.encode_values(values, dtype), values.shape, embed_dtype=dtype)


@dataclasses.dataclass(frozen=True)
class PayloadRecipe:
    """Every input of a contract as a recipe, plus how to serialize them."""

    tensors: tuple[tuple[str, TensorRecipe], ...]
    fmt: wire.InputFormat = "torch"

    def arrays(self, contract: ModelContract) -> dict[str, np.ndarray]:
        return {name: recipe.build(contract.input_shape(name), contract.input_dtype) for name, recipe in self.tensors}


def tensor_recipes(
    *,
    min_value: float = -1e4,
    max_value: float = 1e4,
    specials: tuple[str, ...] = (),
    max_specials: int = 3,
    distributions: tuple[Distribution, ...] = DISTRIBUTIONS,
) -> st.SearchStrategy[TensorRecipe]:
    """Recipes with values in ``[min_value, max_value]`` and up to ``max_specials`` of ``specials``.

    ``specials`` names entries of :func:`special_values`; empty (the default) gives finite tensors.
    """
    if not min_value <= max_value:
        raise InvalidArgument(f"min_value={min_value!r} must be <= max_value={max_value!r}")
    unknown = set(specials) - set(special_values("float32"))
    if unknown:
        raise InvalidArgument(f"specials={sorted(unknown)!r} are not among {sorted(special_values('float32'))}")
    if max_specials < 0:
        raise InvalidArgument(f"max_specials={max_specials!r} must be >= 0")
    bound = st.floats(min_value, max_value, allow_nan=False, width=32)
    special = (st.lists(st.tuples(st.integers(0, 2**31 - 1), st.sampled_from(specials)), max_size=max_specials)
               if specials else st.just([]))
    return st.builds(
        lambda seed, distribution, bounds, drawn: TensorRecipe(
            seed, distribution, min(bounds), max(bounds), tuple(drawn)),
        st.integers(0, 2**32 - 1), st.sampled_from(distributions), st.tuples(bound, bound), special,
    )


def payload_recipes(
    contract: ModelContract,
    *,
    formats: tuple[wire.InputFormat, ...] = ("torch", "npy"),
    specials: tuple[str, ...] = (),
    coordinate_inputs: tuple[str, ...] = ("location_coords",),
) -> st.SearchStrategy[PayloadRecipe]:
    """Payloads for every input of ``contract``; inputs named in ``coordinate_inputs`` hold (lat, lon)."""
    formats = tuple(f for f in formats if not (f == "npy" and contract.input_dtype == "bfloat16"))
    if not formats:
        raise InvalidArgument("no serialization format can carry this contract's input dtype")
    per_input = []
    for spec in contract.inputs:
        if spec.name in coordinate_inputs:
            per_input.append(_coordinates().map(lambda recipe, name=spec.name: (name, recipe)))
        else:
            per_input.append(tensor_recipes(specials=specials).map(lambda recipe, name=spec.name: (name, recipe)))
    return st.builds(PayloadRecipe, st.tuples(*per_input), st.sampled_from(formats))


def _coordinates() -> st.SearchStrategy[TensorRecipe]:
    """A (lat, lon) pair as a 2-value gradient from lat to lon."""
    return st.builds(
        lambda lat, lon: TensorRecipe(0, "gradient", lat, lon),
        st.floats(-90, 90, allow_nan=False, width=32), st.floats(-180, 180, allow_nan=False, width=32),
    )
