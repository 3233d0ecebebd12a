"""Every bad argument to a public factory of geopool.invalid raises InvalidArgument when it is called
(before torch is imported, so a bad call is refused even without the torch extra)."""

from __future__ import annotations

import pytest
from argument_table import e

from geopool.errors import InvalidArgument
from geopool.invalid import Mutation, code_running_payload, sparse_payload

BAD_ARGUMENTS = [
    e(code_running_payload, marker_path=""),
    e(code_running_payload, marker_path=None),
    e(code_running_payload, marker_path=42),
    e(sparse_payload, size=(), indices=[[0], [0]]),
    e(sparse_payload, size=None, indices=[[0], [0]]),
    e(sparse_payload, size=(2, -1), indices=[[0], [0]]),
    e(sparse_payload, size=(2, 2.0), indices=[[0], [0]]),
    e(sparse_payload, indices=[[0]], size=(2, 2)),
    e(sparse_payload, indices=None, size=(2, 2)),
    e(sparse_payload, indices=[0, 0], size=(2, 2)),
    e(sparse_payload, indices=[[0, 1], [0]], size=(2, 2)),
    e(sparse_payload, indices=[[], []], size=(2, 2)),
    e(sparse_payload, indices=[[0.5], [0]], size=(2, 2)),
    e(Mutation, kind="shuffle"),
    e(Mutation, kind=None),
    e(Mutation, fraction=1.5, kind="truncate"),
    e(Mutation, fraction=-0.1, kind="truncate"),
    e(Mutation, fraction="half", kind="truncate"),
    e(Mutation, input_index=-1, kind="truncate"),
    e(Mutation, offset=-1, kind="damage"),
    e(Mutation, offset=1.5, kind="damage"),
    e(Mutation, junk=b"", kind="damage"),
    e(Mutation, junk="\x00", kind="damage"),
]


@pytest.mark.parametrize(("function", "kwargs"), BAD_ARGUMENTS)
def test_a_bad_argument_raises_invalid_argument_at_call_time(function, kwargs):
    with pytest.raises(InvalidArgument) as raised:
        function(**kwargs)
    name, value = next(iter(kwargs.items()))
    assert f"{name}={value!r}" in str(raised.value), "the message names the parameter and shows its value"


@pytest.mark.parametrize("mutation", [
    pytest.param(Mutation("truncate", fraction=0.0), id="empty-input"),
    pytest.param(Mutation("damage", at_tail=True, offset=40, junk=b"\x00\x00\x00\x00"), id="archive-index"),
    pytest.param(Mutation("retype", input_index=3, value=[1.0]), id="retype"),
])
def test_valid_mutations_are_accepted(mutation):
    assert mutation.kind in ("truncate", "damage", "retype")
