"""The MCP endpoints over HTTP, driven by the official MCP client against in-process tools."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from deployments.agent import Agent, AgentConfig
from deployments.toolbox import LocalToolbox
from fraudline.demo import SCENARIOS, seed_demo_history
from fraudline.errors import ConfigError, NotFound
from fraudline.schemas import Transaction
from serve_app.mcp import HandleCaller, LocalCaller, McpMount, mount_mcp

TOKEN = "test-token-0123456789abcdef"
ALLOWED_HOSTS = ["127.0.0.1:*", "localhost:*"]


@dataclass
class Served:
    base_url: str
    case_id: str
    alert_id: str
    report_id: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ingress(mount: McpMount) -> FastAPI:
    """An app wired the way the ingress wires MCP: routes added, lifespan entered."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with mount.lifespan():
            yield

    app = FastAPI(lifespan=lifespan)
    app.router.routes.extend(mount.routes)
    return app


def _decide_block(toolbox: LocalToolbox) -> tuple[str, str, str]:
    """Runs the high-risk demo payment through the agent; its case, alert and report."""
    # A cold gazetteer takes seconds to index on a busy machine.
    agent = Agent(AgentConfig(explain_mode="never", tool_timeout_s=120), toolbox)
    [result] = asyncio.run(agent.decide_batch([Transaction(**SCENARIOS["high_risk"])]))
    assert result.decision == "block"
    ids = {action.kind: action.id for action in result.actions}
    return ids["case"], ids["alert"], ids["report"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("mcp")
    database_url = f"sqlite:///{folder}/fraudline.db"
    seed_demo_history(database_url)
    toolbox = LocalToolbox(database_url)
    case_id, alert_id, report_id = _decide_block(toolbox)

    mount = mount_mcp(LocalCaller(toolbox), token=TOKEN, allowed_hosts=ALLOWED_HOSTS)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_ingress(mount), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 15 s"
        assert thread.is_alive(), "uvicorn exited while starting"
        time.sleep(0.02)
    yield Served(f"http://127.0.0.1:{port}", case_id, alert_id, report_id)
    server.should_exit = True
    thread.join(timeout=10)


@asynccontextmanager
async def _connect(url: str, token: str = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def _call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with _connect(url) as client:
        return await client.call_tool(tool, arguments)


def _signal(evidence: dict[str, Any], code: str) -> dict[str, Any]:
    return next(signal for signal in evidence["signals"] if signal["code"] == code)


async def test_all_tools_listed_at_mcp_with_schemas(served: Served) -> None:
    async with _connect(f"{served.base_url}/mcp") as client:
        listed = (await client.list_tools()).tools

    assert [tool.name for tool in listed] == [
        "transaction_risk",
        "identity_verifier",
        "geolocation_checker",
        "email_alerts_alert_status",
        "email_alerts_deliver_pending",
        "fraud_logger_get_case",
        "fraud_logger_recent_cases",
        "fraud_logger_verify_audit_chain",
        "report_generator_get_report",
    ]
    risk = listed[0]
    assert "amount" in risk.input_schema["required"]
    assert "currency" in risk.input_schema["properties"]["amount"]["description"]
    assert risk.output_schema is not None and "signals" in risk.output_schema["properties"]
    assert all(tool.annotations and tool.annotations.open_world_hint is False for tool in listed)


@pytest.mark.parametrize(
    ("server", "tools"),
    [
        ("transaction_risk", ["transaction_risk"]),
        ("identity_verifier", ["identity_verifier"]),
        ("geolocation_checker", ["geolocation_checker"]),
        ("email_alerts", ["email_alerts_alert_status", "email_alerts_deliver_pending"]),
        (
            "fraud_logger",
            [
                "fraud_logger_get_case",
                "fraud_logger_recent_cases",
                "fraud_logger_verify_audit_chain",
            ],
        ),
        ("report_generator", ["report_generator_get_report"]),
    ],
)
async def test_each_server_lists_only_its_deployments_tools(
    served: Served, server: str, tools: list[str]
) -> None:
    async with _connect(f"{served.base_url}/mcp/{server}") as client:
        listed = (await client.list_tools()).tools

    assert [tool.name for tool in listed] == tools


async def test_geolocation_finds_impossible_travel_to_moscow(served: Served) -> None:
    url = f"{served.base_url}/mcp/geolocation_checker"
    result = await _call(url, "geolocation_checker", SCENARIOS["high_risk"])

    assert not result.is_error
    travel = _signal(result.structured_content, "impossible_travel")
    assert travel["unit"] == "km/h"
    assert 14_500 < travel["value"] < 15_500
    assert travel["points"] == 40


async def test_identity_flags_the_unknown_device(served: Served) -> None:
    url = f"{served.base_url}/mcp/identity_verifier"
    result = await _call(url, "identity_verifier", SCENARIOS["high_risk"])

    assert not result.is_error
    assert result.structured_content["tool"] == "identity"
    assert _signal(result.structured_content, "unknown_device")["points"] == 20


async def test_transaction_risk_scores_the_crypto_payment_high(served: Served) -> None:
    result = await _call(f"{served.base_url}/mcp", "transaction_risk", SCENARIOS["high_risk"])

    assert not result.is_error
    points = sum(signal["points"] for signal in result.structured_content["signals"])
    assert points >= 45
    assert _signal(result.structured_content, "high_risk_category")["points"] > 0


async def test_get_case_returns_the_block_decision(served: Served) -> None:
    url = f"{served.base_url}/mcp/fraud_logger"
    result = await _call(url, "fraud_logger_get_case", {"case_id": served.case_id})

    assert not result.is_error
    case = result.structured_content
    assert case["case_id"] == served.case_id
    assert case["transaction_id"] == "TXN-DEMO-002"
    assert case["decision"] == "block"
    assert case["risk_score"] >= 90
    assert case["alert_id"] == served.alert_id
    assert case["report_id"] == served.report_id


async def test_recent_cases_lists_the_customers_block(served: Served) -> None:
    url = f"{served.base_url}/mcp/fraud_logger"
    arguments = {"customer_id": "C-12345", "decision": "block"}
    result = await _call(url, "fraud_logger_recent_cases", arguments)

    assert result.structured_content["count"] == 1
    assert result.structured_content["cases"][0]["case_id"] == served.case_id


async def test_audit_chain_verifies_intact(served: Served) -> None:
    url = f"{served.base_url}/mcp/fraud_logger"
    result = await _call(url, "fraud_logger_verify_audit_chain", {})

    chain = result.structured_content
    assert chain["ok"] is True
    # The block's decision, the hold it placed and its report: one entry each.
    assert chain["entries_checked"] == 3
    assert len(chain["head_hash"]) == 64


async def test_report_comes_back_as_json_and_html(served: Served) -> None:
    url = f"{served.base_url}/mcp/report_generator"
    as_json = await _call(url, "report_generator_get_report", {"report_id": served.report_id})
    as_html = await _call(
        url, "report_generator_get_report", {"report_id": served.report_id, "format": "html"}
    )

    assert as_json.structured_content["media_type"].startswith("application/json")
    assert as_json.structured_content["report"]["case_id"] == served.case_id
    assert as_html.structured_content["media_type"].startswith("text/html")
    assert served.case_id in as_html.structured_content["html"]


async def test_alert_waits_in_the_outbox_without_smtp(served: Served) -> None:
    url = f"{served.base_url}/mcp/email_alerts"
    status = await _call(url, "email_alerts_alert_status", {"alert_ids": [served.alert_id]})
    delivery = await _call(url, "email_alerts_deliver_pending", {"limit": 10})

    [alert] = status.structured_content["alerts"]
    assert (alert["id"], alert["state"]) == (served.alert_id, "queued")
    assert "no SMTP server" in alert["detail"]
    assert delivery.structured_content == {"sent": 0, "failed": 0, "pending": 1}


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("transaction_risk", {**SCENARIOS["high_risk"], "amount": -5}, "amount"),
        ("identity_verifier", {**SCENARIOS["high_risk"], "ip_address": "999.1.1.1"}, "ip_address"),
        ("geolocation_checker", {**SCENARIOS["high_risk"], "colour": "red"}, "colour"),
        ("report_generator_get_report", {"report_id": "RPT-1", "format": "pdf"}, "format"),
        ("fraud_logger_recent_cases", {"limit": 1000}, "limit"),
    ],
)
async def test_bad_argument_is_a_tool_error_naming_the_field(
    served: Served, tool: str, arguments: dict[str, Any], field: str
) -> None:
    result = await _call(f"{served.base_url}/mcp", tool, arguments)

    assert result.is_error
    assert field in result.content[0].text


async def test_unknown_case_is_a_tool_error_with_the_id(served: Served) -> None:
    url = f"{served.base_url}/mcp"
    result = await _call(url, "fraud_logger_get_case", {"case_id": "CASE-000000000000"})

    assert result.is_error
    assert "'CASE-000000000000' does not exist" in result.content[0].text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", TOKEN])
async def test_missing_or_wrong_token_is_refused_with_401(
    served: Served, authorization: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{served.base_url}/mcp", json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_official_client_with_wrong_token_cannot_connect(served: Served) -> None:
    with pytest.raises(ExceptionGroup) as refused:
        async with _connect(f"{served.base_url}/mcp", token="wrong-token-0123456789"):
            pass

    assert refused.group_contains(MCPError, match="error response")


@pytest.mark.parametrize("protocol", [None, "2026-07-28"])
async def test_foreign_host_header_is_refused(served: Served, protocol: str | None) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
        "Host": "attacker.example:8000",
    }
    if protocol is not None:
        headers["MCP-Protocol-Version"] = protocol
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{served.base_url}/mcp", json=body, headers=headers)

    assert response.status_code == 421


async def test_answers_carry_no_session_id(served: Served) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{served.base_url}/mcp", json=body, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in response.headers


async def test_twenty_concurrent_sessions_are_all_answered(served: Served) -> None:
    async def session(index: int) -> float:
        arguments = {**SCENARIOS["high_risk"], "transaction_id": f"TXN-MCP-{index:03d}"}
        async with _connect(f"{served.base_url}/mcp") as client:
            assert len((await client.list_tools()).tools) == 9
            result = await client.call_tool("geolocation_checker", arguments)
        assert not result.is_error
        return _signal(result.structured_content, "impossible_travel")["points"]

    points = await asyncio.wait_for(asyncio.gather(*(session(i) for i in range(20))), 60)

    assert points == [40.0] * 20


class _NoTools:
    async def call(self, deployment: str, method: str, *args: Any) -> Any:
        raise AssertionError(f"{deployment}.{method} was called")


def test_short_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="5 characters"):
        mount_mcp(_NoTools(), token="short", allowed_hosts=ALLOWED_HOSTS)


def test_no_allowed_hosts_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        mount_mcp(_NoTools(), token=TOKEN, allowed_hosts=[])


def test_mount_has_one_route_per_server() -> None:
    mount = mount_mcp(_NoTools(), token=TOKEN, allowed_hosts=ALLOWED_HOSTS)

    assert [route.path for route in mount.routes] == [  # type: ignore[attr-defined]
        "/mcp/transaction_risk",
        "/mcp/identity_verifier",
        "/mcp/geolocation_checker",
        "/mcp/email_alerts",
        "/mcp/fraud_logger",
        "/mcp/report_generator",
        "/mcp",
    ]


async def test_handle_caller_raises_the_replicas_own_error() -> None:
    from ray.exceptions import RayTaskError

    missing = NotFound("case 'CASE-1' does not exist")

    class Method:
        async def remote(self, *args: Any) -> Any:
            raise RayTaskError("get_case", "remote traceback text", missing)

    class Handle:
        get_case = Method()

    with pytest.raises(NotFound) as raised:
        caller = HandleCaller({"fraud_logger": Handle()})  # type: ignore[dict-item]
        await caller.call("fraud_logger", "get_case", "CASE-1")

    assert raised.value is missing
