"""The requirements registry (``conformance/requirements.toml``) and expected-failure files."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from geopool import resources
from geopool.errors import RegistryError
from geopool.modes import IMAGE_TO_IMAGE, MODES, TENSOR_TO_TENSOR
from geopool.tomlfile import read_toml

__all__ = ["Expectations", "ExpectedFailure", "Requirement", "load_registry", "load_expectations", "parse_version",
           "REGISTRY_PATH", "EXPECTATIONS_DIR"]

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
    #: The serving mode the requirement is about; a run checks only its own mode's requirements.
    mode: str = TENSOR_TO_TENSOR


def load_registry(path: Path = REGISTRY_PATH, *, mode: str | None = TENSOR_TO_TENSOR) -> dict[str, Requirement]:
    """The requirements of ``mode`` (None: every mode) by id; a malformed entry raises RegistryError naming it
    and the field. An entry without ``mode`` is a tensor-to-tensor requirement."""
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
        entry_mode = entry.get("mode", TENSOR_TO_TENSOR)
        if entry_mode not in MODES:
            raise RegistryError(f"{where}: mode must be one of {MODES}, got {entry_mode!r}")
        registry[entry["id"]] = Requirement(**{k: entry[k] for k in ("id", "level", "statement", "source")},
                                            uncatchable=entry.get("uncatchable"), mode=entry_mode)
    return {rid: found for rid, found in registry.items() if mode is None or found.mode == mode}


@dataclasses.dataclass(frozen=True)
class ExpectedFailure:
    """One ``[[expected-fail]]`` entry: a requirement known to fail in the cases ``case`` matches.

    ``case`` is an fnmatch pattern against a failing fact's case (the named situation inside the
    requirement; by default the test's parametrize id, else its function name); None matches any case.
    ``evidence`` says what was observed when the entry was confirmed (status, message).

    The signature says what the known failure looks like, so that another failure of the same case is not
    excused: ``status``, the HTTP statuses the failing answer may have, and ``message``, a regular expression
    searched in the failure's text (its message and the server's message). An entry without them excuses any
    failure of its case (:meth:`explains`).
    """

    id: str
    reason: str
    case: str | None = None
    evidence: str | None = None
    status: tuple[int, ...] | None = None
    message: str | None = None

    def matches(self, requirement: str, case: str | None) -> bool:
        return requirement == self.id and (self.case is None or fnmatch.fnmatchcase(case or "", self.case))

    @property
    def signed(self) -> bool:
        return self.status is not None or self.message is not None

    def explains(self, fact: dict) -> bool:
        """Whether a failing fact (its ``status`` and text) looks like the failure this entry expects."""
        if self.status is not None and fact.get("status") not in self.status:
            return False
        return self.message is None or re.search(self.message, failure_text(fact)) is not None

    @property
    def signature(self) -> str:
        parts = ([f"status {list(self.status)}"] if self.status is not None else []) + (
            [f"message /{self.message}/"] if self.message is not None else [])
        return ", ".join(parts) or "(any failure)"

    @property
    def label(self) -> str:
        return self.case if self.case is not None else "(any case)"

    def as_dict(self) -> dict[str, Any]:
        found = dataclasses.asdict(self)
        return {**found, "status": list(self.status) if self.status is not None else None}


#: The fields an ``[[expected-fail]]`` entry may have.
ENTRY_FIELDS = ("id", "case", "reason", "evidence", "status", "message")


def failure_text(fact: dict) -> str:
    """A failing fact's text a signature's ``message`` is searched in: its message, the server's message and
    any error it carries."""
    return " | ".join(str(fact[key]) for key in ("message", "server_message", "error") if fact.get(key) is not None)


@dataclasses.dataclass(frozen=True)
class Expectations:
    """Requirements a server version is known to fail, each entry with a one-line reason.

    ``source`` is the applied file (None: none applies), ``entries`` its ``[[expected-fail]]`` entries
    (per case) and ``reasons`` their ``{requirement id: reason}`` (a requirement's reasons joined).
    ``line`` says in one sentence which file applied to which version, or why none did; ``warning`` is
    set when the user should look (the version is unknown, unparsable or older than every file).
    ``applies_from``/``applies_below`` are the applied file's declared range (None: not declared).
    """

    source: str | None
    reasons: dict[str, str]
    line: str = "expectations: none; every failure counts"
    warning: str | None = None
    applies_from: str | None = None
    applies_below: str | None = None
    entries: tuple[ExpectedFailure, ...] = ()

    def matching(self, requirement: str, case: str | None) -> list[ExpectedFailure]:
        """The entries that expect ``requirement`` to fail in ``case``."""
        return [entry for entry in self.entries if entry.matches(requirement, case)]


@dataclasses.dataclass(frozen=True)
class _File:
    path: Path
    applies_from: Version | None
    applies_below: Version | None
    entries: tuple[ExpectedFailure, ...]
    #: Image-to-image files also name the plugin and the TerraTorch versions they are for.
    mode: str = TENSOR_TO_TENSOR
    plugin: str | None = None
    terratorch_from: Version | None = None
    terratorch_below: Version | None = None

    def holds_terratorch(self, version: Version) -> bool:
        return ((self.terratorch_from is None or self.terratorch_from <= version)
                and (self.terratorch_below is None or version < self.terratorch_below))

    @property
    def reasons(self) -> dict[str, str]:
        reasons: dict[str, list[str]] = {}
        for entry in self.entries:
            if entry.reason not in reasons.setdefault(entry.id, []):
                reasons[entry.id].append(entry.reason)
        return {rid: " | ".join(texts) for rid, texts in reasons.items()}

    def range(self) -> str:
        upper = f", < {self.applies_below}" if self.applies_below else ""
        found = f">= {self.applies_from}{upper}" if self.applies_from else f"any version{upper}"
        if self.mode == IMAGE_TO_IMAGE:
            below = f", < {self.terratorch_below}" if self.terratorch_below else ""
            found += f"; plugin {self.plugin}, TerraTorch >= {self.terratorch_from}{below}"
        return found

    def expectations(self, line: str) -> Expectations:
        return Expectations(str(self.path), self.reasons, line, None,
                            str(self.applies_from) if self.applies_from else None,
                            str(self.applies_below) if self.applies_below else None, self.entries)


def parse_version(text: str | None) -> Version | None:
    """``text`` as a comparable version, the local part dropped (``0.32.0+cpu`` is 0.32.0); None if it
    is missing or not a PEP 440 version.

    >>> parse_version("0.32.0+cpu"), parse_version("0.11.0rc1.dev5+g1234"), parse_version("garbage")
    (<Version('0.32.0')>, <Version('0.11.0rc1.dev5')>, None)
    """
    if not isinstance(text, str):
        return None
    try:
        return Version(Version(text.strip()).public)
    except InvalidVersion:
        return None


def load_expectations(
    server_version: str | None, *, path: Path | str | None = None,
    registry: dict[str, Requirement] | None = None, directory: Path | None = None,
    mode: str = TENSOR_TO_TENSOR, plugin: str | None = None, terratorch_version: str | None = None,
) -> Expectations:
    """The expected failures for a server reporting ``server_version`` on ``/version``.

    ``path``: a file applied whatever the version; ``"none"``: no expectations; None: the newest file in
    ``directory`` (None: ``EXPECTATIONS_DIR``) whose range holds the version. A file declares ``applies_from = "X.Y.Z"``
    (inclusive) and optionally ``applies_below`` (exclusive); an old ``versions = [...]`` list counts as
    ``applies_from`` its lowest entry. Versions compare as PEP 440 without their local part. A missing,
    unparsable or older-than-every-file version gets no expectations and a ``warning``. Malformed files
    (unknown requirement ids, missing reasons, bad ranges) raise RegistryError naming the file.

    Only files of the run's ``mode`` are candidates (a file without ``mode`` is tensor-to-tensor). An
    image-to-image file also declares ``plugin`` (geopool, loopfix, stock) and ``terratorch_from``
    (optionally ``terratorch_below``): it applies only to that plugin on those TerraTorch versions, and an
    unknown TerraTorch version gets no expectations and a ``warning``.
    """
    shown = server_version if server_version is not None else "(unknown)"
    if isinstance(path, str) and path == "none":
        return Expectations(None, {}, "expectations: none (--expectations none); every failure counts")
    if path is not None:
        found = _read_file(Path(path), registry)
        return found.expectations(f"expectations: {found.path.name} (for vLLM {found.range()}) applied to vLLM "
                                  f"{shown} because it was given explicitly, whatever the version")
    version = parse_version(server_version)
    if version is None:
        problem = ("the server reported no version (/version failed)" if server_version is None else
                   f"the server's version {server_version!r} is not a version number")
        return _none(f"expectations: none: {problem}; every failure counts")
    candidates = resources.expectations_files() if directory is None else sorted(directory.glob("*.toml"))
    files = [found for found in (_read_file(candidate, registry, require_range=True, mode=mode)
                                 for candidate in candidates) if found.mode == mode]
    if mode == IMAGE_TO_IMAGE:
        tt_version = parse_version(terratorch_version)
        if tt_version is None:
            return _none(f"expectations: none: the server's TerraTorch version is unknown ({terratorch_version!r}; "
                         "pass --terratorch-version against a URL); every failure counts")
        files = [found for found in files if found.plugin == plugin and found.holds_terratorch(tt_version)]
        if not files:
            return _none(f"expectations: none for plugin {plugin} on TerraTorch {terratorch_version} (no "
                         "image-to-image file covers them); every failure counts")
    return _choose(files, version, server_version, directory or EXPECTATIONS_DIR)


def _choose(files: list[_File], version: Version, shown: str, directory: Path) -> Expectations:
    covering = [f for f in files
                if f.applies_from <= version and (f.applies_below is None or version < f.applies_below)]
    if covering:
        found = max(covering, key=lambda f: (f.applies_from, f.path.name))
        fixed = (f"; an unexpected pass marks a defect fixed in {shown}" if version > found.applies_from else "")
        return found.expectations(f"expectations: {found.path.name} (for vLLM {found.range()}) applied to vLLM "
                                  f"{shown}{fixed}")
    if not files:
        return _none(f"expectations: none for vLLM {shown} (no expectations files in {directory}); "
                     "every failure counts")
    oldest = min(files, key=lambda f: (f.applies_from, f.path.name))
    if version < oldest.applies_from:
        why = f"older than every file: {oldest.path.name} is for {oldest.range()}"
    else:
        why = "no file covers it: " + ", ".join(f"{f.path.name} is for {f.range()}" for f in files)
    return _none(f"expectations: none for vLLM {shown} ({why}); every failure counts")


def _none(line: str) -> Expectations:
    return Expectations(None, {}, line, warning=line)


def _read_file(path: Path, registry: dict[str, Requirement] | None, *, require_range: bool = False,
               mode: str | None = None) -> _File:
    """One expectations file; its ids are checked against ``registry`` when the file is of ``mode`` (None: any)
    (a registry of one mode cannot judge another mode's file)."""
    data = read_toml(path, "expectations file", RegistryError)
    if mode is not None and data.get("mode", TENSOR_TO_TENSOR) != mode:
        registry = None
    lower, upper = _bound(path, data, "applies_from"), _bound(path, data, "applies_below")
    if lower is None and data.get("versions") is not None:
        listed = data["versions"]
        if not isinstance(listed, list) or not listed:
            raise RegistryError(f"{path.name}: 'versions' must be a non-empty list of version strings")
        lower = min(_parse(path, "versions", entry) for entry in listed)
    if lower is None and require_range:
        raise RegistryError(f"{path.name}: declares no range; add applies_from = \"X.Y.Z\" (the first vLLM "
                            "version it is for)")
    if lower is not None and upper is not None and upper <= lower:
        raise RegistryError(f"{path.name}: applies_below {str(upper)!r} must be above applies_from {str(lower)!r}")
    entries: list[ExpectedFailure] = []
    listed = data.get("expected-fail", [])
    if not isinstance(listed, list) or not all(isinstance(entry, dict) for entry in listed):
        raise RegistryError(f"{path.name}: 'expected-fail' must be a list of [[expected-fail]] tables")
    for number, entry in enumerate(listed, 1):
        entries.append(_entry(path, number, entry, registry))
    seen: set[tuple[str, str | None]] = set()
    for number, entry in enumerate(entries, 1):
        if (entry.id, entry.case) in seen:
            raise RegistryError(f"{path.name} expected-fail #{number} ({entry.id}, case {entry.label}): "
                                "listed twice")
        seen.add((entry.id, entry.case))
    mode = data.get("mode", TENSOR_TO_TENSOR)
    if mode not in MODES:
        raise RegistryError(f"{path.name}: mode must be one of {MODES}, got {mode!r}")
    if mode == TENSOR_TO_TENSOR:
        return _File(path, lower, upper, tuple(entries))
    from geopool.server import PLUGINS

    plugin = data.get("plugin")
    if plugin not in PLUGINS:
        raise RegistryError(f"{path.name}: an image-to-image file names its plugin, one of {PLUGINS}; got {plugin!r}")
    tt_from, tt_below = _bound(path, data, "terratorch_from"), _bound(path, data, "terratorch_below")
    if tt_from is None:
        raise RegistryError(f"{path.name}: an image-to-image file declares terratorch_from = \"X.Y.Z\"")
    return _File(path, lower, upper, tuple(entries), mode, plugin, tt_from, tt_below)


def _entry(path: Path, number: int, entry: dict, registry: dict[str, Requirement] | None) -> ExpectedFailure:
    rid, reason = entry.get("id"), entry.get("reason")
    where = f"{path.name} expected-fail #{number}" + (f" ({rid})" if isinstance(rid, str) else "")
    unknown = sorted(set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {unknown}; an entry has {list(ENTRY_FIELDS)}")
    if not isinstance(rid, str) or not isinstance(reason, str) or not reason.strip():
        raise RegistryError(f"{where}: needs string 'id' and 'reason'")
    if registry is not None and rid not in registry:
        raise RegistryError(f"{where}: unknown requirement {rid!r}")
    for field in ("case", "evidence", "message"):
        if field in entry and not (isinstance(entry[field], str) and entry[field].strip()):
            raise RegistryError(f"{where}: field {field!r} must be a non-empty string (omit it for none)")
    status = entry.get("status")
    if status is not None and not (isinstance(status, list) and status and all(
            isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 for code in status)):
        raise RegistryError(f"{where}: 'status' must be a non-empty list of HTTP status codes, e.g. [500]")
    if "message" in entry:
        try:
            re.compile(entry["message"])
        except re.error as exc:
            raise RegistryError(f"{where}: 'message' is not a regular expression: {exc}") from None
    return ExpectedFailure(rid, reason, entry.get("case"), entry.get("evidence"),
                           tuple(status) if status is not None else None, entry.get("message"))


def _bound(path: Path, data: dict, field: str) -> Version | None:
    return None if data.get(field) is None else _parse(path, field, data[field])


def _parse(path: Path, field: str, value: object) -> Version:
    found = parse_version(value) if isinstance(value, str) else None
    if found is None:
        raise RegistryError(f"{path.name}: {field} {value!r} is not a version like \"0.32.0\"")
    return found
