"""geopool's image-to-image IO-processor plugins for vLLM (entry-point group ``vllm.io_processor_plugins``).

vLLM imports every entry point of the group in every server it starts, so this module imports nothing:
the classes live in :mod:`geopool.i2i_plugin.processor`, which needs vLLM and TerraTorch and is loaded
only inside a server that names one of these plugins with ``--io-processor-plugin``.

- ``geopool_segmentation``: TerraTorch's ``terratorch_segmentation`` with two fixes and nothing else:
  D8 (its ``pre_process`` calls ``asyncio.run`` inside vLLM's running event loop, so every request
  fails on TerraTorch 1.2.10-1.2.12) and D9 (it sends float16 whatever the server's dtype, which kills
  a float32 engine).
- ``geopool_segmentation_loopfix``: only the D8 fix, so that D9 and everything D8 hides can be shown on
  TerraTorch 1.2.10 (where the stock plugin answers every request 500 before reading anything).
"""

from __future__ import annotations

__all__ = ["PLUGINS", "register", "register_loopfix"]

#: ``--plugin`` choice -> (vLLM ``--io-processor-plugin`` name, what it is, for banners and reports)
PLUGINS: dict[str, tuple[str, str]] = {
    "geopool": ("geopool_segmentation",
                "geopool_segmentation = terratorch_segmentation + geopool's fixes for D8 (event loop) and "
                "D9 (model dtype), nothing else"),
    "loopfix": ("geopool_segmentation_loopfix",
                "geopool_segmentation_loopfix = terratorch_segmentation + geopool's fix for D8 (event loop) only"),
    "stock": ("terratorch_segmentation", "terratorch_segmentation (TerraTorch's own, unmodified)"),
}


def register() -> str:
    return "geopool.i2i_plugin.processor.GeopoolSegmentationIOProcessor"


def register_loopfix() -> str:
    return "geopool.i2i_plugin.processor.LoopFixSegmentationIOProcessor"
