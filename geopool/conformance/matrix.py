"""The fault matrix: which conformance requirements each proxy fault must make fail, and the positive
controls that make the requirements vLLM 0.32 fails pass.

A requirement is *caught* by a fault when the run a user would do through the faulty proxy (with the
row's expectations file) exits non-zero and reports the requirement as ``fail``. A requirement is *seen
passing* under a positive control (``repair-*``, :data:`CONTROLS`) when that run exits 0 and reports it
``pass``. ``tests/proxy/test_fault_matrix.py`` runs every row against the embedded server;
``python -m geopool.conformance.matrix`` prints the table as Markdown (kept in docs/fault-matrix.md).
"""

from __future__ import annotations

import dataclasses
import sys

__all__ = ["MATRIX", "CONTROLS", "IO_MATRIX", "IO_CONTROLS", "NOT_SEEN_PASSING", "OPTIONS", "RunOptions",
           "LOAD_ONLY", "TOOLING", "markdown",
           "options_of"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a row's conformance run differs from the default (vllm-0.32.toml applied, nothing destructive)."""

    #: The expectations file (a stem under conformance/expectations), or "none". A row on a repaired
    #: server runs with "none": its positive control shows it has none of vLLM 0.32's known defects.
    expectations: str = "vllm-0.32"
    #: Send destructive inputs (--destructive): only to rows whose proxy answers every killer itself.
    destructive: bool = False


def options_of(row: str) -> RunOptions:
    """The run options of a MATRIX or CONTROLS row (the default for rows :data:`OPTIONS` does not name)."""
    return OPTIONS.get(row, RunOptions())

_E, _C, _N, _D = "test_envelope.py", "test_encoding.py", "test_numerics.py", "test_determinism.py"
_P, _R, _S = "test_endpoints.py", "test_rejection.py", "test_security.py"
_M = "test_client_mistakes.py"
#: The encoding tests that read the size of an answer themselves (no decoded baseline needed).
_ANSWER_SIZE_TESTS = (f"{_C}::test_base64_float32_has_the_contract_shape", f"{_C}::test_output_follows_the_input_size")

#: fault spec → (the conformance tests to run, as paths under conformance/ or path::name, the caught ids)
MATRIX: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "layout": ((f"{_N}::test_served_output_matches_the_offline_forward_pass",), frozenset({"POOL-NUM-002"})),
    # Only the tests that read answers themselves: the others compare with the session's decoded baseline,
    # which no longer decodes, so they error (an error is not a catch) instead of failing.
    "float16-bytes": (_ANSWER_SIZE_TESTS, frozenset({
        "POOL-ENC-001", "POOL-SHAPE-001", "POOL-SHAPE-003", "POOL-DTYPE-003"})),
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
    "truncate": (_ANSWER_SIZE_TESTS, frozenset({
        "POOL-ENC-001", "POOL-SHAPE-001", "POOL-SHAPE-003", "POOL-DTYPE-003"})),
    "ignore-endianness": ((f"{_C}::test_endianness",), frozenset({"POOL-ENC-006"})),
    "bytes-no-metadata": ((f"{_C}::test_bytes_encoding",), frozenset({"POOL-ENC-002"})),
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
    # The run's first determinism request follows the preflight's seed request, so the same request sent
    # twice gets the seed's answer, then its own (DET-001); later pairs come after a different request, and
    # the lone-versus-batched comparison sees an answer that belongs to the previous request (DET-002).
    "stale": ((_D, f"{_N}::test_served_output_matches_the_offline_forward_pass"), frozenset({
        "POOL-DET-001", "POOL-DET-002", "POOL-NUM-002"})),
    # A 5 s pairing window: the 4 concurrent answers arrive within it, so every one is swapped.
    "swap:5": ((f"{_D}::test_lone_and_batched_answers_agree",), frozenset({"POOL-DET-002"})),
    # REJ-010, REJ-011 and REJ-013 are expected failures of vLLM 0.32, but these rows break cases it passes
    # (messages-not-a-list, bad-base64, generated-retype): caught once the expectations are per case.
    "5xx-for-4xx": ((_R, _S, "test_mode_mismatch.py"), frozenset({
        "POOL-IO-014", "POOL-REJ-001", "POOL-REJ-003", "POOL-REJ-004", "POOL-REJ-006", "POOL-REJ-007", "POOL-REJ-008",
        "POOL-REJ-009", "POOL-REJ-010", "POOL-REJ-011", "POOL-REJ-013", "POOL-SEC-004", "POOL-SEC-006"})),
    "accept-bad": ((_R,), frozenset({
        "POOL-REJ-001", "POOL-REJ-003", "POOL-REJ-004", "POOL-REJ-006", "POOL-REJ-007", "POOL-REJ-008",
        "POOL-REJ-009", "POOL-REJ-010", "POOL-REJ-011", "POOL-REJ-013"})),
    # vLLM 0.32 passes REJ-011 and REJ-012 on bad-base64 (its other cases are expected failures): a new
    # failing case of an expected requirement fails the run (expectations are per case). A flat error body
    # also has no error.message, so the message requirement fails with it.
    "flat-errors": ((f"{_R}::test_bad_request_is_rejected_and_survived[bad-base64]",),
                    frozenset({"POOL-REJ-011", "POOL-REJ-012"})),
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
    # A request that gets no 2xx fails the requirement that sent it; the later checks never run. (Tests
    # that need the session's baseline answer error instead: not selected.)
    "503": ((_E, f"{_N}::test_finite_inputs_in_the_server_dtype_give_finite_outputs"), frozenset({
        "POOL-ENV-001", "POOL-ENV-008", "POOL-DTYPE-001"})),
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
    # Rows on a repaired server (its positive control passes): each breaks one repair, so the requirements
    # vLLM 0.32 already fails are seen failing where they were seen passing.
    # The gateway's engine dies on the inputs that kill vLLM 0.32 (the proxy plays it; nothing is forwarded).
    "die-on-killer+repair-validate": ((f"{_R}::test_bad_request_is_rejected_and_survived[extra-input-key]",
                                       f"{_R}::test_bad_request_is_rejected_and_survived[rank-4-target]"),
                                      frozenset({"POOL-REJ-005", "POOL-REJ-012", "POOL-SURV-002"})),
    # A gateway with a 9 MiB limit (the fixture model's seed body is 8 MiB) whose refusals become 500s:
    # undecodable and hostile tensors, the 100,000-level JSON (8.2 MiB), the 1,000,000-number JSON (9.9 MiB)
    # and the 128 MiB body all get a 5xx.
    "5xx-for-4xx+repair-validate:9": ((f"{_R}::test_bad_request_is_rejected_and_survived[not-a-tensor-file]",
                                       f"{_R}::test_bad_request_is_rejected_and_survived[truncated-tensor-file]",
                                       f"{_R}::test_generated_invalid_input_is_a_4xx",
                                       f"{_S}::test_code_running_pickle_is_refused", f"{_S}::test_sparse_tensors",
                                       f"{_S}::test_oversized_body_is_refused", f"{_S}::test_pathological_json"),
                                      frozenset({"POOL-REJ-002", "POOL-REJ-011", "POOL-REJ-013", "POOL-SEC-002",
                                                 "POOL-SEC-003", "POOL-SEC-004", "POOL-SEC-005", "POOL-SEC-006",
                                                 "POOL-SEC-007"})),
    "truncate+repair-float": ((f"{_C}::test_default_encoding_format",), frozenset({"POOL-ENC-007"})),
    # Answers stop validating against the documented 200 schema.
    "retype-field:created+repair-openapi": ((f"{_P}::test_openapi_documents_the_pooling_response",),
                                            frozenset({"POOL-EP-007"})),
    # Serialized, each answer carries the previous request's output: the first of a concurrent round
    # carries the last lone request's, whatever the arrival order.
    "stale+repair-serialize": ((f"{_D}::test_concurrent_requests_get_their_own_answers",),
                               frozenset({"POOL-DET-003"})),
}

#: Positive controls: repair spec → (the tests to run, the ids that must be seen passing). Each runs with
#: no expectations file and must exit 0: the selection conforms on the repaired server.
CONTROLS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    # Also answers the killer inputs itself (400), so the destructive tests run without hurting vLLM.
    # The client mistakes too: float64 and a batch dimension refused by dtype and rank, a CUDA-saved tensor
    # by its failed weights-only load, completion-style bodies for their missing messages.
    "repair-validate": ((_R, _S, f"{_M}::test_client_mistake_is_refused_or_answered"), frozenset({
        "POOL-REJ-002", "POOL-REJ-005", "POOL-REJ-010", "POOL-REJ-011", "POOL-REJ-012", "POOL-REJ-013",
        "POOL-SURV-002", "POOL-SEC-002", "POOL-SEC-003", "POOL-SEC-005",
        "POOL-CLI-001", "POOL-CLI-002", "POOL-CLI-003", "POOL-CLI-004"})),
    # Three repairs in one run (one pytest start-up instead of three); each touches only its own requirement.
    "repair-float+repair-openapi+repair-serialize": ((f"{_C}::test_default_encoding_format",
                                                      f"{_P}::test_openapi_documents_the_pooling_response",
                                                      f"{_D}::test_concurrent_requests_get_their_own_answers",
                                                      # the proxy keeps a client's connection open after a 5xx
                                                      f"{_M}::test_keep_alive_connection_survives_an_error_answer"),
                                                     frozenset({"POOL-ENC-007", "POOL-EP-007", "POOL-DET-003",
                                                                "POOL-CLI-007"})),
}

#: The expectations file of the image-to-image catch rows (geopool's plugin on TerraTorch 1.2).
IO_EXPECTATIONS = "io-geopool-terratorch-1.2"
_IO_VALID = "test_io_contract.py::test_a_valid_geotiff_gets_a_geotiff_with_its_georeferencing"
_IO_GOLDEN = "test_io_generated.py::test_the_class_map_equals_the_fixtures_golden_answer"
#: Image-to-image rows, run through the proxy in front of the embedded image-to-image server (geopool's plugin;
#: ``tests/conformance/test_io_suite_live.py``), with no ``--reference-checkpoint``: the class map is judged by
#: the fixture's golden maps alone, as a client with no torch judges it. fault → (tests, caught ids).
IO_MATRIX: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "geotiff-shift:30": ((_IO_VALID,), frozenset({"POOL-IO-002"})),
    "geotiff-flip": ((_IO_VALID, _IO_GOLDEN), frozenset({"POOL-IO-011"})),
    "geotiff-swap-classes": ((_IO_VALID, _IO_GOLDEN), frozenset({"POOL-IO-011"})),
}
#: Image-to-image positive controls (no expectations file, exit 0): D10's missing file and non-raster file
#: refused 400 by the proxy, with messages that name no path.
IO_CONTROLS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "repair-io-paths": (("test_io_rejection.py::test_a_missing_file_is_a_4xx",
                         "test_io_rejection.py::test_a_file_that_is_not_a_raster_is_a_4xx_by_path"),
                        frozenset({"POOL-IO-006", "POOL-IO-017"})),
}

#: Known vLLM 0.32 defects no positive control shows passing, and why.
NOT_SEEN_PASSING: dict[str, str] = {
    "POOL-CLI-005": "its case needs two sizes batched in one engine step: on vLLM 0.32 that kills the engine, and "
                    "a proxy that serializes requests prevents the batch, so the case is never formed",
    "POOL-CLI-009": "needs a server started with an API key the suite knows; the fault matrix's server has none "
                    "(the embedded conformance run checks it on a keyed server, where vLLM 0.32 fails it)",
}

_REPAIRED = RunOptions(expectations="none")
_REPAIRED_DESTRUCTIVE = RunOptions(expectations="none", destructive=True)
#: Rows whose run differs from the default (see :class:`RunOptions`).
OPTIONS: dict[str, RunOptions] = {
    "repair-validate": _REPAIRED_DESTRUCTIVE, "die-on-killer+repair-validate": _REPAIRED_DESTRUCTIVE,
    **{row: _REPAIRED for row in (
        "repair-float+repair-openapi+repair-serialize", "5xx-for-4xx+repair-validate:9", "truncate+repair-float",
        "retype-field:created+repair-openapi", "stale+repair-serialize")},
}

#: Faults aimed at the load suite (latency and availability under load), not at a requirement.
LOAD_ONLY = {"slow-tail": "latency SLOs of the load suite's gate",
             "slow-every": "a known difference between the requests of one run, for `geopool compare` to find",
             "stall": "coordinated omission: the load suite's corrected vs uncorrected latency",
             "rate-limit": "a known capacity (the knee) for `geopool sweep` to find"}
#: Faults that stage a situation for geopool's own tests rather than break a requirement.
TOOLING = {"version:X.Y.Z": "a server claiming another vLLM version, to check which expectations file applies "
                            "(tests/conformance/test_expectations_live.py)"}


#: One measured row: the run's exit code, the requirements it reported fail (catch rows) or pass
#: (controls), and its wall time.
Measured = tuple[int, frozenset[str], float]


def markdown(results: dict[str, Measured] | None = None) -> str:
    """The table; with ``results`` (row → (exit code, ids, seconds)), the measured columns too."""
    measured_head = " exit code | measured | wall s |" if results else ""
    lines = ["| row | expected | exit code | expectations | selection |" + measured_head,
             "|---|---|---|---|---|" + ("---|---|---|" if results else "")]
    rows = [(fault, selection, "fail: " + ", ".join(sorted(ids)), "≠ 0") for fault, (selection, ids) in MATRIX.items()]
    rows += [(fault, selection, "pass: " + ", ".join(sorted(ids)), "0") for fault, (selection, ids) in CONTROLS.items()]
    for fault, selection, expected, code in rows:
        options = options_of(fault)
        flags = options.expectations + (", --destructive" if options.destructive else "")
        row = f"| `{fault}` | {expected} | {code} | {flags} | {', '.join(selection)} |"
        if results and fault in results:
            returncode, ids, seconds = results[fault]
            row += f" {returncode} | {', '.join(sorted(ids)) or '-'} | {seconds:.0f} |"
        elif results:
            row += " | | |"
        lines.append(row)
    blank = " | | |" if results else ""
    for fault, why in LOAD_ONLY.items():
        lines.append(f"| `{fault}` | (load suite: {why}) | - | - | - |{blank}")
    for fault, why in TOOLING.items():
        lines.append(f"| `{fault}` | (not a check: {why}) | - | - | - |{blank}")
    for rid, why in NOT_SEEN_PASSING.items():
        lines.append(f"| - | {rid} not seen passing: {why} | - | - | - |{blank}")
    lines += ["", "Image-to-image rows (`--mode image-to-image`, geopool's plugin, the answer GeoTIFF's "
              "georeferencing and class map; no `--reference-checkpoint`):", "",
              "| row | expected | exit code | expectations | selection |", "|---|---|---|---|---|"]
    lines += [f"| `{fault}` | fail: {', '.join(sorted(ids))} | ≠ 0 | {IO_EXPECTATIONS} | {', '.join(selection)} |"
              for fault, (selection, ids) in IO_MATRIX.items()]
    lines += [f"| `{fault}` | pass: {', '.join(sorted(ids))} | 0 | none | {', '.join(selection)} |"
              for fault, (selection, ids) in IO_CONTROLS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
