"""The serving modes geopool drives a vLLM server in.

They sit in a module of their own, importing nothing from geopool, because every layer names them (the
option table, the contract checks, the load plan, the reports, the launcher): with the constants here,
none of those depends on the server launcher just to spell a mode.
"""

from __future__ import annotations

__all__ = ["IMAGE_TO_IMAGE", "MODES", "TENSOR_TO_TENSOR"]

#: Tensors in, tensors out through ``/pooling`` (the model's own inputs as ``image_embeds``).
TENSOR_TO_TENSOR = "tensor-to-tensor"
#: GeoTIFFs in and out through TerraTorch's IO-processor plugin.
IMAGE_TO_IMAGE = "image-to-image"
MODES = (TENSOR_TO_TENSOR, IMAGE_TO_IMAGE)
