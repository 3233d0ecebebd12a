"""One JSON line per request, appended as the run goes so a crash loses nothing already finished.

Times are seconds on a clock shared by every process of a run on one host (wall-clock anchored,
advanced by ``perf_counter``): ``intended`` (open loop: the schedule's send time; closed loop: None),
``sent``, ``first_byte`` (response headers in), ``done`` (body read; None if it never finished).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from geopool.errors import ConfigError

__all__ = ["RecordLog", "clock", "read_records"]

_ANCHOR_WALL, _ANCHOR_PERF = time.time(), time.perf_counter()


def clock() -> float:
    """Now, in wall-clock seconds, but monotonic within the process."""
    return _ANCHOR_WALL + (time.perf_counter() - _ANCHOR_PERF)


class RecordLog:
    """An append-only JSON-lines file; each :meth:`append` is written and flushed before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        if not lines:
            return
        with self._lock:
            self._file.write(lines)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record in a JSON-lines file; a torn last line (the writer died mid-line) is dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"records file {str(path)!r} does not exist")
    return list(_parse(path.read_text(encoding="utf-8").splitlines(), path))


def _parse(lines: list[str], path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                return
            raise ConfigError(f"{path}:{number} is not a JSON record: {exc}") from exc
