"""Offline reference: the TerraTorch forward pass vLLM's Terratorch model runs, on the same weights.

Uses ``terratorch.vllm.utils.InferenceRunner`` — the class vLLM wraps — built from the served
folder's ``config.json`` and loaded from its checkpoint with ``torch.load(weights_only=True)``.
Needs torch and TerraTorch (``./run setup``); imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from geopool import wire
from geopool.errors import CheckpointError, import_optional

__all__ = ["ReferenceModel", "TOLERANCES"]

#: (atol, rtol) of served-vs-offline per server dtype, as in numpy.allclose. Measured on the
#: random-weight tiny model: the same offline float32 pass with 1 and with 2 threads differs by up to
#: 1e-3 (summation order, amplified through 12 random transformer blocks), and the server against the
#: offline pass by up to 2e-3 on outputs of magnitude ~0.25. float32 allows 5e-3, 2.5× the worst seen;
#: a wrong weight, input or input order moves outputs by >1e-2. Half-precision servers are compared
#: with a float32 offline pass, so their bounds add the format's rounding through the network.
TOLERANCES = {"float32": (5e-3, 1e-3), "float16": (5e-2, 1e-2), "bfloat16": (2e-1, 5e-2)}


class ReferenceModel:
    """``model(arrays) -> (1, classes, H, W)`` float32, for a folder with config.json and a .pt checkpoint."""

    def __init__(self, folder: Path | str) -> None:
        torch = import_optional("torch", "the offline reference forward pass")
        utils = import_optional("terratorch.vllm.utils", "the offline reference forward pass")
        folder = Path(folder)
        checkpoints = sorted(folder.glob("*.pt"))
        if not (folder / "config.json").is_file() or not checkpoints:
            raise CheckpointError(f"reference folder {str(folder)!r} needs config.json and a .pt checkpoint")
        config = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
        self._torch = torch
        self.runner = utils.InferenceRunner(config)
        state = wire.torch_load(checkpoints[0])
        state = state.get("state_dict", state)
        missing, _unexpected = self.runner.load_state_dict(
            {k if k.startswith("model.") else f"model.{k}": v for k, v in state.items()}, strict=False)
        if missing:
            raise CheckpointError(f"checkpoint {checkpoints[0]} lacks weights: {missing[:5]}")
        self.runner.eval()

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        batch = {name: torch.from_numpy(np.ascontiguousarray(value, np.float32))[None]
                 for name, value in arrays.items()}
        with torch.inference_mode():
            output = self.runner.forward(**batch).output
        return output.to(torch.float32).numpy()
