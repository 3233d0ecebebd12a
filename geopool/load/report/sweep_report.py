"""A sweep's ``report.html``: the result, the steps' table and two plotly figures against offered rate —
latency percentiles (corrected), and throughput and goodput (with the offered rate as a reference line)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from geopool.load.report.run_report import json_safe, template_environment

__all__ = ["build_sweep_plots", "render_sweep_html"]

TEMPLATE = "sweep.html.j2"
_MARKERS = {"met": "circle", "breached": "x", "invalid": "diamond-open", "failed": "square-open"}


def render_sweep_html(document: Mapping[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    return template_environment().get_template(TEMPLATE).render(
        sweep=document, plots=build_sweep_plots(document), plotlyjs=get_plotlyjs(),
        sweep_json=json.dumps(json_safe(document), indent=2))


def build_sweep_plots(document: Mapping[str, Any]) -> dict[str, str]:
    """``plot-latency`` and ``plot-rates`` as HTML divs (the page inlines plotly.js once)."""
    import plotly.graph_objects as go

    steps = [step for step in document["steps"] if step.get("latency_ms")]
    offered = [step["rate"] for step in steps]
    symbols = [_MARKERS.get(step["state"], "circle") for step in steps]
    states = [step["state"] for step in steps]
    layout = {"height": 380, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": "plotly_white",
              "xaxis_title": "offered rate (req/s)"}
    shapes = []
    for name, colour in (("highest_rate_meeting_slo", "green"),):
        if document.get(name) is not None:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": document[name], "x1": document[name],
                           "y0": 0, "y1": 1, "line": {"color": colour, "dash": "dash"}})
    knee_rate = document["knee"]["latency_p50"].get("rate")
    if knee_rate is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": knee_rate, "x1": knee_rate,
                       "y0": 0, "y1": 1, "line": {"color": "orange", "dash": "dot"}})
    latency = go.Figure(layout={**layout, "title": "Latency (corrected) against offered rate; green: highest "
                                                   "rate meeting the SLO, orange: knee", "yaxis_title": "ms",
                                "shapes": shapes})
    for key in ("p50", "p90", "p99"):
        latency.add_scatter(x=offered, y=[step["latency_ms"].get(key) for step in steps], name=key,
                            mode="lines+markers", marker={"symbol": symbols, "size": 9}, text=states)
    rates = go.Figure(layout={**layout, "title": "Throughput and goodput against offered rate",
                              "yaxis_title": "requests / s", "shapes": shapes})
    rates.add_scatter(x=offered, y=offered, name="offered", mode="lines", line={"dash": "dash", "color": "grey"})
    rates.add_scatter(x=offered, y=[step["throughput_rps"] for step in steps], name="throughput (verified ok)",
                      mode="lines+markers", marker={"symbol": symbols, "size": 9}, text=states)
    rates.add_scatter(x=offered, y=[(step.get("goodput") or {}).get("rps") for step in steps], name="goodput",
                      mode="lines+markers", marker={"symbol": symbols, "size": 9}, text=states)
    return {name: figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}")
            for name, figure in (("latency", latency), ("rates", rates))}
