"""The preflight: before a suite judges a server, the server must take the contract's own valid request.

A server that refuses the seed request with a 4xx does not speak the contract at all: vLLM 0.33 is read
to refuse every TerraTorch request 400 "Token id 1 is out of vocabulary" (docs/vllm-versions.md), and a
wrong ``--model``, a wrong API key or a tensor request to an image-to-image server look the same. Every
requirement would then fail for that one reason, so the conformance suite, the load suite and the gate
stop at once with one line quoting the answer and the unusable-target exit code (12).

A 5xx, a dropped connection or a malformed 200 is not a refusal of the contract: those are the server's
misbehaviour on a request it accepted, which the requirements judge (POOL-ENV-001, POOL-SURV-…), so the
preflight lets them through to the suites.
"""

from __future__ import annotations

import httpx

from geopool.client import Endpoint, PoolingClient
from geopool.contract import ModelContract
from geopool.errors import GeopoolError, PoolingHTTPError
from geopool.wire import seed_request

__all__ = ["NOT_A_REFUSAL", "refusal"]

#: 4xx answers that say "not now", not "not this request": a timeout and a rate limit.
NOT_A_REFUSAL = frozenset({408, 429})


def refusal(endpoint: Endpoint, contract: ModelContract, model: str, *,
            transport: httpx.BaseTransport | None = None) -> str | None:
    """Why the server at ``endpoint`` refuses the seed request (one line quoting its answer), or None when
    it does not refuse it: it answered 2xx, or failed in a way the suites judge (5xx, no answer)."""
    try:
        with PoolingClient(endpoint, transport=transport) as client:
            client.pool(seed_request(model, contract))
    except PoolingHTTPError as exc:
        if 400 <= exc.status < 500 and exc.status not in NOT_A_REFUSAL:
            return (f"it refuses the contract's own valid request (the seed request, model {model!r}): {exc}"
                    f"{_hint(exc.status)}")
    except GeopoolError:
        pass
    return None


def _hint(status: int) -> str:
    if status == 401:
        return "; pass the server's key with --api-key or GEOPOOL_API_KEY"
    if status == 404:
        return "; check --model against the server's /v1/models"
    return ("; a server that refuses every TerraTorch request may be a vLLM version the suite cannot use "
            "(see docs/vllm-versions.md), or serve another mode (--mode)")
