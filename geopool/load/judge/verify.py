"""Every load-test response is checked: HTTP status, then decoded, shape, dtype and finite, then
(optionally) against the reference output of its own input by :func:`geopool.numerics.compare_to_reference`,
the criterion conformance POOL-NUM-002 uses, with the served dtype's bounds.

A 200 with a wrong tensor is a verification failure, counted apart from HTTP and transport errors.
"""

from __future__ import annotations

import numpy as np

from geopool import wire
from geopool.contract import ModelContract
from geopool.errors import MalformedResponseError
from geopool.numerics import compare_to_reference

__all__ = ["OK", "HTTP_ERROR", "TRANSPORT_ERROR", "VERIFY_FAILED", "UNFINISHED", "verify_response"]

OK, HTTP_ERROR, TRANSPORT_ERROR, VERIFY_FAILED, UNFINISHED = "ok", "http", "transport", "verify", "unfinished"
#: The embed_dtype load's requests get (they name none: the API's default).
ASKED_DTYPE = "float32"


def verify_response(status: int, body: bytes, contract: ModelContract,
                    expected: np.ndarray | None = None, kernels: str = "same-kernels", *,
                    encoding: str = "base64", metadata: str | None = None) -> tuple[str, str]:
    """``(verdict, detail)`` for one answer; detail is empty when the verdict is OK. ``kernels`` picks the
    served-vs-reference bounds (geopool.numerics): same-kernels or other-kernels. ``encoding`` is the
    request's ``encoding_format``: ``base64`` (a JSON answer) or ``bytes`` (raw values, and the
    ``metadata`` response header); both get the same checks."""
    if status != 200:
        return HTTP_ERROR, f"HTTP {status}: {bytes(body[:200]).decode('utf-8', 'replace')}"
    try:
        # load asks for the API's default embed_dtype, float32: a base64 answer of another width has the
        # wrong byte count, a bytes answer says its dtype in the metadata header
        if encoding == "bytes":
            output = wire.decode_bytes_response(body, metadata, contract.output_shape, embed_dtype=ASKED_DTYPE)
        else:
            output = wire.decode_json_response(body, contract.output_shape, embed_dtype=ASKED_DTYPE)
    except MalformedResponseError as exc:
        return VERIFY_FAILED, f"malformed: {exc}"[:300]
    finite = np.isfinite(output)
    if not finite.all():
        return VERIFY_FAILED, f"{int(finite.size - finite.sum())} non-finite values"
    if expected is not None:
        comparison = compare_to_reference(output, expected, contract.input_dtype, kernels)
        if not comparison.passed:
            return VERIFY_FAILED, f"differs from the reference of its own input: {comparison.describe()}"
    return OK, ""
