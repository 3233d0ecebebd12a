"""geopool's IO-processor plugins as vLLM finds them: entry points whose module imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from geopool.i2i_plugin import PLUGINS


def test_every_plugin_choice_but_stock_is_an_entry_point_of_vllms_group():
    found = {entry.name: entry for entry in entry_points(group="vllm.io_processor_plugins")}
    for choice, (name, _) in PLUGINS.items():
        assert name in found, (choice, sorted(found))
        if choice != "stock":
            assert found[name].value.startswith("geopool.i2i_plugin:")
            assert found[name].load()().startswith("geopool.i2i_plugin.processor.")


def test_registering_imports_neither_torch_nor_vllm_nor_terratorch():
    # vLLM calls every entry point of the group in every server it starts, tensor-mode ones included
    code = ("import sys; from geopool import i2i_plugin; i2i_plugin.register(); i2i_plugin.register_loopfix(); "
            "print(sorted(m for m in ('torch', 'vllm', 'terratorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
