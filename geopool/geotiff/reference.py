"""Offline reference for image-to-image answers (POOL-IO-011): TerraTorch's own tiled inference on the same
GeoTIFF and the same checkpoint, without vLLM, so the served class map can be compared pixel by pixel.

What is TerraTorch's and what is geopool's:

- **TerraTorch's own code, called unchanged**: the plugin class
  ``terratorch.vllm.plugins.segmentation.segmentation_io_processor.SegmentationIOProcessor`` — its
  ``pre_process`` (reading the GeoTIFF, band ``indices``, ``/10000`` when the mean is > 1, reflect padding
  to the crop, tiling, the datamodule's ``test_transform`` and ``aug`` normalisation, ``location_coords``
  from the raster's centre, the cast of every input to float16) and its ``post_process`` (argmax, the
  tiles put back together, the padding cropped off, ``class × 255`` as uint8, the GeoTIFF written with the
  input's profile) — with its datamodule built by ``terratorch.vllm.plugins.generate_datamodule`` and its
  crop by its own ``_init_tiled_inference_parameters_info``. The model is ``terratorch.vllm.utils.
  InferenceRunner`` (the class vLLM's Terratorch model wraps), via :class:`geopool.reference.ReferenceModel`
  (checkpoint read with ``weights_only=True``, strictly; oneDNN off, as measured to match vLLM's CPU path).
- **Copied from TerraTorch** (because it needs a ``VllmConfig``, which needs an engine): the few lines
  of ``SegmentationIOProcessor.__init__`` that set the plugin's fields from ``pretrained_cfg`` — see
  :func:`_offline_processor`.
- **geopool's**: the float16 inputs cast back to float32 before the forward pass, as geopool's plugin
  does for a float32 server (D9; the model sees float16-precise values in float32); the model's output
  handed to ``post_process`` in the shape vLLM hands it (one ``(classes, H, W)`` per tile); reading band 1
  of the answer GeoTIFF.

Needs torch, TerraTorch and vLLM (``./run setup``); they are imported only when a reference is made.
"""

from __future__ import annotations

import functools
import json
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pybase64

from geopool.errors import CheckpointError, import_optional
from geopool.geotiff.raster import rasterio_module

__all__ = ["OfflineSegmentation", "class_map", "mismatch_share", "offline_answer", "offline_class_map"]

_PLUGIN_MODULE = "terratorch.vllm.plugins.segmentation.segmentation_io_processor"


class OfflineSegmentation:
    """TerraTorch's segmentation plugin and the served model, run in this process on one GeoTIFF at a time.

    ``model_dir`` is the served folder (config.json with ``pretrained_cfg.data`` + a ``.pt`` checkpoint:
    :func:`geopool.fixture_models.prepare_model` gives one for a fixture). ``dtype`` is the server's.
    """

    def __init__(self, model_dir: Path | str, dtype: str = "float32") -> None:
        from geopool.reference import ReferenceModel

        self.model_dir = Path(model_dir)
        self.model = ReferenceModel(self.model_dir, dtype)
        self.processor = _offline_processor(self.model_dir)
        self._torch = import_optional("torch", "the offline image-to-image reference")

    def answer(self, geotiff_path: Path | str, *, indices: list[int] | None = None) -> bytes:
        """The answer GeoTIFF's bytes, as the plugin would write them for ``out_data_format: b64_json``."""
        request = {"data": str(Path(geotiff_path).resolve()), "data_format": "path",
                   "out_data_format": "b64_json", "indices": indices}
        prompt = self.processor.parse_data(request)
        request_id = "geopool-offline"
        # The plugin's pre_process is asyncio.run(...) on TerraTorch 1.2.10-1.2.12 (and its async twin calls
        # it on 1.2.13): run it on a thread with no event loop, whatever the caller runs in.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geopool-offline-pre") as thread:
            prompts = thread.submit(self.processor.pre_process, prompt, request_id).result()
        outputs = [self._forward(one["multi_modal_data"]) for one in prompts]
        written = self.processor.post_process(outputs, request_id)
        return pybase64.b64decode(written.data, validate=True)

    def _forward(self, multi_modal_data: dict[str, Any]) -> Any:
        torch = self._torch
        fields = multi_modal_data.get("image", multi_modal_data)
        # geopool's plugin casts the stock float16 inputs to the model's dtype; ReferenceModel does the same
        arrays = {name: value.to(torch.float32).numpy() for name, value in fields.items()
                  if isinstance(value, torch.Tensor)}
        logits = self.model(arrays)  # (1, classes, H, W)
        # vLLM hands post_process one PoolingRequestOutput per tile; it reads only .outputs.data
        return types.SimpleNamespace(outputs=types.SimpleNamespace(data=torch.from_numpy(logits[0])))


def _offline_processor(model_dir: Path) -> Any:
    """A SegmentationIOProcessor with the fields its ``__init__`` sets, without the VllmConfig it needs.

    Copied from TerraTorch 1.2.10 ``SegmentationIOProcessor.__init__`` (the ``model_config``, datamodule,
    ``aug`` template with its ``data_keys`` fix, tiling parameters, batch size and request cache)."""
    plugin = import_optional(_PLUGIN_MODULE, "the offline image-to-image reference")
    plugins = import_optional("terratorch.vllm.plugins", "the offline image-to-image reference")
    types_module = import_optional("terratorch.vllm.plugins.segmentation.types",
                                   "the offline image-to-image reference")
    config = json.loads((model_dir / "config.json").read_text())["pretrained_cfg"]
    if "data" not in config:
        raise CheckpointError(f"{model_dir / 'config.json'} has no pretrained_cfg.data (the datamodule the "
                              "segmentation plugin normalises with)")
    processor = plugin.SegmentationIOProcessor.__new__(plugin.SegmentationIOProcessor)
    processor.model_config = config
    processor.plugin_config = types_module.PluginConfig()
    processor.datamodule = plugins.generate_datamodule(config["data"])
    processor._aug_template = processor.datamodule.aug
    transform_op = getattr(processor._aug_template, "transform_op", None)
    if transform_op is not None and getattr(transform_op, "data_keys", "") is None:
        transform_op.data_keys = ["image"]
    processor.tiled_inference_parameters = processor._init_tiled_inference_parameters_info()
    processor.batch_size = 1
    processor.requests_cache = {}
    return processor


@functools.lru_cache(maxsize=2)
def _cached(model_dir: str, dtype: str) -> OfflineSegmentation:
    return OfflineSegmentation(model_dir, dtype)


def offline_answer(geotiff_path: Path | str, model_dir: Path | str, *, dtype: str = "float32") -> bytes:
    """The answer GeoTIFF TerraTorch's plugin writes for ``geotiff_path`` with the model in ``model_dir``
    (the model is built once per folder and dtype)."""
    return _cached(str(Path(model_dir).resolve()), dtype).answer(geotiff_path)


def offline_class_map(geotiff_path: Path | str, model_dir: Path | str, *, dtype: str = "float32") -> np.ndarray:
    """The reference class map: ``(H, W)`` uint8 holding ``class index × 255``, as the served answer's band 1.

    >>> offline_class_map("tile.tif", prepare_model("prithvi-tiny-tl-seg"))  # doctest: +SKIP
    """
    return class_map(offline_answer(geotiff_path, model_dir, dtype=dtype))


def class_map(geotiff: bytes) -> np.ndarray:
    """Band 1 of an answer GeoTIFF's bytes, ``(H, W)``."""
    rasterio = rasterio_module()
    with rasterio.io.MemoryFile(geotiff) as memory, memory.open() as dataset:
        return dataset.read(1)


def mismatch_share(served: np.ndarray, reference: np.ndarray) -> float:
    """The share of pixels whose classes differ (1.0 when the shapes differ: nothing can be compared)."""
    if served.shape != reference.shape:
        return 1.0
    return float(np.count_nonzero(served != reference)) / max(served.size, 1)
