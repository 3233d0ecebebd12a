"""httpx clients (sync and async) for a vLLM server's pooling and service endpoints.

Every call has a timeout (:data:`DEFAULT_TIMEOUT`, per phase). An API key is sent as a Bearer token;
it is never part of a ``repr``, an error message or a report. httpx errors are translated into
:mod:`geopool.errors`. The request/response logic lives in module functions so the two classes stay
thin wrappers that only differ in ``await``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from geopool.errors import (
    GeopoolError,
    MalformedResponseError,
    PoolingHTTPError,
    ServerTimeoutError,
    ServerUnreachableError,
)
from geopool.wire.error_body import parse_error

__all__ = ["DEFAULT_TIMEOUT", "PROBE_TIMEOUT", "AsyncPoolingClient", "Endpoint", "PoolingClient", "PoolingResponse",
           "probe"]

#: Connect fast or fail; a pooling answer may take ~20 s (a float16 model on CPU), so reads get 120 s.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=60.0, pool=10.0)
#: Service endpoints (health, version, models, metrics) answer at once or something is wrong.
PROBE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Endpoint:
    """Where a server is and how to talk to it: the one place headers, auth and timeouts come from.

    Every request geopool sends (probes, health checks, scrapes, the conformance suite's and the load
    suite's pooling requests) takes its headers from :meth:`headers` and its timeout from ``timeout``;
    a client that is not httpx (the load suite's gevent client) reads the same two. The API key is a
    Bearer token and never part of a ``repr``.
    """

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    # httpx.Timeout defines __eq__ without __hash__, which dataclasses reject as a plain default.
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not isinstance(self.timeout, httpx.Timeout):
            object.__setattr__(self, "timeout", httpx.Timeout(self.timeout))

    def __repr__(self) -> str:
        key = ", api_key=***" if self.api_key else ""
        return f"Endpoint({self.base_url!r}{key})"

    def headers(self, **extra: str) -> dict[str, str]:
        """Headers of every request: User-Agent, the Bearer token when there is a key, and ``extra``
        (``content_type="application/json"`` becomes ``Content-Type``)."""
        headers = {"User-Agent": "geopool"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update({name.replace("_", "-").title(): value for name, value in extra.items()})
        return headers

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def with_timeout(self, timeout: httpx.Timeout | float) -> Endpoint:
        return replace(self, timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout))


@dataclass(frozen=True)
class PoolingResponse:
    """A 2xx answer to ``POST /pooling`` as received, with the client-side elapsed time."""

    status: int
    headers: httpx.Headers
    content: bytes
    elapsed_s: float
    request_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def metadata(self) -> str | None:
        """The ``metadata`` header of an ``encoding_format: "bytes"`` answer."""
        return self.headers.get("metadata")


@contextmanager
def _translated(path: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ServerTimeoutError(f"{path}: {type(exc).__name__} (timeout)") from exc
    except httpx.DecodingError as exc:  # a body its own Content-Encoding does not decode
        raise MalformedResponseError(f"{path}: {exc}") from exc
    except (httpx.TransportError, OSError) as exc:
        raise ServerUnreachableError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _raise_for_status(response: httpx.Response, path: str) -> None:
    if response.is_success:
        return
    raise PoolingHTTPError(response.status_code, response.text[:4000], parse_error(response.content), path)


def _pooling_result(response: httpx.Response, started: float, request_id: str | None) -> PoolingResponse:
    _raise_for_status(response, "/pooling")
    return PoolingResponse(
        status=response.status_code,
        headers=response.headers,
        content=response.content,
        elapsed_s=time.perf_counter() - started,
        request_id=request_id,
    )


def _json_of(response: httpx.Response, path: str) -> Any:
    _raise_for_status(response, path)
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoolingHTTPError(response.status_code, response.text[:300], None, path) from exc


def _version_of(answer: Any) -> str:
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), str):
        raise MalformedResponseError(f"/version is not {{\"version\": \"X.Y.Z\"}}: {answer!r:.200}")
    return answer["version"]


def _model_ids(listing: Any) -> list[str]:
    try:
        return [str(entry["id"]) for entry in listing["data"]]
    except (KeyError, TypeError) as exc:
        raise MalformedResponseError(f"/v1/models is not an OpenAI model list: {listing!r:.200}") from exc


def _endpoint(base_url: str | Endpoint, api_key: str | None, timeout: httpx.Timeout | float | None) -> Endpoint:
    if isinstance(base_url, Endpoint):
        endpoint = base_url if api_key is None else replace(base_url, api_key=api_key)
        return endpoint if timeout is None else endpoint.with_timeout(timeout)
    return Endpoint(base_url, api_key, DEFAULT_TIMEOUT if timeout is None else timeout)


class _Base:
    def __init__(self, base_url: str | Endpoint, *, api_key: str | None,
                 timeout: httpx.Timeout | float | None) -> None:
        self.endpoint = _endpoint(base_url, api_key, timeout)
        self.base_url = self.endpoint.base_url

    def __repr__(self) -> str:
        key = ", api_key=***" if self.endpoint.api_key else ""
        return f"{type(self).__name__}({self.base_url!r}{key})"

    @staticmethod
    def _pool_headers(request_id: str | None) -> dict[str, str]:
        return {"X-Request-Id": request_id} if request_id else {}


class PoolingClient(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`.

    >>> with PoolingClient("http://127.0.0.1:1", timeout=0.5) as client:  # doctest: +SKIP
    ...     client.health()
    """

    def __init__(
        self, base_url: str | Endpoint, *, api_key: str | None = None, timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=self.endpoint.headers(),
                                  timeout=self.endpoint.timeout, transport=transport)

    def __enter__(self) -> PoolingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` and return the answer whatever its status (transport errors are translated)."""
        with _translated(path):
            return self._http.get(path)

    def pool(self, body: dict[str, Any], *, request_id: str | None = None) -> PoolingResponse:
        """POST ``body`` to ``/pooling``; a non-2xx answer raises PoolingHTTPError."""
        started = time.perf_counter()
        with _translated("/pooling"):
            response = self._http.post("/pooling", json=body, headers=self._pool_headers(request_id))
        return _pooling_result(response, started, request_id)

    def post_raw(self, path: str, content: bytes, *, content_type: str = "application/json",
                 close: bool = True) -> httpx.Response:
        """POST bytes as they are and return the answer whatever its status (for negative tests).

        ``close`` asks for ``Connection: close``: vLLM drops a keep-alive connection after a 500, and a
        test must not mistake that for the server's failure on the *next* request.
        """
        headers = {"Content-Type": content_type, **({"Connection": "close"} if close else {})}
        with _translated(path):
            return self._http.post(path, content=content, headers=headers)

    def health(self) -> bool:
        """True when ``/health`` answers 200; False for any other status."""
        return self.get("/health").status_code == 200

    def version(self) -> str:
        return _version_of(_json_of(self.get("/version"), "/version"))

    def models(self) -> list[str]:
        """Model ids listed by ``/v1/models``."""
        return _model_ids(_json_of(self.get("/v1/models"), "/v1/models"))

    def metrics(self) -> str:
        response = self.get("/metrics")
        _raise_for_status(response, "/metrics")
        return response.text

    def openapi(self) -> dict[str, Any]:
        return _json_of(self.get("/openapi.json"), "/openapi.json")


class AsyncPoolingClient(_Base):
    """Asynchronous twin of :class:`PoolingClient` (same methods, awaited)."""

    def __init__(
        self, base_url: str | Endpoint, *, api_key: str | None = None, timeout: httpx.Timeout | float | None = None,
        transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 100,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.endpoint.headers(),
                                       timeout=self.endpoint.timeout, transport=transport,
                                       limits=httpx.Limits(max_connections=max_connections))

    async def __aenter__(self) -> AsyncPoolingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str) -> httpx.Response:
        """GET ``path`` and return the answer whatever its status (transport errors are translated)."""
        with _translated(path):
            return await self._http.get(path)

    async def pool(self, body: dict[str, Any], *, request_id: str | None = None) -> PoolingResponse:
        started = time.perf_counter()
        with _translated("/pooling"):
            response = await self._http.post("/pooling", json=body, headers=self._pool_headers(request_id))
        return _pooling_result(response, started, request_id)

    async def health(self) -> bool:
        return (await self.get("/health")).status_code == 200

    async def version(self) -> str:
        return _version_of(_json_of(await self.get("/version"), "/version"))

    async def models(self) -> list[str]:
        return _model_ids(_json_of(await self.get("/v1/models"), "/v1/models"))

    async def metrics(self) -> str:
        response = await self.get("/metrics")
        _raise_for_status(response, "/metrics")
        return response.text

    async def openapi(self) -> dict[str, Any]:
        return _json_of(await self.get("/openapi.json"), "/openapi.json")


def probe(endpoint: Endpoint, *, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """What a load run or report needs to know of a target, with the probe timeout.

    ``{"url", "vllm_version", "models"}``; ``"error"`` (and nothing else) when ``/health`` does not answer
    200 or the server cannot be reached. A missing ``/version`` or ``/v1/models`` leaves its field ``None``.
    """
    facts: dict[str, Any] = {"url": endpoint.base_url}
    with PoolingClient(endpoint.with_timeout(PROBE_TIMEOUT), transport=transport) as client:
        try:
            if not client.health():
                return {**facts, "error": "/health does not answer 200"}
        except GeopoolError as exc:
            return {**facts, "error": str(exc)}
        for key, ask in (("vllm_version", client.version), ("models", client.models)):
            try:
                facts[key] = ask()
            except GeopoolError:
                facts[key] = None
    return facts
