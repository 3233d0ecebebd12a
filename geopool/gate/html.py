"""The gate's one page, ``report.html``: the verdict line at the very top, the reasons, then the
conformance section (:func:`geopool.conformance.html.render_conformance_section`) and the load section
(the load report's own body and plots, :func:`geopool.load.report.run_report.section_context`).

Self-contained: plotly.js is inlined once (only when there are plots); everything else is HTML and CSS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geopool import resources
from geopool.conformance.html import render_conformance_section
from geopool.load.report import run_report as load_report

__all__ = ["render_gate_html", "write_gate_html"]

#: Files of the gate's folder the page links to when they are there.
LINKED_FILES = ("summary.json", "summary.md", "junit.xml", "conformance/conformance.html",
                "conformance/conformance.json", "conformance/output.txt", "load/report.html")


def write_gate_html(path: Path, gate_summary: Mapping[str, Any], conformance: Mapping[str, Any] | None,
                    load_dir: Path | None) -> Path:
    """Write ``report.html`` at ``path``: ``gate_summary`` is the gate's summary.json, ``conformance`` the
    conformance.json report (None: the suite wrote none), ``load_dir`` the load run's folder (None: no
    load run; ``gate_summary["load"]["skipped"]`` says why)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_gate_html(gate_summary, conformance, load_dir, page_dir=path.parent.resolve()))
    return path


def render_gate_html(gate_summary: Mapping[str, Any], conformance: Mapping[str, Any] | None,
                     load_dir: Path | None, *, page_dir: Path | None = None) -> str:
    load, load_error = None, None
    if load_dir is not None and (Path(load_dir) / "summary.json").is_file():
        load = load_report.section_context(Path(load_dir))
        if load is None:  # the run never started: its summary.json holds the error
            load_error = json.loads((Path(load_dir) / "summary.json").read_text())
    # a fragment rendered (and escaped) by the conformance templates: the gate's template inserts it as is
    conformance_html = (render_conformance_section(conformance, page_dir=page_dir, level=3)
                        if conformance is not None else None)
    environment = load_report.template_environment(resources.template_folder("geopool.gate"))
    return environment.get_template("gate.html.j2").render(
        gate=gate_summary, conformance_html=conformance_html, load=load, load_error=load_error,
        load_skipped=(gate_summary.get("load") or {}).get("skipped"), plotlyjs=_plotlyjs() if load else "",
        files=[name for name in LINKED_FILES if page_dir is not None and (page_dir / name).is_file()])


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
