"""vLLM's error body, ``{"error": {"message", "type", "param", "code"}}``: build it, find it, judge it.

vLLM (0.10 and later) answers every rejected request with this object; ``code`` repeats the HTTP
status. The fault proxy builds it (:func:`error_json`), the client finds it in a non-2xx answer
(:func:`parse_error`), the one place its ``message`` is read is :func:`error_message`, and the rejection
suite checks a server's is well formed (:func:`well_formed_error`).

>>> parse_error(error_json("no such model", type="NotFoundError", code=404))["code"]
404
>>> parse_error(b'{"detail": "Not Found"}') is None
True
>>> error_message(parse_error(error_json("bad base64", type="BadRequestError", code=400)))
'bad base64'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["error_body", "error_json", "error_message", "parse_error", "well_formed_error"]


def error_body(message: str, *, type: str, code: int, param: str | None = None) -> dict[str, Any]:
    """The error object vLLM sends, as a dict (``code`` is the HTTP status)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_json(message: str, *, type: str, code: int, param: str | None = None) -> bytes:
    """:func:`error_body` serialized, ready to send."""
    return json.dumps(error_body(message, type=type, code=code, param=param)).encode()


def parse_error(body: bytes | str | Any) -> dict[str, Any] | None:
    """The ``error`` object of an answer (raw bytes or text, or already parsed), or None when the body is
    not JSON or has another shape (FastAPI's ``{"detail": ...}``, a flat message). A parsed body's own
    dict is returned, so a caller may edit it in place."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and UnicodeDecodeError
            return None
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    return error if isinstance(error, dict) else None


def error_message(error: Mapping[str, Any] | None) -> Any:
    """The ``message`` of an error object (what :func:`parse_error` returns, or ``PoolingHTTPError.error``) as
    the server sent it, or None when there is no object or no message.

    It is returned as sent, not coerced to text: a message that is not a string is itself a finding (the
    rejection suite judges it), so each caller decides what to show instead (``or`` the raw body, usually).
    """
    return error.get("message") if isinstance(error, Mapping) else None


def well_formed_error(error: Any, status: int) -> bool:
    """Whether ``error`` (from :func:`parse_error`) has vLLM's fields with their types and ``code == status``."""
    return (isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
            and (error.get("param") is None or isinstance(error.get("param"), str))
            and error.get("code") == status)
