"""The load suite's HTTP/1.1 client for ``/pooling``: one keep-alive connection per user, no copies.

geventhttpclient (what Locust's ``FastHttpUser`` runs on) joins the request head and the 8 MB body
into one new bytes object before sending, and gathers the 2.8 MB answer in a bytearray it then copies
into bytes. Here the head and the body go out as two ``sendall`` calls (TCP_NODELAY, so the second
waits for nothing), and the answer is received straight into one buffer of its ``Content-Length``,
which the decoder reads in place. Chunked answers (vLLM streams ``encoding_format: "bytes"`` answers)
are read too. Like geventhttpclient, a POST that fails is not retried (it may have been processed).

Only plain ``http://``; the load suite uses geventhttpclient for ``https://`` targets.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping

import gevent.select
import gevent.socket

__all__ = ["Answer", "Connection", "ProtocolError"]

#: Largest response head accepted (status line and headers).
MAX_HEAD_BYTES = 65_536
RECV_BYTES = 262_144
#: A connection idle longer than this is opened anew: uvicorn (vLLM) closes idle keep-alive connections after
#: 5 s, and a POST on a connection the server has just closed fails (it is never retried).
IDLE_REOPEN_S = 2.0
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ProtocolError(ConnectionError):
    """The server's bytes are not an HTTP/1.1 response this client reads."""


class Answer:
    """A read response: ``status_code``, headers (lower-case names) and the whole body."""

    def __init__(self, status_code: int, headers: dict[str, str], body: bytearray,
                 head_at: float | None = None) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.head_at = head_at  # the connection's clock when the final response head was read

    def read(self) -> bytearray:
        return self.body

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def release(self) -> None:
        """Nothing to give back: the body is read in full when the answer is made."""


class Connection:
    """One keep-alive connection to ``host:port``, opened on first use and again after a failure."""

    def __init__(self, host: str, port: int, *, connect_timeout: float | None, read_timeout: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port = host, port
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.host_header = f"{host}:{port}"
        self.clock = clock
        self._sock: gevent.socket.socket | None = None
        self._last_used = 0.0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _reusable(self) -> bool:
        """The kept socket may carry the next request: recently used, and nothing (no EOF, no stray bytes) waiting."""
        if time.monotonic() - self._last_used > IDLE_REOPEN_S:
            return False
        readable, _, _ = gevent.select.select([self._sock], [], [], 0)
        return not readable

    def request(self, method: str, path: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
        """Send one request and read its whole answer; any failure closes the connection and raises."""
        if self._sock is not None and not self._reusable():
            self.close()
        try:
            if self._sock is None:
                self._sock = gevent.socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sock.settimeout(self.read_timeout)
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}", f"Content-Length: {len(body)}"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()
                      if name.lower() not in ("host", "content-length")]
            self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if body:
                self._sock.sendall(body)
            answer, keep = self._read_answer(method)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        self._last_used = time.monotonic()
        return answer

    # ------------------------------------------------------------------------------------------- reading
    def _recv(self, size: int = RECV_BYTES) -> bytes:
        data = self._sock.recv(size)
        if not data:
            raise ConnectionResetError("the server closed the connection before the answer was complete")
        return data

    def _read_answer(self, method: str) -> tuple[Answer, bool]:
        buffer = bytearray()
        while True:  # interim 1xx answers (100 Continue, 103 Early Hints) come before the real one
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                buffer += self._recv()
            head, rest = bytes(buffer[:end]).decode("latin-1"), buffer[end + 4:]
            status_line, *header_lines = head.split("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _is_ascii_digits(parts[1]):
                raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:100]!r}")
            status = int(parts[1])
            if not 100 <= status < 200 or status == 101:
                break
            buffer = rest
        head_at = self.clock()
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"malformed header line: {line[:100]!r}")
            headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1" and status != 101
        if method == "HEAD" or status in (101, 204, 304):
            body, extra = bytearray(), bytes(rest)
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, extra = self._read_chunked(rest)
        elif "content-length" in headers:
            body, extra = self._read_exactly(rest, _length(headers["content-length"]))
        else:  # the body runs to the end of the connection
            body, extra, keep = self._read_to_close(rest), b"", False
        if extra:  # bytes past the answer's end: without pipelining they answer nothing; never hand them on
            keep = False
        return Answer(status, headers, body, head_at), keep

    def _read_exactly(self, rest: bytearray, length: int) -> tuple[bytearray, bytes]:
        if len(rest) >= length:
            extra = bytes(rest[length:])
            del rest[length:]
            return rest, extra
        body = bytearray(length)
        body[:len(rest)] = rest
        view, got = memoryview(body), len(rest)
        while got < length:
            count = self._sock.recv_into(view[got:], length - got)
            if count == 0:
                raise ConnectionResetError(f"the server closed the connection after {got} of {length} body bytes")
            got += count
        return body, b""

    def _read_chunked(self, rest: bytearray) -> tuple[bytearray, bytes]:
        body, buffer = bytearray(), rest
        while True:
            end = self._line_end(buffer)
            size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ProtocolError(f"bad chunk size line: {bytes(buffer[:end])[:40]!r}")
            size = int(size_text, 16)
            del buffer[:end + 2]
            if size == 0:  # trailers, then an empty line
                while (end := self._line_end(buffer)) != 0:
                    del buffer[:end + 2]
                return body, bytes(buffer[2:])
            while len(buffer) < size + 2:
                buffer += self._recv(max(size + 2 - len(buffer), 1))
            if buffer[size:size + 2] != b"\r\n":
                raise ProtocolError("a chunk does not end with CRLF")
            body += buffer[:size]
            del buffer[:size + 2]

    def _line_end(self, buffer: bytearray) -> int:
        """Where the line at the start of ``buffer`` ends (reading more as needed; a line is short)."""
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise ProtocolError(f"a chunk-size or trailer line longer than {MAX_HEAD_BYTES} bytes")
            buffer += self._recv()
        return end

    def _read_to_close(self, rest: bytearray) -> bytearray:
        body = rest
        while data := self._sock.recv(RECV_BYTES):
            body += data
        return body


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdecimal()


def _length(text: str) -> int:
    if not _is_ascii_digits(text):
        raise ProtocolError(f"bad Content-Length: {text[:40]!r}")
    return int(text)
