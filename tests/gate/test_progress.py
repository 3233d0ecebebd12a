"""The progress line: plain lines in a log (a new phase at once, then at most one per interval), rich's
live line on a terminal; and the figures the gate shows from a load run's records as they arrive."""

from __future__ import annotations

import io
import json

import msgspec
from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool.gate.command import _conformance_progress
from geopool.load.judge.verify import HTTP_ERROR
from geopool.progress import LoadTally, ProgressLine


def test_in_a_log_each_phase_shows_at_once_then_at_most_once_per_interval():
    stream = io.StringIO()
    progress = ProgressLine(stream, every_s=3600)
    progress.show("conformance", "1/10 tests")
    progress.show("conformance", "2/10 tests")  # within the interval: not printed
    progress.show("load", "5 requests")
    progress.say("conformance: exit 0")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines[:2]] == ["conformance: 1/10 tests", "load: 5 requests"]
    assert lines[2] == "conformance: exit 0" and len(lines) == 3


def test_on_a_terminal_the_line_is_redrawn_in_place():
    stream = io.StringIO()
    progress = ProgressLine(stream, live=True)
    progress.show("load", "5 requests")
    progress.say("kept line")
    progress.close()
    assert "kept line" in stream.getvalue() and "\x1b[" in stream.getvalue()  # cursor control, not lines


def test_the_figures_come_from_the_files_the_phases_write(tmp_path):
    tally = tmp_path / "progress.jsonl"
    assert _conformance_progress(tally).startswith("starting")
    tally.write_text(json.dumps({"total": 4}) + "\n" + "".join(
        json.dumps({"outcome": o}) + "\n" for o in ("passed", "failed", "xfailed")) + '{"outc')
    assert _conformance_progress(tally) == "3/4 tests, 1 failed, 1 expected failures"
    records = tmp_path / "records.jsonl"
    rows = [msgspec.json.encode(record(100.0 + i, 100.5 + i, seq=i)).decode() for i in range(9)]
    rows.append(msgspec.json.encode(record(110.0, 111.0, seq=9, verdict=HTTP_ERROR)).decode())
    tally = LoadTally(records, 200, 60)
    assert tally.line().startswith("starting")
    records.write_text("".join(row + "\n" for row in rows[:9]) + rows[9][:20])  # a line half written
    assert tally.line() == "9 requests (at most 200), 8/60 s, p50 0.50 s, p99 0.50 s, 0 errors"
    with records.open("w") as file:  # the rest of that line and one more: read from where it stopped
        file.write("".join(row + "\n" for row in rows))
    assert tally.line() == "10 requests (at most 200), 11/60 s, p50 0.50 s, p99 0.50 s, 1 errors"
