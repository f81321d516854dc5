"""The console's API client: errors by kind, bearer keys, server-sent events."""

from __future__ import annotations

import httpx
import pytest

from ui.client import (
    ApiError,
    EndpointMissing,
    FraudlineClient,
    StreamUnavailable,
    Unauthorized,
)


def _client(handler, key: str | None = None) -> FraudlineClient:
    return FraudlineClient("http://127.0.0.1:9", key, transport=httpx.MockTransport(handler))


async def test_unknown_route_is_missing_but_unknown_case_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/cases":
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(404, json={"detail": "case 'CASE-X' does not exist"})

    api = _client(handler)

    with pytest.raises(EndpointMissing):
        await api.list_cases(limit=1)
    with pytest.raises(ApiError) as error:
        await api.case("CASE-X")
    assert not isinstance(error.value, EndpointMissing)
    assert error.value.detail == "case 'CASE-X' does not exist"


async def test_key_goes_as_bearer_and_401_is_unauthorized() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"detail": "an API key is required"})

    with pytest.raises(Unauthorized) as error:
        await _client(handler).with_key("k-analyst").verify_audit()

    assert seen == ["Bearer k-analyst"]
    assert error.value.status == 401


async def test_validation_errors_read_as_field_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": [
            {"loc": ["body", "amount"], "msg": "Input should be greater than 0"},
        ]})

    with pytest.raises(ApiError) as error:
        await _client(handler).analyze({"amount": -1})

    assert error.value.detail == "amount: Input should be greater than 0"


async def test_case_ids_cannot_walk_out_of_their_route() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={})

    await _client(handler).case("../audit/verify")

    assert paths == ["/v1/cases/..%2Faudit%2Fverify"]


async def test_stream_yields_each_event_with_its_data() -> None:
    body = (
        'event: tool_call\ndata: {"tool": "identity"}\n\n'
        'event: reasoning\ndata: {"text": "The device is new."}\n\n'
        'event: decision\ndata: {"result": {"decision": "block", "risk_score": 95}}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    events = [event async for event in _client(handler).analyze_stream({})]

    assert [e.kind for e in events] == ["tool_call", "reasoning", "decision"]
    assert events[0].data == {"tool": "identity"}
    assert events[2].data["result"]["risk_score"] == 95


@pytest.mark.parametrize("status", [404, 503])
async def test_stream_is_unavailable_without_route_or_model(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        detail = "Not Found" if status == 404 else "streaming is not configured"
        return httpx.Response(status, json={"detail": detail})

    with pytest.raises(StreamUnavailable):
        [event async for event in _client(handler).analyze_stream({})]
