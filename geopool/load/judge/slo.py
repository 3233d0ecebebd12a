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
[goodput]                # requests that verified AND finished within max_latency_ms
max_latency_ms = 3000    # default: the smallest [latency.*] bound
min_share = 0.9          # of the finished requests after warm-up, 0 < share < 1
min_rps = 0.5            # good requests per second after warm-up
```

A latency bound is judged with MLPerf LoadGen's early-stopping rule: ``met`` only when the run has
enough samples to say the percentile is under the bound with 99 % confidence, ``breached`` when the
observed percentile is over it, else ``insufficient`` — which makes the run invalid, not a pass.

Goodput (vLLM RFC #8782) counts the requests that verified and finished within ``max_latency_ms``
(the main latency: corrected in an open loop, uncorrected in a closed one). ``min_share`` is judged
by the same early-stopping rule: "share >= s" is "the s-quantile of the per-request latency, a
failed request counting as infinite, <= max_latency_ms", so a share needs as many samples as that
percentile does (0.9 as p90: 64). ``min_rps`` is judged like throughput, ``insufficient`` without
a finished request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.load.judge.stats import PERCENTILES, early_stopping_check
from geopool.resources import slo_examples
from geopool.tomlfile import read_toml

__all__ = ["CORRECTNESS_ONLY", "CORRECTNESS_ONLY_TEXT", "EXIT_CODES", "Goodput", "Slo", "evaluate", "exit_code",
           "gated_text", "load_slo"]

#: Process exit codes of a load run (``geopool load`` and ``locust -f load/locustfile.py``): the ones of
#: geopool's one table (:mod:`geopool.exitcodes`) a load run can end with.
EXIT_OK, EXIT_USAGE, EXIT_BREACH, EXIT_INVALID, EXIT_NO_TARGET = (
    exitcodes.OK, exitcodes.USAGE, exitcodes.SLO_BREACHED, exitcodes.LOAD_INVALID, exitcodes.TARGET_UNUSABLE)
EXIT_CODES = {code: exitcodes.describe(code)
              for code in (EXIT_OK, exitcodes.INTERRUPTED, EXIT_USAGE, EXIT_BREACH, EXIT_INVALID, EXIT_NO_TARGET)}
_PERCENTILE_KEYS = {f"p{p:g}": p for p in PERCENTILES}


@dataclasses.dataclass(frozen=True)
class Goodput:
    """The ``[goodput]`` table: the per-request latency bound and the optional share and rate bounds."""

    max_latency_ms: float
    min_share: float | None = None
    min_rps: float | None = None


@dataclasses.dataclass(frozen=True)
class Slo:
    latency_ms: dict[str, dict[str, float]]
    min_rps: float | None = None
    max_error_rate: float | None = None
    max_verification_failures: int = 0
    source: str = ""
    goodput: Goodput | None = None


#: Without an SLO file a run is still judged on what it was answered: no wrong answer (verification) and
#: no error (HTTP or transport). Only latency and throughput go ungated, and the summary says so.
CORRECTNESS_ONLY = Slo(latency_ms={}, max_error_rate=0.0, max_verification_failures=0, source="")
#: What a run without an SLO file gates (summary.json ``slo.gated``).
CORRECTNESS_ONLY_TEXT = ("correctness only (no SLO file: latency and throughput not gated): no wrong answer, "
                         "no error after warm-up")


def gated_text(spec: Slo | None) -> str:
    """What a run's verdict gated, in words (summary.json ``slo.gated``)."""
    if spec is None:
        return CORRECTNESS_ONLY_TEXT
    errors = "errors not bounded (the file has no [errors] max_error_rate)" if spec.max_error_rate is None else \
        f"error rate <= {spec.max_error_rate:g}"
    return f"the SLO file's bounds; verification failures <= {spec.max_verification_failures}; {errors}"


def load_slo(path: str | Path) -> Slo:
    """The SLO file ``path``, or a packaged one by name (:func:`slo_path`)."""
    found = slo_path(path)
    if not found.exists():
        names = ", ".join(sorted(example.stem for example in slo_examples()))
        raise ConfigError(f"SLO file {str(path)!r} does not exist (packaged SLO files, by name: {names})")
    return slo_from(read_toml(found, "SLO file"), source=str(found))


def slo_path(value: str | Path) -> Path:
    """``value`` as a path when it names a file; else the packaged SLO file it names, by name (``example``)
    or by its path in the source tree (``load/slo/example.toml``), so the README's commands work from an
    installed geopool too; else ``value`` (whose reading then says it does not exist, naming the packaged)."""
    given = Path(value)
    if given.is_file():
        return given
    packaged = {path.stem: path for path in slo_examples()}
    name = given.stem if given.suffix == ".toml" and given.parent == Path("load/slo") else str(value)
    return packaged.get(name, given)


def slo_from(document: Mapping[str, Any], source: str = "<slo>") -> Slo:
    where = f"SLO file {source!r}"
    unknown = set(document) - {"latency", "throughput", "errors", "goodput"}
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {sorted(unknown)}; use latency, throughput, errors, goodput")
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
    goodput = _goodput(where, document, latency)
    if (not latency and min_rps is None and max_error_rate is None and "max_verification_failures" not in errors
            and "goodput" not in document):
        raise ConfigError(f"{where} sets no bound")
    return Slo(latency, None if min_rps is None else float(min_rps),
               None if max_error_rate is None else float(max_error_rate), failures, source, goodput)


def _goodput(where: str, document: Mapping[str, Any], latency: Mapping[str, Mapping[str, float]]) -> Goodput | None:
    """The ``[goodput]`` table; without one, goodput is still reported when a latency bound gives its limit."""
    table = _table(where, document, "goodput")
    _only(where, "goodput", table, {"max_latency_ms", "min_share", "min_rps"})
    bounds = [bound for kind in latency.values() for bound in kind.values()]
    limit = table.get("max_latency_ms")
    if limit is None:
        if not bounds:
            if "goodput" in document:
                raise ConfigError(f"{where}: [goodput] needs max_latency_ms when no [latency.*] bound gives one")
            return None
        limit = min(bounds)
    _number(where, "goodput.max_latency_ms", limit, positive=True)
    share, rps = table.get("min_share"), table.get("min_rps")
    if share is not None:
        _number(where, "goodput.min_share", share)
        if not 0 < share < 1:
            raise ConfigError(f"{where}: goodput.min_share must be within (0, 1), got {share!r} (a share of 1 is "
                              "never shown with confidence: bound errors.max_error_rate and a latency percentile)")
    if rps is not None:
        _number(where, "goodput.min_rps", rps, positive=True)
    return Goodput(float(limit), None if share is None else float(share), None if rps is None else float(rps))


def evaluate(slo: Slo, summary: Mapping[str, Any], latencies_ms: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One check per bound: ``state`` met / breached / insufficient, the observed figure and the margin."""
    checks = []
    for kind, bounds in slo.latency_ms.items():
        for key, bound in bounds.items():
            result = early_stopping_check(latencies_ms[kind], _PERCENTILE_KEYS[key], bound)
            observed = result["observed"]
            check = _early_stopping(f"latency.{kind}.{key} <= {bound:g} ms", bound, observed, result)
            if result["state"] == "breached":
                check["by"] = f"{observed - bound:.1f} ms over ({observed:.1f} ms observed)"
            elif result["state"] == "insufficient":
                check["by"] = (f"{result['samples']} samples, {result['over_bound']} over the bound; LoadGen's "
                               f"early-stopping rule needs {result['needed']} (observed {observed:.1f} ms)")
            checks.append(check)
    requests = summary["requests"]
    if slo.goodput is not None:
        checks += _goodput_checks(slo.goodput, summary.get("goodput") or {}, latencies_ms.get("goodput"))
    if slo.min_rps is not None:
        observed = summary["throughput_rps"]
        checks.append(_simple(f"throughput >= {slo.min_rps:g} req/s", slo.min_rps, observed, observed >= slo.min_rps,
                              f"{slo.min_rps - observed:.3f} req/s short ({observed:.3f} observed)"))
    if slo.max_error_rate is not None:
        observed = summary["error_rate"]
        if observed is None:
            checks.append(_nothing_finished(f"error rate <= {slo.max_error_rate:g}", slo.max_error_rate))
        else:
            checks.append(_simple(f"error rate <= {slo.max_error_rate:g}", slo.max_error_rate, observed,
                                  observed <= slo.max_error_rate,
                                  f"{observed - slo.max_error_rate:.4f} over ({observed:.4f} observed: "
                                  f"{requests['http_errors']} HTTP + {requests['transport_errors']} transport errors "
                                  f"of {requests['finished']})"))
    failures = requests["verification_failures"] + requests.get("warmup_verification_failures", 0)
    allowed = slo.max_verification_failures
    checks.append(_simple(f"verification failures <= {allowed}", allowed, failures, failures <= allowed,
                          f"{failures - allowed} over ({failures} responses failed verification, warm-up "
                          "included)"))
    return checks


def _goodput_checks(spec: Goodput, figures: Mapping[str, Any], effective_ms: np.ndarray | None) -> list[dict[str, Any]]:
    checks = []
    finished = figures.get("of", 0)
    if spec.min_share is not None:
        bound = f"goodput share >= {spec.min_share:g} (within {spec.max_latency_ms:g} ms and verified)"
        values = effective_ms if effective_ms is not None else np.array([])
        values = np.nan_to_num(values, posinf=np.finfo(float).max)  # a failed request: later than any bound
        result = early_stopping_check(values, spec.min_share * 100, spec.max_latency_ms)
        observed = figures.get("share")
        check = _early_stopping(bound, spec.min_share, observed, result)
        if result["state"] == "breached":
            check["by"] = f"{figures.get('good', 0)} good of {finished} ({observed:.3f})"
        elif result["state"] == "insufficient":
            check["by"] = (f"{finished} finished requests, {result['over_bound']} not good; LoadGen's "
                           f"early-stopping rule needs {result['needed']}")
        checks.append(check)
    if spec.min_rps is not None:
        bound = f"goodput >= {spec.min_rps:g} good req/s"
        if not finished:
            checks.append(_nothing_finished(bound, spec.min_rps))
        else:
            observed = figures["rps"]
            checks.append(_simple(bound, spec.min_rps, observed, observed >= spec.min_rps,
                                  f"{spec.min_rps - observed:.3f} good req/s short ({observed:.3f} observed)"))
    return checks


def exit_code(checks: list[dict[str, Any]], valid: bool) -> int:
    if any(check["state"] == "breached" for check in checks):
        return EXIT_BREACH
    if not valid or any(check["state"] == "insufficient" for check in checks):
        return EXIT_INVALID
    return EXIT_OK


def _early_stopping(bound: str, limit: float, observed: float | None, result: Mapping[str, Any]) -> dict[str, Any]:
    """A check judged by :func:`early_stopping_check` (its state, samples and the samples it needs)."""
    return {"bound": bound, "limit": limit, "observed": observed, "state": result["state"],
            "samples": result["samples"], "needed": result["needed"]}


def _nothing_finished(bound: str, limit: float) -> dict[str, Any]:
    return {"bound": bound, "limit": limit, "observed": None, "state": "insufficient",
            "by": "no finished request after warm-up"}


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
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or (positive and not value > 0)):
        raise ConfigError(f"{where}: {key} must be a finite {'positive ' if positive else ''}number, got {value!r}")
