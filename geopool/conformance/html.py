"""The conformance run's HTML page, drawn from the report dict that ``conformance.json`` holds.

What a reader sees, top down: the verdict in one line (:func:`verdict`), the unchecked-MUST line when
something went unchecked, the target, then every requirement grouped by family (``POOL-ENC`` for
``POOL-ENC-004``) with its outcome as a coloured badge; a failure, an error, an expected failure or an
unexpected pass opens its evidence, the command that replays each failing test and, when one was
written, the standalone reproducer. Plain HTML and CSS: it reads the same without JavaScript.

:func:`render_conformance_section` is the page's body as a fragment, for the gate's page.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from geopool import resources
from geopool.conformance.report import listed_ids

__all__ = ["family_of", "render_conformance_html", "render_conformance_section", "verdict", "write_conformance_html"]

#: Outcomes that open a requirement's evidence (the others show only their row).
SHOWN = ("fail", "error", "expected-fail", "unexpected-pass", "partial")
#: A test's outcomes that come with failing facts and a replay command.
_FAILING_TESTS = ("fail", "error", "expected-fail")
#: Failing tests of a requirement shown before the rest fold into "N more".
_FIRST_TESTS = 3
#: Facts of one test shown before the rest fold away.
_FIRST_FACTS = 4


def family_of(requirement_id: str) -> str:
    """A requirement's family: its id up to the last dash (``POOL-ENC-004`` → ``POOL-ENC``)."""
    return requirement_id.rsplit("-", 1)[0]


def verdict(report: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the run passed, and why in one line.

    It fails on a requirement that failed or errored, and on what ``--strict``/``--strict-expectations``
    made fatal (``report["strict_failures"]``); an unexpected pass is named either way. A run that
    checked nothing at all did not pass.

        >>> verdict({"requirements": [{"id": "POOL-A-1", "outcome": "fail"}, {"id": "POOL-A-2", "outcome": "pass"}]})
        (False, 'FAILED: 1 requirement failed (POOL-A-1)')
    """
    ids = _ids_by_outcome(report)
    unexpected = ids["unexpected-pass"]
    strict = list(report.get("strict_failures") or [])
    strict_unexpected = any(reason.startswith("unexpected-pass") for reason in strict)
    problems = []
    if ids["fail"]:
        problems.append(f"{_count(ids['fail'], 'requirement')} failed ({listed_ids(ids['fail'])})")
    if ids["error"]:
        problems.append(f"{_count(ids['error'], 'requirement')} errored ({listed_ids(ids['error'])})")
    if unexpected and strict_unexpected:
        problems.append(f"{_count(unexpected, 'unexpected pass', 'unexpected passes')} ({listed_ids(unexpected)})")
    if any(not reason.startswith("unexpected-pass") for reason in strict):
        problems.append(f"{len(report.get('unchecked_must') or [])} MUST requirements not checked (--strict)")
    if problems:
        expected = f"; {_count(ids['expected-fail'], 'expected failure')}" if ids["expected-fail"] else ""
        unnoticed = (f"; {_count(unexpected, 'unexpected pass', 'unexpected passes')} ({listed_ids(unexpected)})"
                     if unexpected and not strict_unexpected else "")
        return False, "FAILED: " + "; ".join(problems) + expected + unnoticed
    partial = ids.get("partial", [])
    checked = len(ids["pass"]) + len(ids["expected-fail"]) + len(unexpected) + len(partial)
    if not checked:
        return False, "NOTHING CHECKED: no requirement was evaluated (all skipped or not run)"
    line = f"PASSED: {_count(ids['pass'], 'requirement')} held"
    if ids["expected-fail"]:
        line += f", {_count(ids['expected-fail'], 'expected failure')}"
    if partial:
        line += f", {_count(partial, 'requirement')} checked only in part ({listed_ids(partial)})"
    if unexpected:
        line += (f"; {_count(unexpected, 'unexpected pass', 'unexpected passes')} ({listed_ids(unexpected)}: "
                 "its expectation entry is out of date; fails the run with --strict)")
    unchecked = report.get("unchecked_must") or []
    if unchecked:  # a pass of what was checked, never of what was not: the line says both
        line += f"; but {_count(unchecked, 'MUST requirement')} not checked"
    return True, line


def _ids_by_outcome(report: Mapping[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {o: [] for o in ("fail", "error", "unexpected-pass", "expected-fail", "pass")}
    for requirement in report.get("requirements", []):
        found.setdefault(requirement["outcome"], []).append(requirement["id"])
    return found


def _count(items: Sequence[Any], singular: str, plural: str | None = None) -> str:
    return f"{len(items)} {singular if len(items) == 1 else plural or singular + 's'}"


def render_conformance_section(report: Mapping[str, Any], *, page_dir: Path | None = None, level: int = 2) -> str:
    """The page's body as an HTML fragment (no ``<html>``; its CSS in a ``<style>`` of its own).

    ``page_dir``: the folder of the page it goes into, so that links to reproducers written elsewhere
    are relative to it (None: links as the report holds them). ``level``: the heading level of its titles.
    """
    template = _environment().get_template("conformance_section.html.j2")
    module = template.make_module({})
    section = module.conformance_section(view(report, page_dir=page_dir), level)
    return str(module.conformance_styles()) + str(section)


def render_conformance_html(report: Mapping[str, Any], *, page_dir: Path | None = None) -> str:
    """The conformance run's own page (``conformance.html``)."""
    return _environment().get_template("conformance.html.j2").render(view=view(report, page_dir=page_dir))


def write_conformance_html(path: Path, report: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_conformance_html(report, page_dir=path.parent.resolve()))
    return path


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(resources.template_folder("geopool.conformance")),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def view(report: Mapping[str, Any], *, page_dir: Path | None = None) -> dict[str, Any]:
    """What the template draws: the report's facts arranged by family, ready to print."""
    passed, line = verdict(report)
    families: dict[str, list[dict[str, Any]]] = {}
    unchecked = {item["id"]: item["why"] for item in report.get("unchecked_must") or []}
    for requirement in report.get("requirements", []):
        families.setdefault(family_of(requirement["id"]), []).append(
            _row(requirement, unchecked.get(requirement["id"]), page_dir))
    counts = Counter(requirement["outcome"] for requirement in report.get("requirements", []))
    return {
        "passed": passed, "line": line, "report": report,
        "unchecked": bool(report.get("unchecked_must")), "unchecked_line": report.get("unchecked_line", ""),
        "target": report.get("target") or {}, "expectations": report.get("expectations") or {},
        "counts": [(outcome, counts[outcome]) for outcome in _ORDER if counts[outcome]],
        "families": [{"name": name, "rows": rows, "counts": Counter(row["outcome"] for row in rows)}
                     for name, rows in families.items()],
        "replay_note": _replay_note(report),
    }


#: Outcomes in the order a reader wants them counted.
_ORDER = ("fail", "error", "unexpected-pass", "partial", "expected-fail", "pass", "skip", "not-run")


def _row(requirement: Mapping[str, Any], unchecked_why: str | None, page_dir: Path | None) -> dict[str, Any]:
    outcome = requirement["outcome"]
    failing = [_test(test, requirement.get("replay") or []) for test in requirement.get("tests", [])
               if test["outcome"] in _FAILING_TESTS] if outcome in SHOWN else []
    reproducers = requirement.get("reproducer") or []
    return {
        "id": requirement["id"], "level": requirement.get("level", ""), "outcome": outcome,
        "statement": requirement.get("statement", ""), "source": requirement.get("source", ""),
        "shown": outcome in SHOWN, "unchecked_why": unchecked_why,
        "tests": len(requirement.get("tests", [])),
        "failing": failing[:_FIRST_TESTS], "more_failing": failing[_FIRST_TESTS:],
        "entries": requirement.get("expected_failures") or [],
        "expected_reason": requirement.get("expected_failure_reason"),
        "reproducers": [{"text": str(path), "href": _href(str(path), page_dir)}
                        for path in ([reproducers] if isinstance(reproducers, str) else reproducers)],
    }


def _test(test: Mapping[str, Any], replay: Sequence[str]) -> dict[str, Any]:
    facts = [_fact(item) for item in test.get("evidence") or []]
    command = next((command for command in replay if test["test"] in command), None)
    return {"test": test["test"], "outcome": test["outcome"], "facts": facts[:_FIRST_FACTS],
            "more_facts": facts[_FIRST_FACTS:], "replay": command.split("  (", 1)[0] if command else None}


#: Keys of an evidence dict that its headline already shows, or that the page links instead of showing
#: (``repro``: the reproducer's recipe, written out as the requirement's reproducer script).
_HEADLINE = ("requirement", "case", "message", "repro")


def _fact(item: Mapping[str, Any]) -> dict[str, Any]:
    """One failing fact: its case and message, then whatever else the check recorded (status, server
    message, which expectation entry matched it)."""
    return {"case": item.get("case"), "message": str(item.get("message", "")),
            "extra": [(key, _text(value)) for key, value in item.items() if key not in _HEADLINE]}


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _replay_note(report: Mapping[str, Any]) -> str:
    """The replay template's trailing note, said once rather than after every command."""
    for requirement in report.get("requirements", []):
        for command in requirement.get("replay") or []:
            if "  (" in command:
                return command.split("  (", 1)[1].rstrip(")")
    return ""


def _href(path: str, page_dir: Path | None) -> str:
    """A link to a reproducer: relative to the page when both are on this machine."""
    if page_dir is not None:
        where = Path(path)
        try:
            return Path(os.path.relpath(where.resolve(), page_dir)).as_posix()
        except ValueError:  # another drive (Windows)
            return where.as_uri() if where.is_absolute() else path
    return path

