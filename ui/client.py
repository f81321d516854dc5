"""The console's HTTP client of the public Fraudline API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0


class ApiError(Exception):
    """The API answered with an error status.

    Args:
        status: The HTTP status code.
        detail: The API's own words, taken from its JSON `detail` when it has one.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Unauthorized(ApiError):
    """The API wants an API key (401) or refuses the one given (403)."""


class EndpointMissing(ApiError):
    """This API has no such route yet (404 with no detail of its own, or 405)."""


class StreamUnavailable(ApiError):
    """The API cannot stream now (no route, or no model configured); call `analyze`."""


class Unreachable(ApiError):
    """The API did not answer at all."""


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of `POST /v1/analyze/stream`.

    Attributes:
        kind: The SSE `event:` name, e.g. tool_call, tool_result, reasoning, decision.
        data: The event's JSON data; a plain string arrives as {"text": ...}.
    """

    kind: str
    data: dict[str, Any]


class FraudlineClient:
    """Calls the public HTTP API as any other client would.

    Each call opens a short-lived connection so the client holds nothing between
    requests and one console serves many analysts with their own keys.

    Args:
        api_url: Base URL of the API, e.g. http://127.0.0.1:8000.
        api_key: The key sent as `Authorization: Bearer <key>`, or None.
        timeout_s: How long one request may take.
        transport: An httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key or None
        self._timeout_s = timeout_s
        self._transport = transport

    def with_key(self, api_key: str | None) -> FraudlineClient:
        """The same client with another key; None or "" keeps this one's key."""
        return FraudlineClient(
            self.api_url,
            api_key or self.api_key,
            timeout_s=self._timeout_s,
            transport=self._transport,
        )

    async def analyze(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/analyze`: the decision on one transaction."""
        return await self._json("POST", "/v1/analyze", json=transaction)

    async def analyze_batch(self, transactions: list[dict[str, Any]]) -> dict[str, Any]:
        """`POST /v1/analyze/batch`: results in order, bad items failing alone."""
        return await self._json(
            "POST", "/v1/analyze/batch", json={"transactions": transactions}
        )

    async def analyze_stream(self, transaction: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """`POST /v1/analyze/stream`: the agent's progress as server-sent events.

        Raises:
            StreamUnavailable: The API has no streaming route or cannot stream now;
                `analyze` gives the same decision in one answer.
        """
        async with self._client() as client:
            try:
                async with client.stream(
                    "POST",
                    "/v1/analyze/stream",
                    json=transaction,
                    headers={"Accept": "text/event-stream"},
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error = _error(response)
                        if isinstance(error, EndpointMissing) or error.status in (501, 503):
                            raise StreamUnavailable(error.status, error.detail)
                        raise error
                    async for event in _server_sent_events(response.aiter_lines()):
                        yield event
            except httpx.TransportError as error:
                raise Unreachable(0, _unreachable(self.api_url, error)) from None

    async def list_cases(self, **filters: Any) -> dict[str, Any]:
        """`GET /v1/cases`: one page of cases, newest first, and the total."""
        params = {key: _param(value) for key, value in filters.items() if value is not None}
        return await self._json("GET", "/v1/cases", params=params)

    async def case(self, case_id: str) -> dict[str, Any]:
        """`GET /v1/cases/{id}`: the case with its evidence and timeline."""
        return await self._json("GET", f"/v1/cases/{_segment(case_id)}")

    async def label(self, case_id: str, label: str, actor: str) -> dict[str, Any]:
        """`POST /v1/cases/{id}/label`: fraud or legitimate; the case comes back."""
        return await self._json(
            "POST",
            f"/v1/cases/{_segment(case_id)}/label",
            json={"label": label, "actor": actor},
        )

    async def update_case(
        self, case_id: str, actor: str, *, status: str | None = None,
        assignee: str | None = None,
    ) -> dict[str, Any]:
        """`PATCH /v1/cases/{id}`: a new status and/or assignee."""
        body: dict[str, Any] = {"actor": actor}
        if status is not None:
            body["status"] = status
        if assignee is not None:
            body["assignee"] = assignee
        return await self._json("PATCH", f"/v1/cases/{_segment(case_id)}", json=body)

    async def add_note(self, case_id: str, text: str, actor: str) -> dict[str, Any]:
        """`POST /v1/cases/{id}/notes`: the case comes back with all its notes."""
        return await self._json(
            "POST",
            f"/v1/cases/{_segment(case_id)}/notes",
            json={"text": text, "actor": actor},
        )

    async def report(self, report_id: str, fmt: str) -> bytes:
        """`GET /v1/reports/{id}?format=`: the report's bytes (json, html or pdf)."""
        response = await self._send(
            "GET", f"/v1/reports/{_segment(report_id)}", params={"format": fmt}
        )
        return response.content

    async def verify_audit(self) -> dict[str, Any]:
        """`GET /v1/audit/verify`: whether the audit hash chain is intact."""
        return await self._json("GET", "/v1/audit/verify")

    async def quality(self) -> dict[str, Any]:
        """`GET /v1/metrics/quality`: precision and false positives by policy version."""
        return await self._json("GET", "/v1/metrics/quality")

    async def summary(self, since: datetime, until: datetime) -> dict[str, Any]:
        """`GET /v1/reports/summary`: a period's decisions, rates and latency."""
        return await self._json(
            "GET",
            "/v1/reports/summary",
            params={"since": since.isoformat(), "until": until.isoformat()},
        )

    async def health(self) -> dict[str, Any]:
        """`GET /healthz`."""
        return await self._json("GET", "/healthz")

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._send(method, path, **kwargs)
        body = response.json()
        if not isinstance(body, dict):
            raise ApiError(response.status_code, f"{path} answered {type(body).__name__}")
        return body

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._client() as client:
            try:
                response = await client.request(method, path, **kwargs)
            except httpx.TransportError as error:
                raise Unreachable(0, _unreachable(self.api_url, error)) from None
        if response.status_code >= 400:
            raise _error(response)
        logger.debug("%s %s -> %d", method, path, response.status_code)
        return response

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers=headers,
            timeout=self._timeout_s,
            transport=self._transport,
        )


async def _server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[StreamEvent]:
    kind, data = "message", []
    async for line in lines:
        if line == "":
            if data:
                yield StreamEvent(kind, _event_data("\n".join(data)))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield StreamEvent(kind, _event_data("\n".join(data)))


def _event_data(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"text": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _error(response: httpx.Response) -> ApiError:
    detail = _detail(response)
    status = response.status_code
    if status in (401, 403):
        return Unauthorized(status, detail)
    # FastAPI answers an unknown route with the bare "Not Found"; a missing case has words.
    if status == 405 or (status == 404 and detail == "Not Found"):
        return EndpointMissing(status, detail)
    return ApiError(status, detail)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(_validation_message(item) for item in detail)
    return str(detail)[:500]


def _validation_message(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    return f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg"))


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _segment(value: str) -> str:
    # Ids go into the path; quoting keeps a pasted "../x" from walking the routes.
    return quote(value.strip(), safe="")


def _unreachable(api_url: str, error: Exception) -> str:
    return f"the API at {api_url} did not answer ({type(error).__name__}); is it running?"
