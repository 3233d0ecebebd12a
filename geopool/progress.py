"""One live progress line for long work: rich's live display on a terminal, plain timestamped lines
(at most one every ``every_s`` seconds, and at each new phase) when the output is a log, as in CI.

    progress = ProgressLine(sys.stderr)
    progress.show("load", "120/300 requests, p50 0.41 s, p99 0.93 s, 0 errors")
    progress.close()

:func:`watch_child` runs a child process to its end or its deadline, calling back every second; the
figures come from the events the child sends (:mod:`geopool.events`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from geopool.events import EventChannel

__all__ = ["ProgressLine", "watch_child"]


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


def watch_child(command: list[str], *, env: dict[str, str], deadline_s: float, tick: Callable[[], None],
                log: Path | None = None, events: EventChannel | None = None) -> int | None:
    """Run ``command`` (its output to ``log``, else inherited), calling ``tick`` every second; its exit
    code, or None when it passed ``deadline_s`` (then it was stopped: SIGTERM, SIGKILL a minute later).
    ``events``: the channel the child sends its progress on. Ctrl-C is passed on as SIGINT and re-raised;
    any other exception stops the child first."""
    out = open(log, "wb") if log is not None else None
    try:
        try:
            child = subprocess.Popen(command, env={**env, **(events.env if events else {})}, stdout=out,
                                     stderr=subprocess.STDOUT if out else None, start_new_session=True,
                                     pass_fds=events.pass_fds if events else ())
        except BaseException:
            if events is not None:
                events.close()
            raise
        if events is not None:
            events.started()
        pause = threading.Event()
        try:
            ends = time.monotonic() + deadline_s
            while child.poll() is None:
                if time.monotonic() > ends:
                    _stop(child)
                    return None
                tick()
                pause.wait(1.0)
            if events is not None:
                events.close()
            tick()
            return child.returncode
        except KeyboardInterrupt:
            _stop(child, signal.SIGINT, grace_s=120)  # the child stops its servers and writes what it has
            raise
        except BaseException:  # never leave a detached child (and its vLLM server) running
            _stop(child)
            raise
    finally:
        if out is not None:
            out.close()


def _stop(child: subprocess.Popen[bytes], signum: int = signal.SIGTERM, grace_s: float = 60) -> None:
    """Signal the child's process group, then SIGKILL it if it has not ended within ``grace_s``."""
    os.killpg(child.pid, signum)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
