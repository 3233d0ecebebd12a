"""The one reader of a server's Prometheus ``/metrics`` text, and the three ways geopool looks at it.

:func:`read_metrics` parses the text (with prometheus_client, imported on first use) into families by
name; prometheus_client names a counter's family without its ``_total`` suffix
(``# TYPE vllm:request_success_total counter`` makes the family ``vllm:request_success``; an untyped
``foo_total`` keeps its name). Every figure sums over the label sets that match, since vLLM labels by
model and engine.

>>> families = read_metrics('''
... # HELP vllm:request_success_total Count of successfully processed requests.
... # TYPE vllm:request_success_total counter
... vllm:request_success_total{model_name="m",finished_reason="stop"} 3
... vllm:request_success_total{model_name="other",finished_reason="stop"} 1
... ''')
>>> counter_total(families, "vllm:request_success", model_name="m")
3.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from geopool.errors import import_optional

__all__ = ["counter_total", "gauge", "histogram", "read_metrics"]

Families = Mapping[str, Any]


def read_metrics(text: str, *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Prometheus text → ``{family name: prometheus_client Metric}``; malformed text raises ValueError.

    ``only``: parse just the families with these names (their ``# HELP`` / ``# TYPE`` lines and samples,
    found by name prefix), which is much cheaper on a server exporting hundreds of lines."""
    parser = import_optional("prometheus_client.parser", "reading /metrics",
                             "pip install prometheus-client (a dependency of geopool)")
    if only is not None:
        text = _only_families(text, tuple(only))
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


#: A sample line's metric name: another family's samples are dropped before parsing; anything else is
#: kept, so that text which is not Prometheus format still fails to parse.
_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=[{ ])")


def _only_families(text: str, names: tuple[str, ...]) -> str:
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            if line.startswith(("# HELP ", "# TYPE ")) and line[7:].startswith(names):
                kept.append(line)
            continue
        sample = _SAMPLE_NAME.match(line)
        if sample is None or sample.group().startswith(names):
            kept.append(line)
    return "\n".join(kept) + "\n"


def _matches(sample: Any, labels: Mapping[str, str]) -> bool:
    return all(sample.labels.get(key) == value for key, value in labels.items())


def counter_total(families: Families, name: str, **labels: str) -> float | None:
    """Sum of counter ``name``'s ``_total`` samples whose labels include ``labels``; None when the server
    exports no such family. ``name`` may carry the ``_total`` suffix or not."""
    stem = name.removesuffix("_total")
    family = next((families[key] for key in (stem, f"{stem}_total") if key in families), None)
    if family is None:
        return None
    return float(sum(s.value for s in family.samples if s.name.endswith("_total") and _matches(s, labels)))


def gauge(families: Families, name: str, **labels: str) -> float | None:
    """Sum of gauge ``name`` over the label sets that include ``labels``; None when it is not exported."""
    family = families.get(name)
    if family is None:
        return None
    return float(sum(s.value for s in family.samples if _matches(s, labels)))


def histogram(families: Families, name: str, **labels: str) -> dict[str, Any] | None:
    """Histogram ``name`` as ``{"sum", "count", "buckets": {le: cumulative count}}`` summed over the label
    sets that include ``labels``; None when it is not exported."""
    family = families.get(name)
    if family is None:
        return None
    totals: dict[str, float] = {"sum": 0.0, "count": 0.0}
    buckets: dict[str, float] = {}
    for s in family.samples:
        if not _matches(s, labels):
            continue
        if s.name.endswith("_sum"):
            totals["sum"] += s.value
        elif s.name.endswith("_count"):
            totals["count"] += s.value
        elif s.name.endswith("_bucket"):
            buckets[s.labels["le"]] = buckets.get(s.labels["le"], 0.0) + s.value
    return {**totals, "buckets": buckets}
