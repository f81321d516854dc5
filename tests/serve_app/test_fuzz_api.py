"""Hostile input through the HTTP API and the MCP tools: never a 5xx, never a stray write.

Transactions are drawn from the app's own OpenAPI schema: each property is kept
valid or replaced by a hostile value (SQL, HTML, confusables, NaN, infinities,
huge numbers, wrong types). Runs are derandomized so CI sees the same inputs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from deployments.registry import TOOLS
from fraudline.db import make_engine
from fraudline.history import TransactionRow
from fraudline.keys import config_line, new_key
from fraudline.records import AuditEntryRow, CaseRow, DecisionRow, OutboxRow
from serve_app.auth import AuthConfig, Authenticator, protect
from serve_app.limits import RateLimitConfig
from serve_app.mcp import LocalCaller, mount_mcp
from tests.serve_app.inprocess import build_local_api, say, scenario

KEY = new_key()
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}
MCP_HEADERS = {**JSON_HEADERS, "Accept": "application/json, text/event-stream"}
HUGE_INT = "__huge_int__"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_ids = itertools.count(1)


class Counts:
    requests = 0
    rejected = 0
    decided = 0


HOSTILE_TEXT = st.sampled_from(
    [
        "'; DROP TABLE cases; --",
        "1' OR '1'='1",
        "Robert'); DELETE FROM audit_entries WHERE ('1'='1",
        "<script>alert(document.cookie)</script>",
        '"><img src=x onerror=alert(1)>',
        "Mоscow, Russia",  # Cyrillic o
        "Ｍｏｓｃｏｗ, ＲＵ",  # fullwidth
        "Seattle, WA\u202e",  # right-to-left override
        "Ama\u200bzon.com",  # zero-width space
        "４１１１ １１１１ １１１１ １１１１",  # fullwidth digits
        "card 4111 1111 1111 1111",
        "\ud800 lone surrogate",
        "\x00nul",
        "%s%s%s%n",
        "../../../../etc/passwd",
        "${jndi:ldap://127.0.0.1/a}",
        "NaN",
        "-1e999",
        "",
        " ",
        "A" * 5000,
        "🙂" * 300,
    ]
) | st.text(max_size=120)
HOSTILE_NUMBER = st.sampled_from(
    [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324, 10**40, -1, 0, HUGE_INT]
) | st.floats() | st.integers()
JSON_LEAF = st.none() | st.booleans() | HOSTILE_NUMBER | HOSTILE_TEXT
HOSTILE_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)


def dumps(value: Any) -> bytes:
    """JSON as a hostile client writes it: NaN and Infinity allowed, huge integer literals."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=True)
    return text.replace(json.dumps(HUGE_INT), "9" * 5000).encode()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    return f"sqlite:///{folder}/fraudline.db"


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def auth() -> Authenticator:
    config = AuthConfig.from_args(
        {"rate_limits": RateLimitConfig(enabled=False).model_dump()},
        env={"FRAUDLINE_API_KEYS": config_line("fuzzer", "admin", KEY)},
    )
    return Authenticator(config)


@pytest.fixture(scope="module")
def app_and_tools(db_url: str, auth: Authenticator) -> Any:
    app, _, toolbox = build_local_api(db_url)
    return protect(app, auth), toolbox


@pytest.fixture(scope="module")
def client(app_and_tools: Any, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with TestClient(app_and_tools[0], raise_server_exceptions=False) as test_client:
        # The first decision loads the tools' data; later ones take milliseconds.
        assert test_client.post("/v1/analyze", json=_valid(), headers=AUTH).status_code == 200
        yield test_client
    say(
        request.config,
        f"HTTP API fuzzed: {Counts.requests} requests, {Counts.rejected} rejected with 4xx, "
        f"{Counts.decided} decided, 0 with 5xx",
    )


@pytest.fixture(scope="module")
def mcp_client(
    app_and_tools: Any, auth: Authenticator, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    mount = mount_mcp(LocalCaller(app_and_tools[1]), token=None, allowed_hosts=["testserver"])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with mount.lifespan():
            yield

    app = FastAPI(lifespan=lifespan)
    app.router.routes.extend(mount.routes)
    before = MCPCounts.calls
    with TestClient(protect(app, auth), raise_server_exceptions=False) as test_client:
        yield test_client
    say(request.config, f"MCP tools fuzzed: {MCPCounts.calls - before} calls, 0 with 5xx")


class MCPCounts:
    calls = 0


def _valid() -> dict[str, Any]:
    return scenario("low_risk", transaction_id=f"TXN-FUZZ-{next(_ids):05d}")


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table))
            for table in (DecisionRow, CaseRow, AuditEntryRow, OutboxRow, TransactionRow)
        }


def _transaction_schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()["components"]["schemas"]["Transaction"]


@st.composite
def transactions(draw: st.DrawFn, properties: list[str]) -> dict[str, Any]:
    """A valid transaction with some properties made hostile, dropped or added."""
    body = _valid()
    for name in draw(st.lists(st.sampled_from(properties), max_size=4, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(HOSTILE_VALUE)
        else:
            body.pop(name, None)
    if draw(st.integers(0, 9)) == 0:
        body[draw(HOSTILE_TEXT)] = draw(HOSTILE_VALUE)
    return body


def _post(client: TestClient, path: str, content: bytes, engine: Engine) -> Any:
    before = _row_counts(engine)
    response = client.post(path, content=content, headers=JSON_HEADERS)
    Counts.requests += 1

    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        Counts.rejected += 1
        assert _row_counts(engine) == before, "a rejected request wrote to the database"
    return response


def test_fuzzed_transactions_get_a_decision_or_a_4xx_and_nothing_else(
    client: TestClient, engine: Engine
) -> None:
    schema = _transaction_schema(client.app)  # type: ignore[arg-type]
    properties = sorted(schema.get("properties", {}))
    assert "amount" in properties and "merchant" in properties

    @FUZZ
    @given(body=transactions(properties))
    def check(body: dict[str, Any]) -> None:
        response = _post(client, "/v1/analyze", dumps(body), engine)

        if response.status_code == 200:
            Counts.decided += 1
            result = response.json()
            assert result["decision"] in ("approve", "review", "block")
            assert result["transaction_id"] == body["transaction_id"]
            with engine.connect() as connection:
                stored = connection.scalar(
                    select(func.count())
                    .select_from(DecisionRow)
                    .where(DecisionRow.transaction_id == body["transaction_id"])
                )
            assert stored == 1

    check()


def test_fuzzed_batches_answer_item_by_item(client: TestClient, engine: Engine) -> None:
    schema = _transaction_schema(client.app)  # type: ignore[arg-type]
    properties = sorted(schema.get("properties", {}))

    @settings(FUZZ, max_examples=60)
    @given(
        items=st.lists(transactions(properties) | HOSTILE_VALUE, max_size=4),
        extra=st.none() | st.dictionaries(HOSTILE_TEXT, HOSTILE_VALUE, max_size=2),
    )
    def check(items: list[Any], extra: dict[str, Any] | None) -> None:
        body: dict[str, Any] = {"transactions": items, **(extra or {})}
        response = _post(client, "/v1/analyze/batch", dumps(body), engine)

        if response.status_code == 200:
            answer = response.json()
            assert answer["decided"] + answer["rejected"] == len(items)
            Counts.decided += answer["decided"]

    check()


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/analyze/batch", "/v1/cases/CASE-1/notes"])
def test_arbitrary_json_and_bytes_never_fail_the_server(
    client: TestClient, engine: Engine, path: str
) -> None:
    @settings(FUZZ, max_examples=40)
    @given(body=HOSTILE_VALUE.map(dumps) | st.binary(max_size=300))
    def check(body: bytes) -> None:
        _post(client, path, body, engine)

    check()


def test_hostile_path_and_query_values_get_404_or_422(client: TestClient) -> None:
    @settings(FUZZ, max_examples=60)
    @given(value=HOSTILE_TEXT, fmt=st.sampled_from(["json", "html", "pdf"]) | HOSTILE_TEXT)
    def check(value: str, fmt: str) -> None:
        encoded = quote(value.encode("utf-8", "surrogatepass"), safe="") or "x"
        query = quote(fmt.encode("utf-8", "surrogatepass"), safe="")
        for response in (
            client.get(f"/v1/cases/{encoded}", headers=AUTH),
            client.get(f"/v1/reports/{encoded}?format={query}", headers=AUTH),
        ):
            Counts.requests += 1
            assert response.status_code in (400, 404, 422), (value, response.text[:300])

    check()


@pytest.mark.parametrize(
    "content",
    [
        b'{"transaction_id": "T-NAN", "amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": -Infinity}',
        b'{"amount": 1e400}',
        b'{"amount": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50 + b"1" + b"}" * 50,
        b"\xff\xfe\x00garbage",
        b'{"transaction_id": "\\ud800"}',
        b"",
    ],
)
def test_known_hostile_bodies_are_refused_cleanly(
    client: TestClient, engine: Engine, content: bytes
) -> None:
    response = _post(client, "/v1/analyze", content, engine)

    assert response.status_code in (400, 413, 422)


def test_strings_with_sql_html_and_confusables_are_stored_as_plain_text(
    client: TestClient, engine: Engine
) -> None:
    hostile = "<script>alert(1)</script>'; DROP TABLE cases; --"
    body = scenario("high_risk", transaction_id=f"TXN-FUZZ-{next(_ids):05d}", merchant=hostile)

    response = client.post("/v1/analyze", json=body, headers=AUTH)

    assert response.status_code == 200
    assert response.json()["decision"] == "block"
    with engine.connect() as connection:
        case = connection.execute(
            select(CaseRow.case_id, CaseRow.transaction_json).where(
                CaseRow.transaction_id == body["transaction_id"]
            )
        ).one()
    assert json.loads(case.transaction_json)["merchant"] == hostile
    report = client.get(f"/v1/cases/{case.case_id}", headers=AUTH)
    assert report.status_code == 200
    assert _row_counts(engine)["cases"] >= 1


def _mcp_call(name: str, arguments: Any, call_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_fuzzed_mcp_tool_calls_answer_a_tool_error_never_a_crash_or_a_write(
    mcp_client: TestClient, engine: Engine
) -> None:
    names = [spec.name for spec in TOOLS]
    arguments = st.dictionaries(
        st.sampled_from(["transaction", "case_id", "report_id", "format", "limit", "alert_id"])
        | HOSTILE_TEXT,
        HOSTILE_VALUE,
        max_size=4,
    ) | st.fixed_dictionaries({"transaction": transactions(sorted(scenario("low_risk")))})

    @settings(FUZZ, max_examples=150)
    @given(
        name=st.sampled_from(names) | HOSTILE_TEXT,
        args=arguments | HOSTILE_VALUE,
        path=st.sampled_from(["/mcp", "/mcp/transaction_risk", "/mcp/fraud_logger"]),
    )
    def check(name: str, args: Any, path: str) -> None:
        before = _row_counts(engine)
        response = mcp_client.post(path, content=dumps(_mcp_call(name, args, 1)),
                                   headers=MCP_HEADERS)
        MCPCounts.calls += 1

        assert response.status_code < 500, response.text[:500]
        # No MCP tool records a decision; email_alerts_deliver_pending only
        # changes the state of alerts already queued.
        assert _row_counts(engine) == before

    check()


def test_malformed_json_rpc_gets_a_protocol_error(mcp_client: TestClient) -> None:
    for content in (b"[[[[", b"{}", b'{"jsonrpc": "2.0", "method": 5}', dumps([float("nan")])):
        response = mcp_client.post("/mcp", content=content, headers=MCP_HEADERS)
        MCPCounts.calls += 1

        assert 400 <= response.status_code < 500, response.text[:300]
