"""One live progress line for long work: rich's live display on a terminal, plain timestamped lines
(at most one every ``every_s`` seconds, and at each new phase) when the output is a log, as in CI.

    progress = ProgressLine(sys.stderr)
    progress.show("load", "120/300 requests, p50 0.41 s, p99 0.93 s, 0 errors")
    progress.close()

:func:`watch_child` runs a child process to its end or its deadline, calling back every second; the
figures come from the files the child appends to (:func:`json_lines`, :class:`LoadTally`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec
import numpy as np

from geopool.load.judge.verify import OK, UNFINISHED
from geopool.load.records import decode_record

__all__ = ["LoadTally", "ProgressLine", "json_lines", "watch_child"]


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
                log: Path | None = None) -> int | None:
    """Run ``command`` (its output to ``log``, else inherited), calling ``tick`` every second; its exit
    code, or None when it passed ``deadline_s`` (then it was stopped: SIGTERM, SIGKILL a minute later).
    Ctrl-C is passed on as SIGINT and re-raised; any other exception stops the child first."""
    out = open(log, "wb") if log is not None else None
    try:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                 start_new_session=True)
        pause = threading.Event()
        try:
            ends = time.monotonic() + deadline_s
            while child.poll() is None:
                if time.monotonic() > ends:
                    _stop(child)
                    return None
                tick()
                pause.wait(1.0)
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


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a file another process is appending to (a line being written is skipped)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class LoadTally:
    """A load run so far, read incrementally from its ``records.jsonl`` (only the bytes appended since the
    last call, so a long soak costs the measuring machine nothing): requests, time, running p50/p99 of
    the ok ones, errors."""

    def __init__(self, records: Path, max_requests: int, duration_s: float) -> None:
        self.records, self.max_requests, self.duration_s = records, max_requests, duration_s
        self._offset = 0
        self._latencies: list[float] = []
        self._count = self._errors = 0
        self._first_sent: float | None = None
        self._last = 0.0

    def _read(self) -> None:
        try:
            with open(self.records, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                record = decode_record(line)
            except msgspec.DecodeError:  # not a record (a foreign line): the tally is a progress hint, not a verdict
                continue
            self._count += 1
            sent = record.sent or 0.0
            self._first_sent = sent if self._first_sent is None else min(self._first_sent, sent)
            self._last = max(self._last, record.done or sent)
            if record.verdict == OK and record.done:
                self._latencies.append(record.done - sent)
            elif record.verdict != UNFINISHED:
                self._errors += 1

    def line(self) -> str:
        self._read()
        if not self._count:
            return "starting (server, payload pool, Locust)"
        figures = ""
        if self._latencies:
            p50, p99 = np.percentile(self._latencies, [50, 99])
            figures = f", p50 {p50:.2f} s, p99 {p99:.2f} s"
        elapsed = self._last - (self._first_sent or self._last)
        return (f"{self._count} requests (at most {self.max_requests}), {elapsed:.0f}/{self.duration_s:.0f} s"
                f"{figures}, {self._errors} errors")
