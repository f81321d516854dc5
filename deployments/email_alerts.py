"""Emails the alerts waiting in the outbox, with retries and exponential backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fraudline.db import make_engine, make_sessions
from fraudline.errors import ConfigError
from fraudline.outbox import (
    EMAIL_ADDRESS,
    AlertState,
    ClaimedAlert,
    DeliveryLoop,
    Outbox,
    SmtpSettings,
    send_emails,
    smtp_settings,
)
from fraudline.records import ensure_schema, utc_now
from fraudline.schemas import Action

logger = logging.getLogger(__name__)

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    # Waits on SMTP, not the CPU; two replicas keep alerts flowing if one dies.
    "ray_actor_options": {"num_cpus": 0.1},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 4,
    },
    "max_ongoing_requests": 16,
}


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery round did.

    Attributes:
        sent: Alerts emailed in this round.
        failed: Send attempts that failed in this round (they are retried later,
            or marked failed once their attempts are spent).
        pending: Alerts still waiting in the outbox afterwards.
    """

    sent: int
    failed: int
    pending: int


class EmailAlerts(DeliveryLoop):
    """Sends outbox alerts to the configured recipients, each exactly once.

    Rows are claimed before they are sent so two replicas never send the same
    alert, and each email's Message-ID is the alert id so a receiver can drop a
    duplicate sent after a crash. Without an SMTP host the alerts wait in the
    outbox, queued, and nothing is lost.

    Only outbox rows of kind "alert" are touched here; customer notices in the
    same outbox are CustomerNotifier's (deployments/notifier.py).

    Args:
        database_url: SQLite or PostgreSQL URL of the records database.
        smtp_host: SMTP server; None keeps every alert queued.
        smtp_port: SMTP port.
        smtp_username: Login name, when the server wants one.
        smtp_password: Login password.
        smtp_starttls: Upgrade the connection with STARTTLS before logging in.
        smtp_ssl: Connect with TLS from the start (usually port 465).
        smtp_timeout_s: Socket timeout of each SMTP operation.
        sender: The From address.
        recipients: Who gets the alerts; only ever taken from configuration.
        max_attempts: Failed sends after which an alert is marked failed.
        backoff_base_s: Wait after the first failed send; doubles each time.
        backoff_max_s: Longest wait between two attempts.
        lease_s: How long a claimed alert stays reserved for its sender.
        create_tables: Create missing tables on start.
        clock: Returns the current UTC time.
    """

    _round_name = "alert delivery"

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        smtp_host: str | None = None,
        smtp_port: int = 25,
        smtp_username: str | None = None,
        smtp_password: str | None = None,
        smtp_starttls: bool = False,
        sender: str = "fraudline@localhost",
        recipients: Sequence[str] = (),
        max_attempts: int = 8,
        *,
        smtp_ssl: bool = False,
        smtp_timeout_s: float = 10.0,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        lease_s: float = 300.0,
        create_tables: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._smtp = _smtp_settings(
            smtp_host,
            smtp_port,
            smtp_username,
            smtp_password,
            smtp_starttls,
            smtp_ssl,
            smtp_timeout_s,
            sender,
            recipients,
        )
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be 1 or more, not {max_attempts}")
        engine = make_engine(database_url)
        if create_tables:
            ensure_schema(engine)
        self._outbox = Outbox(
            make_sessions(engine),
            clock=clock,
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            lease_s=lease_s,
        )
        if self._smtp is None:
            logger.info("no SMTP host configured: alerts wait in the outbox")

    @property
    def configured(self) -> bool:
        """Whether an SMTP server is configured."""
        return self._smtp is not None

    def deliver_pending(self, limit: int = 100) -> DeliveryReport:
        """Sends up to `limit` due alerts, oldest first."""
        if self._smtp is None:
            return DeliveryReport(0, 0, self._outbox.waiting())
        sent, failed = self._send(self._outbox.claim(limit))
        return DeliveryReport(sent, failed, self._outbox.waiting())

    def deliver_batch(self, alert_ids: Sequence[str]) -> list[Action]:
        """Sends these alerts now if due; one alert Action per id, same order.

        The state is "done" once the alert was emailed, "queued" while it waits in
        the outbox (no SMTP server, or a failed attempt to retry), "failed" once
        its attempts are spent or the id is unknown.
        """
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return []
        if self._smtp is not None:
            self._send(self._outbox.claim(len(ids), ids))
        states = self._outbox.states(ids)
        return [self._action(alert_id, states.get(alert_id)) for alert_id in alert_ids]

    def _action(self, alert_id: str, state: AlertState | None) -> Action:
        if state is None:
            return Action(kind="alert", state="failed", id=alert_id, detail="unknown alert id")
        if state.state == "sent":
            recipients = len(self._smtp.recipients) if self._smtp else 0
            detail = f"emailed to {recipients} recipient(s)"
            return Action(kind="alert", state="done", id=alert_id, detail=detail)
        if state.state == "failed":
            detail = f"not sent after {state.attempts} attempts; requeue it to retry"
            return Action(kind="alert", state="failed", id=alert_id, detail=detail)
        if self._smtp is None:
            detail = "waiting in the outbox: no SMTP server is configured"
        elif state.attempts:
            detail = (
                f"waiting in the outbox: attempt {state.attempts} failed, next at "
                f"{state.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}"
            )
        else:
            detail = "waiting in the outbox"
        return Action(kind="alert", state="queued", id=alert_id, detail=detail)

    def _send(self, claimed: list[ClaimedAlert]) -> tuple[int, int]:
        if not claimed:
            return 0, 0
        assert self._smtp is not None
        sent = send_emails(self._smtp, self._outbox, [(alert, None) for alert in claimed])
        failed = len(claimed) - sent
        logger.info("alert delivery: %d sent, %d failed", sent, failed)
        return sent, failed

    def requeue_failed(self) -> int:
        """Gives alerts whose attempts are spent a fresh start; returns how many."""
        return self._outbox.requeue_failed()


def _smtp_settings(
    host: str | None,
    port: int,
    username: str | None,
    password: str | None,
    starttls: bool,
    use_ssl: bool,
    timeout_s: float,
    sender: str,
    recipients: Sequence[str],
) -> SmtpSettings | None:
    if isinstance(recipients, str):
        raise ConfigError("recipients must be a list of addresses, not one string")
    for address in [sender, *recipients]:
        if not EMAIL_ADDRESS.match(address):
            raise ConfigError(f"{address!r} is not an email address; write it as name@domain")
    if host and not recipients:
        raise ConfigError(
            f"smtp_host is {host!r} but recipients is empty; list who gets the alerts"
        )
    return smtp_settings(
        host,
        port,
        username=username,
        password=password,
        starttls=starttls,
        use_ssl=use_ssl,
        timeout_s=timeout_s,
        sender=sender,
        recipients=recipients,
    )
