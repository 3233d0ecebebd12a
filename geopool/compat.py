"""Does a TerraTorch model config build and serve on a given TerraTorch version? Two checks:

- **Known changes** (:func:`config_problems`): rules for what a TerraTorch release stopped accepting, and
  what image-to-image serving needs in the config, each with the version and the evidence. Pure: no
  TerraTorch is imported, so a runner can check a config against a version it does not have.
- **A real build** (:func:`build_problem`): the model built from the config with the TerraTorch installed
  here (in a subprocess, as the fixture weights are), which catches what no rule knows.

``geopool compat --model-config config.json [--terratorch-version X.Y.Z] [--mode image-to-image]``
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from geopool.errors import ContractError, InvalidArgument
from geopool.fixture_models import resolve_model_dir
from geopool.modes import IMAGE_TO_IMAGE, MODES, TENSOR_TO_TENSOR

__all__ = ["Incompatibility", "build_problem", "config_problems", "load_config"]


@dataclasses.dataclass(frozen=True)
class Incompatibility:
    rule: str
    where: str
    why: str
    #: "incompatible" (it will not build or serve) or "deprecated" (it works, with a warning)
    severity: str = "incompatible"


@dataclasses.dataclass(frozen=True)
class _Rule:
    name: str
    applies: Callable[[Version, str], bool]
    check: Callable[[dict[str, Any]], str | None]
    why: str
    severity: str = "incompatible"


def _model_args(config: dict[str, Any]) -> dict[str, Any]:
    return (config.get("pretrained_cfg", {}).get("model", {}).get("init_args", {}).get("model_args", {})) or {}


def _scale_modules(config: dict[str, Any]) -> str | None:
    args = _model_args(config)
    if args.get("decoder") == "UperNetDecoder" and args.get("decoder_scale_modules"):
        return "pretrained_cfg.model.init_args.model_args.decoder_scale_modules = true (UperNetDecoder)"
    return None


def _no_datamodule(config: dict[str, Any]) -> str | None:
    data = config.get("pretrained_cfg", {}).get("data")
    if not isinstance(data, dict) or not isinstance(data.get("class_path"), str):
        return "pretrained_cfg.data (a datamodule class_path and init_args) is missing"
    return None


def _no_test_transform(config: dict[str, Any]) -> str | None:
    data = config.get("pretrained_cfg", {}).get("data")
    if not isinstance(data, dict):
        return None  # _no_datamodule says it
    transform = (data.get("init_args") or {}).get("test_transform")
    if not transform:
        return "pretrained_cfg.data.init_args.test_transform is missing"
    if any("." not in str(item.get("class_path", "")) for item in transform if isinstance(item, dict)):
        return "pretrained_cfg.data.init_args.test_transform names a class without its full dotted path"
    return None


_RULES = (
    _Rule("upernet-scale-modules", lambda v, mode: v >= Version("1.2.13"), _scale_modules,
          "TerraTorch 1.2.13 removed UperNetDecoder's scale_modules: the engine fails at start with "
          "\"UperNetDecoder.__init__() got an unexpected keyword argument 'scale_modules'\" (verified on "
          "1.2.13; the real Sen1Floods11 config has it). Use the LearnedInterpolateToPyramidal neck instead"),
    _Rule("upernet-scale-modules-deprecated", lambda v, mode: v < Version("1.2.13"), _scale_modules,
          "deprecated before 1.2.13 (TerraTorch warns 'scale_modules is deprecated and will be removed'); the "
          "config will not build on 1.2.13", severity="deprecated"),
    _Rule("io-plugin-datamodule", lambda v, mode: mode == IMAGE_TO_IMAGE, _no_datamodule,
          "the segmentation IO-processor plugin builds its normalisation from the datamodule: the server fails at "
          "start with 'does not contain the Terratorch datamodule configuration'"),
    _Rule("io-plugin-test-transform", lambda v, mode: mode == IMAGE_TO_IMAGE, _no_test_transform,
          "the plugin calls the datamodule's test_transform on every tile (class paths resolved by their full "
          "dotted name): without one every request fails [inferred from TerraTorch 1.2.10's code]"),
)


def load_config(model_config: Path | str) -> dict[str, Any]:
    """A config.json (a file, a model folder, or a fixture name) as a dict; ContractError if it is not one."""
    path = Path(model_config)
    if not path.is_file():
        path = resolve_model_dir(model_config) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable JSON config: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("pretrained_cfg"), dict):
        raise ContractError(f"{path}: not a TerraTorch vLLM config (no pretrained_cfg object)")
    return config


def config_problems(config: dict[str, Any], terratorch_version: str,
                    mode: str = TENSOR_TO_TENSOR) -> list[Incompatibility]:
    """What the known TerraTorch changes say about ``config`` on ``terratorch_version`` in ``mode``."""
    try:
        version = Version(terratorch_version)
    except InvalidVersion as exc:
        raise InvalidArgument(f"--terratorch-version {terratorch_version!r} is not a version like 1.2.13") from exc
    if mode not in MODES:
        raise InvalidArgument(f"mode {mode!r} is not one of {MODES}")
    found = []
    for rule in _RULES:
        where = rule.check(config) if rule.applies(version, mode) else None
        if where is not None:
            found.append(Incompatibility(rule.name, where, rule.why, rule.severity))
    return found


def build_problem(config_path: Path, timeout_s: float = 600.0) -> str | None:
    """Build the model of ``config_path`` with the TerraTorch installed here; the error's last lines, or None."""
    code = ("import sys; from pathlib import Path; from geopool.fixture_models import build_task; "
            "build_task(Path(sys.argv[1]))")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(config_path)], capture_output=True, text=True,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"building the model took over {timeout_s:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return "\n".join(lines[-3:]) or f"the build exited with {result.returncode}"
