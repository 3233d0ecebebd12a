"""The model contract: what a TerraTorch model served by vLLM takes and gives back.

A contract is read from the model's vLLM ``config.json`` (``pretrained_cfg.input`` and
``pretrained_cfg.model.init_args.model_args.num_classes``) or taken from the built-in Sen1Floods11
contract, and may be overridden from the command line. Everything downstream (payloads, decoding,
checks, load) derives shapes and dtypes from here; nothing else hard-codes 1×2×512×512.

>>> SEN1FLOODS11.output_shape
(1, 2, 512, 512)
>>> SEN1FLOODS11.input_shape("location_coords")
(1, 2)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geopool.errors import ContractError

__all__ = ["INPUT_DTYPES", "SEN1FLOODS11", "InputSpec", "ModelContract", "load_contract"]

#: dtypes a client may send inputs in. The server must have been loaded with the same ``--dtype``:
#: vLLM 0.32 does not cast inputs, and a mismatch kills its engine (see docs/conformance.md).
INPUT_DTYPES = ("float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One named model input: a tensor of this shape (no batch dimension)."""

    name: str
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ModelContract:
    """Inputs, target and output of a TerraTorch model served by vLLM's ``/pooling``.

    ``input_dtype`` is the dtype the server was loaded with (its ``--dtype``), and so the dtype
    clients must send. ``output_shape`` is ``(1, num_classes, H, W)`` with H, W from the target input.
    """

    inputs: tuple[InputSpec, ...]
    target: str
    num_classes: int
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.inputs]
        if not names:
            raise ContractError("contract has no inputs: pretrained_cfg.input.data is empty")
        if len(set(names)) != len(names):
            raise ContractError(f"contract input names repeat: {names!r}")
        if self.target not in names:
            raise ContractError(f"target {self.target!r} is not one of the inputs {names!r}")
        if len(self.input_shape(self.target)) < 2:
            raise ContractError(
                f"target {self.target!r} has shape {self.input_shape(self.target)!r}; "
                "it needs at least two (H, W) dimensions"
            )
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ContractError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if self.input_dtype not in INPUT_DTYPES:
            raise ContractError(f"input_dtype {self.input_dtype!r} is not one of {INPUT_DTYPES}")

    def input_shape(self, name: str) -> tuple[int, ...]:
        for spec in self.inputs:
            if spec.name == name:
                return spec.shape
        raise ContractError(f"no input named {name!r}; inputs are {[s.name for s in self.inputs]!r}")

    @property
    def output_shape(self) -> tuple[int, ...]:
        height, width = self.input_shape(self.target)[-2:]
        return (1, self.num_classes, height, width)

    @property
    def output_elements(self) -> int:
        count = 1
        for dim in self.output_shape:
            count *= dim
        return count

    def with_overrides(self, **changes: Any) -> ModelContract:
        """A copy with some fields replaced (validated like the original)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, input_dtype: str = "float32") -> ModelContract:
        """Read a contract from a TerraTorch vLLM ``config.json`` already parsed as a dict."""
        pretrained = _field(config, "pretrained_cfg", Mapping)
        input_cfg = _field(pretrained, "pretrained_cfg.input", Mapping, key="input")
        data = _field(input_cfg, "pretrained_cfg.input.data", Mapping, key="data")
        inputs = tuple(_input_spec(name, spec) for name, spec in data.items())
        if not inputs:
            raise ContractError("contract has no inputs: pretrained_cfg.input.data is empty")
        target = input_cfg.get("target", inputs[0].name)
        if not isinstance(target, str):
            raise ContractError(f"pretrained_cfg.input.target must be a string, got {target!r}")
        model = _field(pretrained, "pretrained_cfg.model", Mapping, key="model")
        init_args = _field(model, "pretrained_cfg.model.init_args", Mapping, key="init_args")
        model_args = _field(init_args, "pretrained_cfg.model.init_args.model_args", Mapping, key="model_args")
        num_classes = model_args.get("num_classes")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise ContractError(
                "pretrained_cfg.model.init_args.model_args.num_classes must be an integer, "
                f"got {num_classes!r}"
            )
        return cls(inputs=inputs, target=target, num_classes=num_classes, input_dtype=input_dtype)


def load_contract(path: str | Path | None = None, *, input_dtype: str = "float32") -> ModelContract:
    """The contract in ``path`` (a config.json, or a model folder holding one); Sen1Floods11 if None."""
    if path is None:
        return SEN1FLOODS11.with_overrides(input_dtype=input_dtype)
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ContractError(f"model config {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"model config {str(path)!r} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ContractError(f"model config {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(config, Mapping):
        raise ContractError(f"model config {str(path)!r} must hold a JSON object")
    try:
        return ModelContract.from_config(config, input_dtype=input_dtype)
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from exc


def _field(parent: Mapping[str, Any], where: str, kind: type, *, key: str | None = None) -> Any:
    key = key or where
    if key not in parent:
        raise ContractError(f"missing field {where!r}")
    value = parent[key]
    if not isinstance(value, kind):
        raise ContractError(f"field {where!r} must be a JSON object, got {type(value).__name__}")
    return value


def _input_spec(name: str, spec: Any) -> InputSpec:
    where = f"pretrained_cfg.input.data.{name}"
    if not isinstance(spec, Mapping):
        raise ContractError(f"field {where!r} must be a JSON object, got {spec!r}")
    if spec.get("type", "torch.Tensor") != "torch.Tensor":
        raise ContractError(f"field {where}.type must be 'torch.Tensor', got {spec.get('type')!r}")
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise ContractError(f"field {where}.shape must be a list of positive integers, got {shape!r}")
    return InputSpec(name=name, shape=tuple(shape))


#: Prithvi-EO-2.0-300M-TL-Sen1Floods11: 6 HLS bands at 512×512 plus (lat, lon), 2 classes.
SEN1FLOODS11 = ModelContract(
    inputs=(InputSpec("pixel_values", (6, 512, 512)), InputSpec("location_coords", (1, 2))),
    target="pixel_values",
    num_classes=2,
)
