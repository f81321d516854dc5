"""Tests of CustomerNotifier against a real SMTP server and an SMS receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployments.email_alerts import DeliveryReport, EmailAlerts
from deployments.fraud_logger import FraudLogger, LogOutcome
from deployments.notifier import (
    CustomerNotifier,
    HttpSmsProvider,
    SmsError,
    configured_channels,
    notification_actions,
)
from fraudline.errors import ConfigError
from tests.deployments.blocked_payments import (
    NOW,
    PHONE,
    Clock,
    block,
    high_risk,
    seed_customer,
)
from tests.smtp_server import Inbox, free_port, start_smtp

TOKEN = "sms-test-token"


class SmsReceiver:
    """A tiny SMS provider on 127.0.0.1: keeps each accepted message and its headers."""

    def __init__(self, port: int, status: int = 202) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if receiver.status < 300:
                    receiver.received.append((body, dict(self.headers.items())))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        # A short poll interval keeps shutdown quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/sms"

    def ids(self) -> list[str]:
        return [str(body["id"]) for body, _ in self.received]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def sms() -> Iterator[SmsReceiver]:
    receiver = SmsReceiver(free_port())
    try:
        yield receiver
    finally:
        receiver.stop()


def _log_blocks(database_url: str, *transaction_ids: str) -> list[LogOutcome]:
    seed_customer(database_url)
    logger_ = FraudLogger(database_url, clock=lambda: NOW, notify_channels=("email", "sms"))
    return logger_.log_batch([block(high_risk(tid)) for tid in transaction_ids])


def _notifier(
    database_url: str, smtp_port: int, sms_url: str, clock: Clock, **knobs: Any
) -> CustomerNotifier:
    return CustomerNotifier(
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        sender="fraudline@bank.test",
        smtp_timeout_s=5,
        sms_url=sms_url,
        sms_token=TOKEN,
        sms_timeout_s=5,
        clock=clock,
        **knobs,
    )


def test_block_reaches_the_customer_once_by_email_and_once_by_sms(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, inbox = smtp
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    notifier = _notifier(db_url, port, sms.url, Clock())

    actions = notifier.deliver_batch(outcome.notification_ids)

    assert sorted((a.kind, a.state, a.detail) for a in actions) == [
        ("notification", "done", "email"),
        ("notification", "done", "sms"),
    ]
    assert [a.id for a in actions] == list(outcome.notification_ids)
    ((recipients, message),) = inbox.received
    assert recipients == ["c12345@example.com"]
    assert str(message["Subject"]) == "We blocked a payment on your card"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "$4,500.00 at CRYPTO-EXCHANGE-XX on your card ending 4242" in body.get_content()
    ((payload, headers),) = sms.received
    assert payload["to"] == PHONE
    assert payload["text"].startswith("Fraudline: we blocked a payment of $4,500.00")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Idempotency-Key"] == payload["id"]
    assert sorted(inbox.ids() + sms.ids()) == sorted(outcome.notification_ids)
    # Nothing is left to send, and a second round sends nothing again.
    assert notifier.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=0)
    assert (len(inbox.received), len(sms.received)) == (1, 1)
    timeline = FraudLogger(db_url, create_tables=False).get_case(outcome.case_id or "").timeline
    notified = [event.detail for event in timeline if event.kind == "customer_notified"]
    assert sorted(notified) == sorted(
        f"customer notified by {channel} ({notice_id})"
        for channel, notice_id in zip(("email", "sms"), outcome.notification_ids, strict=True)
    )


def test_smtp_and_sms_down_at_first_deliver_each_notice_once_after_retry(db_url: str) -> None:
    smtp_port, sms_port = free_port(), free_port()
    clock = Clock()
    outcomes = _log_blocks(db_url, "TX-A", "TX-B")
    notice_ids = [notice for outcome in outcomes for notice in outcome.notification_ids]
    notifier = _notifier(
        db_url, smtp_port, f"http://127.0.0.1:{sms_port}/v1/sms", clock, backoff_base_s=60
    )

    # Nothing listens yet: four notices fail and wait 60 s.
    first_try = notifier.deliver_batch(notice_ids)
    assert [action.state for action in first_try] == ["queued"] * 4
    assert all("attempt 1 failed" in (action.detail or "") for action in first_try)

    controller, inbox = start_smtp(smtp_port)
    receiver = SmsReceiver(sms_port)
    try:
        clock.advance(seconds=59)
        assert notifier.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=4)
        clock.advance(seconds=1)
        assert notifier.deliver_pending() == DeliveryReport(sent=4, failed=0, pending=0)
        clock.advance(hours=1)
        assert notifier.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=0)
    finally:
        controller.stop()
        receiver.stop()

    assert sorted(inbox.ids() + receiver.ids()) == sorted(notice_ids)
    assert len(inbox.received) == 2 and len(receiver.received) == 2
    assert [action.state for action in notifier.deliver_batch(notice_ids)] == ["done"] * 4


def test_sms_provider_answering_503_is_retried_until_it_accepts(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, _ = smtp
    clock = Clock()
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    sms_id = outcome.notification_ids[1]
    notifier = _notifier(db_url, port, sms.url, clock, backoff_base_s=30)
    sms.status = 503

    (refused,) = notifier.deliver_batch([sms_id])
    sms.status = 202
    clock.advance(seconds=30)
    (accepted,) = notifier.deliver_batch([sms_id])

    assert (refused.state, accepted.state) == ("queued", "done")
    assert sms.ids() == [sms_id]


def test_two_replicas_delivering_at_once_send_each_notice_once(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, inbox = smtp
    outcomes = _log_blocks(db_url, *[f"TX-{n}" for n in range(6)])
    replicas = [_notifier(db_url, port, sms.url, Clock()) for _ in range(2)]
    barrier = threading.Barrier(len(replicas))
    reports: list[DeliveryReport] = []

    def deliver(replica: CustomerNotifier) -> None:
        barrier.wait(timeout=10)
        for _ in range(12):
            reports.append(replica.deliver_pending(limit=2))

    threads = [threading.Thread(target=deliver, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    expected = sorted(notice for outcome in outcomes for notice in outcome.notification_ids)
    assert sum(report.sent for report in reports) == 12
    assert sorted(inbox.ids() + sms.ids()) == expected


def test_fraud_team_alerts_and_customer_notices_never_cross(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, inbox = smtp
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    alerts = EmailAlerts(
        db_url, smtp_host="127.0.0.1", smtp_port=port, recipients=["fraud-team@bank.test"]
    )

    assert alerts.deliver_pending() == DeliveryReport(sent=1, failed=0, pending=0)
    notifier = _notifier(db_url, port, sms.url, Clock())
    assert notifier.deliver_pending() == DeliveryReport(sent=2, failed=0, pending=0)

    team = [recipients for recipients, _ in inbox.received]
    assert team == [["fraud-team@bank.test"], ["c12345@example.com"]]
    assert str(inbox.received[0][1]["X-Fraudline-Alert-Id"]) == outcome.alert_id


def test_without_channels_notices_wait_and_nothing_is_sent(db_url: str) -> None:
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    notifier = CustomerNotifier(db_url)

    actions = notifier.deliver_batch(outcome.notification_ids)

    assert notifier.channels == ()
    assert [(a.state, a.detail) for a in actions] == [
        ("queued", "email: waiting in the outbox, no email channel is configured"),
        ("queued", "sms: waiting in the outbox, no sms channel is configured"),
    ]
    assert notifier.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=0)


def test_sms_only_notifier_leaves_email_notices_queued(db_url: str, sms: SmsReceiver) -> None:
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    notifier = CustomerNotifier(db_url, sms_url=sms.url, sms_token=TOKEN)

    email, text = notifier.deliver_batch(outcome.notification_ids)

    assert (email.state, text.state) == ("queued", "done")
    assert sms.ids() == [outcome.notification_ids[1]]


def test_customer_whose_address_was_removed_fails_after_max_attempts(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, inbox = smtp
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    seed_customer(db_url, email=None)
    clock = Clock()
    notifier = _notifier(db_url, port, sms.url, clock, max_attempts=2, backoff_base_s=1)
    email_id = outcome.notification_ids[0]

    notifier.deliver_batch([email_id])
    clock.advance(seconds=1)
    (action,) = notifier.deliver_batch([email_id])

    assert (action.state, action.detail) == (
        "failed",
        "email: not sent after 2 attempts; requeue it to retry",
    )
    assert inbox.received == []
    assert notifier.requeue_failed() == 1


def test_unknown_notification_id_is_reported_failed(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    notifier = _notifier(db_url, smtp[0], sms.url, Clock())

    (action,) = notifier.deliver_batch(["NTF-000000000000"])

    assert (action.state, action.detail) == ("failed", "unknown notification id")


def test_notification_actions_say_skipped_when_nothing_was_queued() -> None:
    skipped = LogOutcome(
        "TX-1", "CASE-1", 1, "ALR-1", True, notification_skipped="no channel configured"
    )
    queued = LogOutcome("TX-2", "CASE-2", 2, "ALR-2", True, notification_ids=("NTF-1", "NTF-2"))
    (done,) = _notifier_actions_done("NTF-1")

    assert [(a.kind, a.state, a.detail) for a in notification_actions(skipped, {})] == [
        ("notification", "skipped", "no channel configured")
    ]
    assert [(a.id, a.state) for a in notification_actions(queued, {"NTF-1": done})] == [
        ("NTF-1", "done"),
        ("NTF-2", "queued"),
    ]
    assert notification_actions(LogOutcome("TX-3", None, 3, None, True), {}) == []


def _notifier_actions_done(notice_id: str) -> list[Any]:
    from fraudline.schemas import Action

    return [Action(kind="notification", state="done", id=notice_id, detail="email")]


def test_http_provider_raises_sms_error_naming_the_status(sms: SmsReceiver) -> None:
    sms.status = 401
    provider = HttpSmsProvider(sms.url, "wrong", timeout_s=5)

    with pytest.raises(SmsError, match="HTTP 401"):
        provider.send("NTF-1", PHONE, "hello")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/sms", "127.0.0.1:8080", "http:///sms"])
def test_sms_url_that_is_not_http_is_a_config_error(tmp_db_url: str, url: str) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        CustomerNotifier(tmp_db_url, sms_url=url)


def test_configured_channels_follow_the_settings() -> None:
    assert configured_channels("smtp.bank.test", None) == ("email",)
    assert configured_channels(None, "https://sms.bank.test/v1") == ("sms",)
    assert configured_channels("smtp.bank.test", "https://sms.bank.test/v1") == ("email", "sms")
    assert configured_channels(None, None) == ()


def test_notices_of_later_moments_wait_for_their_time(
    db_url: str, smtp: tuple[int, Inbox], sms: SmsReceiver
) -> None:
    port, inbox = smtp
    (outcome,) = _log_blocks(db_url, "TX-HIGH")
    early = Clock(NOW - timedelta(minutes=1))
    notifier = _notifier(db_url, port, sms.url, early)

    assert notifier.deliver_pending() == DeliveryReport(sent=0, failed=0, pending=2)
    early.now = NOW
    assert notifier.deliver_pending() == DeliveryReport(sent=2, failed=0, pending=0)
    assert sorted(inbox.ids() + sms.ids()) == sorted(outcome.notification_ids)
