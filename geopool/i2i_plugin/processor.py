"""The plugin classes behind :mod:`geopool.i2i_plugin` (imported only inside a vLLM server).

vLLM 0.32 calls ``pre_process`` synchronously on its API event loop; TerraTorch 1.2.10's ``pre_process``
is ``asyncio.run(self.pre_process_async(...))``, which cannot run there (D8). Running the stock method
in a thread of our own gives it a thread with no loop, and its exceptions cross ``.result()`` unchanged,
so status codes and every other behaviour (D10, the security items) stay the stock plugin's. The API
loop still waits for pre-processing, as with a synchronous stock plugin: the slow-URL stall is kept.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from terratorch.vllm.plugins.segmentation.segmentation_io_processor import SegmentationIOProcessor


class LoopFixSegmentationIOProcessor(SegmentationIOProcessor):
    """The stock plugin with its ``pre_process`` run where ``asyncio.run`` works (D8 only)."""

    def __init__(self, vllm_config: Any, renderer: Any = None) -> None:
        super().__init__(vllm_config, renderer)
        self._model_dtype: torch.dtype = vllm_config.model_config.dtype
        self._pre_process_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geopool-io-pre")

    def pre_process(self, prompt: Any, request_id: str | None = None, **kwargs: Any) -> Any:
        # super().pre_process, not pre_process_async: in TerraTorch >= 1.2.13 the async one calls
        # pre_process, and overriding with it would recurse
        stock = super().pre_process
        return self._pre_process_thread.submit(stock, prompt, request_id, **kwargs).result()


class GeopoolSegmentationIOProcessor(LoopFixSegmentationIOProcessor):
    """D8 fixed, and the plugin's float16 inputs cast to the model's dtype (D9). The cast comes after
    the stock float16 rounding, so the model sees float16-precise inputs in its own dtype."""

    def pre_process(self, prompt: Any, request_id: str | None = None, **kwargs: Any) -> Any:
        prompts = super().pre_process(prompt, request_id, **kwargs)
        for one in prompts if isinstance(prompts, list | tuple) else [prompts]:
            data = one["multi_modal_data"]
            fields = data.get("image", data)
            for name, value in fields.items():
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    fields[name] = value.to(self._model_dtype)
        return prompts
