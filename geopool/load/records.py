"""The per-request record (:class:`Record`), and ``records.jsonl``: one JSON line per request, appended as the
run goes so a crash loses nothing already finished.

One typed record travels from the worker's send to every reader (the report, the progress line, compare,
sweep, goodput, stop-on-breach); ``records.jsonl`` is its on-disk form, the same JSON object per line as
before the record had a type (its fields in the same order), read back into records by :func:`read_records`.

Times are seconds on a clock shared by every process of a run on one host (wall-clock anchored,
advanced by ``perf_counter``): ``intended`` (open loop: the schedule's send time; closed loop: None),
``sent``, ``first_byte`` (response headers in), ``done`` (body read; None if it never finished).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from geopool.errors import ConfigError

__all__ = ["Record", "RecordLog", "clock", "decode_record", "read_records", "record_from"]


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one request. Frozen: a record is a fact once the worker has made it.

    ``verdict`` is one of :mod:`geopool.load.judge.verify`'s (``ok``, ``http-error``, ``verify-failed``,
    ``transport-error``, ``unfinished``) and ``detail`` says why when it is not ``ok``; ``status`` is 0 when
    no HTTP answer came; ``bytes`` is the answer body's length. The field order is records.jsonl's key order.
    """

    slot: int
    seq: int
    item: int
    intended: float | None
    sent: float | None
    first_byte: float | None
    done: float | None
    status: int
    bytes: int
    verdict: str
    detail: str


def _plain_number(value: Any) -> Any:
    """numpy's float64 and int64 (a time computed with numpy) written as the numbers they are, as json did."""
    if isinstance(value, float | int):
        return float(value) if isinstance(value, float) else int(value)
    if hasattr(value, "item"):  # other numpy scalars
        return value.item()
    raise NotImplementedError(f"a record cannot hold {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_plain_number)
_DECODER = msgspec.json.Decoder(type=Record)


def decode_record(line: bytes | str) -> Record:
    """One records.jsonl line as a :class:`Record` (msgspec's DecodeError, a ValueError, when it is not one)."""
    return _DECODER.decode(line)


def record_from(found: Record | Mapping[str, Any]) -> Record:
    """A record that crossed a process boundary as plain data (Locust's messages carry builtins), typed again."""
    return found if isinstance(found, Record) else msgspec.convert(found, Record)

_ANCHOR_WALL, _ANCHOR_PERF = time.time(), time.perf_counter()


def clock() -> float:
    """Now, in wall-clock seconds, but monotonic within the process."""
    return _ANCHOR_WALL + (time.perf_counter() - _ANCHOR_PERF)


class RecordLog:
    """An append-only JSON-lines file; each :meth:`append` is written and flushed before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._lock = threading.Lock()

    def append(self, records: Iterable[Record]) -> None:
        lines = b"".join(_ENCODER.encode(record) + b"\n" for record in records)
        if not lines:
            return
        with self._lock:
            self._file.write(lines)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_records(path: str | Path) -> list[Record]:
    """Every record in a JSON-lines file; a torn last line (the writer died mid-line) is dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"records file {str(path)!r} does not exist")
    return list(_parse(path.read_bytes().splitlines(), path))


def _parse(lines: list[bytes], path: Path) -> Iterator[Record]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield decode_record(line)
        except msgspec.ValidationError as exc:  # JSON, but not a record: a foreign or hand-edited file
            raise ConfigError(f"{path}:{number} is not a geopool record: {exc}") from exc
        except msgspec.DecodeError as exc:
            if number == len(lines):
                return
            raise ConfigError(f"{path}:{number} is not a JSON record: {exc}") from exc
