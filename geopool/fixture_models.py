"""Fixture models: TerraTorch models with random weights that vLLM can serve with no network.

A fixture is a folder ``fixtures/models/<name>/`` holding a TerraTorch vLLM ``config.json`` (shipped as
the package ``geopool_fixtures``; see geopool.resources). Its weights are generated on first use — the
TerraTorch task built under a fixed seed, saved as a Lightning-style ``{"state_dict": ...}`` checkpoint —
and cached under ``~/.cache/geopool/models`` (``GEOPOOL_CACHE`` overrides) in a folder keyed by the
config's hash, so editing the config makes new weights and the same config always gives the same bytes.
Generation runs in a subprocess so that the caller never imports torch or TerraTorch.

    python -m geopool.fixture_models prithvi-tiny-tl    # prints the servable folder
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from geopool.errors import EmbeddedServerError, InvalidArgument
from geopool.resources import fixture_models_dir

__all__ = ["DEFAULT_MODEL", "FIXTURES_DIR", "fixture_names", "prepare_model", "resolve_model_dir"]

FIXTURES_DIR = fixture_models_dir()
DEFAULT_MODEL = "prithvi-tiny-tl"
WEIGHTS_SEED = 0
_CHECKPOINT_SUFFIXES = (".pt", ".safetensors", ".bin")


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_dir(model: str | Path) -> Path:
    """A fixture name (``prithvi-tiny-tl``) or a folder path → the folder holding config.json."""
    candidate = Path(model)
    if not candidate.is_dir():
        candidate = FIXTURES_DIR / str(model)
    if not (candidate / "config.json").is_file():
        raise InvalidArgument(
            f"model {str(model)!r} is neither a folder with a config.json nor a fixture "
            f"(fixtures: {', '.join(fixture_names())})"
        )
    return candidate


def _cache_root() -> Path:
    return Path(os.environ.get("GEOPOOL_CACHE", Path.home() / ".cache" / "geopool")) / "models"


def prepare_model(model: str | Path, *, timeout_s: float = 900.0) -> Path:
    """A folder vLLM can serve: the model's own if it has a checkpoint, else the cached fixture."""
    source = resolve_model_dir(model)
    if any(p.suffix in _CHECKPOINT_SUFFIXES for p in source.iterdir()):
        return source
    config_bytes = (source / "config.json").read_bytes()
    digest = hashlib.sha256(config_bytes + f"seed={WEIGHTS_SEED}".encode()).hexdigest()[:12]
    target = _cache_root() / f"{source.name}-{digest}"
    checkpoint = target / "model.pt"
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=timeout_s):
        if not checkpoint.is_file():
            shutil.copyfile(source / "config.json", target / "config.json")
            _generate_weights(target / "config.json", checkpoint, timeout_s)
    return target


def _generate_weights(config: Path, checkpoint: Path, timeout_s: float) -> None:
    partial = checkpoint.with_suffix(".partial")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "geopool.fixture_models", "--generate", str(config), str(partial)],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedServerError(f"generating weights for {config.parent.name} took over {timeout_s}s") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise EmbeddedServerError(f"generating weights for {config.parent.name} failed:\n{tail}")
    partial.replace(checkpoint)


def build_task(config_path: Path):  # -> terratorch.tasks.SemanticSegmentationTask
    """The TerraTorch task described by a vLLM config, with seeded random weights (imports torch)."""
    import json

    import torch
    from terratorch.tasks import SemanticSegmentationTask

    init_args = json.loads(config_path.read_text())["pretrained_cfg"]["model"]["init_args"]
    torch.manual_seed(WEIGHTS_SEED)
    return SemanticSegmentationTask(
        model_args=init_args["model_args"], model_factory=init_args["model_factory"]
    )


def _generate(config_path: Path, out: Path) -> None:
    import torch

    task = build_task(config_path)
    torch.save({"state_dict": task.state_dict()}, out)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--generate":
        _generate(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 2:
        print(prepare_model(sys.argv[1]))
    else:
        sys.exit("usage: python -m geopool.fixture_models NAME_OR_FOLDER")
