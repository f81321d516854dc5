"""Every route checks its role; keys, sessions, rate and body limits refuse clearly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fraudline.errors import ConfigError
from fraudline.keys import config_line, new_key
from fraudline.schemas import DecisionResult, Explanation, Transaction
from serve_app.api import create_api
from serve_app.auth import (
    SESSION_COOKIE,
    AccessControl,
    AuthConfig,
    Authenticator,
    Principal,
    protect,
    required_role,
)
from serve_app.body_limits import BodyLimits
from serve_app.limits import RateLimit, RateLimitConfig, RateLimiter

CLIENT, ANALYST, ADMIN = new_key(), new_key(), new_key()
KEYS_ENV = ",".join(
    [
        config_line("shop", "client", CLIENT),
        config_line("alice", "analyst", ANALYST),
        config_line("root", "admin", ADMIN),
    ]
)
TX = {
    "transaction_id": "T-1",
    "customer_id": "C-1",
    "amount": 10.0,
    "merchant": "Shop",
    "merchant_category": "Retail",
    "location": "Paris, FR",
}


class Calls:
    def __init__(self) -> None:
        self.decided: list[str] = []


class FakeRecords:
    async def case(self, case_id: str) -> dict[str, Any]:
        return {"case_id": case_id}

    async def report(self, report_id: str, fmt: str) -> tuple[bytes, str]:
        return b"{}", "application/json"

    async def verify_audit(self) -> dict[str, Any]:
        return {"ok": True, "entries": 3}


def _app(calls: Calls) -> FastAPI:
    async def decide(transaction: Transaction) -> DecisionResult:
        calls.decided.append(transaction.transaction_id)
        return DecisionResult(
            transaction_id=transaction.transaction_id,
            customer_id=transaction.customer_id,
            decision="approve",
            risk_score=5.0,
            risk_level="low",
            reasons=[],
            evidence={},
            explanation=Explanation(text="ok"),
            policy_version="test",
            decided_at=datetime(2026, 3, 10, tzinfo=UTC),
        )

    async def decide_many(txs: list[Transaction], explain: bool = True) -> list[DecisionResult]:
        return [await decide(tx) for tx in txs]

    app = create_api(decide, decide_many, FakeRecords(), lambda: {"status": "ok"})

    async def tool(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("mcp")

    # Stand-ins for the mounted MCP servers and console, which FastAPI routes never see.
    for path in ("/mcp", "/mcp/transaction_risk", "/mcp/fraud_logger", "/console"):
        app.router.routes.append(Route(path, tool, methods=["GET", "POST"]))
    return app


def _config(**changes: Any) -> AuthConfig:
    return AuthConfig.from_args(changes, env={"FRAUDLINE_API_KEYS": KEYS_ENV})


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def client(calls: Calls) -> Iterator[TestClient]:
    app = protect(_app(calls), Authenticator(_config(secure_cookies=False)))
    with TestClient(app) as test_client:
        yield test_client


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_is_public(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [{}, _bearer("flk_wrong"), {"Authorization": CLIENT}, {"Authorization": f"Basic {CLIENT}"}],
)
def test_missing_or_wrong_key_gets_401_and_nothing_is_decided(
    client: TestClient, calls: Calls, headers: dict[str, str]
) -> None:
    response = client.post("/v1/analyze", json=TX, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fraudline"'
    assert "Authorization: Bearer" in response.json()["detail"]
    assert calls.decided == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/analyze", {"client", "analyst", "admin"}),
        ("POST", "/v1/analyze/batch", {"client", "analyst", "admin"}),
        ("GET", "/v1/cases/CASE-1", {"analyst", "admin"}),
        ("GET", "/v1/reports/RPT-1", {"analyst", "admin"}),
        ("GET", "/v1/audit/verify", {"admin"}),
        ("GET", "/mcp/transaction_risk", {"client", "analyst", "admin"}),
        ("GET", "/mcp/fraud_logger", {"analyst", "admin"}),
        ("GET", "/mcp", {"analyst", "admin"}),
        ("GET", "/console", {"analyst", "admin"}),
        ("GET", "/openapi.json", {"client", "analyst", "admin"}),
    ],
)
def test_each_route_lets_in_exactly_its_roles(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    body = {"transactions": [TX]} if path.endswith("batch") else TX
    for role, key in (("client", CLIENT), ("analyst", ANALYST), ("admin", ADMIN)):
        response = client.request(
            method, path, json=body if method == "POST" else None, headers=_bearer(key)
        )

        if role in allowed:
            assert response.status_code == 200, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert f"has role {role}" in response.json()["detail"]


def test_a_route_nobody_listed_needs_admin() -> None:
    assert required_role("/v1/something-new") == "admin"
    assert required_role("/v1/analyzer") == "admin"  # a prefix matches whole segments only
    assert required_role("/v1/analyze/batch") == "client"
    assert required_role("/mcp/geolocation_checker") == "client"
    assert required_role("/mcp/email_alerts") == "analyst"
    assert required_role("/healthz") is None


def test_route_dependency_checks_role_without_the_middleware() -> None:
    auth = Authenticator(_config())
    app = FastAPI()

    @app.get("/labels")
    async def labels(who: Principal = Depends(auth.require("analyst"))) -> dict[str, str]:
        return {"name": who.name}

    client = TestClient(app)
    assert client.get("/labels", headers=_bearer(ANALYST)).json() == {"name": "alice"}
    assert client.get("/labels", headers=_bearer(CLIENT)).status_code == 403
    assert client.get("/labels").status_code == 401


def test_console_without_a_session_redirects_a_browser_to_sign_in(client: TestClient) -> None:
    response = client.get("/console", headers={"Accept": "text/html"}, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login"
    assert "Analyst API key" in client.get("/auth/login").text


def test_analyst_signs_in_and_the_cookie_opens_only_the_console(client: TestClient) -> None:
    response = client.post("/auth/login", data={"key": ANALYST}, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = response.cookies[SESSION_COOKIE]
    assert ANALYST not in cookie
    assert "HttpOnly" in response.headers["set-cookie"]
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    assert client.get("/console").text == "mcp"
    # The cookie is for the console's own pages; API calls still need the key.
    assert client.get("/v1/cases/CASE-1").status_code == 401


@pytest.mark.parametrize("key", [CLIENT, "flk_wrong", ""])
def test_sign_in_refuses_keys_that_are_not_an_analysts(client: TestClient, key: str) -> None:
    response = client.post("/auth/login", data={"key": key}, follow_redirects=False)

    assert response.status_code == 401
    assert SESSION_COOKIE not in response.cookies


def test_session_expires_and_cannot_be_forged() -> None:
    now = [1_000_000.0]
    auth = Authenticator(_config(session_ttl_s=3600), clock=lambda: now[0])
    token = auth.issue_session(Principal("alice", "analyst"))

    assert auth.read_session(token) == Principal("alice", "analyst")
    assert auth.read_session(token.replace("alice:analyst", "alice:admin")) is None
    assert auth.read_session(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    name, role, expires, signature = token.split(":")
    assert auth.read_session(f"{name}:{role}:{int(expires) + 99}:{signature}") is None
    now[0] += 3601
    assert auth.read_session(token) is None


def test_session_ends_when_its_key_is_removed() -> None:
    token = Authenticator(_config()).issue_session(Principal("alice", "analyst"))
    without_alice = AuthConfig.from_args(
        {}, env={"FRAUDLINE_API_KEYS": config_line("root", "admin", ADMIN)}
    )

    assert Authenticator(without_alice).read_session(token) is None


def test_keys_mode_without_keys_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="has no keys"):
        AuthConfig.from_args({}, env={})


def test_environment_keys_replace_the_config_file_keys() -> None:
    config = AuthConfig.from_args(
        {"keys": [{"name": "old", "role": "admin", "hash": "0" * 64}]},
        env={"FRAUDLINE_API_KEYS": config_line("new", "client", CLIENT)},
    )

    assert [key.name for key in config.keys] == ["new"]


def test_disabled_mode_is_loud(calls: Calls, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="serve_app.auth"):
        auth = Authenticator(AuthConfig(mode="disabled"))
    client = TestClient(protect(_app(calls), auth))

    response = client.get("/v1/audit/verify")

    assert "AUTHENTICATION IS DISABLED" in caplog.text
    assert response.status_code == 200
    assert response.headers["X-Fraudline-Auth"] == "disabled"
    assert client.get("/healthz").headers["X-Fraudline-Auth"] == "disabled"


def test_keys_mode_sends_no_disabled_header(client: TestClient) -> None:
    assert "X-Fraudline-Auth" not in client.get("/healthz").headers


def test_rate_limit_answers_429_with_retry_after_per_key(calls: Calls) -> None:
    limits = RateLimitConfig(per_role={"client": RateLimit(per_s=0.5, burst=2)})
    client = TestClient(protect(_app(calls), Authenticator(_config(rate_limits=limits))))

    codes = [client.post("/v1/analyze", json=TX, headers=_bearer(CLIENT)) for _ in range(3)]

    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["Retry-After"] == "2"
    assert "rate limit of 0.5 requests/s (burst 2)" in codes[2].json()["detail"]
    assert calls.decided == ["T-1", "T-1"]
    # Another key has its own bucket.
    assert client.post("/v1/analyze", json=TX, headers=_bearer(ADMIN)).status_code == 200


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(
        RateLimitConfig(per_role={"client": RateLimit(per_s=10, burst=1)}), clock=lambda: now[0]
    )

    assert limiter.check("shop", "client").allowed
    refused = limiter.check("shop", "client")
    now[0] += 0.1
    assert not refused.allowed and refused.retry_after_s == 1
    assert limiter.check("shop", "client").allowed


def test_oversized_body_gets_413_before_it_is_read(client: TestClient, calls: Calls) -> None:
    response = client.post(
        "/v1/analyze",
        content=b"{" + b" " * 1_100_000 + b"}",
        headers={**_bearer(CLIENT), "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["detail"]
    assert calls.decided == []


def test_oversized_streamed_body_without_length_gets_413(calls: Calls) -> None:
    app = _app(calls)
    guarded = AccessControl(app, Authenticator(_config(body=BodyLimits(max_bytes=100))))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 20

    response = TestClient(guarded).post(
        "/v1/analyze", content=chunks(), headers=_bearer(CLIENT)
    )

    assert response.status_code == 413
    assert calls.decided == []


@pytest.mark.parametrize("depth", [33, 10_000, 200_000])
def test_deep_json_gets_422_before_parsing(
    client: TestClient, calls: Calls, depth: int
) -> None:
    response = client.post(
        "/v1/analyze",
        content=b"[" * depth + b"]" * depth,
        headers={**_bearer(CLIENT), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert "nests more than 32 levels" in response.json()["detail"]
    assert calls.decided == []


def test_json_as_deep_as_allowed_reaches_the_app(client: TestClient) -> None:
    # 32 levels: the object, the list, the item, and 29 lists inside it.
    body = b'{"transactions": [{"x": ' + b"[" * 29 + b"]" * 29 + b"}]}"

    response = client.post(
        "/v1/analyze/batch",
        content=body,
        headers={**_bearer(CLIENT), "Content-Type": "application/json"},
    )

    # Past the depth check; the schema then refuses the item alone.
    assert response.status_code == 200
    assert response.json()["rejected"] == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"amount": NaN}', "NaN, Infinity"),
        (b'{"amount": -Infinity}', "NaN, Infinity"),
        (b'{"amount": 1e400}', "beyond 1.8e308"),
        (b'{"merchant": "\\ud800 lone"}', "unpaired UTF-16 surrogate"),
        (b'{"merchant": "\xed\xa0\x80"}', "unpaired UTF-16 surrogate"),
    ],
)
def test_json_no_parser_should_accept_gets_422_before_parsing(
    client: TestClient, calls: Calls, content: bytes, reason: str
) -> None:
    response = client.post("/v1/analyze", content=content, headers=_bearer(CLIENT))

    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert calls.decided == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"merchant": "NaN Infinity 1e400"}',  # inside strings they are just text
        b'{"merchant": "\\ud83d\\ude42"}',  # a proper surrogate pair
        b'{"merchant": "\\\\ud800"}',  # an escaped backslash, then text
    ],
)
def test_json_with_lookalike_text_passes_the_edge_checks(
    client: TestClient, content: bytes
) -> None:
    response = client.post("/v1/analyze", content=content, headers=_bearer(CLIENT))

    # The schema refuses the incomplete transaction, naming its fields.
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
