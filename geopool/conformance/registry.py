"""The requirements registry (``conformance/requirements.toml``) and expected-failure files."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from geopool import resources
from geopool.errors import RegistryError
from geopool.tomlfile import read_toml

__all__ = ["Requirement", "load_registry", "load_expectations", "REGISTRY_PATH", "EXPECTATIONS_DIR"]

SUITE_DIR = resources.suite_dir()
REGISTRY_PATH = resources.registry_file()
EXPECTATIONS_DIR = resources.expectations_dir()
_ID = re.compile(r"^[A-Z]+(-[A-Z0-9]+)+-\d{3}$")
LEVELS = ("MUST", "SHOULD")


@dataclasses.dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    statement: str
    source: str
    #: Why no proxy fault can make this requirement fail (see geopool.conformance.matrix), if so.
    uncatchable: str | None = None


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Requirement]:
    """Every requirement by id; a malformed entry raises RegistryError naming it and the field."""
    entries = read_toml(path, "requirements registry", RegistryError).get("requirement", [])
    registry: dict[str, Requirement] = {}
    for number, entry in enumerate(entries, 1):
        where = f"{path.name} requirement #{number} ({entry.get('id', 'no id')})"
        for field in ("id", "level", "statement", "source"):
            if not isinstance(entry.get(field), str) or not entry[field].strip():
                raise RegistryError(f"{where}: field {field!r} must be a non-empty string")
        if not _ID.match(entry["id"]):
            raise RegistryError(f"{where}: id must look like POOL-SHAPE-001")
        if entry["level"] not in LEVELS:
            raise RegistryError(f"{where}: level must be one of {LEVELS}, got {entry['level']!r}")
        if entry["id"] in registry:
            raise RegistryError(f"{where}: id {entry['id']} appears twice")
        if "uncatchable" in entry and not (isinstance(entry["uncatchable"], str) and entry["uncatchable"].strip()):
            raise RegistryError(f"{where}: field 'uncatchable' must be a non-empty string")
        registry[entry["id"]] = Requirement(**{k: entry[k] for k in ("id", "level", "statement", "source")},
                                            uncatchable=entry.get("uncatchable"))
    return registry


@dataclasses.dataclass(frozen=True)
class Expectations:
    """Requirements a server version is known to fail, each with a one-line reason."""

    source: str | None
    reasons: dict[str, str]


def load_expectations(
    server_version: str | None, *, path: Path | None = None, registry: dict[str, Requirement] | None = None
) -> Expectations:
    """The expected failures for ``server_version``: from ``path``, else the file in ``EXPECTATIONS_DIR``
    whose ``versions`` list it. Unknown requirement ids or missing reasons raise RegistryError."""
    candidates = [path] if path is not None else resources.expectations_files()
    for candidate in candidates:
        data = read_toml(candidate, "expectations file", RegistryError)
        versions = data.get("versions", [])
        if path is None and server_version not in versions:
            continue
        reasons: dict[str, str] = {}
        for number, entry in enumerate(data.get("expected-fail", []), 1):
            rid, reason = entry.get("id"), entry.get("reason")
            if not isinstance(rid, str) or not isinstance(reason, str) or not reason.strip():
                raise RegistryError(f"{candidate.name} expected-fail #{number}: needs string 'id' and 'reason'")
            if registry is not None and rid not in registry:
                raise RegistryError(f"{candidate.name} expected-fail #{number}: unknown requirement {rid!r}")
            reasons[rid] = reason
        return Expectations(str(candidate), reasons)
    return Expectations(None, {})
