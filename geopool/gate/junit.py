"""The gate's JUnit XML: the conformance run's test cases (with their requirement properties) and a
``geopool-load`` test suite with one case per SLO bound and one for the run's validity, so a CI system
that reads JUnit shows a breached bound as a failed test with its figures. A conformance phase that could
not judge the target (unreachable, a usage error, a crash) is one test case in error, so the CI's test view
is not green while the gate exits non-zero."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from geopool import exitcodes

__all__ = ["write_gate_junit"]


def write_gate_junit(path: Path, conformance_junit: Path, summary: dict[str, Any],
                     load: dict[str, Any] | None) -> None:
    root = ET.Element("testsuites", name="geopool gate")
    suites: list[ET.Element] = []
    try:
        found = ET.parse(conformance_junit).getroot()
        suites = [found] if found.tag == "testsuite" else list(found.iter("testsuite"))
    except (FileNotFoundError, ET.ParseError):
        pass  # the conformance phase wrote none (it could not start); the verdict says why
    for suite in suites:
        suite.set("name", "geopool-conformance")
        root.append(suite)
    if (error := _conformance_error(summary)) is not None:
        root.append(_error_suite("geopool-conformance-run" if suites else "geopool-conformance", error))
    root.append(_load_suite(summary, load))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _conformance_error(summary: dict[str, Any]) -> str | None:
    """Why the conformance phase could not judge the target (an unusable target, a usage error, a crash):
    a CI system's test view must show it as an error, not as the tests it never ran. None: it judged."""
    code = (summary.get("conformance") or {}).get("exit_code")
    if code in (exitcodes.OK, exitcodes.FAILED, exitcodes.UNCHECKED_MUST):
        return None
    said = [reason["message"] for reason in summary.get("reasons", []) if reason["message"].startswith("conformance:")]
    return "; ".join(said) or f"conformance: {exitcodes.describe(code) if code is not None else 'did not run'}"


def _error_suite(name: str, message: str) -> ET.Element:
    suite = ET.Element("testsuite", name=name, tests="1", failures="0", errors="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="geopool.conformance", name="conformance run")
    ET.SubElement(case, "error", message=message).text = message
    return suite


def _load_suite(summary: dict[str, Any], load: dict[str, Any] | None) -> ET.Element:
    suite = ET.Element("testsuite", name="geopool-load")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("gate.verdict", summary["verdict"]), ("gate.exit_code", str(summary["exit_code"])),
                        ("gate.line", summary["line"])):
        ET.SubElement(properties, "property", name=name, value=value)
    skipped = summary["load"].get("skipped")
    cases: list[tuple[str, str, str]] = []  # (name, state, message): state passed|failed|skipped
    if skipped or load is None:
        cases.append(("load run", "skipped", skipped or "the load run wrote no summary"))
    elif load.get("error"):
        cases.append(("load run", "failed", load["error"]))
    else:
        reasons = "; ".join(load.get("invalid_reasons", []))
        cases.append(("valid run", "passed" if load.get("valid") else "failed",
                      reasons or "steady state, enough samples"))
        for check in load.get("slo", {}).get("checks", []):
            state = {"met": "passed", "breached": "failed"}.get(check["state"], "failed")
            cases.append((f"SLO {check['bound']}", state, f"{check['state']}: {check.get('by') or ''}".strip(": ")))
    counts = {"tests": len(cases), "failures": sum(c[1] == "failed" for c in cases),
              "skipped": sum(c[1] == "skipped" for c in cases), "errors": 0}
    for key, value in counts.items():
        suite.set(key, str(value))
    for name, state, message in cases:
        case = ET.SubElement(suite, "testcase", classname="geopool.load", name=name)
        if state == "failed":
            ET.SubElement(case, "failure", message=message).text = message
        elif state == "skipped":
            ET.SubElement(case, "skipped", message=message)
        else:
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="figures", value=message)
    return suite
