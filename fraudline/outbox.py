"""The outbox: alert and customer notice content, claiming due rows, sending over SMTP."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from types import TracebackType

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from fraudline.audit import lock_chain
from fraudline.errors import ConfigError
from fraudline.records import CaseEventRow, OutboxRow, utc, utc_now
from fraudline.schemas import DecisionResult, Transaction

logger = logging.getLogger(__name__)

# 12-19 digits, optionally grouped by single spaces or dashes: every card number length.
_CARD_RUN = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MAX_ERROR_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e]")
_MAX_MERCHANT_CHARS = 40
# One address, no display name: nothing a header could be split on.
EMAIL_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")

ALERT = "alert"
CUSTOMER_EMAIL = "customer_email"
CUSTOMER_SMS = "customer_sms"
# The outbox kind that carries each customer channel.
CHANNEL_KINDS: dict[str, str] = {"email": CUSTOMER_EMAIL, "sms": CUSTOMER_SMS}
KIND_CHANNELS: dict[str, str] = {kind: channel for channel, kind in CHANNEL_KINDS.items()}


def mask_card_numbers(text: str) -> str:
    """Replaces every run of 12-19 digits with its last four, e.g. ****4242."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "****" + digits[-4:]

    return _CARD_RUN.sub(_mask, text)


def _one_line(text: str) -> str:
    return " ".join(mask_card_numbers(text).split())


@dataclass(frozen=True)
class AlertContent:
    """The subject and the plain-text and HTML bodies of one alert email."""

    subject: str
    text: str
    html: str


def compose_alert(
    result: DecisionResult,
    case_id: str,
    transaction: Transaction | None = None,
    max_reasons: int = 3,
) -> AlertContent:
    """Writes a short alert: transaction, decision, score, top reasons and case id.

    Every value is put on one line and card-number-like digit runs are masked; the
    HTML body escapes every value.
    """
    decision = result.decision.upper()
    score = f"{result.risk_score:.0f}"
    subject = _one_line(
        f"Fraudline {decision}: {result.transaction_id} scored {score}/100 ({case_id})"
    )[:200]

    facts = [
        ("Transaction", result.transaction_id),
        ("Customer", result.customer_id),
        ("Decision", result.decision),
        ("Risk score", f"{score}/100 ({result.risk_level})"),
        ("Case", case_id),
    ]
    if transaction is not None:
        facts.append(
            (
                "Payment",
                f"{transaction.amount:,.2f} {transaction.currency} at "
                f"{transaction.merchant} ({transaction.merchant_category}), "
                f"{transaction.location}",
            )
        )
    facts = [(label, _one_line(value)) for label, value in facts]
    top = sorted(result.reasons, key=lambda reason: -reason.points)[:max_reasons]
    reasons = [(_one_line(reason.text), f"{reason.points:g}") for reason in top]

    text_lines = [f"{label}: {value}" for label, value in facts]
    text_lines.append("Top reasons:")
    text_lines += [f"- {reason} (+{points} points)" for reason, points in reasons]
    text_lines.append(f"Policy {_one_line(result.policy_version)}.")

    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in facts
    )
    items = "".join(
        f"<li>{html.escape(reason)} (+{html.escape(points)} points)</li>"
        for reason, points in reasons
    )
    body_html = (
        f"<html><body><h3>{html.escape(subject)}</h3><table>{rows}</table>"
        f"<p>Top reasons:</p><ul>{items}</ul></body></html>"
    )
    return AlertContent(subject, "\n".join(text_lines) + "\n", body_html)


@dataclass(frozen=True)
class NoticeContent:
    """A customer notice: the email subject and bodies, and the SMS text."""

    subject: str
    text: str
    html: str
    sms: str


def _merchant_name(merchant: str) -> str:
    # Merchant names come from the payment request: no control or bidi characters,
    # no card numbers, and short enough for an SMS.
    name = " ".join(mask_card_numbers(_CONTROL.sub(" ", merchant)).split())
    if len(name) > _MAX_MERCHANT_CHARS:
        name = name[: _MAX_MERCHANT_CHARS - 3].rstrip() + "..."
    return name or "a merchant"


def _money(amount: float, currency: str) -> str:
    code = "".join(ch for ch in currency.upper() if ch.isalpha())[:3] or "USD"
    if code == "USD":
        return f"${amount:,.2f}"
    return f"{amount:,.2f} {code}"


def compose_customer_notice(
    transaction: Transaction,
    decision: str,
    card_last4: str | None,
    hold_until: datetime | None = None,
) -> NoticeContent:
    """Writes the short notice a customer gets when a payment is blocked or reviewed.

    It names the amount, the merchant (cleaned and cut to 40 characters) and at
    most the card's last four digits, never more of the card number.
    """
    payment = f"{_money(transaction.amount, transaction.currency)} at " + _merchant_name(
        transaction.merchant
    )
    last4 = card_last4 if card_last4 and re.fullmatch(r"\d{4}", card_last4) else None
    card = f"your card ending {last4}" if last4 else "your card"
    if decision == "block":
        what = f"we blocked a payment of {payment} on {card}."
        advice = "If it was you, call your bank."
        subject = "We blocked a payment on your card"
    else:
        what = f"we are checking a payment of {payment} on {card}."
        advice = "If it was not you, call your bank."
        subject = "We are checking a payment on your card"
    hold = sms_hold = ""
    if hold_until is not None:
        end = utc(hold_until)
        hold = f" Your card is on hold until {end:%Y-%m-%d %H:%M} UTC."
        # Shorter, so the demo's notice fits one 160-character SMS.
        sms_hold = f" Card on hold until {end:%b} {end.day} {end:%H:%M} UTC."
    sms = f"Fraudline: {what}{sms_hold} {advice}"
    text = f"Fraudline: {what}{hold}\n\n{advice}\n"
    body_html = f"<html><body><p>{html.escape(f'Fraudline: {what}{hold}')}</p>"
    body_html += f"<p>{html.escape(advice)}</p></body></html>"
    return NoticeContent(subject, text, body_html, sms)


def redact_error(error: BaseException) -> str:
    """An SMTP error as text to store and log: no addresses, no card numbers."""
    text = f"{type(error).__name__}: {error}"
    return _EMAIL.sub("<address>", mask_card_numbers(text))[:_MAX_ERROR_CHARS]


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after `attempts` failed sends: base, 2x base, 4x base ... max."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class SmtpSettings:
    """Where and as whom alerts are sent; recipients come only from configuration."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    timeout_s: float = 10.0
    sender: str = "fraudline@localhost"
    recipients: tuple[str, ...] = ()


def smtp_settings(
    host: str | None,
    port: int,
    *,
    username: str | None,
    password: str | None,
    starttls: bool,
    use_ssl: bool,
    timeout_s: float,
    sender: str,
    recipients: Sequence[str] = (),
) -> SmtpSettings | None:
    """The settings of a sender's SMTP server, or None when `host` is not set."""
    if not host:
        return None
    if not 0 < port < 65536:
        raise ConfigError(f"smtp_port {port} is not a TCP port; use 1-65535")
    return SmtpSettings(
        host=host,
        port=port,
        username=username,
        password=password,
        starttls=starttls,
        use_ssl=use_ssl,
        timeout_s=timeout_s,
        sender=sender,
        recipients=tuple(recipients),
    )


class SmtpConnection:
    """One SMTP session, opened on enter and closed on exit."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpConnection:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connects, upgrades to TLS and logs in as configured."""
        settings = self._settings
        if settings.use_ssl:
            self._smtp = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            self._smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        try:
            if settings.starttls and not settings.use_ssl:
                self._smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                self._smtp.login(settings.username, settings.password or "")
        except BaseException:
            self._smtp.close()
            raise

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None

    def send(
        self,
        alert_id: str,
        subject: str,
        text: str,
        body_html: str,
        to: Sequence[str] | None = None,
        id_header: str = "X-Fraudline-Alert-Id",
    ) -> None:
        """Sends one message; its Message-ID carries its id so receivers can dedupe.

        It goes to `to` when given, else to the configured recipients.
        """
        assert self._smtp is not None, "use SmtpConnection as a context manager"
        settings = self._settings
        domain = settings.sender.rpartition("@")[2] or "localhost"
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = ", ".join(to if to is not None else settings.recipients)
        message["Subject"] = subject
        message["Message-ID"] = f"<{alert_id}@{domain}>"
        message[id_header] = alert_id
        message["Date"] = formatdate(usegmt=True)
        message.set_content(text)
        message.add_alternative(body_html, subtype="html")
        self._smtp.send_message(message)


@dataclass(frozen=True)
class ClaimedAlert:
    """An outbox row this process holds the right to send until its lease ends."""

    alert_id: str
    case_id: str
    transaction_id: str
    subject: str
    text: str
    html: str
    attempts: int
    claim_token: str
    kind: str = ALERT
    customer_id: str | None = None


@dataclass(frozen=True)
class AlertState:
    alert_id: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    kind: str = ALERT


class Outbox:
    """Claims due alerts and records each send attempt's outcome.

    Args:
        sessions: Session factory of the records database.
        clock: Returns the current UTC time; tests move it forward.
        max_attempts: Failed sends after which an alert is marked failed.
        backoff_base_s: Wait after the first failure; it doubles per failure.
        backoff_max_s: The longest wait between two attempts.
        lease_s: How long a claim lasts; a sender that dies mid-send releases
            its alerts when the lease ends, so none is lost.
        kinds: The row kinds this outbox claims, counts and requeues; each
            sender sees only the kinds it can deliver.
    """

    def __init__(
        self,
        sessions: sessionmaker,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = 8,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        lease_s: float = 300.0,
        kinds: Sequence[str] = (ALERT,),
    ) -> None:
        self._sessions = sessions
        self._kinds = list(kinds)
        self._clock = clock
        self.max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._lease = timedelta(seconds=lease_s)

    def claim(self, limit: int, alert_ids: Sequence[str] | None = None) -> list[ClaimedAlert]:
        """Claims up to `limit` due alerts so no other replica sends them meanwhile."""
        now = self._clock()
        token = secrets.token_hex(8)
        due = and_(
            OutboxRow.kind.in_(self._kinds),
            or_(
                and_(OutboxRow.state == "queued", OutboxRow.next_attempt_at <= now),
                and_(OutboxRow.state == "sending", OutboxRow.claimed_until < now),
            ),
        )
        with self._sessions.begin() as session:
            query = select(OutboxRow.alert_id).where(due)
            if alert_ids is not None:
                query = query.where(OutboxRow.alert_id.in_(list(alert_ids)))
            ids = session.scalars(query.order_by(OutboxRow.next_attempt_at).limit(limit)).all()
            if not ids:
                return []
            # `due` is checked again by the update itself: of two replicas that read
            # the same ids, only the first update matches.
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.alert_id.in_(ids), due)
                .values(state="sending", claim_token=token, claimed_until=now + self._lease)
                .execution_options(synchronize_session=False)
            )
        with self._sessions() as session:
            rows = session.scalars(select(OutboxRow).where(OutboxRow.claim_token == token)).all()
            return [
                ClaimedAlert(
                    row.alert_id,
                    row.case_id,
                    row.transaction_id,
                    row.subject,
                    row.body_text,
                    row.body_html,
                    row.attempts,
                    token,
                    row.kind,
                    row.customer_id,
                )
                for row in rows
            ]

    def mark_sent(self, alert: ClaimedAlert, recipients: int) -> bool:
        """Records a delivered message once, with an audit entry and a timeline event."""
        now = self._clock()
        with self._sessions.begin() as session:
            chain = lock_chain(session)
            result = session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.alert_id == alert.alert_id,
                    OutboxRow.claim_token == alert.claim_token,
                    OutboxRow.state == "sending",
                )
                .values(
                    state="sent",
                    sent_at=now,
                    attempts=OutboxRow.attempts + 1,
                    claim_token=None,
                    claimed_until=None,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                logger.warning(
                    "alert %s was sent after its claim lapsed; receivers dedupe on its Message-ID",
                    alert.alert_id,
                )
                return False
            if alert.kind == ALERT:
                kind, fields = "alert_sent", {"alert_id": alert.alert_id, "recipients": recipients}
                detail = f"alert {alert.alert_id} emailed to {recipients} recipient(s)"
            else:
                channel = KIND_CHANNELS.get(alert.kind, alert.kind)
                kind = "customer_notified"
                fields = {"notification_id": alert.alert_id, "channel": channel}
                detail = f"customer notified by {channel} ({alert.alert_id})"
            chain.append(
                kind,
                fields,
                at=now,
                transaction_id=alert.transaction_id,
                case_id=alert.case_id,
            )
            chain.flush()
            session.add(CaseEventRow(case_id=alert.case_id, at=now, kind=kind, detail=detail))
        return True

    def mark_failed(self, alert: ClaimedAlert, error: str) -> str:
        """Schedules the next attempt with exponential backoff; returns the new state."""
        now = self._clock()
        attempts = alert.attempts + 1
        gave_up = attempts >= self.max_attempts
        wait_s = backoff_s(attempts, self._backoff_base_s, self._backoff_max_s)
        state = "failed" if gave_up else "queued"
        with self._sessions.begin() as session:
            result = session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.alert_id == alert.alert_id,
                    OutboxRow.claim_token == alert.claim_token,
                )
                .values(
                    state=state,
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=wait_s),
                    claim_token=None,
                    claimed_until=None,
                    last_error=error,
                )
                .execution_options(synchronize_session=False)
            )
            if gave_up and result.rowcount:  # type: ignore[attr-defined]
                what = "alert" if alert.kind == ALERT else "notification"
                session.add(
                    CaseEventRow(
                        case_id=alert.case_id,
                        at=now,
                        kind=f"{what}_failed",
                        detail=f"{what} {alert.alert_id} not sent after {attempts} attempts",
                    )
                )
        logger.warning(
            "%s %s not sent (attempt %d of %d, %s): %s",
            alert.kind,
            alert.alert_id,
            attempts,
            self.max_attempts,
            "giving up" if gave_up else f"retry in {wait_s:.0f} s",
            error,
        )
        return state

    def waiting(self) -> int:
        """How many alerts are queued or being sent."""
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(
                        OutboxRow.state.in_(("queued", "sending")),
                        OutboxRow.kind.in_(self._kinds),
                    )
                )
                or 0
            )

    def states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        with self._sessions() as session:
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.alert_id.in_(list(alert_ids)))
            ).all()
            return {
                row.alert_id: AlertState(
                    row.alert_id,
                    row.state,
                    row.attempts,
                    utc(row.next_attempt_at),
                    row.last_error,
                    row.kind,
                )
                for row in rows
            }

    def requeue_failed(self) -> int:
        """Gives every failed alert a fresh set of attempts, due now."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(OutboxRow)
                .where(OutboxRow.state == "failed", OutboxRow.kind.in_(self._kinds))
                .values(state="queued", attempts=0, next_attempt_at=self._clock())
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


def send_emails(
    settings: SmtpSettings,
    outbox: Outbox,
    messages: Sequence[tuple[ClaimedAlert, Sequence[str] | None]],
    id_header: str = "X-Fraudline-Alert-Id",
) -> int:
    """Emails claimed rows over one SMTP session, marking each sent or failed.

    Each message goes to its own addresses, or to the configured recipients
    when they are None. A session that cannot open fails every row. Returns
    how many were sent.
    """
    connection = SmtpConnection(settings)
    try:
        connection.open()
    except (smtplib.SMTPException, OSError) as error:
        reason = redact_error(error)
        for row, _ in messages:
            outbox.mark_failed(row, reason)
        return 0

    sent = 0
    try:
        for row, to in messages:
            try:
                connection.send(
                    row.alert_id, row.subject, row.text, row.html, to=to, id_header=id_header
                )
            except (smtplib.SMTPException, OSError) as error:
                outbox.mark_failed(row, redact_error(error))
                continue
            outbox.mark_sent(row, len(to if to is not None else settings.recipients))
            sent += 1
    finally:
        connection.close()
    return sent


class DeliveryLoop:
    """Runs a sender's `deliver_pending` on a timer, in a thread or on an event loop.

    A round that fails on the database is logged and the next one retries; the
    rows stay in the outbox meanwhile.
    """

    # Names the round in the log line of a failed one.
    _round_name = "outbox delivery"

    def deliver_pending(self, limit: int = 100) -> object:
        raise NotImplementedError

    def run_forever(self, interval_s: float = 30.0, stop: threading.Event | None = None) -> None:
        """Delivers due rows every `interval_s` seconds until `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self._deliver_logging_errors()
            stop.wait(interval_s)

    async def run_periodically(self, interval_s: float = 30.0) -> None:
        """The same loop for an event loop: start it with asyncio.create_task."""
        while True:
            await asyncio.to_thread(self._deliver_logging_errors)
            await asyncio.sleep(interval_s)

    def _deliver_logging_errors(self) -> None:
        try:
            self.deliver_pending()
        except SQLAlchemyError:
            logger.exception("%s round failed on the database", self._round_name)
