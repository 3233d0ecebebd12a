"""The SLO gate: bounds from a TOML file checked against a run's exact figures.

```toml
[latency.corrected]      # milliseconds, per percentile (p50 p90 p95 p99 p99.9)
p99 = 5000
[latency.uncorrected]
p50 = 1500
[throughput]
min_rps = 1.0            # successful requests per second after warm-up
[errors]
max_error_rate = 0.01    # (HTTP + transport errors) / finished requests
max_verification_failures = 0   # the default: any wrong tensor fails the gate
```

A latency bound is judged with MLPerf LoadGen's early-stopping rule: ``met`` only when the run has
enough samples to say the percentile is under the bound with 99 % confidence, ``breached`` when the
observed percentile is over it, else ``insufficient`` — which makes the run invalid, not a pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.stats import PERCENTILES, early_stopping_check
from geopool.tomlfile import read_toml

__all__ = ["EXIT_CODES", "Slo", "evaluate", "exit_code", "load_slo"]

#: Process exit codes of a load run (``geopool load`` and ``locust -f load/locustfile.py``): the ones of
#: geopool's one table (:mod:`geopool.exitcodes`) a load run can end with.
EXIT_OK, EXIT_USAGE, EXIT_BREACH, EXIT_INVALID, EXIT_NO_TARGET = (
    exitcodes.OK, exitcodes.USAGE, exitcodes.SLO_BREACHED, exitcodes.LOAD_INVALID, exitcodes.TARGET_UNUSABLE)
EXIT_CODES = {code: exitcodes.describe(code)
              for code in (EXIT_OK, exitcodes.INTERRUPTED, EXIT_USAGE, EXIT_BREACH, EXIT_INVALID, EXIT_NO_TARGET)}
_PERCENTILE_KEYS = {f"p{p:g}": p for p in PERCENTILES}


@dataclasses.dataclass(frozen=True)
class Slo:
    latency_ms: dict[str, dict[str, float]]
    min_rps: float | None = None
    max_error_rate: float | None = None
    max_verification_failures: int = 0
    source: str = ""


def load_slo(path: str | Path) -> Slo:
    return slo_from(read_toml(path, "SLO file"), source=str(path))


def slo_from(document: Mapping[str, Any], source: str = "<slo>") -> Slo:
    where = f"SLO file {source!r}"
    unknown = set(document) - {"latency", "throughput", "errors"}
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {sorted(unknown)}; use latency, throughput, errors")
    latency: dict[str, dict[str, float]] = {}
    for kind, bounds in _table(where, document, "latency").items():
        if kind not in ("corrected", "uncorrected"):
            raise ConfigError(f"{where}: [latency.{kind}] is not corrected or uncorrected")
        if not isinstance(bounds, Mapping):
            raise ConfigError(f"{where}: latency.{kind} must be a table of percentile bounds")
        for key, value in bounds.items():
            if key not in _PERCENTILE_KEYS:
                raise ConfigError(f"{where}: latency.{kind}.{key} is not one of {', '.join(_PERCENTILE_KEYS)}")
            _number(where, f"latency.{kind}.{key}", value, positive=True)
        latency[kind] = {key: float(value) for key, value in bounds.items()}
    throughput = _table(where, document, "throughput")
    _only(where, "throughput", throughput, {"min_rps"})
    errors = _table(where, document, "errors")
    _only(where, "errors", errors, {"max_error_rate", "max_verification_failures"})
    min_rps = throughput.get("min_rps")
    max_error_rate = errors.get("max_error_rate")
    failures = errors.get("max_verification_failures", 0)
    if min_rps is not None:
        _number(where, "throughput.min_rps", min_rps, positive=True)
    if max_error_rate is not None:
        _number(where, "errors.max_error_rate", max_error_rate)
        if not 0 <= max_error_rate <= 1:
            raise ConfigError(f"{where}: errors.max_error_rate must be within 0..1, got {max_error_rate!r}")
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        raise ConfigError(f"{where}: errors.max_verification_failures must be an integer >= 0, got {failures!r}")
    if not latency and min_rps is None and max_error_rate is None and "max_verification_failures" not in errors:
        raise ConfigError(f"{where} sets no bound")
    return Slo(latency, None if min_rps is None else float(min_rps),
               None if max_error_rate is None else float(max_error_rate), failures, source)


def evaluate(slo: Slo, summary: Mapping[str, Any], latencies_ms: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One check per bound: ``state`` met / breached / insufficient, the observed figure and the margin."""
    checks = []
    for kind, bounds in slo.latency_ms.items():
        for key, bound in bounds.items():
            result = early_stopping_check(latencies_ms[kind], _PERCENTILE_KEYS[key], bound)
            observed = result["observed"]
            check = {"bound": f"latency.{kind}.{key} <= {bound:g} ms", "limit": bound, "observed": observed,
                     "state": result["state"], "samples": result["samples"], "needed": result["needed"]}
            if result["state"] == "breached":
                check["by"] = f"{observed - bound:.1f} ms over ({observed:.1f} ms observed)"
            elif result["state"] == "insufficient":
                check["by"] = (f"{result['samples']} samples, {result['over_bound']} over the bound; LoadGen's "
                               f"early-stopping rule needs {result['needed']} (observed {observed:.1f} ms)")
            checks.append(check)
    requests = summary["requests"]
    if slo.min_rps is not None:
        observed = summary["throughput_rps"]
        checks.append(_simple(f"throughput >= {slo.min_rps:g} req/s", slo.min_rps, observed, observed >= slo.min_rps,
                              f"{slo.min_rps - observed:.3f} req/s short ({observed:.3f} observed)"))
    if slo.max_error_rate is not None:
        observed = summary["error_rate"]
        if observed is None:
            checks.append({"bound": f"error rate <= {slo.max_error_rate:g}", "limit": slo.max_error_rate,
                           "observed": None, "state": "insufficient", "by": "no finished request after warm-up"})
        else:
            checks.append(_simple(f"error rate <= {slo.max_error_rate:g}", slo.max_error_rate, observed,
                                  observed <= slo.max_error_rate,
                                  f"{observed - slo.max_error_rate:.4f} over ({observed:.4f} observed: "
                                  f"{requests['http_errors']} HTTP + {requests['transport_errors']} transport errors "
                                  f"of {requests['finished']})"))
    failures, allowed = requests["verification_failures"], slo.max_verification_failures
    checks.append(_simple(f"verification failures <= {allowed}", allowed, failures, failures <= allowed,
                          f"{failures - allowed} over ({failures} responses failed verification)"))
    return checks


def exit_code(checks: list[dict[str, Any]], valid: bool) -> int:
    if any(check["state"] == "breached" for check in checks):
        return EXIT_BREACH
    if not valid or any(check["state"] == "insufficient" for check in checks):
        return EXIT_INVALID
    return EXIT_OK


def _simple(bound: str, limit: float, observed: float, met: bool, by: str) -> dict[str, Any]:
    check = {"bound": bound, "limit": limit, "observed": observed, "state": "met" if met else "breached"}
    if not met:
        check["by"] = by
    return check


def _table(where: str, document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must be a table")
    return value


def _only(where: str, name: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(table) - allowed
    if extra:
        raise ConfigError(f"{where}: [{name}] has unknown key(s) {sorted(extra)}; use {', '.join(sorted(allowed))}")


def _number(where: str, key: str, value: Any, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and not value > 0):
        raise ConfigError(f"{where}: {key} must be a {'positive ' if positive else ''}number, got {value!r}")
