"""Offline reference: the TerraTorch forward pass vLLM's Terratorch model runs, on the same weights,
in the server's dtype.

Uses ``terratorch.vllm.utils.InferenceRunner`` — the class vLLM wraps — built from the served
folder's ``config.json`` and loaded from its checkpoint with ``torch.load(weights_only=True)``, strictly:
a checkpoint missing a weight, or holding one the model has no place for, raises CheckpointError (a
reference that silently kept random weights would judge the server against another model). Needs torch
and TerraTorch (``./run setup``); imported lazily. Answers are judged by :mod:`geopool.numerics`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from geopool import wire
from geopool.contract import INPUT_DTYPES
from geopool.errors import CheckpointError, import_optional

__all__ = ["ReferenceModel", "checkpoint_state"]

#: Weights vLLM's loader skips (``TerratorchModel.load_weights``): the fixed sin-cos position
#: embedding, rebuilt when the model is built. The reference skips them too, so both run the same numbers.
_SKIPPED_BY_VLLM = ("pos_embed",)


def checkpoint_state(folder: Path) -> tuple[Path, dict]:
    """``(checkpoint path, state dict keyed as InferenceRunner names its parameters)`` of a served folder."""
    checkpoints = sorted(folder.glob("*.pt"))
    if not (folder / "config.json").is_file() or not checkpoints:
        raise CheckpointError(f"reference folder {str(folder)!r} needs config.json and a .pt checkpoint")
    state = wire.torch_load(checkpoints[0])
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {checkpoints[0]} holds {type(state).__name__}, not a state dict")
    renamed = {}
    for key, value in state.items():
        name = key.replace("_timm_module.", "")  # as vLLM's loader renames them
        renamed[name if name.startswith("model.") else f"model.{name}"] = value
    return checkpoints[0], renamed


class ReferenceModel:
    """``model(arrays) -> (1, classes, H, W)`` float32, for a folder with config.json and a .pt checkpoint.

    ``dtype`` is the server's ``--dtype``: the weights and inputs are cast to it, as vLLM does, so a
    half-precision server is compared with a half-precision pass rather than with float32 numbers.
    """

    def __init__(self, folder: Path | str, dtype: str = "float32") -> None:
        torch = import_optional("torch", "the offline reference forward pass")
        utils = import_optional("terratorch.vllm.utils", "the offline reference forward pass")
        if dtype not in INPUT_DTYPES:
            raise CheckpointError(f"reference dtype {dtype!r} is not one of {INPUT_DTYPES}")
        folder = Path(folder)
        checkpoint, state = checkpoint_state(folder)
        config = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
        self._torch = torch
        self.dtype = dtype
        self.runner = utils.InferenceRunner(config)
        kept = {name: value for name, value in state.items() if not any(s in name for s in _SKIPPED_BY_VLLM)}
        missing, unexpected = self.runner.load_state_dict(kept, strict=False)
        missing = [name for name in missing if not any(s in name for s in _SKIPPED_BY_VLLM)]
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {checkpoint} does not fit the model of {folder / 'config.json'}: "
                                  f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} "
                                  f"({len(unexpected)})")
        self._dtype = getattr(torch, dtype)
        self.runner.to(self._dtype).eval()

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        batch = {name: torch.from_numpy(np.ascontiguousarray(value, np.float32)).to(self._dtype)[None]
                 for name, value in arrays.items()}
        # The offline pass runs without oneDNN, as measured to match vLLM's CPU backend: with oneDNN it
        # differs from the served answer by up to 8.7e-3 relative L2 error (other summation orders,
        # amplified by the random-weight network: one ulp on the input moves its answer by 8e-4), without
        # it by at most 1.5e-6 (benchmarks/numeric_spread.py; 1 or 2 threads alike). A server on other
        # kernels (a GPU) differs at the first level, which the float32 bounds of geopool.numerics reject.
        # (Set directly: torch.backends.mkldnn.flags() also sets oneDNN's TF32 flag, which warns on CPU.)
        was_enabled, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, False
        try:
            with torch.inference_mode():
                output = self.runner.forward(**batch).output
        finally:
            torch.backends.mkldnn.enabled = was_enabled
        return output.to(torch.float32).numpy()
