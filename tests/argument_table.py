"""Rows of the argument-validation tables (tests/test_*_validation.py), as Hypothesis's own tables."""

from __future__ import annotations

import pytest

from geopool.contract import ModelContract


def e(function, **kwargs):
    """One table row, ``function(**kwargs)``, with a readable id. In a bad row, the first argument is at fault."""
    shown = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    return pytest.param(function, kwargs, id=f"{function.__name__}({shown})"[:100])


def _short(value) -> str:
    return f"<{value.input_dtype} contract>" if isinstance(value, ModelContract) else repr(value)
