"""Bad input is rejected with the right 4xx, the documented error body and a useful message, and the
server survives each one (checked after every single request)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings

from geopool import wire
from geopool.conformance import recipes
from geopool.conformance.checks import Checks
from geopool.conformance.support import body_for
from geopool.errors import GeopoolError
from geopool.invalid import BadRequest, Mutation, bad_requests, invalid_mutations

CASES = bad_requests()


def _param(case: BadRequest):
    survival = "POOL-SURV-002" if case.destructive else "POOL-SURV-001"
    marks = [pytest.mark.requirement(*sorted({case.requirement, "POOL-REJ-011", "POOL-REJ-012", survival}))]
    if case.destructive:
        marks.append(pytest.mark.destructive)
    if case.needs_torch:
        marks.append(pytest.mark.needs_torch)
    return pytest.param(case, id=case.name, marks=marks)


def _valid_body(target) -> dict:
    return body_for(target, wire.seed_inputs(target.contract))


def check_rejection(checks: Checks, case: BadRequest, response, sent: str) -> None:
    """Status, error body shape and message of one rejection."""
    checks.context.update(request=sent, status=response.status_code)
    error = wire.parse_error(response.content)
    message = wire.error_message(error)
    checks.context["server_message"] = str(message if message is not None else response.text)[:300]
    checks.that(case.requirement, response.status_code in case.statuses,
                f"{case.name}: answered {response.status_code}, expected {' or '.join(map(str, case.statuses))}",
                expect=recipes.rejection("status", statuses=case.statuses, names=case.names))
    checks.that("POOL-REJ-011", wire.well_formed_error(error, response.status_code),
                f"{case.name}: error body is {response.text[:200]!r}", expect=recipes.rejection("error-body"))
    named = recipes.rejection("message", names=case.names)
    if isinstance(message, str):
        checks.that("POOL-REJ-012", any(word.lower() in message.lower() for word in case.names),
                    f"{case.name}: message names none of {list(case.names)}", expect=named)
    elif response.status_code >= 400:  # rejected with no error.message: it names nothing (a 2xx is no rejection)
        checks.fail("POOL-REJ-012", f"{case.name}: the rejection has no error.message to name the problem",
                    expect=named)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_request_is_rejected_and_survived(target, client, guard, checks, case):
    valid = _valid_body(target)
    sent = f"{case.name} ({case.requirement})"
    raw = case.body(valid, target.contract)
    try:
        response = client.post_raw("/pooling", raw)
    except GeopoolError as exc:  # a reset or timeout is the verdict, not a crash of the test
        checks.fail(case.requirement, f"{case.name}: no HTTP answer ({type(exc).__name__}: {exc})",
                    expect=recipes.rejection("status", statuses=case.statuses, names=case.names))
    else:
        check_rejection(checks, case, response, sent)
    guard.survives(checks, "POOL-SURV-002" if case.destructive else "POOL-SURV-001", sent, raw)


#: Known invalid inputs, each its own case (they ran first as @example and, failing, stopped Hypothesis
#: before any generated input was sent).
KNOWN_MUTATIONS = {
    "empty-input": Mutation("truncate", fraction=0.0),
    "damaged-archive-index": Mutation("damage", at_tail=True, offset=40, junk=b"\x00\x00\x00\x00"),
}


def _send_mutation(target, client, guard, checks: Checks, mutation: Mutation, case: str) -> None:
    """Send one spoiled body; record (never raise) its verdict under ``case``, so the next one is sent too."""
    description, raw = mutation.apply(_valid_body(target), target.contract)
    response = client.post_raw("/pooling", raw)
    checks.that("POOL-REJ-013", 400 <= response.status_code < 500,
                f"{description}: answered {response.status_code} {response.text[:200]!r}", case=case,
                replay=repr(mutation), expect=recipes.rejection("status"))
    guard.survives(checks, "POOL-SURV-001", description, raw)


@pytest.mark.requirement("POOL-REJ-013", "POOL-SURV-001")
@pytest.mark.needs_torch  # mutations damage torch.save archives; damaged .npy data can still be valid
@pytest.mark.parametrize("name", list(KNOWN_MUTATIONS))
def test_known_invalid_input_is_a_4xx(target, client, guard, checks, name):
    _send_mutation(target, client, guard, checks, KNOWN_MUTATIONS[name], name)


@pytest.mark.requirement("POOL-REJ-013", "POOL-SURV-001")
@pytest.mark.needs_torch
def test_generated_invalid_input_is_a_4xx(target, client, guard, checks):
    """Every generated body is sent and judged: a failing one is recorded, not raised, so Hypothesis goes
    on generating (the profile's max_examples) instead of stopping at the first 5xx."""
    sent: list[str] = []

    @settings(phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a request per example: no shrinking
              suppress_health_check=[HealthCheck.too_slow])
    @given(mutation=invalid_mutations())
    def each(mutation: Mutation) -> None:
        note(f"replay: {mutation!r}")
        _send_mutation(target, client, guard, checks, mutation, f"generated-{mutation.kind}")
        sent.append(mutation.kind)

    each()
    print(f"POOL-REJ-013: {len(sent)} generated invalid bodies sent ({', '.join(sorted(set(sent)))})")
    assert sent, "Hypothesis generated no invalid body: POOL-REJ-013 was not checked"
