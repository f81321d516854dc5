"""Record tables: decisions, cases, timelines, audit trail, holds, outbox and reports."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from fraudline.db import Base, create_schema
from fraudline.errors import InvalidInput
from fraudline.schemas import Decision, DecisionResult


class DecisionRow(Base):
    """Every logged decision, approvals included, so a retry gets the stored answer."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_decided", "decided_at"),)

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    decision: Mapped[str] = mapped_column(String(10))
    risk_score: Mapped[float] = mapped_column(Float)
    policy_version: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    result_json: Mapped[str] = mapped_column(Text)
    audit_entry_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[str | None] = mapped_column(String(20))
    alert_id: Mapped[str | None] = mapped_column(String(20))
    # The hold this decision placed, extended or was blocked by.
    hold_id: Mapped[str | None] = mapped_column(String(20))
    # Copied out of result_json so period summaries read two small columns.
    latency_ms: Mapped[float | None] = mapped_column(Float)
    reason_codes: Mapped[str] = mapped_column(Text, default="")


class CaseRow(Base):
    """One case per transaction that was not approved."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_created", "created_at"),)

    case_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    # Unique so that two replicas retrying the same payment can never open two cases.
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    decision: Mapped[str] = mapped_column(String(10))
    risk_score: Mapped[float] = mapped_column(Float)
    policy_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    assignee: Mapped[str | None] = mapped_column(String(100))
    # "fraud" or "legitimate" once an analyst has labelled the case.
    label: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transaction_json: Mapped[str] = mapped_column(Text)
    # The full DecisionResult as the agent returned it: the case's evidence.
    evidence_json: Mapped[str] = mapped_column(Text)


class CaseEventRow(Base):
    """One step in a case's timeline (opened, alert queued, alert sent, report written)."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class CaseNoteRow(Base):
    """A note an analyst added to a case; its text is also in its audit entry."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    audit_entry_id: Mapped[int] = mapped_column(Integer)


class CaseTagRow(Base):
    """One tag on one case."""

    __tablename__ = "case_tags"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class AuditChainHeadRow(Base):
    """The single row every append locks: the last entry's number and hash."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    # Bumped first in every append so the write lock is taken before anything is read.
    lock_count: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntryRow(Base):
    """An append-only audit entry; `entry_hash` = sha256(prev_hash + content)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    transaction_id: Mapped[str | None] = mapped_column(String(64), index=True)
    case_id: Mapped[str | None] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """A message waiting to be sent; written in the same transaction as its case.

    `kind` says who gets it: "alert" goes to the fraud team, "customer_email" and
    "customer_sms" to the customer, whose address is read when it is sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    alert_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    transaction_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="alert", server_default="alert")
    customer_id: Mapped[str | None] = mapped_column(String(64))
    # queued -> sending -> sent; failed once max_attempts is spent.
    state: Mapped[str] = mapped_column(String(10), default="queued")
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))


class HoldRow(Base):
    """A hold on a customer's card: their payments are blocked until `until`.

    At most one hold per customer is active at a time; a block while it lasts
    moves its end, never opens a second one. Released and expired holds stay
    as the record of what was done.
    """

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_active", "customer_id", "state", "until"),)

    hold_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    # active -> released (by an analyst) | expired (replaced after its end).
    state: Mapped[str] = mapped_column(String(10), default="active")
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    placed_by: Mapped[str] = mapped_column(String(100))
    # The case whose block set the current end; None for a hold placed by hand.
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.case_id"), index=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(100))
    release_reason: Mapped[str | None] = mapped_column(String(500))


class CustomerContactRow(Base):
    """A customer's phone number for SMS notices, in E.164 form (+15551234567)."""

    __tablename__ = "customer_contacts"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportRow(Base):
    """A compliance report of one case, stored as JSON and HTML."""

    __tablename__ = "reports"

    report_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_json: Mapped[str] = mapped_column(Text)
    report_html: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


# A phone number as SMS providers take it: +, country code, 7-15 digits in all.
E164 = re.compile(r"\+[1-9]\d{6,14}")

CaseStatus = Literal["open", "investigating", "confirmed_fraud", "false_positive", "closed"]
Label = Literal["fraud", "legitimate"]

# The case workflow: open -> investigating -> confirmed_fraud | false_positive -> closed.
# A label may be corrected until the case is closed.
CASE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("investigating",),
    "investigating": ("confirmed_fraud", "false_positive"),
    "confirmed_fraud": ("false_positive", "closed"),
    "false_positive": ("confirmed_fraud", "closed"),
    "closed": (),
}
LABEL_STATUS: dict[str, str] = {"fraud": "confirmed_fraud", "legitimate": "false_positive"}


HoldState = Literal["active", "released", "expired"]


class HoldInfo(BaseModel):
    """A hold on a customer's card as the API and the agent read it.

    Attributes:
        hold_id: Id of the hold, e.g. HOLD-3F9A1C2B7D10.
        customer_id: Whose card is held.
        until: When the hold ends by itself (UTC).
        case_id: The case whose block set the current end; None when placed by hand.
        state: active, released (by an analyst) or expired.
        placed_at: When the hold was placed.
        placed_by: "fraudline" for a hold a block placed, else the analyst.
        transaction_id: The payment whose block set the current end.
        released_at: When an analyst released it.
        released_by: Who released it.
    """

    model_config = ConfigDict(frozen=True)

    hold_id: str
    customer_id: str
    until: datetime
    case_id: str | None = None
    state: HoldState = "active"
    placed_at: datetime | None = None
    placed_by: str | None = None
    transaction_id: str | None = None
    released_at: datetime | None = None
    released_by: str | None = None


class TimelineEvent(BaseModel):
    """One step of a case's timeline."""

    at: datetime
    kind: str
    detail: str = ""


class CaseSummary(BaseModel):
    """One line of a case list."""

    case_id: str
    transaction_id: str
    customer_id: str
    decision: Decision
    risk_score: float
    policy_version: str
    status: CaseStatus
    created_at: datetime
    assignee: str | None = None
    label: Label | None = None
    updated_at: datetime | None = None


class CasePage(BaseModel):
    """One page of a filtered case list, newest first, with the total that matched."""

    items: list[CaseSummary]
    total: int
    limit: int
    offset: int


class CaseNote(BaseModel):
    """A note on a case."""

    id: int
    at: datetime
    author: str
    text: str


class CaseRecord(CaseSummary):
    """A case as the API returns it: the decision, its evidence and its timeline."""

    transaction: dict[str, Any] = Field(default_factory=dict)
    evidence: DecisionResult
    timeline: list[TimelineEvent] = Field(default_factory=list)
    notes: list[CaseNote] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    alert_id: str | None = None
    alert_state: str | None = None
    report_id: str | None = None
    hold_id: str | None = Field(
        default=None, description="The active hold this case's block placed, if any."
    )
    hold_until: datetime | None = None
    hold_release_offered: bool = Field(
        default=False,
        description=(
            "True when the case is labelled legitimate while its hold is active: "
            "DELETE /v1/customers/{id}/hold releases it."
        ),
    )


class PolicyQuality(BaseModel):
    """How often one policy version's flags were right, by analysts' labels.

    Precision is None until at least one case of that decision is labelled.
    """

    policy_version: str
    cases: int
    labelled: int
    blocks_labelled: int
    blocks_fraud: int
    block_precision: float | None
    reviews_labelled: int
    reviews_fraud: int
    review_precision: float | None
    false_positives: int
    false_positive_rate: float | None


class QualityReport(BaseModel):
    """Label-based quality of every policy version that opened a case."""

    policies: list[PolicyQuality]


def ensure_schema(engine: Engine) -> None:
    """Creates missing tables, tolerating a replica that creates them at the same time."""
    try:
        create_schema(engine)
    except (OperationalError, ProgrammingError):
        # Another process won the race between "does it exist" and CREATE TABLE;
        # the second pass finds its tables.
        create_schema(engine)


def new_id(prefix: str) -> str:
    """An id such as CASE-3F9A1C2B7D10: the prefix and 12 random hex digits."""
    return f"{prefix}-{secrets.token_hex(6).upper()}"


def utc(moment: datetime) -> datetime:
    """The moment in UTC; SQLite hands datetimes back without their zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def save_phone_numbers(sessions: sessionmaker, phones: Mapping[str, str]) -> int:
    """Stores customers' phone numbers for SMS notices; returns how many were written.

    Raises:
        InvalidInput: A number is not in E.164 form, e.g. +15551234567.
    """
    for customer_id, phone in phones.items():
        if not isinstance(phone, str) or not E164.fullmatch(phone):
            raise InvalidInput(
                f"phone number of customer {customer_id!r} is not in E.164 form; "
                "write it as + country code and number, e.g. +15551234567"
            )
    if not phones:
        return 0
    now = utc_now()
    with sessions.begin() as session:
        for customer_id, phone in phones.items():
            session.merge(CustomerContactRow(customer_id=customer_id, phone=phone, updated_at=now))
    return len(phones)
