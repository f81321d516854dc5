"""The three demo scenarios through the agent and the real tools, without Ray."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deployments.agent import Agent, AgentConfig
from deployments.toolbox import LocalToolbox
from fraudline.demo import EXPECTED_DECISIONS, SCENARIOS, seed_demo_history
from fraudline.schemas import Transaction

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


@pytest.fixture
def agent(tmp_db_url: str) -> Agent:
    seed_demo_history(tmp_db_url, now=NOW)
    # A generous timeout: a loaded machine must not turn slowness into a review.
    config = AgentConfig(explain_mode="never", tool_timeout_s=120)
    return Agent(config, LocalToolbox(tmp_db_url))


def _scenario(name: str, **changes: object) -> Transaction:
    return Transaction.model_validate(dict(SCENARIOS[name], timestamp=NOW, **changes))


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario_gets_its_decision(agent: Agent, name: str) -> None:
    [result] = await agent.decide_batch([_scenario(name)])

    assert result.decision == EXPECTED_DECISIONS[name]


async def test_all_three_in_one_batch_keep_their_order(agent: Agent) -> None:
    results = await agent.decide_batch([_scenario(name) for name in SCENARIOS])

    assert [r.decision for r in results] == list(EXPECTED_DECISIONS.values())
    low, high, medium = results
    assert low.risk_score < 25
    assert high.risk_score >= 90
    assert 40 <= medium.risk_score < 75


async def test_retry_gets_the_first_decision_and_no_second_case(agent: Agent) -> None:
    [first] = await agent.decide_batch([_scenario("high_risk")])
    # Same id, now looking harmless: the stored block must stand.
    [retry] = await agent.decide_batch(
        [_scenario("high_risk", amount=5.0, merchant_category="Grocery")]
    )

    assert retry.decision == first.decision == "block"
    assert retry.risk_score == first.risk_score
    case_ids = {a.id for r in (first, retry) for a in r.actions if a.kind == "case"}
    assert len(case_ids) == 1
