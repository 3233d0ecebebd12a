"""The gate's verdict rules and its waiver file, without a server."""

from __future__ import annotations

import pytest

from geopool import exitcodes
from geopool.conformance.registry import load_registry
from geopool.errors import ConfigError
from geopool.gate.verdict import judge
from geopool.gate.waivers import Waiver, load_waivers


def conformance(outcomes: dict[str, str], unchecked: list[tuple[str, str]] = ()) -> dict:
    return {"requirements": [{"id": rid, "outcome": outcome} for rid, outcome in outcomes.items()],
            "unchecked_must": [{"id": rid, "outcome": "skip", "why": why, "causes": [why]} for rid, why in unchecked]}


def load(verdict: str = "pass", *, valid: bool = True, checks: list[dict] = (), reasons: list[str] = ()) -> dict:
    return {"verdict": verdict, "valid": valid, "slo": {"file": "slo.toml" if checks else None, "checks": list(checks)},
            "invalid_reasons": list(reasons)}


MET = {"bound": "latency.corrected.p90 <= 500 ms", "state": "met", "by": "p90 210 ms"}
BREACHED = {"bound": "latency.corrected.p90 <= 100 ms", "state": "breached", "by": "p90 210 ms (+110 ms)"}


def test_a_clean_run_passes_and_says_what_it_checked():
    verdict = judge(conformance_code=0, conformance=conformance({"POOL-A-001": "pass", "POOL-A-002": "expected-fail"}),
                    waivers={}, load_code=0, load=load(checks=[MET]))
    assert (verdict["verdict"], verdict["exit_code"], verdict["reasons"]) == ("pass", 0, [])
    assert verdict["line"].startswith("GATE PASSED: conformance 1 pass, 1 expected-fail")
    assert verdict["line"].endswith("load pass, 1 SLO bounds met")
    no_slo = judge(conformance_code=0, conformance=conformance({"POOL-A-001": "pass"}), waivers={}, load_code=0,
                   load=load())
    assert no_slo["line"].endswith("load pass, no answer wrong and no error after warm-up; no SLO given (latency and "
                                   "throughput not gated)")


def test_without_an_slo_wrong_answers_under_load_fail_the_gate():
    wrong = {"bound": "verification failures <= 0", "state": "breached",
             "by": "1 over (1 responses failed verification)"}
    verdict = judge(conformance_code=0, conformance=conformance({"POOL-A-001": "pass"}), waivers={},
                    load_code=exitcodes.SLO_BREACHED, load=load("slo-breached", checks=[wrong]) | {"slo": {
                        "file": None, "checks": [wrong]}})
    assert verdict["exit_code"] == exitcodes.SLO_BREACHED
    assert verdict["reasons"][0]["message"].startswith("wrong answers or errors under load: verification failures")


def test_an_unchecked_must_fails_the_gate_unless_waived():
    report = conformance({"POOL-A-001": "pass", "POOL-NUM-002": "skip"}, [("POOL-NUM-002", "no reference weights")])
    failed = judge(conformance_code=0, conformance=report, waivers={}, load_code=0, load=load())
    assert failed["exit_code"] == exitcodes.UNCHECKED_MUST
    assert "POOL-NUM-002 (no reference weights)" in failed["reasons"][0]["message"]
    waiver = Waiver("no weights on the runner", ("no reference weights",))
    waived = judge(conformance_code=0, conformance=report, waivers={"POOL-NUM-002": waiver}, load_code=0, load=load())
    assert waived["exit_code"] == 0 and waived["conformance"]["waived"] == [
        {"id": "POOL-NUM-002", "reason": "no weights on the runner", "causes": ["no reference weights"]}]
    assert "1 unchecked MUST waived" in waived["line"]
    # A waiver changes no outcome: the requirement is still reported as skipped.
    assert waived["conformance"]["counts"]["skip"] == 1


def test_a_waiver_covers_only_the_causes_it_names():
    destructive = Waiver("kills the shared server", ("destructive input",))
    deselected = conformance({"POOL-A-001": "pass", "POOL-SURV-002": "skip"}, [("POOL-SURV-002", "deselected")])
    verdict = judge(conformance_code=0, conformance=deselected, waivers={"POOL-SURV-002": destructive}, load_code=0,
                    load=load())
    assert verdict["exit_code"] == exitcodes.UNCHECKED_MUST and verdict["conformance"]["unwaived"] == ["POOL-SURV-002"]
    assert verdict["conformance"]["waived"] == []
    assert verdict["conformance"]["waived_for_other_causes"] == [
        {"id": "POOL-SURV-002", "causes": ["deselected"], "waiver_causes": ["destructive input"]}]
    assert "POOL-SURV-002's waiver covers destructive input, not deselected" in verdict["reasons"][0]["message"]
    # a partial requirement: one cause the waiver names and one it does not is not covered either
    mixed = {"requirements": [{"id": "POOL-REJ-011", "outcome": "partial"}], "unchecked_must": [
        {"id": "POOL-REJ-011", "outcome": "partial", "why": "partly: 2 of 5 tests did not check it, not checked",
         "causes": ["destructive input", "not checked"]}]}
    only_one = judge(conformance_code=0, conformance=mixed, waivers={"POOL-REJ-011": destructive}, load_code=0,
                     load=load())
    assert only_one["exit_code"] == exitcodes.UNCHECKED_MUST
    both = Waiver("light install, shared server", ("not checked", "destructive input"))
    assert judge(conformance_code=0, conformance=mixed, waivers={"POOL-REJ-011": both}, load_code=0,
                 load=load())["exit_code"] == 0


def test_codes_are_listed_and_the_first_by_precedence_wins():
    verdict = judge(conformance_code=1, conformance=conformance({"POOL-A-001": "fail"}), waivers={},
                    load_code=exitcodes.SLO_BREACHED, load=load("slo-breached", valid=False, checks=[BREACHED],
                                                                reasons=["no steady state"]))
    assert verdict["exit_code"] == exitcodes.FAILED
    assert [r["code"] for r in verdict["reasons"]] == [exitcodes.FAILED, exitcodes.SLO_BREACHED,
                                                       exitcodes.LOAD_INVALID]
    assert verdict["line"].startswith("GATE FAILED (exit 1, conformance-failed): 1 requirement failed: POOL-A-001")
    breach_only = judge(conformance_code=0, conformance=conformance({"POOL-A-001": "pass"}), waivers={},
                        load_code=exitcodes.SLO_BREACHED, load=load("slo-breached", checks=[MET, BREACHED]))
    assert breach_only["exit_code"] == exitcodes.SLO_BREACHED
    assert "latency.corrected.p90 <= 100 ms: p90 210 ms (+110 ms)" in breach_only["line"]


def test_an_unusable_target_skips_the_load_phase_and_says_so():
    verdict = judge(conformance_code=exitcodes.TARGET_UNUSABLE, conformance=None, waivers={}, load_code=None,
                    load=None, load_skipped="the conformance phase could not use the target",
                    conformance_error="conformance target http://127.0.0.1:9 is not reachable")
    assert verdict["exit_code"] == exitcodes.TARGET_UNUSABLE and verdict["load"] == {
        "skipped": "the conformance phase could not use the target"}
    assert "is not reachable" in verdict["line"] and "load not run" in verdict["line"]


def test_a_missing_report_after_a_zero_exit_is_an_internal_error_not_a_pass():
    verdict = judge(conformance_code=0, conformance=None, waivers={}, load_code=0, load=load())
    assert verdict["exit_code"] == exitcodes.INTERNAL and verdict["verdict"] == "fail"


def test_strict_fails_an_unexpected_pass():
    report = conformance({"POOL-A-001": "unexpected-pass"})
    assert judge(conformance_code=0, conformance=report, waivers={}, load_code=0, load=load())["exit_code"] == 0
    strict = judge(conformance_code=1, conformance=report, waivers={}, load_code=0, load=load(), strict=True)
    assert strict["exit_code"] == exitcodes.FAILED and "no longer fail: POOL-A-001" in strict["line"]


@pytest.mark.parametrize("text, message", [
    ('[[waiver]]\nid = "POOL-NUM-002"\n', "'reason' must be a non-empty string"),
    ('[[waiver]]\nid = "POOL-NUM-002"\nreason = "x"\n', "'causes' must be a non-empty list"),
    ('[[waiver]]\nid = "POOL-NUM-002"\nreason = "x"\ncauses = "deselected"\n', "'causes' must be a non-empty list"),
    ('[[waiver]]\nid = "POOL-NUM-002"\nreason = "x"\ncauses = []\n', "'causes' must be a non-empty list"),
    ('[[waiver]]\nid = "POOL-NOPE-001"\nreason = "x"\n', "'POOL-NOPE-001' is not a requirement"),
    ('[[waiver]]\nid = "POOL-NUM-002"\nreason = "x"\ncauses = ["y"]\nuntil = 2027\n', "unknown field(s) ['until']"),
    ('[[waiver]]\nid = "POOL-NUM-002"\nreason = "x"\ncauses = ["y"]\n[[waiver]]\nid = "POOL-NUM-002"\n'
     'reason = "y"\ncauses = ["y"]\n', "waived twice"),
    ('waive = ["POOL-NUM-002"]\n', "unknown key(s) ['waive']"),
    ("[[waiver]\n", "is not valid TOML"),
])
def test_a_bad_waiver_file_is_one_error_naming_the_file_and_entry(tmp_path, text, message):
    path = tmp_path / "waivers.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_waivers(path, load_registry())
    assert message in str(raised.value) and "waivers.toml" in str(raised.value)


def test_only_must_requirements_can_be_waived(tmp_path):
    registry = load_registry()
    should = next(rid for rid, requirement in registry.items() if requirement.level != "MUST")
    path = tmp_path / "w.toml"
    path.write_text(f'[[waiver]]\nid = "{should}"\nreason = "x"\ncauses = ["deselected"]\n')
    with pytest.raises(ConfigError, match="only MUST requirements"):
        load_waivers(path, registry)
    path.write_text('[[waiver]]\nid = "POOL-NUM-002"\nreason = " no weights here "\n'
                    'causes = [" no reference weights"]\n')
    assert load_waivers(path, registry) == {"POOL-NUM-002": Waiver("no weights here", ("no reference weights",))}


def test_a_load_run_that_wrote_no_summary_is_no_pass_even_with_exit_0():
    verdict = judge(conformance_code=0, conformance=conformance({"POOL-A-001": "pass"}), waivers={}, load_code=0,
                    load=None)
    assert verdict["exit_code"] == exitcodes.INTERNAL and "no summary was written" in verdict["line"]


def test_a_phase_killed_by_a_signal_is_an_internal_error_with_the_signal_named():
    verdict = judge(conformance_code=-9, conformance=None, waivers={}, load_code=None, load=None,
                    load_skipped="the conformance phase ended with exit--9")
    assert verdict["exit_code"] == exitcodes.INTERNAL and verdict["reasons"][0]["code"] == exitcodes.INTERNAL
    assert "(the process ended with signal 9)" in verdict["line"]
    partial = judge(conformance_code=1, conformance={"target": {}}, waivers={}, load_code=0, load=load())
    assert partial["exit_code"] == exitcodes.FAILED  # a report cut short: no requirement listed, still a failure
