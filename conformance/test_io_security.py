"""Image-to-image mode, security: what a request may make the server read, fetch and write, and whether
one slow URL freezes the server. Every URL here is loopback: a listener this test starts, or a closed port.
No private or public address is ever sent (the server would connect to it), so POOL-IO-019 is not checked.

Files "outside the allowed folder" are written in a temporary folder of this machine, and the URL checks
use this machine's loopback: both mean something only when the server runs here (its URL's host is
loopback), and are reported not checked otherwise."""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from geopool.conformance.io_support import io_post, on_this_host
from geopool.geotiff import RasterSpec, io_request
from geopool.geotiff.listener import LoopbackListener

#: POOL-IO-023: how long the listener holds the fetch, and the longest /health stall allowed meanwhile.
HOLD_S, STALL_BOUND_S, HEALTH_PERIOD_S = 12.0, 2.0, 0.25


@pytest.fixture
def outside(target):
    """A folder outside the one the server may read, on this machine (removed afterwards)."""
    if not on_this_host(target):
        pytest.skip("not checked: the server is on another host, so no folder here is sure to be outside its "
                    "allowed one and visible to it")
    folder = Path(tempfile.mkdtemp(prefix="geopool-outside-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def here(target) -> None:
    if not on_this_host(target):
        pytest.skip("not checked: the server is on another host, so it cannot reach this machine's loopback listener")


def _redacted(message: str, path: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "<quoted>", message.replace(path, "<path>"))


@pytest.mark.requirement("POOL-IO-015", "POOL-IO-016")
def test_paths_outside_the_allowed_folder_are_refused_alike(target, io_guard, io_reads_files, outside, checks):
    existing = RasterSpec(seed=5).write(outside / f"secret-{uuid.uuid4().hex[:8]}.tif")
    directory = existing.parent
    missing = existing.with_name("never-written.tif")
    answers = {}
    for case, path in (("existing-geotiff", existing), ("directory", directory), ("missing", missing)):
        result = io_post(target, io_request(target.model, str(path)))
        answers[case] = (result.status, _redacted(result.message, str(path)))
        checks.that("POOL-IO-015", 400 <= result.status < 500,
                    f"a path outside the allowed folder ({case}) was answered {result.status}"
                    + (": the server read the file and answered with its georeferencing" if result.status == 200
                       else ""), case=case, path=str(path), **result.evidence())
    if not io_reads_files:  # POOL-IO-016 stays not checked (not-run): a server that reads no file refuses alike
        print("POOL-IO-016 not checked: the server answers no valid GeoTIFF either, so alike refusals say nothing "
              "about what exists")
    else:
        checks.that("POOL-IO-016", len(set(answers.values())) == 1,
                    "the refusals differ, so they tell what exists on the server: "
                    + "; ".join(f"{case}: {status} {message[:120]!r}" for case, (status, message) in answers.items()))
    io_guard.survives(checks, "POOL-IO-015", "paths outside the allowed folder", case="survives")


@pytest.mark.requirement("POOL-IO-018")
def test_loopback_urls_are_refused_without_a_connection(target, io_guard, here, checks):
    geotiff = RasterSpec(seed=6).to_bytes()
    with LoopbackListener() as listener:
        listener.serve("/tile.tif", geotiff)
        port = listener.port
        for case, url in (("127.0.0.1", f"http://127.0.0.1:{port}/tile.tif"),
                          ("localhost", f"http://localhost:{port}/tile.tif"),
                          ("127.1", f"http://127.1:{port}/tile.tif"),
                          ("decimal-2130706433", f"http://2130706433:{port}/tile.tif")):
            before = len(listener.requests())
            result = io_post(target, io_request(target.model, url, data_format="url"))
            fetched = len(listener.requests()) - before
            checks.that("POOL-IO-018", 400 <= result.status < 500 and fetched == 0,
                        f"a loopback URL ({case}) was answered {result.status}; the server fetched it {fetched}×",
                        case=case, url=url, **result.evidence())
    io_guard.survives(checks, "POOL-IO-018", "loopback URLs", case="survives")


@pytest.mark.requirement("POOL-IO-019")
def test_private_addresses_are_not_checked(checks):
    pytest.skip("not checked: geopool sends traffic only to loopback, and a server that does not refuse a private "
                "address would connect to it")


@pytest.mark.requirement("POOL-IO-020")
def test_file_and_other_schemes_are_refused(target, io_guard, checks):
    source = io_guard.valid_input
    for case, url in (("file", source.as_uri()), ("ftp", "ftp://127.0.0.1:9/tile.tif"),
                      ("data", "data:image/tiff;base64,AAAA")):
        result = io_post(target, io_request(target.model, url, data_format="url"))
        read = result.status == 200 and case == "file"
        checks.that("POOL-IO-020", 400 <= result.status < 500,
                    f"a {case}: URL was answered {result.status}" + (": the server read the file" if read else ""),
                    case=case, url=url, **result.evidence())
    io_guard.survives(checks, "POOL-IO-020", "non-HTTP URLs", case="survives")


@pytest.mark.requirement("POOL-IO-021")
def test_out_path_outside_the_output_folder_is_refused(target, io_guard, outside, checks):
    elsewhere = outside
    result = io_post(target, io_request(target.model, str(io_guard.valid_input), out_data_format="path",
                                        out_path=str(elsewhere)))
    written = sorted(p.name for p in elsewhere.iterdir())
    checks.that("POOL-IO-021", 400 <= result.status < 500 and not written,
                f"out_path outside the output folder was answered {result.status}; written there: {written}",
                out_path=str(elsewhere), **result.evidence())
    io_guard.survives(checks, "POOL-IO-021", "an out_path outside the output folder", case="survives")


@pytest.mark.requirement("POOL-IO-022")
def test_the_request_id_does_not_name_the_written_file(target, io_guard, checks):
    chosen = f"chosen-by-client-{uuid.uuid4().hex[:8]}"
    result = io_post(target, io_request(target.model, str(io_guard.valid_input), out_data_format="path"),
                     request_id=chosen)
    if result.status != 200:
        pytest.skip(f"not checked: the server wrote no file (answered {result.status}: {result.message[:120]})")
    inner = result.body.get("data") if isinstance(result.body, dict) else None
    written = inner.get("data") if isinstance(inner, dict) else None
    checks.that("POOL-IO-022", isinstance(written, str) and chosen not in written,
                f"the file the server wrote is named after the client's X-Request-Id: {written}",
                written=written, **result.evidence())


@pytest.mark.requirement("POOL-IO-023")
def test_a_held_url_does_not_stall_health(target, io_guard, here, checks):
    answered: list[float] = []  # when /health answered 200: an error or a slow answer is stalled time
    errors: list[str] = []
    with LoopbackListener() as listener:
        listener.hold("/slow.tif", HOLD_S)
        outcome: dict = {}
        request = threading.Thread(target=lambda: outcome.update(result=io_post(
            target, io_request(target.model, listener.url("/slow.tif"), data_format="url"), timeout=HOLD_S + 60)),
            daemon=True)
        started = time.monotonic()
        request.start()
        with httpx.Client(base_url=target.url, timeout=HOLD_S + 5) as http:
            while time.monotonic() - started < HOLD_S and request.is_alive():
                try:
                    if http.get("/health").status_code == 200:
                        answered.append(time.monotonic())
                except httpx.HTTPError as exc:  # no 200: the gap to the next one counts as stalled
                    errors.append(type(exc).__name__)
                time.sleep(HEALTH_PERIOD_S)
        ended = time.monotonic()
        fetched = len(listener.requests())
    request.join(timeout=60)  # the listener closed the held connection on leaving the block
    marks = [started, *answered, ended]
    worst = max(later - earlier for earlier, later in itertools.pairwise(marks))
    result = outcome.get("result")
    if not fetched:
        pytest.skip("not checked: the server never fetched the URL (answered "
                    f"{result.status if result else 'nothing'}), so no held connection could stall it")
    checks.that("POOL-IO-023", worst <= STALL_BOUND_S,
                f"/health stalled {worst:.1f} s while a URL held its connection for {HOLD_S:.0f} s",
                longest_health_stall_s=round(worst, 2), health_200s=len(answered), health_errors=errors[:5],
                request_status=result.status if result else None)
    io_guard.survives(checks, "POOL-IO-023", "a held URL", case="survives")
