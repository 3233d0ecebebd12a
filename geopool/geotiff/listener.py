"""A loopback HTTP listener for the image-to-image URL checks: it serves chosen bodies, holds chosen
requests open, and records every connection, so a test can show what the server under test fetched
(SSRF), what it made of a bad or slow URL, and that it made no connection at all when it should not.

Stdlib only (``http.server`` in a background thread), bound to 127.0.0.1 on a free port. Every socket
operation has a timeout. Closing the listener releases every held connection at once: a held fetch
freezes vLLM's API event loop (the plugin's ``urlopen`` has no timeout), so a test must never leave one
behind::

    with LoopbackListener() as listener:
        listener.serve("/tile.tif", geotiff_bytes)
        listener.hold("/slow.tif", seconds=30)
        url = listener.url("/tile.tif")   # http://127.0.0.1:PORT/tile.tif
        ...
        assert [seen.path for seen in listener.requests()] == ["/tile.tif"]
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
import time
from typing import Any

from geopool.errors import InvalidArgument

__all__ = ["LoopbackListener", "SeenRequest", "closed_port_url"]

HOST = "127.0.0.1"
#: How long one socket operation may wait (reading a request line, writing a body).
SOCKET_TIMEOUT_S = 5.0
#: Longest hold a test may ask for: a bound, so a forgotten listener cannot hold a server for ever.
MAX_HOLD_S = 600.0


@dataclasses.dataclass(frozen=True)
class SeenRequest:
    """One request the listener read: its method, path (with query), and ``time.monotonic()`` when read."""

    method: str
    path: str
    at: float


@dataclasses.dataclass(frozen=True)
class _Serve:
    body: bytes
    status: int
    content_type: str


@dataclasses.dataclass(frozen=True)
class _Hold:
    seconds: float


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: a closed socket ends every exchange

    def setup(self) -> None:
        self.request.settimeout(SOCKET_TIMEOUT_S)
        super().setup()

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_POST(self) -> None:
        self._answer(head=False)

    def _answer(self, *, head: bool) -> None:
        owner = self.server.owner
        owner._record(self.command, self.path)
        mode = owner._mode_for(self.path.split("?", 1)[0])
        if isinstance(mode, _Hold):
            owner._closing.wait(mode.seconds)  # nothing sent; close() sets the event and ends every hold
            self.close_connection = True
            return
        self.send_response(mode.status)
        self.send_header("Content-Type", mode.content_type)
        self.send_header("Content-Length", str(len(mode.body)))
        self.end_headers()
        if not head:
            self.wfile.write(mode.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record is the log; stderr noise would land in test output


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LoopbackListener) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.owner._record_connection()
        return connection, address


_NOT_FOUND = _Serve(b"not found\n", 404, "text/plain")


class LoopbackListener:
    """An HTTP listener on 127.0.0.1 and a free port, serving from a background thread until closed.

    Paths answer 404 unless set with :meth:`serve` (a body and status) or :meth:`hold` (read the request,
    send nothing for ``seconds`` or until the listener closes, then close the connection).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modes: dict[str, _Serve | _Hold] = {}
        self._seen: list[SeenRequest] = []
        self._connections = 0
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> LoopbackListener:
        if self._server is not None:
            return self
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="geopool-loopback-listener", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening and release every held connection now."""
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=SOCKET_TIMEOUT_S)

    def __enter__(self) -> LoopbackListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # configuration
    @property
    def port(self) -> int:
        if self._server is None:
            raise InvalidArgument("the listener is not started: use it as a context manager or call start()")
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path``."""
        return f"http://{HOST}:{self.port}{_checked_path(path)}"

    def serve(self, path: str, body: bytes, *, status: int = 200,
              content_type: str = "application/octet-stream") -> str:
        """Answer ``path`` with ``status`` and ``body``; returns the path's URL."""
        if not 100 <= status <= 599:
            raise InvalidArgument(f"status={status!r} is not an HTTP status (100-599)")
        with self._lock:
            self._modes[_checked_path(path)] = _Serve(bytes(body), status, content_type)
        return self.url(path)

    def hold(self, path: str, seconds: float) -> str:
        """Read requests for ``path``, send nothing for ``seconds`` (or until :meth:`close`), then close the
        connection; returns the path's URL."""
        if not 0 <= seconds <= MAX_HOLD_S:
            raise InvalidArgument(f"seconds={seconds!r} must be within 0-{MAX_HOLD_S:g}")
        with self._lock:
            self._modes[_checked_path(path)] = _Hold(float(seconds))
        return self.url(path)

    # the record
    def requests(self) -> list[SeenRequest]:
        """Every request read so far, oldest first."""
        with self._lock:
            return list(self._seen)

    @property
    def connections(self) -> int:
        """Connections accepted so far (a connection that never sent a request counts too)."""
        with self._lock:
            return self._connections

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._seen.append(SeenRequest(method, path, time.monotonic()))

    def _record_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _mode_for(self, path: str) -> _Serve | _Hold:
        with self._lock:
            return self._modes.get(path, _NOT_FOUND)


def closed_port_url(path: str = "/nothing.tif") -> str:
    """A loopback URL on a port nothing listens on (one just freed; the OS hands ports out in turn, so it
    is not reused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return f"http://{HOST}:{port}{_checked_path(path)}"


def _checked_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"path={path!r} must be a string starting with '/'")
    return path
