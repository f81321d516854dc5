"""The public HTTP API around the in-process agent and tools, for tests without Ray."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from deployments.agent import Agent, AgentConfig
from deployments.toolbox import LocalToolbox
from fraudline.demo import SCENARIOS, seed_demo_history
from fraudline.schemas import DecisionResult, Transaction
from serve_app.api import create_api
from serve_app.auth import AuthConfig, Authenticator, protect

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


class LocalRecords:
    """Cases, reports and the audit chain read straight from the tools."""

    def __init__(self, toolbox: LocalToolbox) -> None:
        self._tools = toolbox.tools

    async def case(self, case_id: str) -> dict[str, Any]:
        return plain(self._tools["fraud_logger"].get_case(case_id))

    async def report(self, report_id: str, fmt: str) -> tuple[bytes, str]:
        return self._tools["report_generator"].render(report_id, fmt)

    async def verify_audit(self) -> dict[str, Any]:
        return plain(self._tools["fraud_logger"].verify_chain())


def build_local_api(
    db_url: str,
    *,
    auth: AuthConfig | None = None,
    toolbox: LocalToolbox | None = None,
    config: AgentConfig | None = None,
    seed: bool = True,
) -> tuple[FastAPI, Agent, LocalToolbox]:
    """The API over a seeded database; behind `protect` when `auth` is given."""
    if seed:
        seed_demo_history(db_url, now=NOW)
    toolbox = toolbox or LocalToolbox(db_url)
    # Generous: the first call loads gazetteers and models on a shared CI machine.
    agent = Agent(config or AgentConfig(explain_mode="never", tool_timeout_s=60), toolbox)

    async def decide(transaction: Transaction) -> DecisionResult:
        [result] = await agent.decide_batch([transaction])
        return result

    async def decide_many(
        transactions: list[Transaction], explain: bool = True
    ) -> list[DecisionResult]:
        return await agent.decide_batch(transactions, explain)

    app = create_api(
        decide=decide,
        decide_many=decide_many,
        records=LocalRecords(toolbox),
        health=lambda: {"status": "ok"},
    )
    if auth is not None:
        protect(app, Authenticator(auth))
    return app, agent, toolbox


def scenario(name: str, **changes: Any) -> dict[str, Any]:
    """A demo scenario as JSON, timed at NOW so the seeded history applies."""
    return dict(SCENARIOS[name], timestamp=NOW.isoformat(), **changes)


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def say(config: Any, line: str) -> None:
    """Writes one line to the terminal past output capture: the counts tests report."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
