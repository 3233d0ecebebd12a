"""geopool's HTTP/1.1 response reader (geopool/load/run/http.py), fed raw response bytes over a socket pair.

No server here: these check the parser alone (lengths, chunks, trailers, keep-alive, malformed bytes); the live
load tests run the same client against the real vLLM server.
"""

from __future__ import annotations

import socket
import threading

import pytest

from geopool.load.run.http import Answer, Connection, ProtocolError


def read(raw: bytes, *, close_after: bool = True) -> tuple[Answer, bool, Connection]:
    """The answer (and keep-alive decision) the client reads from ``raw``."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    connection = Connection("127.0.0.1", 1, connect_timeout=1, read_timeout=5)
    connection._sock = ours

    def send() -> None:  # from a thread: more than a socket buffer's worth would block the reader
        theirs.sendall(raw)
        if close_after:
            theirs.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        answer, keep = connection._read_answer("POST")
    finally:
        sender.join(timeout=5)
        theirs.close()
    return answer, keep, connection


def test_a_content_length_answer_is_read_whole_with_its_headers():
    body = bytes(range(256)) * 4096  # 1 MiB, more than one recv
    answer, keep, _ = read(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nMetadata: {\"a\": 1}\r\n\r\n" % len(body) + body)
    assert answer.status_code == 200 and answer.read() == body and keep
    assert answer.get("metadata") == '{"a": 1}' and answer.get("METADATA") == '{"a": 1}' and answer.get("x") is None


def test_a_chunked_answer_with_extensions_and_trailers_is_joined():
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n")
    answer, keep, _ = read(raw)
    assert answer.read() == b"hello world!" and keep


def test_bytes_past_the_answer_end_keep_alive_and_never_answer_the_next_request():
    answer, keep, _ = read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nstale",
                           close_after=False)
    assert answer.read() == b"ok" and not keep


def test_interim_1xx_answers_are_skipped_for_the_real_one():
    answer, keep, _ = read(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=False)
    assert answer.status_code == 200 and answer.read() == b"ok" and keep and answer.head_at is not None


def test_a_connection_idle_too_long_or_closed_by_the_server_is_opened_anew(monkeypatch):
    import geopool.load.run.http as http

    ours, theirs = socket.socketpair()
    connection = Connection("127.0.0.1", 1, connect_timeout=1, read_timeout=5)
    connection._sock, connection._last_used = ours, http.time.monotonic()
    assert connection._reusable()
    theirs.close()  # the server closed it while idle: EOF is waiting
    assert not connection._reusable()
    ours2, _theirs2 = socket.socketpair()
    connection._sock, connection._last_used = ours2, http.time.monotonic() - http.IDLE_REOPEN_S - 1
    assert not connection._reusable()
    ours.close(), ours2.close(), _theirs2.close()


def test_connection_close_and_http_1_0_end_keep_alive():
    assert not read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")[1]
    answer, keep, _ = read(b"HTTP/1.0 500 Internal Server Error\r\n\r\nboom")
    assert answer.status_code == 500 and answer.read() == b"boom" and not keep


@pytest.mark.parametrize("raw, error", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionResetError),
    (b"HTTP/1.1 200 OK\r\nContent-Le", ConnectionResetError),
    (b"SSH-2.0-OpenSSH\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", ProtocolError),
], ids=["body-cut", "head-cut", "not-http", "bad-header", "bad-length", "bad-chunk-size", "chunk-without-crlf",
        "non-ascii-length", "negative-chunk", "prefixed-chunk"])
def test_broken_answers_raise(raw, error):
    with pytest.raises(error):
        read(raw)


def test_a_failed_request_closes_the_connection():
    connection = Connection("127.0.0.1", 1, connect_timeout=1, read_timeout=1)  # nothing listens on port 1
    with pytest.raises(OSError):
        connection.request("POST", "/pooling", body=b"{}")
    assert connection._sock is None
