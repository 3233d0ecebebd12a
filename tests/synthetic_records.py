"""The one builder of synthetic per-request records for the tests (tests/ is on sys.path: its conftest.py).

A test names only what it is about (times, verdict); the rest is what a plain successful request would
have. Records are geopool's own typed :class:`~geopool.load.records.Record`, so a test cannot build one
that the load suite could not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from geopool.load.judge.verify import OK
from geopool.load.records import Record, RecordLog

__all__ = ["record", "write_records"]


def record(sent: float | None, done: float | None, *, verdict: str = OK, intended: float | None = None,
           first_byte: float | None = None, status: int | None = None, slot: int = 0, seq: int = 0, item: int = 0,
           size: int = 10, detail: str = "") -> Record:
    """A request sent at ``sent`` and finished at ``done`` (None: never); its head came in 10 ms after it was
    sent unless ``first_byte`` says when, and its status is 200 for ``ok``, else 503, unless ``status`` says."""
    if first_byte is None and sent is not None and done is not None:
        first_byte = sent + 0.01
    return Record(slot=slot, seq=seq, item=item, intended=intended, sent=sent, first_byte=first_byte, done=done,
                  status=(200 if verdict == OK else 503) if status is None else status, bytes=size, verdict=verdict,
                  detail=detail)


def write_records(path: Path, records: Iterable[Record]) -> Path:
    """``records`` written as a run writes them: records.jsonl through the run's own RecordLog."""
    log = RecordLog(path)
    log.append(records)
    log.close()
    return path
