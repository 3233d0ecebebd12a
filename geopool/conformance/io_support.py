"""What the image-to-image conformance tests share: input rasters in the shared folder, sending a request
and keeping its status and message, judging an answer against its input, and the survival guard."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import httpx

from geopool.conformance.guard import ServerGuard
from geopool.conformance.target import Target
from geopool.errors import GeopoolError
from geopool.geotiff import RasterFacts, RasterSpec, io_request, judge_io_answer, raster_facts
from geopool.wire.error_body import error_message, parse_error

__all__ = ["IOResult", "IOServerGuard", "io_post", "judge_answer", "on_this_host", "write_input"]

#: Hosts that are this machine: only then do a loopback URL and a folder outside the shared one mean the
#: same thing to the server as to the suite.
_THIS_HOST = ("127.0.0.1", "localhost", "::1", "[::1]")

#: A request may tile a large raster on 2 CPU cores; a URL fetch may hang (POOL-IO-023 has its own bound).
IO_TIMEOUT_S = 120.0


@dataclasses.dataclass
class IOResult:
    status: int
    body: Any
    text: str
    elapsed_s: float
    request_id: str

    @property
    def message(self) -> str:
        found = error_message(parse_error(self.body))
        return str(found if found is not None else self.text)[:500]

    def evidence(self) -> dict[str, Any]:
        """Status, error message (none for a 2xx: its body is a GeoTIFF) and X-Request-Id, for a failure."""
        message = {} if 200 <= self.status < 300 else {"server_message": self.message}
        return {"status": self.status, **message, "request_id": self.request_id}


def write_input(target: Target, spec: RasterSpec, name: str | None = None) -> Path:
    """``spec`` written into the folder the server reads (``target.io_input_dir``)."""
    if target.io_input_dir is None:
        raise GeopoolError("no folder shared with the server (--io-input-dir)")
    return spec.write(target.io_input_dir / (name or f"in-{uuid.uuid4().hex[:12]}.tif"))


def io_post(target: Target, body: dict[str, Any], *, timeout: float = IO_TIMEOUT_S,
            request_id: str | None = None) -> IOResult:
    """POST an image-to-image body and keep whatever came back (status, JSON or text); never raises on a status."""
    request_id = request_id or f"geopool-{uuid.uuid4().hex[:16]}"
    headers = target.endpoint.headers(x_request_id=request_id, connection="close")
    try:  # the session's one client (Connection: close still gives each request its own connection)
        response = target.http().post(target.endpoint.url("/pooling"), json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:  # the server died or hung: a status of 0, judged like any other failure
        return IOResult(0, None, f"no answer: {type(exc).__name__}: {exc}", timeout, request_id)
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return IOResult(response.status_code, parsed, response.text[:2000], response.elapsed.total_seconds(), request_id)


def on_this_host(target: Target) -> bool:
    """Whether the server runs on this machine (its URL's host is loopback)."""
    return (httpx.URL(target.url).host or "") in _THIS_HOST


def judge_answer(result: IOResult, source: RasterFacts, classes: int = 2) -> tuple[RasterFacts | None, list[str],
                                                                                 list[str]]:
    """(the answer's facts, georeferencing problems, form problems) of a 200 answer to ``source``, for a model
    of ``classes`` classes."""
    return judge_io_answer(result.body, source, classes=classes)


class IOServerGuard(ServerGuard):
    """The survival guard of image-to-image runs: a valid GeoTIFF request must still get a correct answer."""

    def __init__(self, target: Target, valid_input: Path) -> None:
        super().__init__(target, io_request(target.model, str(valid_input)), baseline=None)  # type: ignore[arg-type]
        self.valid_input = valid_input
        self._source = raster_facts(valid_input)

    def valid_answer_problem(self, answer: object) -> str | None:
        result = IOResult(200, answer, "", 0.0, "")
        _, georeferencing, form = judge_answer(result, self._source, self.target.contract.num_classes)
        problems = georeferencing + form
        return f"a valid GeoTIFF request now gets a wrong answer: {'; '.join(problems)}" if problems else None
