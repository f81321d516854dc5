"""Tests of alert content, outbox claims and retry backoff."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.outbox import (
    Outbox,
    backoff_s,
    compose_alert,
    mask_card_numbers,
    redact_error,
)
from fraudline.records import CaseEventRow, CaseRow, OutboxRow
from fraudline.schemas import DecisionResult, Explanation, Reason, Transaction

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sessions(db_url: str) -> sessionmaker:
    engine = make_engine(db_url)
    create_schema(engine)
    return make_sessions(engine)


def _queue(sessions: sessionmaker, alert_id: str, case_id: str) -> None:
    with sessions.begin() as session:
        session.add(
            CaseRow(
                case_id=case_id,
                transaction_id=f"TX-{alert_id}",
                customer_id="C-12345",
                decision="block",
                risk_score=95.0,
                policy_version="policy-2026.01",
                status="open",
                created_at=NOW,
                transaction_json="{}",
                evidence_json="{}",
            )
        )
        session.flush()
        session.add(
            OutboxRow(
                alert_id=alert_id,
                case_id=case_id,
                transaction_id=f"TX-{alert_id}",
                state="queued",
                subject=f"alert {alert_id}",
                body_text="text",
                body_html="<p>html</p>",
                attempts=0,
                created_at=NOW,
                next_attempt_at=NOW,
            )
        )


def _result(reasons: list[Reason]) -> DecisionResult:
    return DecisionResult(
        transaction_id="TX-9",
        customer_id="C-12345",
        decision="block",
        risk_score=95.4,
        risk_level="high",
        reasons=reasons,
        evidence={},
        explanation=Explanation(text="blocked"),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )


def test_card_number_runs_keep_only_their_last_four_digits() -> None:
    assert mask_card_numbers("card 4111 1111 1111 1234 used") == "card ****1234 used"
    assert mask_card_numbers("pan 4242424242424242.") == "pan ****4242."
    assert mask_card_numbers("ids 12345678901 and 2026-01-31") == "ids 12345678901 and 2026-01-31"


def test_alert_holds_id_decision_score_case_and_top_reasons_in_order() -> None:
    reasons = [
        Reason(code="unknown_device", text="Device dev-unknown is new", tool="identity", points=20),
        Reason(code="impossible_travel", text="15,020 km/h", tool="geolocation", points=40),
        Reason(code="new_ip", text="IP never seen", tool="identity", points=5),
        Reason(code="tor", text="Tor exit node", tool="identity", points=10),
    ]

    alert = compose_alert(_result(reasons), "CASE-ABCDEF123456")

    assert alert.subject == "Fraudline BLOCK: TX-9 scored 95/100 (CASE-ABCDEF123456)"
    lines = alert.text.splitlines()
    assert "Risk score: 95/100 (high)" in lines
    assert "Case: CASE-ABCDEF123456" in lines
    top = [line for line in lines if line.startswith("- ")]
    assert top == [
        "- 15,020 km/h (+40 points)",
        "- Device dev-unknown is new (+20 points)",
        "- Tor exit node (+10 points)",
    ]


def test_alert_escapes_html_and_masks_card_numbers_from_request_text() -> None:
    # Built without validation, which would mask the number first: the alert must
    # mask it on its own too.
    transaction = Transaction.model_construct(
        transaction_id="TX-9",
        customer_id="C-12345",
        amount=4500.0,
        merchant="<script>alert(1)</script> 4111-1111-1111-1111",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
    )
    reasons = [Reason(code="x", text="a & b <i>", tool="t", points=40)]

    alert = compose_alert(_result(reasons), "CASE-1", transaction)

    assert "<script>" not in alert.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ****1111" in alert.html
    assert "a &amp; b &lt;i&gt;" in alert.html
    assert "4111" not in alert.text.replace("****1111", "")
    assert "Payment: 4,500.00 USD at <script>alert(1)</script> ****1111" in alert.text


def test_backoff_doubles_from_its_base_up_to_its_maximum() -> None:
    waits = [backoff_s(attempts, 30.0, 3600.0) for attempts in range(1, 10)]

    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0]


def test_stored_smtp_errors_carry_no_addresses() -> None:
    error = smtplib.SMTPRecipientsRefused({"ops@example.com": (550, b"no such user")})

    assert "ops@example.com" not in redact_error(error)
    assert redact_error(error).startswith("SMTPRecipientsRefused: ")


def test_a_claimed_alert_cannot_be_claimed_again_until_its_lease_ends(
    sessions: sessionmaker,
) -> None:
    clock = Clock()
    _queue(sessions, "ALR-1", "CASE-1")
    first = Outbox(sessions, clock=clock, lease_s=300)
    second = Outbox(sessions, clock=clock, lease_s=300)

    claimed = first.claim(10)
    assert [alert.alert_id for alert in claimed] == ["ALR-1"]
    assert second.claim(10) == []

    clock.now = NOW + timedelta(seconds=301)
    reclaimed = second.claim(10)
    assert [alert.alert_id for alert in reclaimed] == ["ALR-1"]
    # The first sender's lease lapsed: its late success no longer marks the row.
    assert first.mark_sent(claimed[0], recipients=1) is False
    assert second.mark_sent(reclaimed[0], recipients=1) is True
    assert second.states(["ALR-1"])["ALR-1"].state == "sent"


def test_failed_sends_back_off_and_give_up_after_max_attempts(sessions: sessionmaker) -> None:
    clock = Clock()
    _queue(sessions, "ALR-1", "CASE-1")
    outbox = Outbox(sessions, clock=clock, max_attempts=3, backoff_base_s=10, backoff_max_s=60)

    assert outbox.mark_failed(outbox.claim(1)[0], "OSError: refused") == "queued"
    state = outbox.states(["ALR-1"])["ALR-1"]
    assert (state.attempts, state.next_attempt_at) == (1, NOW + timedelta(seconds=10))
    assert outbox.claim(1) == []

    clock.now = NOW + timedelta(seconds=10)
    assert outbox.mark_failed(outbox.claim(1)[0], "OSError: refused") == "queued"
    assert outbox.states(["ALR-1"])["ALR-1"].next_attempt_at == clock.now + timedelta(seconds=20)

    clock.now += timedelta(seconds=20)
    assert outbox.mark_failed(outbox.claim(1)[0], "OSError: refused") == "failed"
    clock.now += timedelta(days=1)
    assert outbox.claim(1) == []
    assert outbox.waiting() == 0
    with sessions() as session:
        kinds = list(session.scalars(select(CaseEventRow.kind)))
    assert kinds == ["alert_failed"]

    assert outbox.requeue_failed() == 1
    assert [alert.alert_id for alert in outbox.claim(1)] == ["ALR-1"]
