"""The deterministic, versioned policy that turns evidence into a decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pydantic import BaseModel, Field, model_validator

from fraudline.schemas import Decision, Evidence, Reason

_SEVERITY: dict[str, int] = {"approve": 0, "review": 1, "block": 2}

EVIDENCE_UNAVAILABLE = "evidence_unavailable"
MODEL_ESCALATION = "model_escalation"
ACCOUNT_ON_HOLD = "account_on_hold"


class PolicyConfig(BaseModel):
    """Score thresholds; a change to any of them is a new `version`."""

    version: str = "2026.12-1"
    review_at: float = Field(default=40.0, ge=0, le=100)
    block_at: float = Field(default=75.0, ge=0, le=100)
    grey_zone: tuple[float, float] = Field(
        default=(25.0, 75.0),
        description="Scores in [low, high) are shown to the model by default.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PolicyConfig:
        if not self.review_at <= self.block_at:
            raise ValueError("review_at must not be above block_at")
        if not self.grey_zone[0] <= self.grey_zone[1]:
            raise ValueError("grey_zone must be (low, high) with low <= high")
        return self


@dataclass(frozen=True)
class PolicyOutcome:
    decision: Decision
    risk_score: float
    reasons: tuple[Reason, ...]

    @property
    def risk_level(self) -> str:
        return {"approve": "low", "review": "medium", "block": "high"}[self.decision]


def decide(evidence: Mapping[str, Evidence], config: PolicyConfig) -> PolicyOutcome:
    """Adds up every signal's points, caps at 100, and applies the thresholds.

    Missing evidence never helps: an unavailable tool makes the decision at
    least `review`, whatever the score.
    """
    reasons = [
        Reason(code=signal.code, text=signal.text, tool=name, points=signal.points)
        for name, found in evidence.items()
        for signal in found.signals
        if signal.points > 0
    ]
    reasons.sort(key=lambda reason: (-reason.points, reason.tool, reason.code))
    score = round(min(100.0, sum(reason.points for reason in reasons)), 1)

    decision: Decision = "approve"
    if score >= config.block_at:
        decision = "block"
    elif score >= config.review_at:
        decision = "review"

    missing = sorted(name for name, found in evidence.items() if found.status != "ok")
    if missing:
        reasons.append(
            Reason(
                code=EVIDENCE_UNAVAILABLE,
                text=f"Evidence unavailable from {', '.join(missing)}; sent for review.",
                tool="policy",
                points=0.0,
            )
        )
        decision = stricter(decision, "review")
    return PolicyOutcome(decision, score, tuple(reasons))


def stricter(first: Decision, second: Decision) -> Decision:
    return first if _SEVERITY[first] >= _SEVERITY[second] else second


def in_grey_zone(score: float, config: PolicyConfig) -> bool:
    low, high = config.grey_zone
    return low <= score < high


def apply_model_advice(
    outcome: PolicyOutcome, recommended: Decision | None, why: str
) -> PolicyOutcome:
    """Lets the model make an approval more cautious, and nothing else.

    The model may raise approve to review; it can never lower a decision and
    never block on its own.
    """
    if outcome.decision != "approve" or recommended not in ("review", "block"):
        return outcome
    reason = Reason(
        code=MODEL_ESCALATION,
        text=f"The reasoning model asked for a review: {why[:200]}",
        tool="model",
        points=0.0,
    )
    return replace(outcome, decision="review", reasons=outcome.reasons + (reason,))
