"""The suite's own server is started with an API key (so POOL-CLI-008/009 are checked in every embedded
run): the wiring only; the live runs check the server's answers."""

from __future__ import annotations

import pytest

from geopool.conformance import target as target_module


class _Launched(Exception):
    pass


def _launch_args(monkeypatch, api_key):
    seen = {}

    class Recorder:
        def __init__(self, model, **options):
            seen.update(options)

        def start(self):
            raise _Launched

    monkeypatch.setattr(target_module, "EmbeddedServer", Recorder)
    with pytest.raises(_Launched):
        target_module.resolve_target(base_url=None, model=None, model_config=None, input_dtype=None, api_key=api_key,
                                     embedded_model="prithvi-tiny-tl", embedded_dtype="float32", reference=None)
    return seen["extra_args"]


def test_a_random_key_unless_one_is_given(monkeypatch):
    flag, key = _launch_args(monkeypatch, None)
    assert flag == "--api-key" and key.startswith("geopool-") and len(key) > 30
    assert _launch_args(monkeypatch, None)[1] != key  # a new one each run
    assert _launch_args(monkeypatch, "mine") == ("--api-key", "mine")
