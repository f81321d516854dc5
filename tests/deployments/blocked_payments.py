"""Payments and decisions of the demo customers, for the hold and notice tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraudline.db import make_engine, make_sessions
from fraudline.history import CustomerRow
from fraudline.records import ensure_schema, save_phone_numbers
from fraudline.schemas import (
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
    Transaction,
)

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)
PHONE = "+15551234567"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def seed_customer(
    database_url: str,
    customer_id: str = "C-12345",
    email: str | None = "c12345@example.com",
    phone: str | None = PHONE,
    card_last4: str | None = "4242",
) -> None:
    """Stores the demo customer's profile and, when given, their phone number."""
    engine = make_engine(database_url)
    ensure_schema(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        session.merge(
            CustomerRow(
                customer_id=customer_id,
                home_location="New York, NY",
                home_latitude=40.7128,
                home_longitude=-74.0060,
                email=email,
                card_last4=card_last4,
                created_at=NOW - timedelta(days=730),
            )
        )
    if phone:
        save_phone_numbers(sessions, {customer_id: phone})
    engine.dispose()


def high_risk(transaction_id: str, customer_id: str = "C-12345") -> Transaction:
    """Demo scenario 2: $4,500.00 at a crypto exchange in Moscow, 30 min after New York."""
    return Transaction(
        transaction_id=transaction_id,
        customer_id=customer_id,
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        previous_location="New York, NY",
        time_since_last_transaction="30 minutes ago",
        device_id="dev-unknown",
        ip_address="185.220.101.5",
        timestamp=NOW,
    )


def ordinary(transaction_id: str, customer_id: str = "C-12345") -> Transaction:
    """Demo scenario 1: $250.00 at Amazon.com from Seattle on a known device."""
    return Transaction(
        transaction_id=transaction_id,
        customer_id=customer_id,
        amount=250.0,
        merchant="Amazon.com",
        merchant_category="E-commerce",
        location="Seattle, WA",
        previous_location="Seattle, WA",
        time_since_last_transaction="2 hours ago",
        device_id="dev-abc123",
        ip_address="192.168.1.100",
        timestamp=NOW,
    )


def decision(
    transaction: Transaction, verdict: str, score: float, reasons: list[Reason]
) -> DecisionResult:
    level = "high" if verdict == "block" else "medium" if verdict == "review" else "low"
    return DecisionResult(
        transaction_id=transaction.transaction_id,
        customer_id=transaction.customer_id,
        decision=verdict,  # type: ignore[arg-type]
        risk_score=score,
        risk_level=level,  # type: ignore[arg-type]
        reasons=reasons,
        evidence={},
        explanation=Explanation(text=f"{verdict} at {score:g}"),
        policy_version="policy-2026.01",
        decided_at=transaction.timestamp or NOW,
    )


def block(transaction: Transaction) -> tuple[Transaction, DecisionResult]:
    travel = Signal(
        code="impossible_travel",
        text="Moscow, RU is 7,510 km from New York, US, 30 min later: 15,020 km/h",
        value=15020.0,
        unit="km/h",
        points=40.0,
    )
    reason = Reason(code=travel.code, text=travel.text, tool="geolocation", points=40.0)
    result = decision(transaction, "block", 95.0, [reason])
    result.evidence["geolocation"] = Evidence(tool="geolocation", signals=[travel])
    return transaction, result


def review(transaction: Transaction) -> tuple[Transaction, DecisionResult]:
    reason = Reason(
        code="amount_above_usual",
        text="$1,200.00 is 24x this customer's median of $50.00",
        tool="transaction_risk",
        points=50.0,
    )
    return transaction, decision(transaction, "review", 52.0, [reason])


def on_hold(transaction: Transaction, until: datetime) -> tuple[Transaction, DecisionResult]:
    """The decision the agent gives, without the model, while the card is on hold."""
    reason = Reason(
        code="account_on_hold",
        text=f"account on hold until {until:%Y-%m-%dT%H:%M:%SZ}",
        tool="holds",
        points=100.0,
    )
    return transaction, decision(transaction, "block", 100.0, [reason])
