"""The waiver file: the MUST requirements a gate may leave unchecked, each with the reason it may.

    [[waiver]]
    id = "POOL-SURV-002"
    reason = "a shared server: destructive inputs would kill it for everyone"

A gate never passes with a MUST requirement unchecked unless a waiver names it. A waiver does not
turn anything into a pass: the requirement stays "not checked" in every report, with the reason beside it.
"""

from __future__ import annotations

from pathlib import Path

from geopool.conformance.registry import Requirement
from geopool.errors import ConfigError
from geopool.tomlfile import read_toml

__all__ = ["load_waivers"]

_FIELDS = {"id", "reason"}


def load_waivers(path: str | Path | None, registry: dict[str, Requirement]) -> dict[str, str]:
    """Requirement id → reason; a malformed file or entry raises ConfigError naming the file and the entry."""
    if path is None:
        return {}
    data = read_toml(path, "waiver file")
    unknown_tables = set(data) - {"waiver"}
    if unknown_tables:
        raise ConfigError(f"waiver file {str(path)!r}: unknown key(s) {sorted(unknown_tables)}; "
                          "only [[waiver]] entries are allowed")
    entries = data.get("waiver", [])
    if not isinstance(entries, list):
        raise ConfigError(f"waiver file {str(path)!r}: 'waiver' must be [[waiver]] entries")
    waivers: dict[str, str] = {}
    for number, entry in enumerate(entries, 1):
        where = f"waiver file {str(path)!r} entry #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table with id and reason")
        extra = set(entry) - _FIELDS
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}; only id and reason are allowed")
        rid, reason = entry.get("id"), entry.get("reason")
        if not isinstance(rid, str) or rid not in registry:
            raise ConfigError(f"{where}: id {rid!r} is not a requirement of the registry")
        if registry[rid].level != "MUST":
            raise ConfigError(f"{where}: {rid} is a {registry[rid].level} requirement; only MUST requirements "
                              "gate a release, so only they can be waived")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where} ({rid}): 'reason' must be a non-empty string saying why it may go unchecked")
        if rid in waivers:
            raise ConfigError(f"{where}: {rid} is waived twice")
        waivers[rid] = reason.strip()
    return waivers
