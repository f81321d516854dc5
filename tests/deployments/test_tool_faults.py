"""Each of the six tools failing or hanging: the decision only gets more cautious."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.agent import EVIDENCE_TOOLS, Agent, AgentConfig
from deployments.fraud_logger import FraudLogger
from deployments.toolbox import LocalToolbox
from fraudline.demo import seed_demo_history
from fraudline.errors import StoreUnavailable
from fraudline.policy import EVIDENCE_UNAVAILABLE
from fraudline.schemas import DecisionResult, Transaction
from tests.serve_app.inprocess import NOW, build_local_api, say, scenario

# The method the agent calls on each action tool.
ACTION_METHODS = {
    "fraud_logger": "log_batch",
    "email_alerts": "deliver_batch",
    "report_generator": "generate_batch",
}
TIMEOUT_S = 0.3
_ids = itertools.count(1)


class FaultLog:
    """Counts the faults the doubles raise, for the summary line."""

    injected = 0


class Faulty:
    """Stands in for one tool: every call errors, or hangs until released.

    A hang is a bounded wait on an event the test sets once the agent has
    given up, so no worker thread outlives the test.
    """

    def __init__(self, real: Any, method: str, mode: str, hang_s: float = 30.0) -> None:
        self._real = real
        self._method = method
        self._mode = mode
        self._hang_s = hang_s
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._real, name)

        def failing(*_args: Any, **_kwargs: Any) -> Any:
            FaultLog.injected += 1
            if self._mode == "timeout":
                self.release.wait(timeout=self._hang_s)
                raise TimeoutError("released by the test")
            if self._mode == "store":
                raise StoreUnavailable("records database refused the write (test)")
            raise RuntimeError("injected tool failure")

        return failing


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('faults') / 'fraudline.db'}"
    seed_demo_history(url, now=NOW)
    return url


@pytest.fixture(scope="module")
def healthy(db_url: str, request: pytest.FixtureRequest) -> Iterator[LocalToolbox]:
    # No account holds: each test's block must not hold the next test's payments.
    toolbox = LocalToolbox(db_url, tools={"fraud_logger": FraudLogger(db_url, hold_hours=0)})
    # Warm up: the first call loads gazetteers and models, slower than TIMEOUT_S.
    agent = Agent(AgentConfig(explain_mode="never", tool_timeout_s=120), toolbox)
    asyncio.run(agent.decide_batch([_tx("low_risk")]))
    yield toolbox
    say(request.config, f"tool faults injected: {FaultLog.injected}")


@contextmanager
def _faulty(
    healthy: LocalToolbox, tools: tuple[str, ...], mode: str, hang_s: float = 30.0
) -> Iterator[LocalToolbox]:
    """A toolbox whose named tools fail; hung calls are released on exit."""
    doubles = {
        tool: Faulty(healthy.tools[tool], ACTION_METHODS.get(tool, "evaluate_batch"), mode,
                     hang_s)
        for tool in tools
    }
    try:
        yield LocalToolbox("sqlite://", tools=dict(healthy.tools, **doubles))
    finally:
        for double in doubles.values():
            double.release.set()


def _agent(toolbox: LocalToolbox) -> Agent:
    return Agent(AgentConfig(explain_mode="never", tool_timeout_s=TIMEOUT_S), toolbox)


def _tx(name: str) -> Transaction:
    return Transaction.model_validate(
        dict(scenario(name), transaction_id=f"TXN-FAULT-{next(_ids):04d}")
    )


def _action(result: DecisionResult, kind: str) -> Any:
    return next(action for action in result.actions if action.kind == kind)


@pytest.mark.parametrize("mode", ["error", "timeout"])
@pytest.mark.parametrize("tool", EVIDENCE_TOOLS)
async def test_failing_evidence_tool_sends_a_clean_payment_to_review(
    healthy: LocalToolbox, tool: str, mode: str
) -> None:
    # Scored with every tool, this payment is approved (low_risk scenario).
    with _faulty(healthy, (tool,), mode) as toolbox:
        [result] = await _agent(toolbox).decide_batch([_tx("low_risk")])

    assert result.decision == "review"
    assert result.evidence[tool].status == "unavailable"
    assert result.evidence[tool].error
    unavailable = [r for r in result.reasons if r.code == EVIDENCE_UNAVAILABLE]
    assert len(unavailable) == 1
    assert tool in unavailable[0].text
    assert any(a.kind == "case" and a.state == "done" for a in result.actions)


@pytest.mark.parametrize("mode", ["error", "timeout"])
@pytest.mark.parametrize("tool", EVIDENCE_TOOLS)
async def test_failing_evidence_tool_never_lowers_a_block(
    healthy: LocalToolbox, tool: str, mode: str
) -> None:
    with _faulty(healthy, (tool,), mode) as toolbox:
        [result] = await _agent(toolbox).decide_batch([_tx("high_risk")])

    assert result.decision in ("review", "block")
    assert result.decision != "approve"
    assert EVIDENCE_UNAVAILABLE in {r.code for r in result.reasons}


async def test_all_evidence_tools_down_still_never_approves(healthy: LocalToolbox) -> None:
    with _faulty(healthy, EVIDENCE_TOOLS, "error") as toolbox:
        results = await _agent(toolbox).decide_batch([_tx("low_risk"), _tx("medium_risk")])

    assert [r.decision for r in results] == ["review", "review"]
    assert all(r.risk_score == 0 for r in results)


@pytest.mark.parametrize("mode", ["error", "timeout"])
async def test_failing_email_alerts_leave_the_block_and_queue_the_alert(
    healthy: LocalToolbox, mode: str
) -> None:
    with _faulty(healthy, ("email_alerts",), mode) as toolbox:
        [result] = await _agent(toolbox).decide_batch([_tx("high_risk")])

    assert result.decision == "block"
    assert _action(result, "transaction_blocked").state == "done"
    alert = _action(result, "alert")
    assert alert.state == "queued"
    assert alert.id
    assert _action(result, "case").state == "done"


@pytest.mark.parametrize("mode", ["error", "timeout"])
async def test_failing_report_generator_leaves_the_decision_and_marks_the_report_failed(
    healthy: LocalToolbox, mode: str
) -> None:
    with _faulty(healthy, ("report_generator",), mode) as toolbox:
        [result] = await _agent(toolbox).decide_batch([_tx("medium_risk")])

    assert result.decision == "review"
    assert _action(result, "report").state == "failed"
    assert _action(result, "case").state == "done"


@pytest.mark.parametrize("mode", ["error", "store", "timeout"])
def test_failing_fraud_logger_answers_a_retryable_503_not_a_decision(
    healthy: LocalToolbox, mode: str
) -> None:
    body = _tx("low_risk").model_dump(mode="json")
    # A hung logger is released after 10 timeouts: the agent should give up first.
    with _faulty(healthy, ("fraud_logger",), mode, hang_s=10 * TIMEOUT_S) as toolbox:
        app, _, _ = build_local_api(
            "sqlite://",
            toolbox=toolbox,
            config=AgentConfig(explain_mode="never", tool_timeout_s=TIMEOUT_S),
            seed=False,
        )
        client = TestClient(app, raise_server_exceptions=False)
        response = client.post("/v1/analyze", json=body)

    # An unlogged decision has no audit entry and no case: it must not be acted on.
    assert response.status_code in (503, 504)
    assert response.headers["Retry-After"]
    assert "decision" not in response.json()
    assert healthy.tools["fraud_logger"].latest_decisions([body["transaction_id"]]) == [None]
