"""MCP through the running Serve app: two replicas of every tool and of the ingress."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fraudline.demo import SCENARIOS

pytestmark = pytest.mark.ray

TOKEN = "replica-test-token-0123456789"
APP_NAME = "fraudline_mcp_replicas"
ROUTE_PREFIX = "/replicas"
TOOL_DEPLOYMENTS = [
    "TransactionRisk",
    "IdentityVerifier",
    "GeolocationChecker",
    "EmailAlerts",
    "FraudLogger",
    "ReportGenerator",
]
# One cheap call per server, so every deployment answers through its own route.
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "transaction_risk": ("transaction_risk", SCENARIOS["high_risk"]),
    "identity_verifier": ("identity_verifier", SCENARIOS["high_risk"]),
    "geolocation_checker": ("geolocation_checker", SCENARIOS["high_risk"]),
    "email_alerts": ("email_alerts_deliver_pending", {"limit": 1}),
    "fraud_logger": ("fraud_logger_verify_audit_chain", {}),
    "report_generator": ("report_generator_get_report", {"report_id": "RPT-000000000000"}),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pins every tool and the ingress at two small replicas for this app."""
    from deployments import (
        email_alerts,
        fraud_logger,
        geolocation,
        identity,
        report_generator,
        transaction_risk,
    )
    from serve_app import app as app_module

    pinned = {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.1}}
    for module in (
        transaction_risk,
        identity,
        geolocation,
        email_alerts,
        fraud_logger,
        report_generator,
    ):
        monkeypatch.setattr(module, "DEPLOYMENT_DEFAULTS", pinned)
    monkeypatch.setattr(
        app_module,
        "AgentIngress",
        app_module.AgentIngress.options(num_replicas=2, autoscaling_config=None),
    )


@pytest.fixture(scope="module")
def mcp_url(serve_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The /mcp URL of an app with two replicas of each tool, in the session's Ray."""
    from ray import serve

    from serve_app.app import build_app

    monkeypatch = pytest.MonkeyPatch()
    try:
        _two_replicas(monkeypatch)
        database_url = f"sqlite:///{tmp_path_factory.mktemp('mcp_replicas')}/fraudline.db"
        app = build_app(
            {
                "database_url": database_url,
                "seed_demo": True,
                "mcp": {"token": TOKEN, "allowed_hosts": ["127.0.0.1:*", "localhost:*"]},
                "console": {"enabled": False},
                "auth": {"mode": "disabled"},
            }
        )
        serve.run(app, name=APP_NAME, route_prefix=ROUTE_PREFIX)
        yield f"{serve_cluster.url}{ROUTE_PREFIX}/mcp"
    finally:
        monkeypatch.undo()
        serve.delete(APP_NAME)


@asynccontextmanager
async def _connect(url: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def test_every_tool_and_the_ingress_run_two_replicas(mcp_url: str) -> None:
    from ray import serve

    deployments = serve.status().applications[APP_NAME].deployments

    for name in [*TOOL_DEPLOYMENTS, "Agent"]:
        assert deployments[name].replica_states.get("RUNNING") == 2, name


async def test_twenty_sessions_call_all_six_servers_and_every_call_is_answered(
    mcp_url: str,
) -> None:
    async def session(index: int) -> list[tuple[str, bool, str]]:
        answers = []
        async with _connect(mcp_url) as client:
            assert len((await client.list_tools()).tools) == 9
            for tool, arguments in CALLS.values():
                if "transaction_id" in arguments:
                    arguments = {**arguments, "transaction_id": f"TXN-MCP-{index:03d}"}
                result = await client.call_tool(tool, arguments)
                answers.append((tool, result.is_error, result.content[0].text))
        return answers

    sessions = await asyncio.wait_for(asyncio.gather(*(session(i) for i in range(20))), 300)

    assert len(sessions) == 20
    for answers in sessions:
        errors = {tool: text for tool, is_error, text in answers if is_error}
        # Only the made-up report id fails, and as a tool error that names it.
        assert list(errors) == ["report_generator_get_report"]
        assert "RPT-000000000000" in errors["report_generator_get_report"]


@pytest.mark.parametrize("server", list(CALLS))
async def test_each_server_route_answers_its_tool(mcp_url: str, server: str) -> None:
    tool, arguments = CALLS[server]

    async with _connect(f"{mcp_url}/{server}") as client:
        listed = [listed.name for listed in (await client.list_tools()).tools]
        result = await client.call_tool(tool, arguments)

    assert all(name.startswith(server) for name in listed)
    assert result.structured_content is not None or result.is_error
    if server == "geolocation_checker":
        travel = next(
            signal
            for signal in result.structured_content["signals"]
            if signal["code"] == "impossible_travel"
        )
        assert travel["points"] == 40


async def test_wrong_token_is_refused(mcp_url: str) -> None:
    headers = {
        "Authorization": "Bearer not-the-token-0123456789",
        "Accept": "application/json, text/event-stream",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}

    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(mcp_url, json=body, headers=headers)

    assert response.status_code == 401


async def test_bad_argument_is_a_tool_error_naming_the_field(mcp_url: str) -> None:
    async with _connect(mcp_url) as client:
        result = await client.call_tool(
            "transaction_risk", {**SCENARIOS["high_risk"], "amount": "lots"}
        )

    assert result.is_error
    assert "amount" in result.content[0].text
