"""Tests of EmailAlerts against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployments.email_alerts import DeliveryReport, EmailAlerts
from deployments.fraud_logger import FraudLogger
from fraudline.errors import ConfigError
from fraudline.schemas import (
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
    Transaction,
)
from tests.deployments.blocked_payments import Clock
from tests.smtp_server import Inbox, free_port, start_smtp

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)
RECIPIENTS = ["fraud-team@bank.test", "oncall@bank.test"]


def _block(transaction_id: str) -> tuple[Transaction, DecisionResult]:
    travel = Signal(
        code="impossible_travel",
        text="15,020 km/h between New York, US and Moscow, RU, above the 1,000 km/h limit",
        value=15020.0,
        unit="km/h",
        points=40.0,
    )
    transaction = Transaction(
        transaction_id=transaction_id,
        customer_id="C-12345",
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        timestamp=NOW,
    )
    result = DecisionResult(
        transaction_id=transaction_id,
        customer_id="C-12345",
        decision="block",
        risk_score=95.0,
        risk_level="high",
        reasons=[Reason(code=travel.code, text=travel.text, tool="geolocation", points=40)],
        evidence={"geolocation": Evidence(tool="geolocation", signals=[travel])},
        explanation=Explanation(text="blocked"),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )
    return transaction, result


def _log_blocks(database_url: str, *transaction_ids: str) -> list[str]:
    logged = FraudLogger(database_url, clock=lambda: NOW).log_batch(
        [_block(transaction_id) for transaction_id in transaction_ids]
    )
    return [outcome.alert_id for outcome in logged if outcome.alert_id]


def _alerts(database_url: str, port: int, clock: Clock, **knobs: Any) -> EmailAlerts:
    return EmailAlerts(
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        recipients=RECIPIENTS,
        sender="fraudline@bank.test",
        clock=clock,
        smtp_timeout_s=5,
        **knobs,
    )


def test_one_block_sends_exactly_one_email_with_the_transaction_id(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    (alert_id,) = _log_blocks(db_url, "TX-BLOCK-7")
    alerts = _alerts(db_url, port, Clock())

    actions = alerts.deliver_batch([alert_id])

    assert [(action.kind, action.state, action.id) for action in actions] == [
        ("alert", "done", alert_id)
    ]
    assert len(inbox.received) == 1
    recipients, message = inbox.received[0]
    assert recipients == RECIPIENTS
    assert "TX-BLOCK-7" in str(message["Subject"])
    assert str(message["Message-ID"]) == f"<{alert_id}@bank.test>"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Transaction: TX-BLOCK-7" in text
    assert "Risk score: 95/100 (high)" in text
    assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=0)
    assert len(inbox.received) == 1


def test_smtp_down_then_up_delivers_each_alert_once_after_retry(db_url: str) -> None:
    port = free_port()
    clock = Clock()
    alert_ids = _log_blocks(db_url, "TX-A", "TX-B")
    alerts = _alerts(db_url, port, clock, backoff_base_s=60)

    # Nothing listens on the port yet: both attempts fail and wait 60 s.
    assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=2, pending=2)
    assert [action.state for action in alerts.deliver_batch(alert_ids)] == ["queued", "queued"]

    controller, inbox = start_smtp(port)
    try:
        clock.now = NOW + timedelta(seconds=59)
        assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=2)
        clock.now = NOW + timedelta(seconds=60)
        assert alerts.deliver_pending() == DeliveryReport(sent=2, failed=0, pending=0)
        clock.now += timedelta(hours=1)
        assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=0)
    finally:
        controller.stop()

    assert sorted(inbox.alert_ids()) == sorted(alert_ids)
    assert [action.state for action in alerts.deliver_batch(alert_ids)] == ["done", "done"]


def test_two_replicas_delivering_at_once_send_each_alert_once(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    alert_ids = _log_blocks(db_url, *[f"TX-{n}" for n in range(12)])
    replicas = [_alerts(db_url, port, Clock()) for _ in range(2)]
    barrier = threading.Barrier(len(replicas))
    reports: list[DeliveryReport] = []

    def deliver(replica: EmailAlerts) -> None:
        barrier.wait(timeout=10)
        # Small rounds so both replicas really interleave their claims.
        for _ in range(12):
            reports.append(replica.deliver_pending(limit=2))

    threads = [threading.Thread(target=deliver, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(report.sent for report in reports) == 12
    assert sorted(inbox.alert_ids()) == sorted(alert_ids)


def test_without_smtp_alerts_wait_queued_in_the_outbox(db_url: str) -> None:
    (alert_id,) = _log_blocks(db_url, "TX-QUEUED")
    alerts = EmailAlerts(db_url, recipients=RECIPIENTS)

    (action,) = alerts.deliver_batch([alert_id])

    assert (action.state, action.id) == ("queued", alert_id)
    assert action.detail is not None and "no SMTP server" in action.detail
    assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=1)
    assert alerts.configured is False


def test_alert_gives_up_after_max_attempts_and_reports_failed(db_url: str) -> None:
    clock = Clock()
    (alert_id,) = _log_blocks(db_url, "TX-DEAD")
    alerts = _alerts(db_url, free_port(), clock, max_attempts=2, backoff_base_s=1)

    assert alerts.deliver_pending().failed == 1
    clock.now += timedelta(seconds=1)
    assert alerts.deliver_pending() == DeliveryReport(sent=0, failed=1, pending=0)

    (action,) = alerts.deliver_batch([alert_id])
    assert (action.state, action.detail) == (
        "failed",
        "not sent after 2 attempts; requeue it to retry",
    )
    assert alerts.requeue_failed() == 1


def test_unknown_alert_id_is_reported_failed(db_url: str, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    alerts = _alerts(db_url, port, Clock())

    (action,) = alerts.deliver_batch(["ALR-000000000000"])

    assert (action.state, action.detail) == ("failed", "unknown alert id")
    assert inbox.received == []


def test_smtp_host_without_recipients_is_a_config_error(db_url: str) -> None:
    with pytest.raises(ConfigError, match="recipients is empty"):
        EmailAlerts(db_url, smtp_host="127.0.0.1")


def test_recipient_that_is_not_an_address_is_a_config_error(db_url: str) -> None:
    with pytest.raises(ConfigError, match="not an email address"):
        EmailAlerts(db_url, smtp_host="127.0.0.1", recipients=["ops team"])


def test_run_forever_delivers_and_stops_when_told(db_url: str, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    (alert_id,) = _log_blocks(db_url, "TX-LOOP")
    alerts = _alerts(db_url, port, Clock())
    stop = threading.Event()
    original = alerts.deliver_pending

    def deliver_then_stop(limit: int = 100) -> DeliveryReport:
        report = original(limit)
        stop.set()
        return report

    alerts.deliver_pending = deliver_then_stop  # type: ignore[method-assign]
    loop = threading.Thread(target=alerts.run_forever, args=(3600.0, stop))
    loop.start()
    loop.join(timeout=10)

    assert not loop.is_alive()
    assert inbox.alert_ids() == [alert_id]
