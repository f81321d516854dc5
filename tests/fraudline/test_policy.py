"""The deterministic policy: thresholds, unavailable evidence, model advice."""

from __future__ import annotations

from fraudline.policy import PolicyConfig, apply_model_advice, decide
from fraudline.schemas import Evidence, Signal


def _evidence(*points: float) -> dict[str, Evidence]:
    signals = [Signal(code=f"s{i}", text=f"signal {i}", points=p) for i, p in enumerate(points)]
    return {"transaction_risk": Evidence(tool="transaction_risk", signals=signals)}


def test_scores_add_up_and_cap_at_100() -> None:
    outcome = decide(_evidence(60, 30, 25), PolicyConfig())

    assert outcome.risk_score == 100
    assert outcome.decision == "block"
    assert [reason.points for reason in outcome.reasons] == [60, 30, 25]


def test_thresholds_split_approve_review_block() -> None:
    config = PolicyConfig(review_at=40, block_at=75)

    assert decide(_evidence(39.9), config).decision == "approve"
    assert decide(_evidence(40), config).decision == "review"
    assert decide(_evidence(74.9), config).decision == "review"
    assert decide(_evidence(75), config).decision == "block"


def test_zero_point_signals_are_not_reasons() -> None:
    outcome = decide(_evidence(0, 10), PolicyConfig())

    assert [reason.code for reason in outcome.reasons] == ["s1"]


def test_unavailable_evidence_sends_a_clean_transaction_to_review() -> None:
    evidence = _evidence(5)
    evidence["geolocation"] = Evidence.unavailable("geolocation", "TimeoutError")

    outcome = decide(evidence, PolicyConfig())

    assert outcome.decision == "review"
    assert outcome.risk_score == 5
    assert outcome.reasons[-1].code == "evidence_unavailable"
    assert "geolocation" in outcome.reasons[-1].text


def test_unavailable_evidence_never_lowers_a_block() -> None:
    evidence = _evidence(90)
    evidence["identity"] = Evidence.unavailable("identity", "RuntimeError")

    assert decide(evidence, PolicyConfig()).decision == "block"


def test_model_may_raise_approve_to_review() -> None:
    outcome = decide(_evidence(10), PolicyConfig())

    advised = apply_model_advice(outcome, "block", "odd merchant name")

    assert advised.decision == "review"
    assert advised.reasons[-1].code == "model_escalation"


def test_model_can_never_lower_a_decision() -> None:
    review = decide(_evidence(50), PolicyConfig())
    block = decide(_evidence(95), PolicyConfig())

    assert apply_model_advice(review, "approve", "looks fine").decision == "review"
    assert apply_model_advice(block, "approve", "looks fine").decision == "block"
    assert apply_model_advice(block, "review", "looks fine").decision == "block"
