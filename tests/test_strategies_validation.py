"""Every bad argument to a geopool.strategies factory raises InvalidArgument when the factory is called,
not when a value is drawn (the Hypothesis way: tests/numpy/test_argument_validation.py)."""

from __future__ import annotations

import dataclasses

import pytest
from argument_table import e

from geopool.contract import SEN1FLOODS11
from geopool.errors import InvalidArgument
from geopool.strategies import payload_recipes, special_values, tensor_recipes

BFLOAT16 = dataclasses.replace(SEN1FLOODS11, input_dtype="bfloat16")


BAD_ARGUMENTS = [
    e(special_values, dtype="float64"),
    e(special_values, dtype=None),
    e(tensor_recipes, min_value=1.0, max_value=0.0),
    e(tensor_recipes, min_value=float("nan")),
    e(tensor_recipes, max_value=float("inf")),
    e(tensor_recipes, min_value=-1e39),
    e(tensor_recipes, min_value="0"),
    e(tensor_recipes, max_value=True),
    e(tensor_recipes, min_value=0.1),  # not exactly a float32: st.floats(width=32) would refuse it at draw time
    e(tensor_recipes, specials=("nope",)),
    e(tensor_recipes, specials="nan"),
    e(tensor_recipes, specials=None),
    e(tensor_recipes, max_specials=-1),
    e(tensor_recipes, max_specials=1.5),
    e(tensor_recipes, max_specials=None),
    e(tensor_recipes, distributions=()),
    e(tensor_recipes, distributions=("cube",)),
    e(tensor_recipes, distributions="uniform"),
    e(payload_recipes, contract=None),
    e(payload_recipes, contract={"inputs": []}),
    e(payload_recipes, formats=(), contract=SEN1FLOODS11),
    e(payload_recipes, formats=("json",), contract=SEN1FLOODS11),
    e(payload_recipes, formats="npy", contract=SEN1FLOODS11),
    e(payload_recipes, formats=("npy",), contract=BFLOAT16),
    e(payload_recipes, specials=("nope",), contract=SEN1FLOODS11),
    e(payload_recipes, specials="nan", contract=SEN1FLOODS11),
    e(payload_recipes, coordinate_inputs="location_coords", contract=SEN1FLOODS11),
    e(payload_recipes, coordinate_inputs=(1,), contract=SEN1FLOODS11),
]


@pytest.mark.parametrize(("function", "kwargs"), BAD_ARGUMENTS)
def test_a_bad_argument_raises_invalid_argument_at_call_time(function, kwargs):
    with pytest.raises(InvalidArgument) as raised:
        function(**kwargs)  # no .example(), no draw: the factory itself must refuse
    name, value = next(iter(kwargs.items()))
    assert f"{name}={value!r}" in str(raised.value), "the message names the parameter and shows its value"


GOOD_ARGUMENTS = [
    e(special_values, dtype="bfloat16"),
    e(tensor_recipes),
    e(tensor_recipes, min_value=0, max_value=0),
    e(tensor_recipes, min_value=-3.4028234663852886e38, max_value=0.5, specials=("nan", "-zero"), max_specials=0),
    e(tensor_recipes, distributions=["constant"]),
    e(payload_recipes, contract=SEN1FLOODS11),
    e(payload_recipes, contract=BFLOAT16, formats=("torch", "npy"), specials=("max",), coordinate_inputs=()),
]


@pytest.mark.parametrize(("function", "kwargs"), GOOD_ARGUMENTS)
def test_valid_arguments_are_accepted(function, kwargs):
    function(**kwargs)
