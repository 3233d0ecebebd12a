"""The fault matrix: which conformance requirements each proxy fault must make fail.

A requirement counts as *caught* by a fault when one of its tests that passes through ``--fault none``
fails (or expected-fails) through the fault. ``tests/proxy/test_fault_matrix.py`` runs every row
against the embedded server; ``python -m geopool.conformance.matrix`` prints the table as Markdown
(kept in docs/fault-matrix.md).
"""

from __future__ import annotations

import sys

__all__ = ["MATRIX", "LOAD_ONLY", "TOOLING", "markdown"]

_E, _C, _N, _D = "test_envelope.py", "test_encoding.py", "test_numerics.py", "test_determinism.py"
_P, _R, _S = "test_endpoints.py", "test_rejection.py", "test_security.py"
_M = "test_client_mistakes.py"

#: fault spec → (the conformance tests to run, as paths under conformance/ or path::name, the caught ids)
MATRIX: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "layout": ((f"{_N}::test_served_output_matches_the_offline_forward_pass",), frozenset({"POOL-NUM-002"})),
    "float16-bytes": ((_C,), frozenset({
        "POOL-ENC-001", "POOL-ENC-002", "POOL-ENC-003", "POOL-ENC-004", "POOL-ENC-005", "POOL-ENC-006",
        "POOL-SHAPE-001", "POOL-SHAPE-002", "POOL-SHAPE-003", "POOL-DTYPE-003"})),
    # Every answer swapped alike: comparisons with the (equally swapped) baseline cannot see it, the
    # half-precision tolerances and the offline reference can.
    "byteswap": ((_C, f"{_N}::test_served_output_matches_the_offline_forward_pass"), frozenset({
        "POOL-ENC-004", "POOL-ENC-005", "POOL-NUM-002"})),
    # Every answer bent alike, on answers of magnitude ~0.1 below the tolerance NUM-002 had before
    # (allclose, atol 5e-3 + rtol 1e-3): only the reference pass sees them (the golden answer's looser
    # bounds catch scale >= 1.0086; tests/live/test_numeric_oracle.py).
    "scale:1.005": ((f"{_N}::test_served_output_matches_the_offline_forward_pass",), frozenset({"POOL-NUM-002"})),
    "fixed-noise:0.0005": ((f"{_N}::test_served_output_matches_the_offline_forward_pass",),
                           frozenset({"POOL-NUM-002"})),
    "nan": ((f"{_N}::test_finite_inputs_in_the_server_dtype_give_finite_outputs",), frozenset({"POOL-NUM-001"})),
    "inf:7": ((f"{_N}::test_finite_inputs_in_the_server_dtype_give_finite_outputs",), frozenset({"POOL-NUM-001"})),
    "truncate": ((_C,), frozenset({
        "POOL-ENC-001", "POOL-ENC-002", "POOL-ENC-003", "POOL-ENC-004", "POOL-ENC-005", "POOL-ENC-006",
        "POOL-SHAPE-001", "POOL-SHAPE-002", "POOL-SHAPE-003", "POOL-DTYPE-003"})),
    "noise:0.01": ((f"{_D}::test_same_request_twice_is_bitwise_identical",
                    f"{_N}::test_npy_and_torch_save_inputs_agree"), frozenset({"POOL-DET-001", "POOL-DTYPE-002"})),
    "half-noise": ((f"{_C}::test_reduced_precision",), frozenset({"POOL-ENC-004", "POOL-ENC-005"})),
    "extra-data": ((_E,), frozenset({"POOL-ENV-006"})),
    "missing-data": ((_E,), frozenset({"POOL-ENV-006"})),
    "wrong-index": ((_E,), frozenset({"POOL-ENV-006"})),
    "drop-field:id": ((_E,), frozenset({"POOL-ENV-002", "POOL-ENV-008"})),
    "drop-field:object": ((_E,), frozenset({"POOL-ENV-003"})),
    "retype-field:created": ((_E,), frozenset({"POOL-ENV-004"})),
    "drop-field:usage.total_tokens": ((_E,), frozenset({"POOL-ENV-007"})),
    "wrong-model": ((_E,), frozenset({"POOL-ENV-005"})),
    "drop-request-id": ((_E,), frozenset({"POOL-ENV-008"})),
    # A lone and a batched request both get the first answer, so POOL-DET-002 cannot see it.
    "ignore-input": ((_D, f"{_C}::test_output_follows_the_input_size"), frozenset({
        "POOL-DET-004", "POOL-DET-005", "POOL-SHAPE-003"})),
    # Each pair of requests in the determinism tests comes after a different one, so only the
    # lone-versus-batched comparison sees an answer that belongs to the previous request.
    "stale": ((_D, f"{_N}::test_served_output_matches_the_offline_forward_pass"), frozenset({
        "POOL-DET-002", "POOL-NUM-002"})),
    # A 5 s pairing window: the 4 concurrent answers arrive within it, so every one is swapped.
    "swap:5": ((f"{_D}::test_lone_and_batched_answers_agree",), frozenset({"POOL-DET-002"})),
    "5xx-for-4xx": ((_R, _S), frozenset({
        "POOL-REJ-001", "POOL-REJ-003", "POOL-REJ-004", "POOL-REJ-006", "POOL-REJ-007", "POOL-REJ-008",
        "POOL-REJ-009", "POOL-REJ-010", "POOL-REJ-011", "POOL-SEC-004", "POOL-SEC-006"})),
    "accept-bad": ((_R,), frozenset({
        "POOL-REJ-001", "POOL-REJ-003", "POOL-REJ-004", "POOL-REJ-006", "POOL-REJ-007", "POOL-REJ-008",
        "POOL-REJ-009", "POOL-REJ-010", "POOL-REJ-011"})),
    "flat-errors": ((f"{_R}::test_bad_request_is_rejected_and_survived[bad-base64]",), frozenset({"POOL-REJ-011"})),
    "blank-errors": ((f"{_R}::test_bad_request_is_rejected_and_survived[bad-base64]",), frozenset({"POOL-REJ-012"})),
    "die-after-bad": ((f"{_R}::test_bad_request_is_rejected_and_survived[bad-base64]",), frozenset({"POOL-SURV-001"})),
    "metrics-frozen": ((f"{_P}::test_metrics_count_pooling_requests",), frozenset({"POOL-EP-005"})),
    "metrics-garbage": ((f"{_P}::test_metrics_count_pooling_requests",), frozenset({"POOL-EP-004"})),
    "version-garbage": ((f"{_P}::test_health_version_models",), frozenset({"POOL-EP-002"})),
    "models-empty": ((f"{_P}::test_health_version_models",), frozenset({"POOL-EP-003"})),
    "health-flap": ((f"{_P}::test_health_version_models",), frozenset({"POOL-EP-001"})),
    "openapi-strip": ((f"{_P}::test_openapi_documents_the_pooling_request",), frozenset({"POOL-EP-006"})),
    "openapi-narrow": ((f"{_P}::test_openapi_documents_the_pooling_request",), frozenset({"POOL-EP-008"})),
    "bytes-metadata": ((f"{_C}::test_bytes_encoding",), frozenset({"POOL-SHAPE-002", "POOL-ENC-003"})),
    # A request that gets no 2xx fails the requirement that sent it; the later checks never run.
    "503": ((_E, f"{_N}::test_finite_inputs_in_the_server_dtype_give_finite_outputs",
             f"{_S}::test_pathological_json"), frozenset({
        "POOL-ENV-001", "POOL-ENV-008", "POOL-DTYPE-001", "POOL-SEC-006", "POOL-SEC-007", "POOL-SURV-001"})),
    "reset": ((_E,), frozenset({"POOL-ENV-001", "POOL-ENV-008"})),
    # Client mistakes. The prompt body's 400 becomes a 200: the others already fail on vLLM 0.32 or kill it.
    "accept-completion": ((f"{_M}::test_client_mistake_is_refused_or_answered",), frozenset({"POOL-CLI-004"})),
    "close-after-error": ((f"{_M}::test_keep_alive_connection_survives_an_error_answer",),
                          frozenset({"POOL-CLI-007"})),
    "low-bit": ((f"{_M}::test_bytes_only_is_the_raw_baseline", f"{_M}::test_fp8_embed_dtypes"),
                frozenset({"POOL-CLI-010", "POOL-CLI-011"})),
    # Answers of the hung-up request's batch-mates swapped (2 s pairing window; lone answers wait it out).
    "swap:2": ((f"{_M}::test_a_client_that_hangs_up_mid_request",), frozenset({"POOL-CLI-006"})),
    # Noise on /pooling answers only, so /invocations no longer gives the (noisy) /pooling baseline.
    "noise:0.02": ((f"{_M}::test_invocations_answers_as_pooling",), frozenset({"POOL-CLI-012"})),
}

#: Faults aimed at the load suite (latency and availability under load), not at a requirement.
LOAD_ONLY = {"slow-tail": "latency SLOs of the load suite's gate",
             "stall": "coordinated omission: the load suite's corrected vs uncorrected latency"}
#: Faults that stage a situation for geopool's own tests rather than break a requirement.
TOOLING = {"version:X.Y.Z": "a server claiming another vLLM version, to check which expectations file applies "
                            "(tests/conformance/test_expectations_live.py)"}


def markdown(results: dict[str, tuple[frozenset[str], float]] | None = None) -> str:
    """The table; with ``results`` (fault → (caught ids, seconds)), the measured columns too."""
    lines = ["| fault | caught by | selection |" + (" measured | wall s |" if results else ""),
             "|---|---|---|" + ("---|---|" if results else "")]
    for fault, (selection, caught) in MATRIX.items():
        row = f"| `{fault}` | {', '.join(sorted(caught))} | {', '.join(selection)} |"
        if results and fault in results:
            measured, seconds = results[fault]
            row += f" {', '.join(sorted(measured)) or '-'} | {seconds:.0f} |"
        lines.append(row)
    for fault, why in LOAD_ONLY.items():
        lines.append(f"| `{fault}` | (load suite: {why}) | - |" + (" | |" if results else ""))
    for fault, why in TOOLING.items():
        lines.append(f"| `{fault}` | (not a check: {why}) | - |" + (" | |" if results else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
