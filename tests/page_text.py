"""The visible text of an HTML page, in order, and the ids of its elements, in order: what a reader
sees first, checked without a browser."""

from __future__ import annotations

from html.parser import HTMLParser


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
