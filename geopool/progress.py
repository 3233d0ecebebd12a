"""One live progress line for long work: rich's live display on a terminal, plain timestamped lines
(at most one every ``every_s`` seconds, and at each new phase) when the output is a log, as in CI.

    progress = ProgressLine(sys.stderr)
    progress.show("load", "120/300 requests, p50 0.41 s, p99 0.93 s, 0 errors")
    progress.close()
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressLine"]


class ProgressLine:
    """Shows ``phase: text``; on a TTY it redraws in place, elsewhere it prints a line now and then."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 15.0, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.live = self.stream.isatty() if live is None else live
        self._phase: str | None = None
        self._last_print = 0.0
        self._started = time.monotonic()
        self._display = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._display = Live("", console=Console(file=self.stream, force_terminal=True), refresh_per_second=4,
                                 transient=True)
            self._display.start()

    def show(self, phase: str, text: str) -> None:
        line = f"[{time.monotonic() - self._started:6.0f} s] {phase}: {text}"
        if self._display is not None:
            self._display.update(line)
            return
        now = time.monotonic()
        if phase != self._phase or now - self._last_print >= self.every_s:
            print(line, file=self.stream, flush=True)
            self._phase, self._last_print = phase, now

    def say(self, text: str) -> None:
        """A line that stays (a phase's result), printed above the live line."""
        if self._display is not None:
            self._display.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
