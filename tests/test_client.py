"""Client unit tests on httpx.MockTransport: headers, error translation, secrecy of the API key.

These check geopool's own parsing only; everything about vLLM is checked against the live server.
"""

from __future__ import annotations

import httpx
import pytest

from geopool.client import DEFAULT_TIMEOUT, AsyncPoolingClient, Endpoint, PoolingClient, probe
from geopool.errors import MalformedResponseError, PoolingHTTPError, ServerTimeoutError, ServerUnreachableError

SECRET = "sk-very-secret-token"


def _client(handler, **kwargs) -> PoolingClient:
    return PoolingClient("http://test", transport=httpx.MockTransport(handler), **kwargs)


def test_api_key_is_sent_as_bearer_and_never_shown():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(401, json={"error": {"message": "bad key", "type": "Unauthorized", "code": 401}})

    client = _client(handler, api_key=SECRET)
    with pytest.raises(PoolingHTTPError) as info:
        client.pool({"model": "m"})
    assert seen["auth"] == f"Bearer {SECRET}"
    assert SECRET not in repr(client) and "***" in repr(client)
    assert SECRET not in str(info.value) and SECRET not in info.value.body
    assert info.value.status == 401 and info.value.error["message"] == "bad key"


def test_no_authorization_header_without_a_key():
    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        return httpx.Response(200, json={"data": []})

    assert _client(handler).pool({}).status == 200


def test_request_id_header_is_sent():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": request.headers.get("x-request-id")})

    response = _client(handler).pool({}, request_id="abc-1")
    assert response.json() == {"id": "abc-1"} and response.request_id == "abc-1"


@pytest.mark.parametrize(
    "exc, expected",
    [
        (httpx.ConnectError("refused"), ServerUnreachableError),
        (httpx.RemoteProtocolError("reset mid-body"), ServerUnreachableError),
        (httpx.ReadTimeout("slow"), ServerTimeoutError),
        (httpx.ConnectTimeout("slow"), ServerTimeoutError),
        (httpx.PoolTimeout("busy"), ServerTimeoutError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_transport_errors_are_translated(exc, expected):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client = _client(handler)
    for call in (lambda: client.pool({}), client.health, client.version, client.metrics):
        with pytest.raises(expected):
            call()


def test_non_json_error_body_is_kept_as_text():
    client = _client(lambda request: httpx.Response(502, text="bad gateway"))
    with pytest.raises(PoolingHTTPError, match="502") as info:
        client.pool({})
    assert info.value.error is None and info.value.body == "bad gateway"


def test_health_reports_non_200_as_false():
    assert _client(lambda request: httpx.Response(503)).health() is False
    assert _client(lambda request: httpx.Response(200)).health() is True


def test_models_rejects_a_non_list():
    with pytest.raises(MalformedResponseError, match="/v1/models"):
        _client(lambda request: httpx.Response(200, json={"objects": []})).models()


def test_every_call_has_a_finite_timeout():
    client = PoolingClient("http://test")
    timeout = client._http.timeout
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)


async def test_async_client_mirrors_the_sync_one():
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m1"}]})
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        return httpx.Response(400, json={"error": {"message": "nope", "type": "BadRequestError", "code": 400}})

    async with AsyncPoolingClient("http://test", transport=httpx.MockTransport(handler), api_key=SECRET) as client:
        assert await client.models() == ["m1"]
        assert await client.version() == "0.32.0"
        with pytest.raises(PoolingHTTPError, match="nope"):
            await client.pool({})
        assert SECRET not in repr(client)


def test_endpoint_is_the_one_source_of_headers_and_timeouts():
    endpoint = Endpoint("http://test/", SECRET)
    assert endpoint.base_url == "http://test" and endpoint.url("/pooling") == "http://test/pooling"
    assert endpoint.headers(content_type="application/json") == {
        "User-Agent": "geopool", "Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    assert "Authorization" not in Endpoint("http://test").headers()
    assert SECRET not in repr(endpoint) and SECRET not in repr(PoolingClient(endpoint))
    assert endpoint.with_timeout(3.0).timeout.read == 3.0 and endpoint.timeout == DEFAULT_TIMEOUT
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"version": "0.32.0"})

    assert PoolingClient(endpoint, transport=httpx.MockTransport(handler)).version() == "0.32.0"
    assert seen == [f"Bearer {SECRET}"]


def test_probe_reports_facts_or_one_error():
    def healthy(request: httpx.Request) -> httpx.Response:
        answers = {"/health": httpx.Response(200), "/version": httpx.Response(200, json={"version": "0.32.0"}),
                   "/v1/models": httpx.Response(200, json={"data": [{"id": "m"}]})}
        return answers[request.url.path]

    facts = probe(Endpoint("http://test"), transport=httpx.MockTransport(healthy))
    assert facts == {"url": "http://test", "vllm_version": "0.32.0", "models": ["m"]}
    sick = probe(Endpoint("http://test"), transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    assert sick == {"url": "http://test", "error": "/health does not answer 200"}

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    assert "refused" in probe(Endpoint("http://test"), transport=httpx.MockTransport(refuse))["error"]


def test_a_version_that_is_not_an_object_is_a_malformed_response():
    client = _client(lambda request: httpx.Response(200, json=["0.32.0"]))
    with pytest.raises(MalformedResponseError, match="/version"):
        client.version()


def test_an_undecodable_body_is_a_malformed_response():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    with pytest.raises(MalformedResponseError, match="/metrics"):
        _client(handler).metrics()
