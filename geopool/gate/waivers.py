"""The waiver file: the MUST requirements a gate may leave unchecked, each with the reason it may and the
causes it covers.

    [[waiver]]
    id = "POOL-SURV-002"
    reason = "a shared server: destructive inputs would kill it for everyone"
    causes = ["destructive input"]

``causes`` are the words the conformance summary gives for why a requirement went unchecked (its
``unchecked_must[].causes`` in conformance.json: ``destructive input``, ``not checked``, ``deselected``,
``no API key configured``, ...). A waiver covers a requirement only when every cause it went unchecked for
is one the waiver names: a waiver written for destructive inputs does not cover the same requirement
deselected with ``-k`` or skipped by a broken test.

A gate never passes with a MUST requirement unchecked unless a waiver covers it. A waiver does not
turn anything into a pass: the requirement stays "not checked" in every report, with the reason beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geopool.conformance.registry import Requirement
from geopool.errors import ConfigError
from geopool.tomlfile import read_toml

__all__ = ["Waiver", "load_waivers"]

_FIELDS = {"id", "reason", "causes"}


@dataclass(frozen=True)
class Waiver:
    """Why a MUST requirement may go unchecked (``reason``), and for which causes (``causes``)."""

    reason: str
    causes: tuple[str, ...]

    def covers(self, causes: list[str]) -> bool:
        """Whether every cause a requirement went unchecked for is one this waiver names."""
        return bool(causes) and set(causes) <= set(self.causes)


def load_waivers(path: str | Path | None, registry: dict[str, Requirement]) -> dict[str, Waiver]:
    """Requirement id → its waiver; a malformed file or entry raises ConfigError naming the file and the entry."""
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
    waivers: dict[str, Waiver] = {}
    for number, entry in enumerate(entries, 1):
        where = f"waiver file {str(path)!r} entry #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table with id, reason and causes")
        extra = set(entry) - _FIELDS
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}; only id, reason and causes are allowed")
        rid, reason = entry.get("id"), entry.get("reason")
        if not isinstance(rid, str) or rid not in registry:
            raise ConfigError(f"{where}: id {rid!r} is not a requirement of the registry")
        if registry[rid].level != "MUST":
            raise ConfigError(f"{where}: {rid} is a {registry[rid].level} requirement; only MUST requirements "
                              "gate a release, so only they can be waived")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where} ({rid}): 'reason' must be a non-empty string saying why it may go unchecked")
        causes = entry.get("causes")
        if (not isinstance(causes, list) or not causes
                or not all(isinstance(cause, str) and cause.strip() for cause in causes)):
            raise ConfigError(f"{where} ({rid}): 'causes' must be a non-empty list of the causes it may go unchecked "
                              "for, as the conformance summary words them (e.g. [\"destructive input\"])")
        if rid in waivers:
            raise ConfigError(f"{where}: {rid} is waived twice")
        waivers[rid] = Waiver(reason.strip(), tuple(cause.strip() for cause in causes))
    return waivers
