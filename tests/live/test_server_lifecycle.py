"""`geopool serve` lifecycle: free ports, clean stops on Ctrl-C / SIGTERM, and no orphans when the owner
is killed outright. Each case checks the vLLM process group really existed before it checks it is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import psutil
import pytest

pytestmark = pytest.mark.live

READY = re.compile(r"ready in [\d.]+ s: (http://127\.0\.0\.1:(\d+))")


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def wait_group_gone(pgid: int, timeout_s: float = 60.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def vllm_pgid(owner_pid: int) -> int:
    """The process group of the vLLM API server that `owner_pid` started."""
    for child in psutil.Process(owner_pid).children():
        if "vllm.entrypoints.openai.api_server" in " ".join(child.cmdline()):
            return os.getpgid(child.pid)
    raise AssertionError(f"process {owner_pid} has no vLLM child")


def start_serve() -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "geopool.cli", "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, lines


def wait_ready(lines: list[str], timeout_s: float = 400.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(lines):
            if match := READY.search(line):
                return match.group(1), int(match.group(2))
        time.sleep(0.5)
    raise AssertionError("geopool serve never became ready:\n" + "".join(lines[-30:]))


def test_two_serves_pick_two_ports_and_stop_cleanly():
    (first, first_lines), (second, second_lines) = start_serve(), start_serve()
    try:
        (url_a, port_a), (url_b, port_b) = wait_ready(first_lines), wait_ready(second_lines)
        assert port_a != port_b
        for url in (url_a, url_b):
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        groups = {"SIGINT": vllm_pgid(first.pid), "SIGTERM": vllm_pgid(second.pid)}
        assert all(group_members(pgid) for pgid in groups.values())
        first.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        second.send_signal(signal.SIGTERM)
        assert first.wait(timeout=90) == 0 and second.wait(timeout=90) == 0
        for how, pgid in groups.items():
            assert wait_group_gone(pgid, 10) == [], f"vLLM processes left after {how}"
    finally:
        for process in (first, second):
            process.kill()


def test_killed_test_run_leaves_no_vllm_process(tmp_path):
    marker = tmp_path / "server.pid"
    (tmp_path / "test_hold.py").write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        from geopool.server import EmbeddedServer

        def test_hold():
            with EmbeddedServer(log_dir={str(tmp_path)!r}) as server:
                Path({str(marker)!r}).write_text(str(server.pid))
                time.sleep(900)
    """))
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 400
        while not marker.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert marker.exists(), "the inner test run never got a healthy server"
        pgid = os.getpgid(int(marker.read_text()))
        assert len(group_members(pgid)) >= 2  # the API server and its engine core
        run.kill()  # SIGKILL: no finaliser, no fixture teardown runs
        run.wait(timeout=10)
        assert wait_group_gone(pgid, 60) == []
    finally:
        run.kill()


def test_failed_start_says_why_and_shows_the_log_tail(tmp_path):
    from geopool.errors import EmbeddedServerError
    from geopool.server import EmbeddedServer

    server = EmbeddedServer(extra_args=["--max-num-batched-tokens", "not-a-number"], log_dir=tmp_path)
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code" in message and "last" in message and "not-a-number" in message
    assert server.log_path is not None and server.log_path.parent == tmp_path
    assert not server.alive()


def test_startup_deadline_kills_the_server(tmp_path):
    from geopool.errors import EmbeddedServerError
    from geopool.server import EmbeddedServer

    server = EmbeddedServer(startup_timeout_s=3, log_dir=tmp_path)
    with pytest.raises(EmbeddedServerError, match="within 3 s") as info:
        server.start()
    assert "--- last" in str(info.value)
    assert len(server.launched_pids) == 1
    assert wait_group_gone(server.launched_pids[0], 30) == []
