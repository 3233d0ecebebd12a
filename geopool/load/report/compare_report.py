"""``geopool compare``'s outputs: the console table (rich), ``compare.json`` and ``compare.html``
(jinja2 + plotly, self-contained: both runs' latency CDFs overlaid, the differences, each run's facts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from geopool.load.judge.finished_run import Run
from geopool.load.report import run_report

__all__ = ["print_table", "render"]

TEMPLATE = "compare.html.j2"
VERDICT_STYLE = {"regressed": "bold red", "improved": "bold green", "no significant change": "green"}


def _figure(value: float, unit: str) -> str:
    return f"{value:.3f}" if unit == "req/s" else f"{value:.1f}"


def print_table(result: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    confidence = f"{result['confidence']:.0%}"
    table = Table(title=f"geopool compare: NEW vs BASE ({result['latency']} latency, {confidence} intervals)")
    for column in ("figure", "base", "new", f"difference [{confidence} CI]", f"relative [{confidence} CI]", "verdict"):
        table.add_column(column, justify="left" if column in ("figure", "verdict") else "right")
    for row in result["figures"]:
        unit = row["unit"]
        low, high = row["interval"]
        rel_low, rel_high = row["relative_interval"]
        table.add_row(f"{row['figure']} ({unit})", _figure(row["base"], unit), _figure(row["new"], unit),
                      f"{row['difference']:+.1f} [{low:+.1f}, {high:+.1f}]" if unit == "ms" else
                      f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]",
                      f"{row['relative']:+.1%} [{rel_low:+.1%}, {rel_high:+.1%}]",
                      f"[{VERDICT_STYLE[row['verdict']]}]{row['verdict']}[/]")
    console = Console(width=140)
    console.print(table)
    for label in ("base", "new"):
        facts = result[label]
        console.print(f"{label.upper()}: {facts['folder']} — {facts['scenario']} ({facts['mode']} loop), "
                      f"{facts['samples']} samples, vLLM {facts['vllm_version']}, {facts['started_utc']} UTC"
                      + ("" if facts["valid"] else " — INVALID"), highlight=False)
    if result["slo"]:
        for label in ("base", "new"):
            view = result["slo"][label]
            goodput = view.get("goodput")
            extra = (f", goodput {goodput.get('good')}/{goodput.get('of')} at {goodput.get('rps', 0):.3f} req/s"
                     if goodput else "")
            console.print(f"SLO {result['slo']['file']} on {label.upper()}: {view['verdict']}{extra}", highlight=False)
    for warning in result["warnings"]:
        console.print(f"warning: {warning}", highlight=False)


def cdf_plot(base: Run, new: Run, kind: str) -> str:
    import plotly.graph_objects as go

    figure = go.Figure(layout={"height": 420, "template": "plotly_white",
                               "title": f"Latency CDF ({kind}, after warm-up)", "xaxis_title": "ms",
                               "yaxis_title": "fraction of requests",
                               "margin": {"l": 60, "r": 20, "t": 40, "b": 50}})
    for label, run in (("BASE", base), ("NEW", new)):
        ordered = np.sort(run.latencies_ms[kind])
        figure.add_scatter(x=ordered, y=np.arange(1, len(ordered) + 1) / max(len(ordered), 1), mode="lines",
                           name=f"{label} ({run.folder.name})")
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id="plot-cdf")


def render(result: Mapping[str, Any], base: Run, new: Run) -> str:
    from plotly.offline import get_plotlyjs

    return run_report.template_environment().get_template(TEMPLATE).render(
        result=result, cdf=cdf_plot(base, new, result["latency"]), plotlyjs=get_plotlyjs(),
        result_json=json.dumps(run_report.json_safe(result), indent=2))
