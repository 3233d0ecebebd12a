"""A run's verdict: ``summary.json``, ``report.html`` (plotly, self-contained) and the terminal lines.

Everything is computed from ``records.jsonl``, the same file a crash would leave behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from geopool import resources
from geopool.load.judge import goodput, serverview, slo, stats
from geopool.load.records import Record, read_records
from geopool.load.scenario import Scenario, scenario_from
from geopool.load.schedule import arrival_offsets
from geopool.modes import IMAGE_TO_IMAGE, TENSOR_TO_TENSOR

__all__ = ["build_plots", "finalize", "render_html", "section_context", "template_environment", "write_failure"]

TEMPLATE = resources.report_template()
#: What every image-to-image answer is checked for.
IO_CHECKS = "every answer's size, CRS and transform checked against its input's, and 1 band of uint8 class values"
#: What answered image-to-image requests on a server at a URL: it does not say.
UNNAMED_PLUGIN = "the server's IO-processor plugin (a server at a URL does not name it)"


def finalize(report_dir: Path, *, scenario: Scenario, slo_spec: slo.Slo | None, target: Mapping[str, Any],
             samples: Sequence[dict[str, Any]], slots: Mapping[int, Mapping[str, Any]],
             missing_slots: Sequence[int] = (), locust_stats: Any = None,
             stopped_early: Mapping[str, Any] | None = None, mode: str = TENSOR_TO_TENSOR,
             io: Mapping[str, Any] | None = None) -> int:
    """Compute everything from the run's records, write summary.json and report.html, print, return the exit code.

    ``mode``: the serving mode; ``io``: image-to-image's plugin, input folder and inputs
    (:func:`geopool.load.run.io_payloads.io_summary`)."""
    records = read_records(report_dir / "records.jsonl")
    starts = [s["t0"] for s in slots.values() if s.get("t0") is not None]
    t0 = min(starts) if starts else min((r.sent for r in records), default=0.0)
    summary = stats.summarize(records, scenario, t0)
    latencies = stats.measured_latencies_ms(records, scenario, t0)
    server = serverview.server_summary(samples, t0 + scenario.warmup_s)
    client_mean = summary["latency_ms"]["uncorrected"].get("mean")
    server_e2e = (server.get("e2e") or {}).get("mean_ms") if server.get("available") else None
    summary["server"] = server
    summary["client_minus_server_ms"] = (client_mean - server_e2e
                                         if client_mean is not None and server_e2e is not None else None)
    summary["overhead_ms"] = serverview.overhead(samples, records)
    if server.get("available"):
        server["gauges"] = serverview.gauge_movement(samples, records)
    if scenario.open_loop:
        scheduled = len(arrival_offsets(scenario))
        summary["requests"].update(scheduled=scheduled, not_sent=max(scheduled - len(records), 0))
        if summary["requests"]["not_sent"]:
            summary["invalid_reasons"].append(
                f"{summary['requests']['not_sent']} of {scheduled} scheduled arrivals were never sent "
                "(the run stopped first)")
            summary["valid"] = False
    if missing_slots:
        summary["invalid_reasons"].append(f"no final records from worker slot(s) {list(missing_slots)}")
        summary["valid"] = False
    if slo_spec is not None and slo_spec.goodput is not None:
        latencies["goodput"] = goodput.effective_latencies_ms(records, scenario, t0 + scenario.warmup_s)
        summary["goodput"] = goodput.goodput_figures(latencies["goodput"], slo_spec.goodput.max_latency_ms,
                                                     summary["measured_seconds"], scenario.open_loop)
    if scenario.stages:
        summary["stages"] = goodput.stage_summaries(records, scenario, t0, slo_spec)
    checks = slo.evaluate(slo_spec or slo.CORRECTNESS_ONLY, summary, latencies)
    code = slo.exit_code(checks, summary["valid"])
    if stopped_early:  # --stop-on-breach: a bound was breached beyond doubt, whatever the shortened run shows
        code = slo.EXIT_BREACH
        for check in checks:
            if check["bound"] == stopped_early["bound"] and check["state"] != "breached":
                check.update(state="breached", by=f"stopped early: {stopped_early['why']}")
        summary["invalid_reasons"].append(f"stopped early at {stopped_early['at_s']:.1f} s: "
                                          f"{stopped_early['bound']} breached")
        summary["valid"] = False
    summary.update(
        scenario=scenario.to_dict(), target=dict(target), mode=mode, io=dict(io) if io else None, t0=t0,
        slots=len(slots),
        stopped_early=dict(stopped_early) if stopped_early else None,
        slo={"file": slo_spec.source if slo_spec else None, "checks": checks,
             "gated": slo.gated_text(slo_spec)},
        verdict={slo.EXIT_OK: "pass", slo.EXIT_BREACH: "slo-breached", slo.EXIT_INVALID: "invalid"}[code],
        exit_code=code, exit_codes=slo.EXIT_CODES,
        locust={"requests": locust_stats.total.num_requests, "failures": locust_stats.total.num_failures,
                "p99_ms_bucketed": locust_stats.total.get_response_time_percentile(0.99)} if locust_stats else None,
        files={"records": "records.jsonl", "metrics": "metrics.jsonl", "report": "report.html"},
    )
    (report_dir / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (report_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    (report_dir / "report.html").write_text(render_html(summary, records, t0, scenario))
    print_summary(summary, report_dir)
    return code


def write_failure(report_dir: Path, message: str, scenario: Scenario | None, target: Mapping[str, Any]) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = {"verdict": "error", "error": message, "exit_code": slo.EXIT_NO_TARGET,
               "scenario": scenario.to_dict() if scenario else None, "target": dict(target)}
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def print_summary(summary: Mapping[str, Any], report_dir: Path) -> None:
    requests = summary["requests"]
    corrected, uncorrected = summary["latency_ms"]["corrected"], summary["latency_ms"]["uncorrected"]
    lines = [
        f"geopool load: scenario {summary['scenario']['name']} ({summary['scenario']['mode']} loop) "
        f"against {summary['target'].get('url')} (vLLM {summary['target'].get('vllm_version')})",
        *([io_text(summary)] if summary.get("mode") == IMAGE_TO_IMAGE else []),
        f"  requests: {requests['measured']} measured ({requests['warmup_excluded']} in warm-up), "
        f"{requests['ok']} ok, {requests['http_errors']} HTTP errors, {requests['transport_errors']} transport "
        f"errors, {requests['verification_failures']} failed verification, {requests['unfinished']} unfinished",
        f"  throughput: {summary['throughput_rps']:.3f} ok req/s over {summary['measured_seconds']:.1f} s"
        + goodput_text(summary.get("goodput")),
    ]
    for label, dist in (("corrected", corrected), ("uncorrected", uncorrected)):
        if dist.get("count"):
            figures = "  ".join(f"{p} {dist[p]:.1f}" for p in ("p50", "p90", "p95", "p99", "p99.9"))
            lines.append(f"  latency {label} (ms): {figures}  max {dist['max']:.1f}")
    for stage in summary.get("stages") or ():
        load = f"rate {stage['rate']:g}/s" if "rate" in stage else f"{stage['users']} users"
        p50 = stage["latency_ms"]["corrected"].get("p50")
        lines.append(f"  stage {stage['index'] + 1} ({stage['from_s']:g}-{stage['until_s']:g} s, {load}): "
                     f"{stage['ok']} ok, {stage['throughput_rps']:.3f} req/s"
                     + goodput_text(stage.get("goodput")) + f", corrected p50 {_ms(p50)}"
                     + ("" if stage["valid"] else " (invalid: " + "; ".join(stage["invalid_reasons"]) + ")"))
    late = summary["late_sends"]
    if late["of"]:
        lines.append(f"  late sends: {late['count']} of {late['of']} over {late['threshold_ms']:g} ms "
                     f"(max {late['max_ms']:.1f} ms)")
    lines.append("  samples: " + "  ".join(f"{p} {'enough' if s['enough'] else 'too few'} ({s['samples']}/"
                                           f"{s['needed']})" for p, s in summary["sufficiency"].items()))
    server = summary["server"]
    if server.get("available") and server.get("e2e"):
        lines.append(f"  server: e2e mean {_ms(server['e2e']['mean_ms'])}, queue mean "
                     f"{_ms((server.get('queue') or {}).get('mean_ms'))}, inference mean "
                     f"{_ms((server.get('inference') or {}).get('mean_ms'))}, batch mean "
                     f"{_number((server.get('batch') or {}).get('mean_size'))}; client − server "
                     f"{_ms(summary['client_minus_server_ms'])}")
    gauges = server.get("gauges") or {}
    if gauges.get("state") in serverview.UNMEASURED:
        lines.append(f"  server queue gauges: {gauges['line']}")
    overhead = summary.get("overhead_ms") or {}
    if "overhead_mean_ms" in overhead:
        lines.append(f"  overhead vs the server's HTTP handling of /pooling: {_ms(overhead['overhead_mean_ms'])} "
                     f"(client {_ms(overhead['client_mean_ms'])} − server {_ms(overhead['server_http_mean_ms'])})")
    if not summary["slo"].get("file"):
        lines.append(f"  gated: {slo.CORRECTNESS_ONLY_TEXT}")
    for check in summary["slo"]["checks"]:
        tail = f": {check['by']}" if check.get("by") else ""
        lines.append(f"  SLO {check['state'].upper():12} {check['bound']}{tail}")
    if summary.get("stopped_early"):
        stop = summary["stopped_early"]
        lines.append(f"  STOPPED EARLY at {stop['at_s']:.1f} s: {stop['bound']} breached beyond doubt: {stop['why']}")
    for reason in summary["invalid_reasons"]:
        lines.append(f"  INVALID: {reason}")
    lines.append(f"  verdict: {summary['verdict']} (exit {summary['exit_code']}); report: {report_dir}/report.html")
    print("\n".join(lines), flush=True)


def mode_text(summary: Mapping[str, Any]) -> str | None:
    """``image-to-image through <plugin>``, ``tensor-to-tensor``, or None for a summary that predates modes."""
    mode = summary.get("mode")
    if mode != IMAGE_TO_IMAGE:
        return mode
    return f"image-to-image through {(summary.get('io') or {}).get('plugin') or UNNAMED_PLUGIN}"


def io_text(summary: Mapping[str, Any]) -> str:
    """The image-to-image line: through which plugin, and what was sent."""
    io = summary.get("io") or {}
    return (f"  mode: {mode_text(summary)}; {io.get('inputs')} GeoTIFF(s) ({io.get('raster')}) by path from "
            f"{io.get('input_dir')}; {IO_CHECKS}")


def goodput_text(figures: Mapping[str, Any] | None) -> str:
    """``; goodput 0.950 req/s (19 of 20 within 3000 ms)`` or nothing when goodput is not defined."""
    if not figures:
        return ""
    return (f"; goodput {figures['rps']:.3f} req/s ({figures['good']} of {figures['of']} within "
            f"{figures['max_latency_ms']:g} ms {figures['latency']})")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_html(summary: Mapping[str, Any], records: Sequence[Record], t0: float,
                scenario: Scenario) -> str:
    from plotly.offline import get_plotlyjs

    return template_environment().get_template(TEMPLATE.name).render(
        summary=summary, plots=build_plots(summary, records, t0, scenario), plotlyjs=get_plotlyjs(),
        summary_json=json.dumps(json_safe(summary), indent=2))


def template_environment(*more_folders: Path) -> jinja2.Environment:
    """Autoescaping Jinja environment over the load templates' folder (``load_section.html.j2`` holds the
    report body as macros) and ``more_folders``, so that other pages can import the load section."""
    loader = jinja2.FileSystemLoader([TEMPLATE.parent, *more_folders])
    environment = jinja2.Environment(loader=loader, autoescape=True)
    environment.globals.update(mode_text=mode_text, io_checks=IO_CHECKS)
    return environment


def section_context(report_dir: Path) -> dict[str, Any] | None:
    """What ``load_section`` needs for a finished run's folder: summary, plots (plotly divs, without
    plotly.js) and summary_json; None when the run wrote no records (it never started: see its summary)."""
    summary = json.loads((report_dir / "summary.json").read_text())
    records_path = report_dir / "records.jsonl"
    if "requests" not in summary or not records_path.is_file():
        return None
    records = read_records(records_path)
    settings = summary["scenario"]
    scenario = scenario_from(settings["name"], {key: value for key, value in settings.items() if key != "name"})
    return {"summary": summary, "plots": build_plots(summary, records, summary["t0"], scenario),
            "summary_json": json.dumps(summary, indent=2)}


def build_plots(summary: Mapping[str, Any], records: Sequence[Record], t0: float,
                scenario: Scenario) -> dict[str, str]:
    """The report's plotly figures as HTML divs ``plot-<name>`` (latency, throughput, cdf, queue); the page
    that shows them inlines plotly.js once."""
    import plotly.graph_objects as go

    done = [r for r in records if r.done is not None]
    ok = [r for r in done if r.verdict == "ok"]
    x = np.array([r.done - t0 for r in ok])
    corrected = np.array([(r.done - stats.start_of(r)) * 1000 for r in ok])
    uncorrected = np.array([(r.done - r.sent) * 1000 for r in ok])
    layout = {"height": 360, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": "plotly_white"}
    warmup = {"type": "rect", "xref": "x", "yref": "paper", "x0": 0, "x1": scenario.warmup_s, "y0": 0, "y1": 1,
              "fillcolor": "lightgrey", "opacity": 0.35, "line": {"width": 0}}

    latency = go.Figure(layout={**layout, "title": "Latency over time (warm-up shaded)",
                                "xaxis_title": "seconds since start", "yaxis_title": "ms", "shapes": [warmup]})
    latency.add_scatter(x=x, y=corrected, mode="markers", name="corrected (from intended send)",
                        marker={"size": 4})
    latency.add_scatter(x=x, y=uncorrected, mode="markers", name="uncorrected (from actual send)",
                        marker={"size": 4})
    failed = [r for r in done if r.verdict != "ok"]
    if failed:
        latency.add_scatter(x=[r.done - t0 for r in failed], y=[(r.done - r.sent) * 1000 for r in failed],
                            mode="markers", name="failed", marker={"size": 6, "symbol": "x", "color": "red"})

    end = max([r.done - t0 for r in done], default=1.0)
    edges = np.arange(0.0, math.ceil(end) + 1.0, 1.0)
    throughput = go.Figure(layout={**layout, "title": "Throughput over time (1 s bins)",
                                   "xaxis_title": "seconds since start", "yaxis_title": "requests / s",
                                   "shapes": [warmup]})
    throughput.add_bar(x=edges[:-1], y=np.histogram(x, edges)[0], name="verified ok")
    throughput.add_bar(x=edges[:-1], y=np.histogram([r.done - t0 for r in failed], edges)[0], name="failed")
    throughput.update_layout(barmode="stack")

    cdf = go.Figure(layout={**layout, "title": "Latency CDF (after warm-up)", "xaxis_title": "ms",
                            "yaxis_title": "fraction of requests"})
    measured = stats.measured_latencies_ms(records, scenario, t0)
    for name, values in measured.items():
        ordered = np.sort(values)
        cdf.add_scatter(x=ordered, y=np.arange(1, len(ordered) + 1) / max(len(ordered), 1), mode="lines", name=name)

    gauges = summary["server"].get("gauges") or {}
    title = "Server queue over time (vLLM /metrics)"
    if gauges.get("state") in serverview.UNMEASURED:  # a gauge that never moves is drawn, but not as a measurement
        title += f"<br><sub>{gauges['line']}</sub>"
    queue = go.Figure(layout={**layout, "title": title, "xaxis_title": "seconds since start",
                              "yaxis_title": "requests"})
    series = summary["server"].get("series") or []
    queue.add_scatter(x=[s["t"] - t0 for s in series], y=[s["running"] for s in series], name="running",
                      mode="lines+markers")
    queue.add_scatter(x=[s["t"] - t0 for s in series], y=[s["waiting"] for s in series], name="waiting",
                      mode="lines+markers")

    return {name: fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}")
             for name, fig in [("latency", latency), ("throughput", throughput), ("cdf", cdf), ("queue", queue)]}


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value

