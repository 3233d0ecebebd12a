"""How the live runs select parts of the conformance suite (tests/conftest.py, tests/gate/test_gate_live.py)."""

from pathlib import Path

from geopool.conformance.registry import load_registry

#: The fault matrix's baseline: the whole tensor-mode suite but the one test die-on-killer cannot stand in
#: for: a batch of two sizes kills the engine only once the engine batched them, which the proxy cannot
#: see (the plain gate sends it to its own server).
BASELINE_SELECTION = ("-k", "not test_concurrent_requests_of_different_sizes")
#: What the plain gate selects (pytest -k): one real engine kill of each kind, each followed by a restart
#: (model inputs: an extra input key; chat structure: empty messages; a completion-style body; a batch of
#: two sizes), and the checks only a server the suite starts shows: its API key, the canary file a pickle
#: would write on its machine, keep-alive after a real 5xx (a proxy keeps its own connections alive).
REAL_KILLS_SELECTION = ("extra-input-key or empty-messages or input-token-ids or different_sizes or "
                        "code_running_pickle_never_runs or api_key_guards or keep_alive_connection_survives")

#: The plain gate's test (tests/conformance/test_suite_runs.py): its run starts in the background with the
#: fault matrix's baseline; the test, a unit of work of its own placed late (tests/conftest.py), waits for it.
PLAIN_RUN_TEST = "test_plain_gate_against_the_embedded_server"
#: How long the plain gate run may take, from its start (its test's budget too).
PLAIN_RUN_TIMEOUT_S = 2300


#: What a run that selects a few tests leaves the rest unchecked for: deselected, or skipped in the
#: selection for what the target lacks.
SELECTION_CAUSES = ("deselected", "destructive input", "not checked", "no reference weights", "no API key configured")


def waive_every_must(path: Path, reason: str) -> Path:
    """A waiver file naming every MUST requirement: for runs that select a few tests and judge the rest."""
    causes = ", ".join(f'"{cause}"' for cause in SELECTION_CAUSES)
    path.write_text("".join(f'[[waiver]]\nid = "{rid}"\nreason = "{reason}"\ncauses = [{causes}]\n\n'
                            for rid, requirement in load_registry().items() if requirement.level == "MUST"))
    return path
