"""Which expectations file applies to which vLLM version (geopool.conformance.registry.load_expectations)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from geopool.conformance.registry import Expectations, load_expectations, load_registry, parse_version
from geopool.errors import RegistryError

ENTRY = '[[expected-fail]]\nid = "{rid}"\nreason = "a reason long enough to be one"\n'
#: file name → its range lines; each file lists one requirement of its own, to tell them apart.
FILES = {
    "0.32": ('vllm-0.32.toml', 'applies_from = "0.32.0"\n', "POOL-ENV-001"),
    "0.34": ('vllm-0.34.toml', 'applies_from = "0.34.0"\n', "POOL-ENV-002"),
    "old-list": ('vllm-0.32.toml', 'versions = ["0.32.1", "0.32.0"]\n', "POOL-ENV-001"),
    "bounded": ('vllm-0.32.toml', 'applies_from = "0.32.0"\napplies_below = "0.33.0"\n', "POOL-ENV-001"),
}
APPLIED_032 = "expectations: vllm-0.32.toml (for vLLM >= 0.32.0) applied to vLLM {v}"
FIXED = "; an unexpected pass marks a defect fixed in {v}"


def write(directory, *keys: str) -> None:
    for key in keys:
        name, header, rid = FILES[key]
        (directory / name).write_text(header + ENTRY.format(rid=rid))


@pytest.mark.parametrize(("version", "files", "applied", "line", "warns"), [
    ("0.32.0", ["0.32"], "vllm-0.32.toml", APPLIED_032.format(v="0.32.0"), False),
    ("0.32.1", ["0.32"], "vllm-0.32.toml", APPLIED_032.format(v="0.32.1") + FIXED.format(v="0.32.1"), False),
    ("0.33.0", ["0.32"], "vllm-0.32.toml", APPLIED_032.format(v="0.33.0") + FIXED.format(v="0.33.0"), False),
    ("1.0.0", ["0.32"], "vllm-0.32.toml", APPLIED_032.format(v="1.0.0") + FIXED.format(v="1.0.0"), False),
    ("0.32.0+cpu", ["0.32"], "vllm-0.32.toml", APPLIED_032.format(v="0.32.0+cpu"), False),
    ("0.32.0rc1", ["0.32"], None, "expectations: none for vLLM 0.32.0rc1 (older than every file: vllm-0.32.toml "
     "is for >= 0.32.0); every failure counts", True),
    ("0.31.0", ["0.32"], None, "expectations: none for vLLM 0.31.0 (older than every file: vllm-0.32.toml is for "
     ">= 0.32.0); every failure counts", True),
    ("0.11.0rc1.dev5+g0123abc", ["0.32", "0.34"], None, "expectations: none for vLLM 0.11.0rc1.dev5+g0123abc "
     "(older than every file: vllm-0.32.toml is for >= 0.32.0); every failure counts", True),
    (None, ["0.32"], None, "expectations: none: the server reported no version (/version failed); "
     "every failure counts", True),
    ("version unknown", ["0.32"], None, "expectations: none: the server's version 'version unknown' is not a "
     "version number; every failure counts", True),
    ("", ["0.32"], None, "expectations: none: the server's version '' is not a version number; "
     "every failure counts", True),
    ("0.33.0", ["0.32", "0.34"], "vllm-0.32.toml", APPLIED_032.format(v="0.33.0") + FIXED.format(v="0.33.0"), False),
    ("0.34.0", ["0.32", "0.34"], "vllm-0.34.toml", "expectations: vllm-0.34.toml (for vLLM >= 0.34.0) applied to "
     "vLLM 0.34.0", False),
    ("0.35.0", ["0.32", "0.34"], "vllm-0.34.toml", "expectations: vllm-0.34.toml (for vLLM >= 0.34.0) applied to "
     "vLLM 0.35.0" + FIXED.format(v="0.35.0"), False),
    ("0.32.5", ["bounded"], "vllm-0.32.toml", "expectations: vllm-0.32.toml (for vLLM >= 0.32.0, < 0.33.0) applied "
     "to vLLM 0.32.5" + FIXED.format(v="0.32.5"), False),
    ("0.33.0", ["bounded"], None, "expectations: none for vLLM 0.33.0 (no file covers it: vllm-0.32.toml is for "
     ">= 0.32.0, < 0.33.0); every failure counts", True),
    ("0.33.0", ["old-list"], "vllm-0.32.toml", APPLIED_032.format(v="0.33.0") + FIXED.format(v="0.33.0"), False),
], ids=lambda value: None if isinstance(value, (bool, str)) and len(str(value)) > 40 else str(value))
def test_the_newest_file_at_or_below_the_version_applies(tmp_path, version, files, applied, line, warns):
    write(tmp_path, *files)
    found = load_expectations(version, directory=tmp_path, registry=load_registry())
    assert (found.source and found.source.rsplit("/", 1)[-1]) == (applied or None)
    assert found.line == line
    assert bool(found.warning) is warns and (not warns or found.warning == line)
    assert (found.reasons != {}) is (applied is not None)


def test_an_applied_file_carries_its_reasons_and_range(tmp_path):
    write(tmp_path, "bounded")
    found = load_expectations("0.32.1", directory=tmp_path)
    assert found.reasons == {"POOL-ENV-001": "a reason long enough to be one"}
    assert (found.applies_from, found.applies_below) == ("0.32.0", "0.33.0")


def test_no_files_at_all_means_none_with_a_warning(tmp_path):
    found = load_expectations("0.32.0", directory=tmp_path)
    assert found.source is None and found.warning
    assert found.line == (f"expectations: none for vLLM 0.32.0 (no expectations files in {tmp_path}); "
                          "every failure counts")


def test_an_explicit_file_applies_whatever_the_version(tmp_path):
    write(tmp_path, "0.32")
    found = load_expectations("0.20.0", path=tmp_path / "vllm-0.32.toml")
    assert found.source == str(tmp_path / "vllm-0.32.toml") and found.reasons and found.warning is None
    assert found.line == ("expectations: vllm-0.32.toml (for vLLM >= 0.32.0) applied to vLLM 0.20.0 because it "
                          "was given explicitly, whatever the version")


def test_an_explicit_file_without_a_range_still_applies(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(ENTRY.format(rid="POOL-ENV-001"))
    found = load_expectations(None, path=path)
    assert found.reasons and found.line == ("expectations: mine.toml (for vLLM any version) applied to vLLM "
                                            "(unknown) because it was given explicitly, whatever the version")


def test_none_applies_nothing_and_says_so(tmp_path):
    write(tmp_path, "0.32")
    found = load_expectations("0.32.0", path="none", directory=tmp_path)
    assert found == Expectations(None, {}, "expectations: none (--expectations none); every failure counts")


def test_the_expectations_api_stays_backward_compatible():
    plain = Expectations(None, {})
    assert (plain.source, plain.reasons, plain.warning) == (None, {}, None) and plain.line.startswith("expectations:")


@pytest.mark.parametrize(("text", "message"), [
    ('applies_from = "soon"\n', "applies_from 'soon' is not a version"),
    ('applies_from = 32\n', "applies_from 32 is not a version"),
    ('applies_from = "0.33.0"\napplies_below = "0.32.0"\n', "applies_below '0.32.0' must be above applies_from"),
    ('versions = []\n', "'versions' must be a non-empty list"),
    ('versions = ["0.32.0", "x"]\n', "versions 'x' is not a version"),
    ('server = "vllm"\n', "declares no range; add applies_from"),
], ids=["word", "number", "upside-down", "empty-list", "bad-list-entry", "no-range"])
def test_a_file_with_a_bad_range_names_the_file_and_the_field(tmp_path, text, message):
    (tmp_path / "vllm-x.toml").write_text(text + ENTRY.format(rid="POOL-ENV-001"))
    with pytest.raises(RegistryError, match=re.escape(f"vllm-x.toml: {message}")):
        load_expectations("0.32.0", directory=tmp_path)


@pytest.mark.parametrize(("text", "expected"), [
    ("0.32.0", "0.32.0"), ("0.32.0+cpu", "0.32.0"), ("0.11.0rc1.dev5+g0123abc", "0.11.0rc1.dev5"),
    (" 0.33.1 ", "0.33.1"), ("garbage", None), ("", None), (None, None),
])
def test_versions_compare_without_their_local_part(text, expected):
    found = parse_version(text)
    assert (str(found) if found else None) == expected


def test_the_shipped_file_covers_only_the_vllm_versions_seen():
    for version in ("0.32.0", "0.32.0+cpu", "0.32.9"):
        found = load_expectations(version, registry=load_registry())
        assert found.source and found.source.endswith("vllm-0.32.toml") and found.warning is None, version
    assert load_expectations("0.31.0").warning and "older than every file" in load_expectations("0.31.0").line
    for version in ("0.33.0", "0.34.0", "1.0.0"):  # read, not run (docs/vllm-versions.md): none, and a warning
        found = load_expectations(version, registry=load_registry())
        assert found.source is None and found.warning and "no file covers it" in found.line, version


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def write_line(self, line: str, **markup) -> None:
        self.lines.append((line, markup))


def _config_with(reporter: _Reporter) -> SimpleNamespace:
    return SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter))


def test_the_plugin_prints_the_line_and_flags_a_warning(tmp_path):
    from geopool.conformance.hooks import session

    write(tmp_path, "0.32")
    reporter = _Reporter()
    session.say_expectations(_config_with(reporter), load_expectations("0.33.0", directory=tmp_path))
    session.say_expectations(_config_with(reporter), load_expectations("0.31.0", directory=tmp_path))
    assert reporter.lines[0] == (APPLIED_032.format(v="0.33.0") + FIXED.format(v="0.33.0"), {})
    line, markup = reporter.lines[1]
    assert line.startswith("warning: expectations: none for vLLM 0.31.0 (older than every file") and markup["yellow"]


def test_the_report_carries_the_line(tmp_path):
    from geopool.conformance.report import RequirementLedger, write_report

    write(tmp_path, "0.32")
    expectations = load_expectations("0.33.0", directory=tmp_path)
    target = SimpleNamespace(describe=lambda: {"url": "http://x", "vllm_version": "0.33.0"})
    report = write_report(tmp_path / "r.json", RequirementLedger(load_registry()), target, expectations, 1.0, "")
    assert report["expectations"] == {
        "file": str(tmp_path / "vllm-0.32.toml"), "requirements": ["POOL-ENV-001"], "line": expectations.line,
        "warning": None, "applies_from": "0.32.0", "applies_below": None,
        "entries": [{"id": "POOL-ENV-001", "case": None, "reason": "a reason long enough to be one", "evidence": None,
                     "status": None, "message": None, "outcome": "not-run", "matched_cases": [], "held_cases": []}]}
    assert json.loads((tmp_path / "r.json").read_text())["expectations"]["line"] == expectations.line


def test_entries_are_per_case_with_fnmatch_patterns(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[[expected-fail]]\nid = "POOL-SURV-002"\ncase = "rank-*-target"\nreason = "D7: rank kills it"\n'
                    'evidence = "500 EngineCore, then exit"\n'
                    '[[expected-fail]]\nid = "POOL-SURV-002"\ncase = "other-input-dtype"\nreason = "D1: dtype kills"\n'
                    '[[expected-fail]]\nid = "POOL-EP-007"\nreason = "any case of it"\n')
    found = load_expectations("0.32.0", path=path, registry=load_registry())
    assert [(e.id, e.case, e.evidence) for e in found.entries] == [
        ("POOL-SURV-002", "rank-*-target", "500 EngineCore, then exit"), ("POOL-SURV-002", "other-input-dtype", None),
        ("POOL-EP-007", None, None)]
    assert found.reasons == {"POOL-SURV-002": "D7: rank kills it | D1: dtype kills", "POOL-EP-007": "any case of it"}
    assert [e.reason for e in found.matching("POOL-SURV-002", "rank-4-target")] == ["D7: rank kills it"]
    assert found.matching("POOL-SURV-002", "wrong-channel-count") == []
    assert found.matching("POOL-SURV-001", "rank-4-target") == []
    assert [e.id for e in found.matching("POOL-EP-007", "anything")] == ["POOL-EP-007"]


@pytest.mark.parametrize(("entry", "message"), [
    ('id = "POOL-ENV-001"\nreason = "r"\ncases = "x"\n',
     "x.toml expected-fail #1 (POOL-ENV-001): unknown field(s) ['cases']; an entry has ['id', 'case', 'reason', "
     "'evidence', 'status', 'message']"),
    ('id = "POOL-ENV-001"\nreason = "r"\nstatus = 500\n', "(POOL-ENV-001): 'status' must be a non-empty list of HTTP"),
    ('id = "POOL-ENV-001"\nreason = "r"\nstatus = [700]\n', "(POOL-ENV-001): 'status' must be a non-empty list"),
    ('id = "POOL-ENV-001"\nreason = "r"\nmessage = "(unclosed"\n', "(POOL-ENV-001): 'message' is not a regular"),
    ('id = "POOL-ENV-001"\nreason = "r"\ncase = 3\n', "x.toml expected-fail #1 (POOL-ENV-001): field 'case' must be"),
    ('id = "POOL-ENV-001"\nreason = "r"\nevidence = ""\n', "(POOL-ENV-001): field 'evidence' must be a non-empty"),
    ('id = "POOL-ENV-001"\n', "x.toml expected-fail #1 (POOL-ENV-001): needs string 'id' and 'reason'"),
    ('id = "POOL-ENV-001"\nreason = "r"\ncase = "a"\n[[expected-fail]]\nid = "POOL-ENV-001"\nreason = "s"\n'
     'case = "a"\n', "x.toml expected-fail #2 (POOL-ENV-001, case a): listed twice"),
], ids=["unknown-field", "status-not-a-list", "status-not-http", "message-not-a-regex", "case-not-a-string",
      "empty-evidence", "no-reason", "duplicate"])
def test_a_malformed_entry_names_the_file_and_the_entry(tmp_path, entry, message):
    path = tmp_path / "x.toml"
    path.write_text("[[expected-fail]]\n" + entry)
    with pytest.raises(RegistryError, match=re.escape(message)):
        load_expectations("0.32.0", path=path, registry=load_registry())
