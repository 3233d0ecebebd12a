"""The visible text of an HTML page, in order, and the ids of its elements, in order: what a reader
sees first, checked without a browser."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM headless Chromium builds from ``page`` (scripts run, 15 s of virtual time), with a fresh
    profile folder; fails the test if Debian's chromium is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test: ./run setup installs it (apt-get install chromium)"
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", Path(page).as_uri()],
        capture_output=True, text=True, timeout=120).stdout


def assert_plots_drawn(dom: str, plots: tuple[str, ...] | list[str]) -> None:
    """Each ``plot-NAME`` div became a drawn plotly SVG with data traces, in the DOM Chromium built."""
    for plot in plots:
        start = dom.index(f'id="plot-{plot}"')
        following = dom[start:start + 200_000]
        assert 'class="main-svg"' in following and ('class="scatterlayer' in following
                                                    or 'class="barlayer' in following), plot
    assert dom.count('class="main-svg"') >= 2 * len(plots)  # two SVG layers per plot


class PageText(HTMLParser):
    """Visible text in order, and element ids in order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.ids: list[str] = []
        self._hidden = 0
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self._hidden += tag in ("style", "script", "title")
        self.ids += [value for name, value in attrs if name == "id"]

    def handle_endtag(self, tag):
        self._hidden -= tag in ("style", "script", "title")

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.text.append(data.strip())
