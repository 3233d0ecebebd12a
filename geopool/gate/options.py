"""``geopool gate``'s options: the union of its two phases' subsets of the one option table, plus its own.

Each phase is a list of table rows (:mod:`geopool.options`): the gate offers exactly those rows (same
help, same default), and gives each phase its values back through the same rows
(:func:`geopool.options.argv`), so a flag is spelled, and a default written, only in the table. A row
both phases take (the target, the embedded server) is one row, so both phases get the same value.
"""

from __future__ import annotations

from pathlib import Path

from geopool import options as shared
from geopool.load.run.options import option as load_option
from geopool.options import Option, declare

__all__ = ["CONFORMANCE_PHASE", "GATE_OPTIONS", "LOAD_PHASE", "OWN", "TARGET"]

#: The server under test (or the embedded one) and its contract: both phases run against the same one.
TARGET: tuple[Option, ...] = (
    shared.BASE_URL, shared.INPUT_DTYPE, shared.MODEL, shared.MODEL_CONFIG, shared.API_KEY,
    shared.REFERENCE_CHECKPOINT, shared.EMBEDDED_MODEL, shared.EMBEDDED_DTYPE, shared.DEVICE,
)
#: What the gate passes the conformance suite (pytest), beyond the report paths it chooses itself.
CONFORMANCE_PHASE: tuple[Option, ...] = (*TARGET, shared.EXPECTATIONS, shared.STRICT_EXPECTATIONS,
                                         shared.DESTRUCTIVE)
#: What the gate passes ``geopool load``; the gate's own scenario (load/scenarios.toml) by default.
LOAD_PHASE: tuple[Option, ...] = (
    *TARGET, load_option("scenario").but(default="gate"), load_option("scenario_file"), load_option("slo"),
    load_option("users"), load_option("duration"),
)
#: The gate's own options (the report folder is the load row's: the same concept, one help).
OWN: tuple[Option, ...] = (
    *declare(
        Option("--waivers", "TOML file of [[waiver]] id/reason/causes: MUST requirements the gate may leave "
               "unchecked, and for which causes.", kind=Path),
        Option("--conformance-timeout", "Seconds the conformance phase may take before it is stopped.", kind=float,
               low=1, default=5400.0),
    ),
    load_option("report_dir"),
)
#: Every option of ``geopool gate``, in its --help order.
GATE_OPTIONS: tuple[Option, ...] = shared.union(CONFORMANCE_PHASE, LOAD_PHASE, OWN)
