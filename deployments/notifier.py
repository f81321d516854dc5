"""Tells customers about blocked payments: outbox notices by email and by SMS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from deployments.email_alerts import DeliveryReport
from deployments.fraud_logger import LogOutcome
from fraudline.db import make_engine, make_sessions
from fraudline.errors import ConfigError
from fraudline.history import CustomerRow
from fraudline.outbox import (
    CHANNEL_KINDS,
    CUSTOMER_EMAIL,
    CUSTOMER_SMS,
    EMAIL_ADDRESS,
    KIND_CHANNELS,
    AlertState,
    ClaimedAlert,
    DeliveryLoop,
    Outbox,
    redact_error,
    send_emails,
    smtp_settings,
)
from fraudline.records import E164, CustomerContactRow, ensure_schema, utc_now
from fraudline.schemas import Action

logger = logging.getLogger(__name__)

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    # Waits on SMTP and the SMS provider, not the CPU.
    "ray_actor_options": {"num_cpus": 0.1},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 4,
    },
    "max_ongoing_requests": 16,
}

_ID_HEADER = "X-Fraudline-Notification-Id"


class SmsError(Exception):
    """The SMS provider did not take a message; the text is safe to store and log."""


class SmsProvider(Protocol):
    """Sends one SMS; raises SmsError when the provider does not take it.

    `notification_id` is the same on every retry of one notice, so a provider
    that honours idempotency keys delivers it once.
    """

    def send(self, notification_id: str, to: str, text: str) -> None: ...


class HttpSmsProvider:
    """Posts each SMS as JSON `{to, text, id}` to a provider's HTTPS endpoint.

    The token goes in `Authorization: Bearer`, the notice id in
    `Idempotency-Key`. Any 2xx answer is a delivery; anything else, a timeout
    or a refused connection is a failure to retry. Proxies from the
    environment and redirects are not followed: the message goes only to `url`.

    Args:
        url: The provider's endpoint, http:// or https://.
        token: Bearer token; None sends no Authorization header.
        timeout_s: Limit of each request.
    """

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"sms_url {url!r} is not an http(s) URL; write https://host/path")
        self._url = url
        self._token = token
        self._timeout_s = timeout_s

    def send(self, notification_id: str, to: str, text: str) -> None:
        headers = {"Idempotency-Key": notification_id}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            with httpx.Client(
                timeout=self._timeout_s, trust_env=False, follow_redirects=False
            ) as client:
                response = client.post(
                    self._url,
                    json={"to": to, "text": text, "id": notification_id},
                    headers=headers,
                )
        except httpx.HTTPError as error:
            raise SmsError(f"SMS provider unreachable ({type(error).__name__})") from None
        if not response.is_success:
            raise SmsError(f"SMS provider answered HTTP {response.status_code}")


def configured_channels(smtp_host: str | None, sms_url: str | None) -> tuple[str, ...]:
    """The channels a notifier with these settings can deliver, for FraudLogger's
    `notify_channels`."""
    return tuple(
        channel for channel, setting in (("email", smtp_host), ("sms", sms_url)) if setting
    )


class CustomerNotifier(DeliveryLoop):
    """Sends customer notices from the outbox, each exactly once.

    FraudLogger queues a notice per channel with the block's case; this class
    claims due notices so no two replicas send the same one, reads the
    customer's address when it sends (the outbox never holds it), and retries
    failures with exponential backoff. An email's Message-ID and an SMS's
    Idempotency-Key are the notice id, so a receiver can drop a duplicate sent
    after a crash. A channel without settings claims nothing: its notices wait.

    Args:
        database_url: SQLite or PostgreSQL URL of the records database.
        smtp_host: SMTP server for email notices; None turns email off.
        smtp_port: SMTP port.
        smtp_username: Login name, when the server wants one.
        smtp_password: Login password.
        smtp_starttls: Upgrade the connection with STARTTLS before logging in.
        smtp_ssl: Connect with TLS from the start (usually port 465).
        smtp_timeout_s: Socket timeout of each SMTP operation.
        sender: The From address of email notices.
        sms_url: The SMS provider's endpoint; None turns SMS off.
        sms_token: Bearer token for the SMS provider.
        sms_timeout_s: Limit of each SMS request.
        sms_provider: Another SmsProvider to use instead of HttpSmsProvider.
        max_attempts: Failed sends after which a notice is marked failed.
        backoff_base_s: Wait after the first failed send; doubles each time.
        backoff_max_s: Longest wait between two attempts.
        lease_s: How long a claimed notice stays reserved for its sender.
        create_tables: Create missing tables on start.
        clock: Returns the current UTC time.
    """

    _round_name = "notice delivery"

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        smtp_host: str | None = None,
        smtp_port: int = 25,
        smtp_username: str | None = None,
        smtp_password: str | None = None,
        smtp_starttls: bool = False,
        smtp_ssl: bool = False,
        smtp_timeout_s: float = 10.0,
        sender: str = "fraudline@localhost",
        sms_url: str | None = None,
        sms_token: str | None = None,
        sms_timeout_s: float = 10.0,
        sms_provider: SmsProvider | None = None,
        max_attempts: int = 8,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        lease_s: float = 300.0,
        create_tables: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not EMAIL_ADDRESS.match(sender):
            raise ConfigError(f"sender {sender!r} is not an email address; write name@domain")
        self._smtp = smtp_settings(
            smtp_host,
            smtp_port,
            username=smtp_username,
            password=smtp_password,
            starttls=smtp_starttls,
            use_ssl=smtp_ssl,
            timeout_s=smtp_timeout_s,
            sender=sender,
        )
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be 1 or more, not {max_attempts}")
        self._sms = sms_provider or (
            HttpSmsProvider(sms_url, sms_token, sms_timeout_s) if sms_url else None
        )
        engine = make_engine(database_url)
        if create_tables:
            ensure_schema(engine)
        self._sessions: sessionmaker = make_sessions(engine)
        self._outbox = Outbox(
            self._sessions,
            clock=clock,
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            lease_s=lease_s,
            kinds=[CHANNEL_KINDS[channel] for channel in self.channels],
        )
        logger.info(
            "customer notices by %s", " and ".join(self.channels) or "no channel: they wait"
        )

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this notifier can deliver: "email" and/or "sms"."""
        return tuple(
            channel
            for channel, sender in (("email", self._smtp), ("sms", self._sms))
            if sender is not None
        )

    def deliver_pending(self, limit: int = 100) -> DeliveryReport:
        """Sends up to `limit` due notices of the configured channels, oldest first."""
        if not self.channels:
            return DeliveryReport(0, 0, 0)
        sent, failed = self._send(self._outbox.claim(limit))
        return DeliveryReport(sent, failed, self._outbox.waiting())

    def deliver_batch(self, notification_ids: Sequence[str]) -> list[Action]:
        """Sends these notices now if due; one notification Action per id, same order.

        The state is "done" once sent, "queued" while the notice waits (its
        channel is not configured, or an attempt failed and will be retried),
        "failed" once its attempts are spent or the id is unknown. The detail
        starts with the channel, "email" or "sms".
        """
        ids = list(dict.fromkeys(notification_ids))
        if not ids:
            return []
        if self.channels:
            self._send(self._outbox.claim(len(ids), ids))
        states = self._outbox.states(ids)
        return [self._action(notice_id, states.get(notice_id)) for notice_id in notification_ids]

    def requeue_failed(self) -> int:
        """Gives notices whose attempts are spent a fresh start; returns how many."""
        return self._outbox.requeue_failed()

    def _action(self, notice_id: str, state: AlertState | None) -> Action:
        if state is None or state.kind not in KIND_CHANNELS:
            detail = "unknown notification id"
            return Action(kind="notification", state="failed", id=notice_id, detail=detail)
        channel = KIND_CHANNELS[state.kind]
        if state.state == "sent":
            return Action(kind="notification", state="done", id=notice_id, detail=channel)
        if state.state == "failed":
            detail = f"{channel}: not sent after {state.attempts} attempts; requeue it to retry"
            return Action(kind="notification", state="failed", id=notice_id, detail=detail)
        if channel not in self.channels:
            detail = f"{channel}: waiting in the outbox, no {channel} channel is configured"
        elif state.attempts:
            detail = (
                f"{channel}: waiting in the outbox, attempt {state.attempts} failed, "
                f"next at {state.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}"
            )
        else:
            detail = f"{channel}: waiting in the outbox"
        return Action(kind="notification", state="queued", id=notice_id, detail=detail)

    def _send(self, claimed: list[ClaimedAlert]) -> tuple[int, int]:
        if not claimed:
            return 0, 0
        emails = [notice for notice in claimed if notice.kind == CUSTOMER_EMAIL]
        texts = [notice for notice in claimed if notice.kind == CUSTOMER_SMS]
        sent_emails, failed_emails = self._send_emails(emails)
        sent_texts, failed_texts = self._send_texts(texts)
        sent, failed = sent_emails + sent_texts, failed_emails + failed_texts
        logger.info("customer notices: %d sent, %d failed", sent, failed)
        return sent, failed

    def _send_emails(self, notices: list[ClaimedAlert]) -> tuple[int, int]:
        if not notices:
            return 0, 0
        assert self._smtp is not None
        addresses = self._lookup(CustomerRow.customer_id, CustomerRow.email, notices)
        ready = []
        for notice in notices:
            address = addresses.get(notice.customer_id or "")
            if address and EMAIL_ADDRESS.match(address):
                ready.append((notice, address))
            else:
                self._outbox.mark_failed(notice, "no usable email address on file")
        if not ready:
            return 0, len(notices)

        messages = [(notice, [address]) for notice, address in ready]
        sent = send_emails(self._smtp, self._outbox, messages, id_header=_ID_HEADER)
        return sent, len(notices) - sent

    def _send_texts(self, notices: list[ClaimedAlert]) -> tuple[int, int]:
        if not notices:
            return 0, 0
        assert self._sms is not None
        phones = self._lookup(CustomerContactRow.customer_id, CustomerContactRow.phone, notices)
        sent = 0
        for notice in notices:
            phone = phones.get(notice.customer_id or "")
            if not phone or not E164.fullmatch(phone):
                self._outbox.mark_failed(notice, "no usable phone number on file")
                continue
            try:
                self._sms.send(notice.alert_id, phone, notice.text)
            except SmsError as error:
                self._outbox.mark_failed(notice, redact_error(error))
                continue
            self._outbox.mark_sent(notice, 1)
            sent += 1
        return sent, len(notices) - sent

    def _lookup(self, key: Any, column: Any, notices: list[ClaimedAlert]) -> dict[str, str]:
        """Each notice's customer's address, read at send time, in one query."""
        customers = sorted({notice.customer_id for notice in notices if notice.customer_id})
        if not customers:
            return {}
        with self._sessions() as session:
            rows = session.execute(select(key, column).where(key.in_(customers)))
            return {customer_id: value for customer_id, value in rows if value}


def notification_actions(outcome: LogOutcome, delivered: Mapping[str, Action]) -> list[Action]:
    """The notification Actions of one logged decision.

    Args:
        outcome: What FraudLogger.log_batch returned for the decision.
        delivered: CustomerNotifier.deliver_batch's Actions, by notice id.

    Returns one Action per queued notice (queued when delivery was not tried),
    or one "skipped" Action saying why no notice was queued, or nothing when
    the decision gets no notice.
    """
    if outcome.notification_ids:
        return [
            delivered.get(notice_id) or Action(kind="notification", state="queued", id=notice_id)
            for notice_id in outcome.notification_ids
        ]
    if outcome.notification_skipped:
        return [Action(kind="notification", state="skipped", detail=outcome.notification_skipped)]
    return []
