"""Progress events from a child process to the process that started it: JSON lines on an inherited pipe.

The parent makes an :class:`EventChannel` and starts the child with ``channel.env`` and
``pass_fds=channel.pass_fds`` (:func:`geopool.progress.watch_child` does both); the child calls
:func:`emit`, which does nothing when no parent listens. Events are small dicts with a ``kind``:

- ``collected`` (``total``) and ``test`` (``outcome``): the gate's conformance child
  (:mod:`geopool.gate.progress_plugin`);
- ``load``: a load run's tally so far (:meth:`geopool.load.run.tally.LoadTally.snapshot`), from Locust's master
  process, passed up by ``geopool load`` to the gate when a gate started it.

Why a pipe and not a file the parent tails: nothing is left on disk, a half-written line cannot be read,
and the events end when the child does. The variable naming the descriptor is removed from the child's
environment when this module is imported, so the child's own children (a vLLM server, Locust) never
write to a descriptor number that means something else in them.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

__all__ = ["ENV", "EventChannel", "emit", "listening"]

ENV = "GEOPOOL_EVENTS_FD"
_inherited = os.environ.pop(ENV, None)
_out: IO[bytes] | None = None
_lock = threading.Lock()


def _channel() -> IO[bytes] | None:
    global _inherited, _out
    if _inherited is not None:
        fd, _inherited = _inherited, None
        try:
            if stat.S_ISFIFO(os.fstat(int(fd)).st_mode):  # ours: a pipe, not whatever else has that number
                _out = os.fdopen(int(fd), "wb", buffering=0)
        except (ValueError, OSError):
            _out = None
    return _out


def listening() -> bool:
    """Whether a parent listens (so a child can skip building events nobody reads)."""
    with _lock:
        return _channel() is not None


def emit(kind: str, **fields: Any) -> None:
    """Send one event to the parent, if one listens; a parent that went away only ends the events."""
    global _out
    with _lock:
        out = _channel()
        if out is None:
            return
        try:
            out.write(json.dumps({"kind": kind, **fields}).encode() + b"\n")  # < PIPE_BUF: one atomic write
        except OSError:
            _out = None


class EventChannel:
    """The parent's end: a reader thread keeps the latest event of each kind and counts them by kind and
    outcome (a soak's once-a-second load events are not kept one by one).

    ``forward``: pass each event on to this process's own parent (``geopool load`` under the gate)."""

    def __init__(self, *, forward: bool = False) -> None:
        self._read, self._write = os.pipe()
        self.env = {ENV: str(self._write)}
        self.pass_fds = (self._write,)
        self._counts: Counter[tuple[str, Any]] = Counter()
        self._latest: dict[str, dict[str, Any]] = {}
        self._forward: Callable[..., None] | None = emit if forward else None
        self._thread: threading.Thread | None = None

    def started(self) -> None:
        """The child has the write end now: close ours (so the reader ends with the child) and read."""
        os.close(self._write)
        self._thread = threading.Thread(target=self._drain, name="geopool-events", daemon=True)
        self._thread.start()

    def latest(self, kind: str) -> dict[str, Any] | None:
        return self._latest.get(kind)

    def count(self, kind: str, outcome: Any = None) -> int:
        """Events of ``kind`` so far (with that ``outcome``, if given)."""
        if outcome is not None:
            return self._counts[(kind, outcome)]
        return sum(n for (counted, _), n in list(self._counts.items()) if counted == kind)

    def close(self, timeout: float = 5.0) -> None:
        """After the child ended: wait (bounded) for the last events. Never started (the child could not be
        started): close both ends."""
        if self._thread is not None:
            self._thread.join(timeout)
            return
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass

    def _drain(self) -> None:
        with os.fdopen(self._read, "rb") as stream:
            for line in stream:  # read to the end whatever a line holds: a child blocked on a full pipe would hang
                try:
                    event = json.loads(line)
                    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
                        continue
                    self._counts[(event["kind"], event.get("outcome"))] += 1
                    self._latest[event["kind"]] = event
                    if self._forward is not None:
                        self._forward(**event)
                except Exception:  # a progress hint, never worth the child's run
                    continue
