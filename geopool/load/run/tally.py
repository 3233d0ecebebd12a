"""A load run's progress: the tally its master keeps as record batches arrive, sent as ``load`` events
(:mod:`geopool.events`) to ``geopool load`` and the gate, which show it in words (:func:`load_line`)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from geopool.load.judge.verify import OK, UNFINISHED
from geopool.load.records import Record

__all__ = ["RECENT", "LoadTally", "load_line"]

#: The ok requests whose latencies the progress line's running p50/p99 are taken over.
RECENT = 2000


class LoadTally:
    """A load run so far, kept by its master process as record batches arrive (:meth:`add`): requests,
    time, running p50/p99 of the last :data:`RECENT` ok ones (bounded: a soak's master must not slow down
    as it goes), errors. :meth:`snapshot` is the progress event it sends."""

    def __init__(self, max_requests: int, duration_s: float) -> None:
        self.max_requests, self.duration_s = max_requests, duration_s
        self._latencies: deque[float] = deque(maxlen=RECENT)
        self._count = self._errors = 0
        self._first_sent: float | None = None
        self._last = 0.0

    def add(self, records: list[Record]) -> None:
        for record in records:
            self._count += 1
            sent = record.sent or 0.0
            self._first_sent = sent if self._first_sent is None else min(self._first_sent, sent)
            self._last = max(self._last, record.done or sent)
            if record.verdict == OK and record.done:
                self._latencies.append(record.done - sent)
            elif record.verdict != UNFINISHED:
                self._errors += 1

    def snapshot(self) -> dict[str, Any]:
        p50 = p99 = None
        if self._latencies:
            p50, p99 = (float(value) for value in np.percentile(self._latencies, [50, 99]))
        return {"requests": self._count, "max_requests": self.max_requests, "duration_s": self.duration_s,
                "elapsed_s": self._last - (self._first_sent or self._last), "p50_s": p50, "p99_s": p99,
                "errors": self._errors}


def load_line(snapshot: dict[str, Any] | None) -> str:
    """A load tally's snapshot (the latest ``load`` event) in words."""
    if not snapshot or not snapshot.get("requests"):
        return "starting (server, payload pool, Locust)"
    figures = ""
    if snapshot.get("p50_s") is not None:
        figures = f", p50 {snapshot['p50_s']:.2f} s, p99 {snapshot['p99_s']:.2f} s"
    return (f"{snapshot['requests']} requests (at most {snapshot['max_requests']}), "
            f"{snapshot['elapsed_s']:.0f}/{snapshot['duration_s']:.0f} s{figures}, {snapshot['errors']} errors")
