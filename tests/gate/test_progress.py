"""The progress line: plain lines in a log (a new phase at once, then at most one per interval), rich's
live line on a terminal; and the figures the gate shows from the events its phases send (geopool.events)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

from synthetic_records import record  # tests/ is on sys.path (its conftest.py)

from geopool.events import EventChannel
from geopool.gate.command import _conformance_progress
from geopool.load.judge.verify import HTTP_ERROR
from geopool.load.run.tally import LoadTally, load_line
from geopool.progress import ProgressLine, watch_child


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


def test_the_load_figures_are_the_tally_the_master_keeps():
    tally = LoadTally(200, 60)
    assert load_line(None) == load_line(tally.snapshot()) == "starting (server, payload pool, Locust)"
    tally.add([record(100.0 + i, 100.5 + i, seq=i) for i in range(9)])
    assert load_line(tally.snapshot()) == "9 requests (at most 200), 8/60 s, p50 0.50 s, p99 0.50 s, 0 errors"
    tally.add([record(110.0, 111.0, seq=9, verdict=HTTP_ERROR)])
    assert load_line(tally.snapshot()) == "10 requests (at most 200), 11/60 s, p50 0.50 s, p99 0.50 s, 1 errors"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


EMITTER = """
    import os, subprocess, sys
    from geopool import events
    # the variable is gone once geopool.events is imported: a grandchild cannot write to a wrong descriptor
    leaked = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('GEOPOOL_EVENTS_FD'))"],
                            capture_output=True, text=True).stdout.strip()
    events.emit("collected", total=3)
    for outcome in ("passed", "failed", "xfailed"):
        events.emit("test", outcome=outcome)
    events.emit("leak", seen=leaked)
"""


def test_a_child_sends_its_progress_as_events_and_its_children_do_not_inherit_the_channel(tmp_path):
    channel = EventChannel()
    shown: list[str] = []
    code = watch_child(_python(EMITTER), env=dict(os.environ), deadline_s=120, events=channel,
                       tick=lambda: shown.append(_conformance_progress(channel)), log=tmp_path / "out.txt")
    assert code == 0, (tmp_path / "out.txt").read_text()
    assert shown[-1] == "3/3 tests, 1 failed, 1 expected failures"
    assert channel.latest("leak") == {"kind": "leak", "seen": "None"}
    assert _conformance_progress(EventChannel()).startswith("starting")


def test_geopool_load_passes_its_childs_events_up_to_the_gate(tmp_path):
    """The gate → ``geopool load`` → Locust chain: the middle process forwards what its child sends."""
    middle = f"""
        import os, sys
        from geopool.events import EventChannel
        from geopool.progress import watch_child
        channel = EventChannel(forward=True)
        sys.exit(watch_child([sys.executable, "-c", {EMITTER_LOAD!r}], env=dict(os.environ), deadline_s=60,
                             tick=lambda: None, events=channel))
    """
    channel = EventChannel()
    code = watch_child(_python(middle), env=dict(os.environ), deadline_s=120, tick=lambda: None, events=channel,
                       log=tmp_path / "out.txt")
    assert code == 0, (tmp_path / "out.txt").read_text()
    assert load_line(channel.latest("load")) == "9 requests (at most 200), 8/60 s, p50 0.50 s, p99 0.50 s, 0 errors"


EMITTER_LOAD = textwrap.dedent("""
    from geopool import events
    events.emit("load", requests=9, max_requests=200, duration_s=60, elapsed_s=8.4, p50_s=0.5, p99_s=0.5, errors=0)
""")


def test_without_a_listening_parent_emitting_does_nothing(tmp_path):
    result = subprocess.run(_python(f"""
        import os
        kept = open({str(tmp_path / "file.txt")!r}, "wb")
        os.environ["GEOPOOL_EVENTS_FD"] = str(kept.fileno())  # a descriptor, but not a pipe a parent made
        from geopool import events
        events.emit("test", outcome="passed")
        kept.close()
        print("ok")
    """), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stdout + result.stderr
    assert (tmp_path / "file.txt").read_bytes() == b""
