"""A reverse proxy in front of a real server that plants one fault (see :mod:`geopool.faults`).

``FaultProxy`` runs an aiohttp server (loopback by default) that forwards every request to the
upstream with a timeout, lets the fault edit or replace the answer, and sends it on. It is bounded: it
stops by itself after ``max_seconds`` or ``max_requests``. ``with FaultProxy(...) as proxy:`` runs it
on a background thread for tests; ``geopool proxy`` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import TracebackType

import aiohttp
from aiohttp import web

from geopool import wire
from geopool.contract import ModelContract
from geopool.errors import GeopoolError
from geopool.faults import Exchange, Fault, parse_fault

__all__ = ["FaultProxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host",
               "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"}


class FaultProxy:
    """Forward to ``upstream``, planting ``fault`` (a Fault or a ``NAME[:params][+NAME...]`` spec).

    ``contract`` is the served model's, for faults that judge requests against it (``repair-validate``,
    ``die-on-killer``); a fault that needs it raises FaultSpecError when it is None.
    """

    def __init__(self, upstream: str, fault: Fault | str = "none", *, host: str = "127.0.0.1", port: int = 0,
                 upstream_timeout_s: float = 300.0, max_seconds: float = 3600.0,
                 max_requests: int = 1_000_000, contract: ModelContract | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = parse_fault(fault) if isinstance(fault, str) else fault
        self.fault.bind(contract)
        self.host, self.port = host, port
        self.upstream_timeout_s = upstream_timeout_s
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._done: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------------------------ async
    async def start(self) -> None:
        self._done = asyncio.Event()
        # A new upstream connection per request: a kept-alive one the server closed meanwhile (uvicorn drops
        # idle ones after 5 s) would fail the next request with a broken pipe, which is no fault of the server.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout_s, connect=10), auto_decompress=False,
            connector=aiohttp.TCPConnector(force_close=True))
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS picked for port=0
        self._started = time.monotonic()

    async def serve_until_done(self) -> None:
        """Run until stopped, ``max_seconds`` pass or ``max_requests`` are served."""
        assert self._done is not None
        try:
            await asyncio.wait_for(self._done.wait(), self.max_seconds)
        except TimeoutError:
            pass
        await self.aclose()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.requests >= self.max_requests and self._done is not None:
            self._done.set()
        raw = await request.read()
        exchange = Exchange(request.method, request.path, raw, _json_or_none(raw))
        try:
            answered = await self.fault.intercept(exchange)
        except Exception as exc:  # a fault that cannot judge a request must be visible, not a silent 500
            exchange.status, exchange.body, answered = 502, wire.error_json(
                f"proxy: fault {self.fault.name} failed: {type(exc).__name__}: {exc}", type="ProxyFaultError",
                code=502), True
            exchange.headers = {"content-type": "application/json"}
        if not answered:
            try:
                async with self.fault.forwarding(exchange):
                    await self._forward(request, exchange)
            except (aiohttp.ClientError, TimeoutError) as exc:
                exchange.status, exchange.body = 502, wire.error_json(
                    f"proxy: upstream {self.upstream} failed: {type(exc).__name__}: {exc}", type="BadGateway", code=502)
                exchange.headers = {"content-type": "application/json"}
            else:
                try:
                    await self.fault.response(exchange)
                except Exception as exc:  # a fault that cannot apply must be visible, not a silent 500
                    exchange.status, exchange.body = 502, wire.error_json(
                        f"proxy: fault {self.fault.name} failed: {type(exc).__name__}: {exc}", type="ProxyFaultError",
                        code=502)
                    exchange.headers = {"content-type": "application/json"}
        return await self._reply(request, exchange)

    async def _forward(self, request: web.Request, exchange: Exchange) -> None:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=exchange.request_body,
                                         headers=headers) as upstream:
            exchange.status = upstream.status
            exchange.headers = {k.lower(): v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            exchange.body = await upstream.read()

    async def _reply(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        if not exchange.reset:
            return web.Response(status=exchange.status, body=exchange.body, headers=exchange.headers)
        response = web.StreamResponse(status=exchange.status, headers=exchange.headers)
        response.content_length = len(exchange.body)
        await response.prepare(request)
        await response.write(exchange.body[: len(exchange.body) // 2])
        if request.transport is not None:
            request.transport.abort()  # RST mid-body
        return response

    # ----------------------------------------------------------------------- background thread
    def __enter__(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_until_complete(self.serve_until_done())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="geopool-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            raise GeopoolError(f"the proxy did not start: {failure[0] if failure else 'timeout'}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        if self._thread is not None:
            self._thread.join(timeout=30)


def _json_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw[:1] == b"{" else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting is a test input, not our error
        return None
