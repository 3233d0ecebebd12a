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
import numbers
from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st

from geopool import numpy_payloads, wire
from geopool.contract import INPUT_DTYPES, ModelContract
from geopool.errors import InvalidArgument

__all__ = ["TensorRecipe", "PayloadRecipe", "tensor_recipes", "payload_recipes", "special_values", "recipe_of"]

Distribution = Literal["uniform", "normal", "constant", "gradient"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("uniform", "normal", "constant", "gradient")


def special_values(dtype: str) -> dict[str, float]:
    """Edge values representable in ``dtype``: NaN, ±inf, extremes, smallest normal and subnormal."""
    if dtype not in INPUT_DTYPES:
        raise InvalidArgument(f"dtype={dtype!r} is not one of {INPUT_DTYPES}; pass one of them")
    return numpy_payloads.special_values(dtype)


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
        special_values(dtype)  # checks the dtype
        spec = self.spec(shape)
        built = numpy_payloads.build_tensor(spec, dtype)
        _remember(built, dtype, spec)
        return built

    def spec(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The JSON tensor spec of :func:`geopool.numpy_payloads.build_tensor` (what a reproducer rebuilds)."""
        return {"shape": [int(n) for n in shape], "seed": self.seed, "distribution": self.distribution,
                "low": self.low, "high": self.high, "specials": [[int(p), name] for p, name in self.specials]}


#: Recent builds, so a failing request's tensor can be told by its recipe (geopool.conformance.recipes):
#: keyed by shape, dtype and the first values; whoever looks one up rebuilds it to be sure.
_BUILT: dict[tuple, dict[str, Any]] = {}
_REMEMBERED = 256


def _key(array: np.ndarray, dtype: str) -> tuple:
    return tuple(array.shape), dtype, np.asarray(array, np.float32).reshape(-1)[:8].tobytes()


def _remember(array: np.ndarray, dtype: str, spec: dict[str, Any]) -> None:
    _BUILT.pop(_key(array, dtype), None)
    _BUILT[_key(array, dtype)] = spec
    while len(_BUILT) > _REMEMBERED:
        del _BUILT[next(iter(_BUILT))]


def recipe_of(array: np.ndarray, dtype: str) -> dict[str, Any] | None:
    """The tensor spec of a recent :meth:`TensorRecipe.build` that may have made ``array`` (rebuild it to
    be sure: only the first values are compared)."""
    return _BUILT.get(_key(array, dtype))


@dataclasses.dataclass(frozen=True)
class PayloadRecipe:
    """Every input of a contract as a recipe, plus how to serialize them."""

    tensors: tuple[tuple[str, TensorRecipe], ...]
    fmt: wire.InputFormat = "torch"

    def arrays(self, contract: ModelContract) -> dict[str, np.ndarray]:
        return {name: recipe.build(contract.input_shape(name), contract.input_dtype) for name, recipe in self.tensors}


# ------------------------------------------------------------------------------ argument validation
_SPECIAL_NAMES = tuple(special_values("float32"))
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_bound(name: str, value: Any) -> None:
    """A finite real that float32 holds exactly (what ``st.floats(width=32)`` needs as a bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not abs(value) <= _FLOAT32_MAX:
        raise InvalidArgument(f"{name}={value!r} must be a finite number within float32's range "
                              f"(±{_FLOAT32_MAX:.4g}); for NaN or infinities use specials=('nan', '+inf', '-inf')")
    if float(np.float32(value)) != value:
        raise InvalidArgument(f"{name}={value!r} is not exactly a float32; use {name}={float(np.float32(value))!r}")


def _check_names(name: str, given: Any, allowed: tuple[str, ...], *, empty_ok: bool) -> None:
    """A tuple (or list) of names, each one of ``allowed``."""
    if isinstance(given, str) or not isinstance(given, tuple | list):
        raise InvalidArgument(f"{name}={given!r} must be a tuple of names from {allowed}, "
                              f"e.g. {name}=({allowed[0]!r},)")
    unknown = [item for item in given if item not in allowed]
    if unknown:
        raise InvalidArgument(f"{name}={given!r}: {unknown!r} not among {allowed}; pick names from those")
    if not given and not empty_ok:
        raise InvalidArgument(f"{name}={given!r} is empty; pass at least one of {allowed}")


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
    _check_bound("min_value", min_value)
    _check_bound("max_value", max_value)
    if not min_value <= max_value:
        raise InvalidArgument(f"min_value={min_value!r} must be <= max_value={max_value!r}; swap them")
    _check_names("specials", specials, _SPECIAL_NAMES, empty_ok=True)
    if isinstance(max_specials, bool) or not isinstance(max_specials, int) or max_specials < 0:
        raise InvalidArgument(f"max_specials={max_specials!r} must be an int >= 0 (0: no special values)")
    _check_names("distributions", distributions, DISTRIBUTIONS, empty_ok=False)
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
    if not isinstance(contract, ModelContract):
        raise InvalidArgument(f"contract={contract!r} must be a ModelContract; make one with "
                              "geopool.contract.load_contract(config_path)")
    _check_names("formats", formats, wire.INPUT_FORMATS, empty_ok=False)
    _check_names("specials", specials, _SPECIAL_NAMES, empty_ok=True)
    if (isinstance(coordinate_inputs, str) or not isinstance(coordinate_inputs, tuple | list)
            or not all(isinstance(name, str) for name in coordinate_inputs)):
        raise InvalidArgument(f"coordinate_inputs={coordinate_inputs!r} must be a tuple of input names, "
                              "e.g. ('location_coords',); () for none")
    usable = tuple(f for f in formats if not (f == "npy" and contract.input_dtype == "bfloat16"))
    if not usable:
        raise InvalidArgument(f"formats={formats!r} cannot carry the contract's {contract.input_dtype} inputs "
                              "(.npy has no bfloat16); include 'torch'")
    formats = usable
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
