"""Reading geopool's TOML files (requirement registry, expectations, scenarios, SLOs) with errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from geopool.errors import ConfigError, GeopoolError

__all__ = ["read_toml"]


def read_toml(path: str | Path, what: str, error: type[GeopoolError] = ConfigError) -> dict[str, Any]:
    """The parsed file; a missing, undecodable or invalid file raises ``error`` naming ``what`` and the path."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise error(f"{what} {str(path)!r} does not exist") from exc
    except OSError as exc:  # a folder, no permission ...
        raise error(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(path)!r} is not valid TOML: {exc}") from exc
