"""The gate's verdict from what its phases left: the conformance report and exit code, the waivers,
the load run's summary and exit code. Pure: no I/O, so every rule has a test without a server.

Rules: each phase contributes its exit code (conformance: pytest's; load: ``geopool load``'s); a MUST
requirement not wholly checked and not covered by a waiver (one naming it and every cause it went unchecked
for) adds :data:`~geopool.exitcodes.UNCHECKED_MUST`; the gate exits with the first of them by
:data:`~geopool.exitcodes.PRECEDENCE`, and lists them all.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from geopool import exitcodes
from geopool.conformance.report import ids_by_reason, listed_ids
from geopool.gate.waivers import Waiver

__all__ = ["judge"]

_FAILING = ("fail", "error")


def judge(*, conformance_code: int, conformance: dict[str, Any] | None, waivers: dict[str, Waiver],
          load_code: int | None, load: dict[str, Any] | None, load_skipped: str | None = None,
          conformance_error: str | None = None, strict: bool = False) -> dict[str, Any]:
    """The gate summary's verdict part: verdict, exit code and name, the one line, reasons, and per phase."""
    reasons: list[dict[str, Any]] = []
    part = _conformance_part(conformance_code, conformance, waivers, conformance_error, reasons, strict)
    load_part = _load_part(load_code, load, load_skipped, reasons)
    code = exitcodes.worst([reason["code"] for reason in reasons])
    verdict = "pass" if code == exitcodes.OK else "fail"
    return {"verdict": verdict, "exit_code": code, "exit_name": exitcodes.name(code),
            "line": _line(verdict, code, part, load_part, reasons), "reasons": reasons,
            "conformance": part, "load": load_part}


def _reason(reasons: list[dict[str, Any]], code: int, message: str) -> None:
    if code not in exitcodes.TABLE:  # a child killed by a signal (negative) or an exit code of no meaning here
        message += f" (the process ended with {'signal ' + str(-code) if code < 0 else 'exit code ' + str(code)})"
        code = exitcodes.INTERNAL
    reasons.append({"code": code, "name": exitcodes.name(code), "message": message})


def _causes(item: dict[str, Any]) -> list[str]:
    """Why an unchecked MUST went unchecked (a report without ``causes``: its one ``why``)."""
    return list(item.get("causes") or [item["why"]])


def _conformance_part(code: int, report: dict[str, Any] | None, waivers: dict[str, Waiver], error: str | None,
                      reasons: list[dict[str, Any]], strict: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"exit_code": code}
    if report is None:
        if code == exitcodes.OK:  # pytest said all is well, but the report that says what was checked is missing
            code = part["exit_code"] = exitcodes.INTERNAL
        _reason(reasons, code, f"conformance: {error or exitcodes.describe(code)} (no report was written)")
        return part
    requirements = report.get("requirements") or []
    failed = [entry["id"] for entry in requirements if entry["outcome"] in _FAILING]
    unexpected = [entry["id"] for entry in requirements if entry["outcome"] == "unexpected-pass"]
    unchecked = report.get("unchecked_must", [])
    covered = {item["id"] for item in unchecked if item["id"] in waivers and waivers[item["id"]].covers(_causes(item))}
    part.update(counts=dict(Counter(entry["outcome"] for entry in requirements)), failed=failed,
                unexpected_pass=unexpected, unchecked_must=unchecked,
                waived=[{"id": item["id"], "reason": waivers[item["id"]].reason, "causes": _causes(item)}
                        for item in unchecked if item["id"] in covered],
                unwaived=[item["id"] for item in unchecked if item["id"] not in covered],
                # waived, but unchecked for a cause the waiver does not name: not covered
                waived_for_other_causes=[
                    {"id": item["id"], "causes": _causes(item), "waiver_causes": list(waivers[item["id"]].causes)}
                    for item in unchecked if item["id"] in waivers and item["id"] not in covered],
                waivers_unused=sorted(set(waivers) - {item["id"] for item in unchecked}))
    if code == exitcodes.FAILED and not failed and not (strict and unexpected):
        # pytest failed, yet no requirement did: a test outside the ledger, or a crash before the report.
        _reason(reasons, code,
                f"conformance: pytest reported a failure outside the requirements ({error or 'see output'})")
    elif code != exitcodes.OK and code != exitcodes.FAILED:
        _reason(reasons, code, f"conformance: {error or exitcodes.describe(code)}")
    if failed:
        plural = "s" if len(failed) != 1 else ""
        _reason(reasons, exitcodes.FAILED, f"{len(failed)} requirement{plural} failed: {listed_ids(failed, 8)}")
    if strict and unexpected:
        _reason(reasons, exitcodes.FAILED,
                f"--strict-expectations: known defects no longer fail: {', '.join(unexpected)}")
    if part["unwaived"]:
        listed = ids_by_reason((item["id"], item["why"]) for item in unchecked if item["id"] in part["unwaived"])
        count = len(part["unwaived"])
        other = "".join(f"; {entry['id']}'s waiver covers {', '.join(entry['waiver_causes'])}, not "
                        f"{', '.join(c for c in entry['causes'] if c not in entry['waiver_causes'])}"
                        for entry in part["waived_for_other_causes"])
        _reason(reasons, exitcodes.UNCHECKED_MUST,
                f"{count} MUST requirement{'s' if count != 1 else ''} not checked and not waived: {listed}{other}")
    return part


def _load_part(code: int | None, summary: dict[str, Any] | None, skipped: str | None,
               reasons: list[dict[str, Any]]) -> dict[str, Any]:
    if skipped is not None:
        return {"skipped": skipped}
    assert code is not None
    slo = (summary or {}).get("slo") or {}
    part: dict[str, Any] = {"exit_code": code, "report_dir": "load", "summary": "load/summary.json",
                            "verdict": (summary or {}).get("verdict", "error"), "slo_file": slo.get("file"),
                            "slo_bounds_met": sum(1 for check in slo.get("checks", []) if check["state"] == "met")}
    if summary is None:
        # An exit 0 without the summary that says what was measured is no pass.
        _reason(reasons, code if code != exitcodes.OK else exitcodes.INTERNAL,
                f"load: {exitcodes.describe(code) if code else 'exit 0'} (no summary was written)")
        return part
    if code == exitcodes.OK:
        return part
    if summary.get("error"):
        _reason(reasons, code, f"load: {summary['error']}")
        return part
    checks = summary.get("slo", {}).get("checks", [])
    breached = [f"{c['bound']}: {c.get('by') or 'breached'}" for c in checks if c["state"] == "breached"]
    if breached:
        what = "SLO breached" if summary.get("slo", {}).get("file") else "wrong answers or errors under load"
        _reason(reasons, exitcodes.SLO_BREACHED, f"{what}: " + "; ".join(breached))
    if not summary.get("valid", True):
        _reason(reasons, exitcodes.LOAD_INVALID, "load run invalid: " + "; ".join(summary.get("invalid_reasons", [])))
    if not any(reason["code"] == code for reason in reasons):
        _reason(reasons, code, f"load: {exitcodes.describe(code)}")
    return part


def _line(verdict: str, code: int, conformance: dict[str, Any], load: dict[str, Any],
          reasons: list[dict[str, Any]]) -> str:
    counts = conformance.get("counts")
    parts = []
    if counts:
        shown = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        waived = f", {len(conformance['waived'])} unchecked MUST waived" if conformance.get("waived") else ""
        parts.append(f"conformance {shown}{waived}")
    if "skipped" in load:
        parts.append(f"load not run ({load['skipped']})")
    elif load["verdict"] == "pass":
        # What a pass of the load phase covered: the SLO's bounds, or only the run's validity.
        parts.append(f"load pass, {load['slo_bounds_met']} SLO bounds met" if load.get("slo_file") else
                     "load pass, no answer wrong and no error after warm-up; no SLO given (latency and throughput "
                     "not gated)")
    else:
        parts.append(f"load {load['verdict']}")
    if verdict == "pass":
        return "GATE PASSED: " + "; ".join(parts)
    first = next((reason for reason in reasons if reason["code"] == code), reasons[0])
    return f"GATE FAILED (exit {code}, {exitcodes.name(code)}): {first['message']} | " + "; ".join(parts)
