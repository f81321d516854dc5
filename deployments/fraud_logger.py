"""Logs decisions: history, audit trail, cases, block alerts, holds, customer notices."""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from fraudline.audit import (
    ChainAppender,
    ChainReport,
    lock_chain,
    sha256_hex,
    verify_chain,
)
from fraudline.db import make_engine, make_sessions
from fraudline.errors import ConfigError, InvalidInput, NotFound, StoreUnavailable
from fraudline.history import CustomerRow, TransactionRow
from fraudline.outbox import ALERT, CHANNEL_KINDS, compose_alert, compose_customer_notice
from fraudline.policy import ACCOUNT_ON_HOLD
from fraudline.records import (
    CASE_TRANSITIONS,
    LABEL_STATUS,
    CaseEventRow,
    CaseNote,
    CaseNoteRow,
    CasePage,
    CaseRecord,
    CaseRow,
    CaseSummary,
    CaseTagRow,
    CustomerContactRow,
    DecisionRow,
    HoldInfo,
    HoldRow,
    OutboxRow,
    PolicyQuality,
    QualityReport,
    ReportRow,
    TimelineEvent,
    ensure_schema,
    new_id,
    utc,
    utc_now,
)
from fraudline.schemas import Action, DecisionResult, Transaction

logger = logging.getLogger(__name__)

MAX_PAGE = 500
MAX_NOTE_CHARS = 5000
MAX_TAGS = 20
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_TAG = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_STATUS_LABEL = {status: label for label, status in LABEL_STATUS.items()}

# Who placed a hold that a block placed.
SYSTEM_ACTOR = "fraudline"
# Holds last at most this long, whoever sets them.
MAX_HOLD_HOURS = 24 * 90
MAX_REASON_CHARS = 500

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    # Writes are serialised on the audit chain, so more replicas add little.
    "ray_actor_options": {"num_cpus": 0.5},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    },
    "max_ongoing_requests": 32,
}


@dataclass(frozen=True)
class LogOutcome:
    """What logging one decision wrote, or found already written on a retry.

    Attributes:
        transaction_id: The payment the decision is about.
        case_id: The case opened for a review or block, else None.
        audit_entry_id: Sequence number of the decision's audit entry.
        alert_id: The outbox alert queued for a block, else None.
        created: False when the transaction was logged before (a retry).
        hold_id: The hold this decision placed, extended or was blocked by.
        hold_until: When that hold ends.
        hold_change: "placed" (a new hold), "extended" (its end moved later),
            "kept" (the hold already lasted longer), "on_hold" (the payment was
            blocked because of the hold); None otherwise and on a retry.
        notification_ids: Customer notices queued in the outbox, one per channel.
        notification_skipped: Why no customer notice was queued for a decision
            that would get one (e.g. "no channel configured"); else None.
    """

    transaction_id: str
    case_id: str | None
    audit_entry_id: int
    alert_id: str | None
    created: bool
    hold_id: str | None = None
    hold_until: datetime | None = None
    hold_change: str | None = None
    notification_ids: tuple[str, ...] = ()
    notification_skipped: str | None = None


class FraudLogger:
    """Writes each decision, its case, alert, hold and notices in one transaction.

    Every decision gets a hash-chained audit entry; every review or block gets a
    case holding the full decision as evidence; every block gets an outbox alert,
    written together with its case so that no case exists without its alert.
    Every block also places a hold on the customer's card (or moves an active
    hold's end later) and queues a notice to the customer per configured channel.

    A block whose reason is `account_on_hold` (the agent gives it while a hold is
    active) is logged with its audit entry and a timeline event on the hold's
    case, but opens no case, alert, hold or notice: the hold's case covers it.
    Logging a transaction again returns what was stored the first time.

    Args:
        database_url: SQLite or PostgreSQL URL of the records database.
        chunk_size: Decisions written per database transaction.
        create_tables: Create missing tables on start.
        clock: Returns the current UTC time.
        hold_hours: How long a block holds the customer's card; 0 places no holds.
        notify_on_review: Notify customers of reviews too, not only of blocks.
        notify_channels: Channels that can deliver customer notices: "email"
            and/or "sms". Name only those the notifier is configured for; with
            none, no notice is queued and the outcome says so.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        chunk_size: int = 500,
        create_tables: bool = True,
        clock: Callable[[], datetime] = utc_now,
        hold_hours: float = 24.0,
        notify_on_review: bool = False,
        notify_channels: Sequence[str] = (),
    ) -> None:
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be 1 or more, not {chunk_size}")
        if not 0 <= hold_hours <= MAX_HOLD_HOURS:
            raise ConfigError(
                f"hold_hours {hold_hours} is out of range; use 0 (no holds) to {MAX_HOLD_HOURS}"
            )
        if isinstance(notify_channels, str) or not set(notify_channels) <= set(CHANNEL_KINDS):
            raise ConfigError(
                f"notify_channels {notify_channels!r} is not a list of "
                f"{' and/or '.join(CHANNEL_KINDS)}"
            )
        engine = make_engine(database_url)
        if create_tables:
            ensure_schema(engine)
        self._sessions = make_sessions(engine)
        self._chunk_size = chunk_size
        self._clock = clock
        self._policy = _LogPolicy(
            hold=timedelta(hours=hold_hours),
            notify_on_review=notify_on_review,
            channels=tuple(dict.fromkeys(notify_channels)),
        )

    def log_batch(self, items: Sequence[tuple[Transaction, DecisionResult]]) -> list[LogOutcome]:
        """Logs each (transaction, decision) pair; one outcome per pair, same order."""
        for transaction, result in items:
            if transaction.transaction_id != result.transaction_id:
                raise InvalidInput(
                    f"decision for {result.transaction_id!r} was paired with transaction "
                    f"{transaction.transaction_id!r}; pair each decision with its own"
                )
        outcomes: list[LogOutcome] = []
        for start in range(0, len(items), self._chunk_size):
            outcomes += self._log_chunk(items[start : start + self._chunk_size])
        return outcomes

    def _log_chunk(self, chunk: Sequence[tuple[Transaction, DecisionResult]]) -> list[LogOutcome]:
        try:
            return self._write(chunk)
        except IntegrityError:
            # Only reachable when a row appeared outside the chain lock; the second
            # pass finds it and returns it as a replay.
            logger.info("log batch hit a duplicate; retrying it once as a replay")
        except OperationalError as error:
            raise StoreUnavailable(
                f"records database refused the write ({type(error.orig).__name__}); "
                "check that it is reachable and not locked"
            ) from error
        try:
            return self._write(chunk)
        except (IntegrityError, OperationalError) as error:
            raise StoreUnavailable(
                f"records database refused the write twice ({type(error.orig).__name__})"
            ) from error

    def _write(self, chunk: Sequence[tuple[Transaction, DecisionResult]]) -> list[LogOutcome]:
        now = self._clock()
        with self._sessions.begin() as session:
            chain = lock_chain(session)
            known = _stored_outcomes(session, [tx.transaction_id for tx, _ in chunk])
            fresh = [result for tx, result in chunk if tx.transaction_id not in known]
            rows = _NewRows(
                self._policy,
                _current_holds(session, fresh, now),
                _contacts(session, fresh, self._policy),
            )
            outcomes = []
            for transaction, result in chunk:
                outcome = known.get(transaction.transaction_id)
                if outcome is None:
                    outcome = rows.add(transaction, result, chain, now)
                    known[transaction.transaction_id] = outcome
                    outcomes.append(outcome)
                else:
                    outcomes.append(_replayed(outcome))
            rows.insert(session, now)
            chain.flush()
        created = sum(outcome.created for outcome in outcomes)
        logger.debug("logged %d decisions, %d were replays", created, len(outcomes) - created)
        return outcomes

    def latest_decisions(self, transaction_ids: Sequence[str]) -> list[DecisionResult | None]:
        """The decision stored for each transaction, None where there is none; same order.

        A batch of retries is answered with them from one read.
        """
        wanted = sorted(set(transaction_ids))
        stored: dict[str, str] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), self._chunk_size):
                page = wanted[start : start + self._chunk_size]
                stored.update(
                    session.execute(
                        select(DecisionRow.transaction_id, DecisionRow.result_json).where(
                            DecisionRow.transaction_id.in_(page)
                        )
                    ).tuples().all()
                )
        return [
            DecisionResult.model_validate_json(stored[tid]) if tid in stored else None
            for tid in transaction_ids
        ]

    def get_case(self, case_id: str) -> CaseRecord:
        """A case with its evidence, timeline, notes, tags, alert state and report id."""
        now = self._clock()
        with self._sessions() as session:
            return _case_record(session, _case_or_raise(session, case_id), now)

    def recent_cases(
        self, limit: int = 50, decision: str | None = None, customer_id: str | None = None
    ) -> list[CaseSummary]:
        """The newest cases first, optionally of one decision or one customer."""
        query = select(CaseRow).order_by(CaseRow.created_at.desc()).limit(max(1, min(limit, 500)))
        if decision:
            query = query.where(CaseRow.decision == decision)
        if customer_id:
            query = query.where(CaseRow.customer_id == customer_id)
        with self._sessions() as session:
            return [_summary(case) for case in session.scalars(query)]

    def list_cases(
        self,
        status: str | None = None,
        decision: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        assignee: str | None = None,
        tag: str | None = None,
        customer_id: str | None = None,
    ) -> CasePage:
        """One page of cases, newest first, and how many matched in all.

        `since` is inclusive and `until` exclusive, both on the case's creation time.

        Raises:
            InvalidInput: A filter has a value no case can have, or the page is out
                of bounds (limit 1-500, offset 0 or more).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit {limit} is out of range; ask for 1-{MAX_PAGE} cases")
        if offset < 0:
            raise InvalidInput(f"offset {offset} is negative; start at 0")
        filters = _case_filters(
            status, decision, min_score, max_score, since, until, assignee, customer_id
        )
        if tag is not None:
            tagged = select(CaseTagRow.case_id).where(CaseTagRow.tag == _tag(tag))
            filters.append(CaseRow.case_id.in_(tagged))
        query = select(CaseRow).where(*filters)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(CaseRow.created_at.desc(), CaseRow.case_id)
                .limit(limit)
                .offset(offset)
            )
            items = [_summary(case) for case in rows]
        return CasePage(items=items, total=total, limit=limit, offset=offset)

    def update_case(
        self,
        case_id: str,
        status: str | None = None,
        assignee: str | None = None,
        *,
        actor: str,
    ) -> CaseRecord:
        """Moves a case along its workflow and/or (re)assigns it; "" unassigns.

        Moving to confirmed_fraud or false_positive labels the case as
        `label_case` does. Each change is a timeline event and an audit entry;
        a change to the value the case already has writes nothing.

        Raises:
            NotFound: No such case.
            InvalidInput: The status is unknown or not reachable from the
                case's current one (the message lists the allowed ones).
        """
        who = _actor(actor)
        # None when unassigning ("") as well as when the assignee stays.
        wanted_assignee = (_assignee(assignee) or None) if assignee is not None else None
        if status is not None and status not in CASE_TRANSITIONS:
            raise InvalidInput(
                f"status {status!r} is unknown; use one of {', '.join(CASE_TRANSITIONS)}"
            )

        def change(case: CaseRow, _session: Session) -> list[_Change]:
            changes = []
            if status is not None and status != case.status:
                allowed = CASE_TRANSITIONS[case.status]
                if status not in allowed:
                    raise InvalidInput(
                        f"case {case.case_id} is {case.status}; it can move to "
                        f"{' or '.join(allowed) or 'nothing (closed is final)'}, "
                        f"not {status}"
                    )
                changes.append(_status_change(case, status, who))
            if assignee is not None and wanted_assignee != case.assignee:
                before, case.assignee = case.assignee, wanted_assignee
                detail = (
                    f"assigned to {case.assignee} by {who}"
                    if case.assignee
                    else f"unassigned from {before} by {who}"
                )
                changes.append(_Change("assigned", detail, {"from": before, "to": case.assignee}))
            return changes

        return self._change_case(case_id, who, change)

    def label_case(self, case_id: str, label: str, *, actor: str) -> CaseRecord:
        """Records an analyst's verdict: "fraud" or "legitimate".

        Sets the case to confirmed_fraud or false_positive from any status but
        closed, and marks the payment in the history so models can learn from it.

        Raises:
            NotFound: No such case.
            InvalidInput: The label is neither "fraud" nor "legitimate", or the
                case is closed.
        """
        who = _actor(actor)
        if label not in LABEL_STATUS:
            raise InvalidInput(f"label {label!r} is unknown; use fraud or legitimate")

        def change(case: CaseRow, _session: Session) -> list[_Change]:
            if case.status == "closed":
                raise InvalidInput(
                    f"case {case.case_id} is closed; a closed case cannot be relabelled"
                )
            if case.label == label and case.status == LABEL_STATUS[label]:
                return []
            return [_status_change(case, LABEL_STATUS[label], who)]

        return self._change_case(case_id, who, change)

    def add_note(self, case_id: str, text: str, *, actor: str) -> CaseRecord:
        """Adds a note; the audit entry holds the note's sha256 so edits show.

        Raises:
            NotFound: No such case.
            InvalidInput: The note is empty or longer than 5,000 characters.
        """
        who = _actor(actor)
        body = text.strip()
        if not 1 <= len(body) <= MAX_NOTE_CHARS:
            raise InvalidInput(
                f"a note has 1-{MAX_NOTE_CHARS:,} characters, this one {len(body):,}"
            )

        def change(case: CaseRow, session: Session) -> list[_Change]:
            note = CaseNoteRow(case_id=case.case_id, author=who, text=body, audit_entry_id=0)
            session.add(note)
            fields = {"text_sha256": sha256_hex(body), "chars": len(body)}
            return [_Change("note", f"note by {who} ({len(body)} characters)", fields, note)]

        return self._change_case(case_id, who, change)

    def add_tags(self, case_id: str, tags: Sequence[str], *, actor: str) -> CaseRecord:
        """Adds tags (lower-cased; letters, digits, . _ -; up to 32 characters).

        Raises:
            NotFound: No such case.
            InvalidInput: A tag does not fit that shape, or more than 20 are given.
        """
        who = _actor(actor)
        if isinstance(tags, str) or not 1 <= len(tags) <= MAX_TAGS:
            raise InvalidInput(f'give a list of 1-{MAX_TAGS} tags, e.g. ["card-testing"]')
        wanted = list(dict.fromkeys(_tag(tag) for tag in tags))

        def change(case: CaseRow, session: Session) -> list[_Change]:
            present = set(
                session.scalars(select(CaseTagRow.tag).where(CaseTagRow.case_id == case.case_id))
            )
            added = [tag for tag in wanted if tag not in present]
            if not added:
                return []
            session.add_all(CaseTagRow(case_id=case.case_id, tag=tag) for tag in added)
            detail = f"tagged {', '.join(added)} by {who}"
            return [_Change("tagged", detail, {"tags": added})]

        return self._change_case(case_id, who, change)

    def quality_metrics(self) -> QualityReport:
        """Per policy version: precision of blocks and reviews and the false-positive
        rate, all among cases analysts have labelled."""
        query = select(
            CaseRow.policy_version, CaseRow.decision, CaseRow.label, func.count()
        ).group_by(CaseRow.policy_version, CaseRow.decision, CaseRow.label)
        counts: dict[str, dict[tuple[str, str | None], int]] = defaultdict(dict)
        with self._sessions() as session:
            for version, decision, label, count in session.execute(query):
                counts[version][(decision, label)] = count
        return QualityReport(
            policies=[_policy_quality(version, counts[version]) for version in sorted(counts)]
        )

    def _change_case(
        self, case_id: str, actor: str, change: Callable[[CaseRow, Session], list[_Change]]
    ) -> CaseRecord:
        now = self._clock()
        try:
            with self._sessions.begin() as session:
                chain = lock_chain(session)
                case = _case_or_raise(session, case_id)
                changes = change(case, session)
                for item in changes:
                    _record_change(session, chain, case, item, actor, now)
                if changes:
                    case.updated_at = now
                chain.flush()
                record = _case_record(session, case, now)
        except OperationalError as error:
            raise StoreUnavailable(
                f"records database refused the change to case {case_id} "
                f"({type(error.orig).__name__}); try again"
            ) from error
        if changes:
            logger.info("case %s: %s", case_id, ", ".join(item.kind for item in changes))
        return record

    def verify_chain(self) -> ChainReport:
        """Walks the whole audit chain and the evidence it vouches for."""
        return verify_chain(self._sessions)

    def active_holds(
        self, customer_ids: Sequence[str], at: datetime | None = None
    ) -> dict[str, HoldInfo]:
        """The holds in force at `at` (default now) of these customers, by customer id.

        One indexed query; customers without an active hold are left out.
        """
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        moment = utc(at) if at is not None else self._clock()
        query = (
            select(HoldRow)
            .where(
                HoldRow.customer_id.in_(wanted),
                HoldRow.state == "active",
                HoldRow.until > moment,
            )
            .order_by(HoldRow.until)
        )
        with self._sessions() as session:
            # Ordered by end, so the longest hold wins should two ever be active.
            return {row.customer_id: _hold_info(row) for row in session.scalars(query)}

    def get_hold(self, customer_id: str) -> HoldInfo:
        """The customer's hold in force now.

        Raises:
            NotFound: The customer's card is not on hold.
        """
        customer = _customer(customer_id)
        hold = self.active_holds([customer]).get(customer)
        if hold is None:
            raise NotFound(f"customer {customer_id!r} has no active hold")
        return hold

    def release_hold(self, customer_id: str, *, actor: str, reason: str = "") -> HoldInfo | None:
        """Ends the customer's active hold now; None when there is none.

        Writes an audit entry and, when the hold came from a block, a timeline
        event on that block's case.

        Raises:
            InvalidInput: The customer id, actor or reason is unusable.
        """
        who, why, customer = _actor(actor), _reason(reason), _customer(customer_id)

        def change(row: HoldRow | None, now: datetime) -> _HoldChange | None:
            if row is None:
                return None
            row.state, row.released_at, row.released_by = "released", now, who
            row.release_reason, row.updated_at = why or None, now
            fields = {"until": utc(row.until).isoformat(), "reason": why}
            detail = f"hold {row.hold_id} released by {who}" + (f": {why}" if why else "")
            return _HoldChange("released", fields, detail, row)

        return self._change_hold(customer, who, change)

    def extend_hold(
        self,
        customer_id: str,
        *,
        hours: float | None = None,
        until: datetime | None = None,
        actor: str,
        reason: str = "",
    ) -> HoldInfo:
        """Sets when the customer's hold ends, or places a hold by hand if none runs.

        Give either `hours` (the hold ends that long from now) or `until` (a
        moment with its UTC offset). The end may be earlier than the current one
        but must lie within the next 90 days. Writes an audit entry, and a
        timeline event on the hold's case when it has one.

        Raises:
            InvalidInput: Neither or both of hours and until, an end outside the
                next 90 days, or an unusable customer id, actor or reason.
        """
        who, why, customer = _actor(actor), _reason(reason), _customer(customer_id)
        if (hours is None) == (until is None):
            raise InvalidInput("give either hours or until for the hold's end, not both")
        if until is not None and until.tzinfo is None:
            raise InvalidInput(f"until {until.isoformat()} needs a UTC offset, e.g. +00:00")

        def change(row: HoldRow | None, now: datetime) -> _HoldChange:
            end = now + timedelta(hours=hours) if hours is not None else utc(until or now)
            if not now < end <= now + timedelta(hours=MAX_HOLD_HOURS):
                raise InvalidInput(
                    f"a hold ending {_moment(end)} is not within the next "
                    f"{MAX_HOLD_HOURS // 24} days; choose an end after {_moment(now)}"
                )
            before = utc(row.until) if row is not None else None
            if row is None:
                kind = "placed"
                row = HoldRow(
                    hold_id=new_id("HOLD"),
                    customer_id=customer,
                    state="active",
                    placed_at=now,
                    until=end,
                    placed_by=who,
                )
            else:
                kind = "extended" if end >= utc(row.until) else "shortened"
                row.until, row.updated_at = end, now
            fields = {
                "from": before.isoformat() if before else None,
                "until": end.isoformat(),
                "reason": why,
            }
            detail = f"hold {row.hold_id} {kind} by {who} until {_moment(end)}"
            return _HoldChange(kind, fields, detail + (f": {why}" if why else ""), row)

        hold = self._change_hold(customer, who, change)
        assert hold is not None
        return hold

    def _change_hold(
        self,
        customer_id: str,
        actor: str,
        change: Callable[[HoldRow | None, datetime], _HoldChange | None],
    ) -> HoldInfo | None:
        now = self._clock()
        try:
            with self._sessions.begin() as session:
                chain = lock_chain(session)
                current = session.scalars(
                    select(HoldRow)
                    .where(
                        HoldRow.customer_id == customer_id,
                        HoldRow.state == "active",
                        HoldRow.until > now,
                    )
                    .order_by(HoldRow.until.desc())
                    .limit(1)
                ).first()
                done = change(current, now)
                if done is None:
                    return None
                row = done.row
                if current is None:
                    session.add(row)
                seq = chain.append(
                    f"hold_{done.kind}",
                    {
                        "actor": actor,
                        "hold_id": row.hold_id,
                        "customer_id": customer_id,
                        **done.fields,
                    },
                    at=now,
                    transaction_id=row.transaction_id,
                    case_id=row.case_id,
                )
                if row.case_id is not None:
                    session.add(
                        CaseEventRow(
                            case_id=row.case_id,
                            at=now,
                            kind=f"hold_{done.kind}",
                            detail=f"{done.detail}; audit entry {seq}",
                        )
                    )
                chain.flush()
                session.flush()
                info = _hold_info(row)
        except OperationalError as error:
            raise StoreUnavailable(
                f"records database refused the change to the hold of {customer_id} "
                f"({type(error.orig).__name__}); try again"
            ) from error
        logger.info("hold %s %s by an analyst", info.hold_id, done.kind)
        return info


@dataclass(frozen=True)
class _HoldChange:
    """What an analyst did to a hold: its audit kind and fields, its timeline text."""

    kind: str
    fields: dict[str, Any]
    detail: str
    row: HoldRow


def _hold_info(row: HoldRow) -> HoldInfo:
    return HoldInfo(
        hold_id=row.hold_id,
        customer_id=row.customer_id,
        until=utc(row.until),
        case_id=row.case_id,
        state=row.state,  # type: ignore[arg-type]
        placed_at=utc(row.placed_at),
        placed_by=row.placed_by,
        transaction_id=row.transaction_id,
        released_at=utc(row.released_at) if row.released_at else None,
        released_by=row.released_by,
    )


def _customer(customer_id: str) -> str:
    value = customer_id.strip() if isinstance(customer_id, str) else ""
    if not 1 <= len(value) <= 64 or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"customer id {customer_id!r} is not usable; give 1-64 printable characters"
        )
    return value


def _reason(reason: str) -> str:
    # One line of printable text: it goes into timelines and the audit trail.
    text = "".join(ch for ch in " ".join(str(reason).split()) if ch.isprintable())
    if len(text) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"the reason has {len(text):,} characters; keep it to {MAX_REASON_CHARS}"
        )
    return text


@dataclass
class _Change:
    """One change to a case: its timeline kind and detail, and its audit fields."""

    kind: str
    detail: str
    fields: dict[str, Any]
    note: CaseNoteRow | None = None


def _status_change(case: CaseRow, status: str, actor: str) -> _Change:
    before = case.status
    label = _STATUS_LABEL.get(status, case.label)
    case.status, case.label = status, label
    fields = {"from": before, "to": status, "label": label}
    if status in _STATUS_LABEL:
        return _Change("labelled", f"labelled {label} by {actor}: {before} -> {status}", fields)
    return _Change("status_changed", f"{before} -> {status} by {actor}", fields)


def _record_change(
    session: Session,
    chain: ChainAppender,
    case: CaseRow,
    change: _Change,
    actor: str,
    now: datetime,
) -> None:
    seq = chain.append(
        f"case_{change.kind}",
        {"actor": actor, **change.fields},
        at=now,
        transaction_id=case.transaction_id,
        case_id=case.case_id,
    )
    if change.note is not None:
        change.note.at, change.note.audit_entry_id = now, seq
    session.add(
        CaseEventRow(
            case_id=case.case_id,
            at=now,
            kind=change.kind,
            detail=f"{change.detail}; audit entry {seq}",
        )
    )
    if change.kind == "labelled":
        # The history keeps the verdict next to the payment for retraining.
        session.execute(
            update(TransactionRow)
            .where(TransactionRow.transaction_id == case.transaction_id)
            .values(is_fraud=change.fields["label"] == "fraud")
            .execution_options(synchronize_session=False)
        )


def _case_or_raise(session: Session, case_id: str) -> CaseRow:
    case = session.get(CaseRow, case_id)
    if case is None:
        raise NotFound(f"case {case_id!r} does not exist; case ids look like CASE-3F9A1C2B7D10")
    return case


def _case_record(session: Session, case: CaseRow, now: datetime) -> CaseRecord:
    case_id = case.case_id
    events = session.scalars(
        select(CaseEventRow)
        .where(CaseEventRow.case_id == case_id)
        .order_by(CaseEventRow.at, CaseEventRow.id)
    ).all()
    notes = session.scalars(
        select(CaseNoteRow).where(CaseNoteRow.case_id == case_id).order_by(CaseNoteRow.id)
    ).all()
    tags = session.scalars(
        select(CaseTagRow.tag).where(CaseTagRow.case_id == case_id).order_by(CaseTagRow.tag)
    ).all()
    alert = session.execute(
        select(OutboxRow.alert_id, OutboxRow.state).where(
            OutboxRow.case_id == case_id, OutboxRow.kind == ALERT
        )
    ).first()
    report_id = session.scalar(select(ReportRow.report_id).where(ReportRow.case_id == case_id))
    hold = session.execute(
        select(HoldRow.hold_id, HoldRow.until).where(
            HoldRow.case_id == case_id, HoldRow.state == "active", HoldRow.until > now
        )
    ).first()
    return CaseRecord(
        **_summary(case).model_dump(),
        transaction=json.loads(case.transaction_json),
        evidence=DecisionResult.model_validate_json(case.evidence_json),
        timeline=[
            TimelineEvent(at=utc(event.at), kind=event.kind, detail=event.detail)
            for event in events
        ],
        notes=[
            CaseNote(id=note.id, at=utc(note.at), author=note.author, text=note.text)
            for note in notes
        ],
        tags=list(tags),
        alert_id=alert.alert_id if alert else None,
        alert_state=alert.state if alert else None,
        report_id=report_id,
        hold_id=hold.hold_id if hold else None,
        hold_until=utc(hold.until) if hold else None,
        # A false positive whose hold still runs: the analyst is offered its release.
        hold_release_offered=bool(hold) and case.label == "legitimate",
    )


def _case_filters(
    status: str | None,
    decision: str | None,
    min_score: float | None,
    max_score: float | None,
    since: datetime | None,
    until: datetime | None,
    assignee: str | None,
    customer_id: str | None,
) -> list[Any]:
    if status is not None and status not in CASE_TRANSITIONS:
        raise InvalidInput(
            f"status {status!r} is unknown; use one of {', '.join(CASE_TRANSITIONS)}"
        )
    if decision is not None and decision not in ("review", "block"):
        raise InvalidInput(f"decision {decision!r} has no cases; use review or block")
    for name, score in (("min_score", min_score), ("max_score", max_score)):
        if score is not None and not 0 <= score <= 100:
            raise InvalidInput(f"{name} {score} is outside the 0-100 risk score range")
    if min_score is not None and max_score is not None and min_score > max_score:
        raise InvalidInput(f"min_score {min_score} is above max_score {max_score}; swap them")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name} {moment.isoformat()} needs a UTC offset, e.g. +00:00")
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"since {since.isoformat()} is not before until {until.isoformat()}")

    filters: list[Any] = []
    for column, value in (
        (CaseRow.status, status),
        (CaseRow.decision, decision),
        (CaseRow.assignee, assignee),
        (CaseRow.customer_id, customer_id),
    ):
        if value is not None:
            filters.append(column == value)
    if min_score is not None:
        filters.append(CaseRow.risk_score >= min_score)
    if max_score is not None:
        filters.append(CaseRow.risk_score <= max_score)
    if since is not None:
        filters.append(CaseRow.created_at >= utc(since))
    if until is not None:
        filters.append(CaseRow.created_at < utc(until))
    return filters


def _actor(actor: str) -> str:
    name = actor.strip() if isinstance(actor, str) else ""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"actor {actor!r} is not a usable name; give who makes the change "
            "(1-100 printable characters)"
        )
    return name


def _assignee(assignee: str) -> str:
    # "" unassigns; anything else must be a name like an actor's.
    return _actor(assignee) if assignee.strip() else ""


def _tag(tag: str) -> str:
    value = tag.strip().lower() if isinstance(tag, str) else ""
    if not _TAG.fullmatch(value):
        raise InvalidInput(
            f"tag {tag!r} is not valid; use 1-32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _policy_quality(version: str, counts: dict[tuple[str, str | None], int]) -> PolicyQuality:
    def count(decision: str | None = None, label: str | None = None) -> int:
        return sum(
            n
            for (d, lab), n in counts.items()
            if lab is not None and decision in (None, d) and label in (None, lab)
        )

    blocks, reviews = count("block"), count("review")
    blocks_fraud, reviews_fraud = count("block", "fraud"), count("review", "fraud")
    labelled, false_positives = count(), count(label="legitimate")
    return PolicyQuality(
        policy_version=version,
        cases=sum(counts.values()),
        labelled=labelled,
        blocks_labelled=blocks,
        blocks_fraud=blocks_fraud,
        block_precision=_ratio(blocks_fraud, blocks),
        reviews_labelled=reviews,
        reviews_fraud=reviews_fraud,
        review_precision=_ratio(reviews_fraud, reviews),
        false_positives=false_positives,
        false_positive_rate=_ratio(false_positives, labelled),
    )


def _stored_outcomes(session: Session, transaction_ids: list[str]) -> dict[str, LogOutcome]:
    rows = session.execute(
        select(
            DecisionRow.transaction_id,
            DecisionRow.case_id,
            DecisionRow.audit_entry_id,
            DecisionRow.alert_id,
            DecisionRow.hold_id,
        ).where(DecisionRow.transaction_id.in_(sorted(set(transaction_ids))))
    ).all()
    if not rows:
        return {}
    hold_ids = sorted({row.hold_id for row in rows if row.hold_id})
    hold_ends: dict[str, datetime] = {}
    if hold_ids:
        hold_ends = {
            hold_id: utc(until)
            for hold_id, until in session.execute(
                select(HoldRow.hold_id, HoldRow.until).where(HoldRow.hold_id.in_(hold_ids))
            )
        }
    notices: dict[str, list[str]] = defaultdict(list)
    flagged = sorted(row.transaction_id for row in rows if row.case_id)
    if flagged:
        for transaction_id, notice_id in session.execute(
            select(OutboxRow.transaction_id, OutboxRow.alert_id)
            .where(OutboxRow.transaction_id.in_(flagged), OutboxRow.kind != ALERT)
            .order_by(OutboxRow.alert_id)
        ):
            notices[transaction_id].append(notice_id)
    return {
        row.transaction_id: LogOutcome(
            row.transaction_id,
            row.case_id,
            row.audit_entry_id,
            row.alert_id,
            False,
            hold_id=row.hold_id,
            hold_until=hold_ends.get(row.hold_id) if row.hold_id else None,
            notification_ids=tuple(notices.get(row.transaction_id, ())),
        )
        for row in rows
    }


def _replayed(outcome: LogOutcome) -> LogOutcome:
    return replace(outcome, created=False, hold_change=None, notification_skipped=None)


def hold_action(outcome: LogOutcome) -> Action | None:
    """The hold Action of one logged decision, e.g. "hold placed until 2026-02-01T14:05:00Z"."""
    if outcome.hold_id is None or outcome.hold_until is None:
        return None
    until = _moment(outcome.hold_until)
    detail = {
        "placed": f"hold placed until {until}",
        "extended": f"hold extended until {until}",
        "kept": f"already on hold until {until}",
        "on_hold": f"account on hold until {until}",
    }.get(outcome.hold_change or "", f"on hold until {until}")
    return Action(kind="hold", state="done", id=outcome.hold_id, detail=detail)


def is_on_hold_block(result: DecisionResult) -> bool:
    """Whether a decision blocks a payment only because the card is on hold."""
    return result.decision == "block" and any(
        reason.code == ACCOUNT_ON_HOLD for reason in result.reasons
    )


@dataclass(frozen=True)
class _LogPolicy:
    """What logging does beyond the records: how long holds last, whom to notify."""

    hold: timedelta
    notify_on_review: bool
    channels: tuple[str, ...]

    def notifies(self, result: DecisionResult) -> bool:
        if is_on_hold_block(result):
            return False
        return result.decision == "block" or (result.decision == "review" and self.notify_on_review)


@dataclass
class _HoldState:
    """A customer's active hold while a chunk is written: read once, changed in memory."""

    hold_id: str
    customer_id: str
    until: datetime
    case_id: str | None
    transaction_id: str | None
    is_new: bool = False
    changed: bool = False
    placed_at: datetime | None = None


@dataclass(frozen=True)
class _Contact:
    email: str | None
    phone: str | None
    card_last4: str | None


def _current_holds(
    session: Session, results: Sequence[DecisionResult], now: datetime
) -> dict[str, _HoldState]:
    """The active holds of the customers these blocks concern, with lapsed ones expired."""
    customers = sorted({r.customer_id for r in results if r.decision == "block"})
    if not customers:
        return {}
    rows = session.execute(
        select(
            HoldRow.hold_id,
            HoldRow.customer_id,
            HoldRow.until,
            HoldRow.case_id,
            HoldRow.transaction_id,
        )
        .where(HoldRow.customer_id.in_(customers), HoldRow.state == "active")
        .order_by(HoldRow.until)
    ).all()
    lapsed = [row.hold_id for row in rows if utc(row.until) <= now]
    if lapsed:
        # A lapsed hold is closed before a new one opens, so each customer has at
        # most one active hold.
        session.execute(
            update(HoldRow)
            .where(HoldRow.hold_id.in_(lapsed))
            .values(state="expired", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return {
        row.customer_id: _HoldState(
            row.hold_id, row.customer_id, utc(row.until), row.case_id, row.transaction_id
        )
        for row in rows
        if utc(row.until) > now
    }


def _contacts(
    session: Session, results: Sequence[DecisionResult], policy: _LogPolicy
) -> dict[str, _Contact]:
    """Addresses and card digits of the customers who will be notified."""
    customers = sorted({r.customer_id for r in results if policy.notifies(r)})
    if not customers or not policy.channels:
        return {}
    profiles = {
        row.customer_id: (row.email, row.card_last4)
        for row in session.execute(
            select(CustomerRow.customer_id, CustomerRow.email, CustomerRow.card_last4).where(
                CustomerRow.customer_id.in_(customers)
            )
        )
    }
    phones: dict[str, str] = {}
    if "sms" in policy.channels:
        phones = dict(
            session.execute(
                select(CustomerContactRow.customer_id, CustomerContactRow.phone).where(
                    CustomerContactRow.customer_id.in_(customers)
                )
            ).all()
        )
    return {
        customer_id: _Contact(
            profiles.get(customer_id, (None, None))[0] or None,
            phones.get(customer_id),
            profiles.get(customer_id, (None, None))[1],
        )
        for customer_id in customers
    }


class _NewRows:
    """The rows one chunk adds, gathered so each table gets one bulk insert."""

    def __init__(
        self,
        policy: _LogPolicy,
        holds: dict[str, _HoldState],
        contacts: dict[str, _Contact],
    ) -> None:
        self._policy = policy
        self._holds = holds
        self._contacts = contacts
        self.transactions: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.cases: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []

    def add(
        self,
        transaction: Transaction,
        result: DecisionResult,
        chain: ChainAppender,
        now: datetime,
    ) -> LogOutcome:
        result_json = result.model_dump_json()
        result_sha = sha256_hex(result_json)
        tid = transaction.transaction_id
        on_hold = is_on_hold_block(result)
        flagged = result.decision != "approve" and not on_hold
        case_id = new_id("CASE") if flagged else None
        alert_id = new_id("ALR") if flagged and result.decision == "block" else None
        hold = self._holds.get(result.customer_id) if result.decision == "block" else None

        fields: dict[str, Any] = {
            "customer_id": result.customer_id,
            "decision": result.decision,
            "risk_score": result.risk_score,
            "policy_version": result.policy_version,
            "decided_at": utc(result.decided_at).isoformat(),
            "reasons": [reason.code for reason in result.reasons],
            "alert_id": alert_id,
            "result_sha256": result_sha,
        }
        if on_hold and hold is not None:
            fields["hold_id"] = hold.hold_id
        seq = chain.append("decision", fields, at=now, transaction_id=tid, case_id=case_id)
        self.transactions.append(_history_row(transaction, result))
        outcome = LogOutcome(tid, case_id, seq, alert_id, True)
        if case_id is not None:
            self._add_case(transaction, result, result_json, case_id, alert_id, seq, now)
            if alert_id is not None and self._policy.hold:
                outcome = self._hold(outcome, result, chain, now)
            if self._policy.notifies(result):
                outcome = self._notify(outcome, transaction, result, now)
        elif on_hold and hold is not None:
            outcome = replace(
                outcome, hold_id=hold.hold_id, hold_until=hold.until, hold_change="on_hold"
            )
            if hold.case_id is not None:
                self._event(
                    hold.case_id,
                    now,
                    "blocked_on_hold",
                    f"payment {tid} blocked: hold {hold.hold_id} runs until "
                    f"{_moment(hold.until)}; audit entry {seq}",
                )
        self.decisions.append(
            {
                "transaction_id": tid,
                "customer_id": result.customer_id,
                "decision": result.decision,
                "risk_score": result.risk_score,
                "policy_version": result.policy_version,
                "decided_at": utc(result.decided_at),
                "logged_at": now,
                "result_json": result_json,
                "audit_entry_id": seq,
                "case_id": case_id,
                "alert_id": alert_id,
                "hold_id": outcome.hold_id,
                "latency_ms": decision_latency_ms(result.latency_ms),
                "reason_codes": " ".join(reason.code for reason in result.reasons),
            }
        )
        return outcome

    def _hold(
        self, outcome: LogOutcome, result: DecisionResult, chain: ChainAppender, now: datetime
    ) -> LogOutcome:
        """Places a hold for this block, or moves the active hold's end later."""
        case_id = outcome.case_id
        assert case_id is not None
        end = now + self._policy.hold
        hold = self._holds.get(result.customer_id)
        if hold is None:
            hold = _HoldState(
                new_id("HOLD"),
                result.customer_id,
                end,
                case_id,
                outcome.transaction_id,
                is_new=True,
                placed_at=now,
            )
            self._holds[result.customer_id] = hold
            change, before = "placed", None
        elif end > hold.until:
            before, previous_case = hold.until, hold.case_id
            # The case whose block set the current end is the one a release answers to.
            hold.until, hold.case_id, hold.transaction_id = end, case_id, outcome.transaction_id
            hold.changed = True
            change = "extended"
            if previous_case is not None and previous_case != case_id:
                self._event(
                    previous_case,
                    now,
                    "hold_extended",
                    f"hold {hold.hold_id} extended to {_moment(end)} by case {case_id}",
                )
        else:
            detail = f"card already on hold until {_moment(hold.until)} ({hold.hold_id})"
            self._event(case_id, now, "hold_kept", detail)
            return replace(outcome, hold_id=hold.hold_id, hold_until=hold.until, hold_change="kept")

        seq = chain.append(
            f"hold_{change}",
            {
                "actor": SYSTEM_ACTOR,
                "hold_id": hold.hold_id,
                "customer_id": hold.customer_id,
                "from": before.isoformat() if before else None,
                "until": end.isoformat(),
            },
            at=now,
            transaction_id=outcome.transaction_id,
            case_id=case_id,
        )
        self._event(
            case_id,
            now,
            f"hold_{change}",
            f"card on hold until {_moment(end)} ({hold.hold_id}); audit entry {seq}",
        )
        return replace(outcome, hold_id=hold.hold_id, hold_until=end, hold_change=change)

    def _notify(
        self, outcome: LogOutcome, transaction: Transaction, result: DecisionResult, now: datetime
    ) -> LogOutcome:
        """Queues one notice per configured channel the customer can be reached on."""
        channels = self._policy.channels
        if not channels:
            return replace(outcome, notification_skipped="no channel configured")
        contact = self._contacts.get(result.customer_id, _Contact(None, None, None))
        reachable = [
            channel
            for channel in channels
            if (contact.email if channel == "email" else contact.phone)
        ]
        if not reachable:
            missing = " or ".join(
                "email address" if channel == "email" else "phone number" for channel in channels
            )
            return replace(outcome, notification_skipped=f"no {missing} on file")
        assert outcome.case_id is not None
        content = compose_customer_notice(
            transaction, result.decision, contact.card_last4, outcome.hold_until
        )
        ids = []
        for channel in reachable:
            notice_id = new_id("NTF")
            ids.append(notice_id)
            email = channel == "email"
            self.alerts.append(
                {
                    "alert_id": notice_id,
                    "case_id": outcome.case_id,
                    "transaction_id": outcome.transaction_id,
                    "kind": CHANNEL_KINDS[channel],
                    "customer_id": result.customer_id,
                    "state": "queued",
                    "subject": content.subject if email else "",
                    "body_text": content.text if email else content.sms,
                    "body_html": content.html if email else "",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
            )
            self._event(
                outcome.case_id, now, "notification_queued", f"customer {channel} {notice_id}"
            )
        return replace(outcome, notification_ids=tuple(ids))

    def _event(self, case_id: str, at: datetime, kind: str, detail: str) -> None:
        self.events.append({"case_id": case_id, "at": at, "kind": kind, "detail": detail})

    def _add_case(
        self,
        transaction: Transaction,
        result: DecisionResult,
        result_json: str,
        case_id: str,
        alert_id: str | None,
        seq: int,
        now: datetime,
    ) -> None:
        self.cases.append(
            {
                "case_id": case_id,
                "transaction_id": transaction.transaction_id,
                "customer_id": result.customer_id,
                "decision": result.decision,
                "risk_score": result.risk_score,
                "policy_version": result.policy_version,
                "status": "open",
                "created_at": now,
                "transaction_json": transaction.model_dump_json(),
                "evidence_json": result_json,
            }
        )
        self._event(
            case_id,
            now,
            "opened",
            f"{result.decision} at risk score {result.risk_score:g} under policy "
            f"{result.policy_version}; audit entry {seq}",
        )
        if alert_id is None:
            return
        content = compose_alert(result, case_id, transaction)
        self.alerts.append(
            {
                "alert_id": alert_id,
                "case_id": case_id,
                "transaction_id": transaction.transaction_id,
                "kind": ALERT,
                "customer_id": None,
                "state": "queued",
                "subject": content.subject,
                "body_text": content.text,
                "body_html": content.html,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
        self._event(case_id, now, "alert_queued", f"alert {alert_id}")

    def insert(self, session: Session, now: datetime) -> None:
        if self.transactions:
            session.execute(_upsert_history(session), self.transactions)
        new_holds = [
            {
                "hold_id": hold.hold_id,
                "customer_id": hold.customer_id,
                "state": "active",
                "placed_at": hold.placed_at,
                "until": hold.until,
                "placed_by": SYSTEM_ACTOR,
                "case_id": hold.case_id,
                "transaction_id": hold.transaction_id,
            }
            for hold in self._holds.values()
            if hold.is_new
        ]
        # Parents before children: the foreign keys are checked on every insert.
        for table, rows in (
            (DecisionRow, self.decisions),
            (CaseRow, self.cases),
            (CaseEventRow, self.events),
            (HoldRow, new_holds),
            (OutboxRow, self.alerts),
        ):
            if rows:
                session.execute(table.__table__.insert(), rows)
        for hold in self._holds.values():
            if hold.changed and not hold.is_new:
                session.execute(
                    update(HoldRow)
                    .where(HoldRow.hold_id == hold.hold_id)
                    .values(
                        until=hold.until,
                        case_id=hold.case_id,
                        transaction_id=hold.transaction_id,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )


def _moment(moment: datetime) -> str:
    return f"{utc(moment):%Y-%m-%dT%H:%M:%SZ}"


def _upsert_history(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_into(TransactionRow)
    # A payment seeded or imported before it was decided gets its decision added.
    return statement.on_conflict_do_update(
        index_elements=[TransactionRow.transaction_id],
        set_={
            "decision": statement.excluded.decision,
            "risk_score": statement.excluded.risk_score,
        },
    )


def _history_row(transaction: Transaction, result: DecisionResult) -> dict[str, Any]:
    occurred_at = transaction.occurred_at() if transaction.timestamp else result.decided_at
    return {
        "transaction_id": transaction.transaction_id,
        "customer_id": transaction.customer_id,
        "occurred_at": utc(occurred_at),
        "amount": transaction.amount,
        "currency": transaction.currency,
        "merchant": transaction.merchant,
        "merchant_category": transaction.merchant_category,
        "location": transaction.location,
        "latitude": transaction.latitude,
        "longitude": transaction.longitude,
        "card_present": transaction.card_present,
        "device_id": transaction.device_id,
        "ip_address": transaction.ip_address,
        "decision": result.decision,
        "risk_score": result.risk_score,
    }


def decision_latency_ms(latency_ms: dict[str, float]) -> float | None:
    """How long deciding took: the total when known, else the sum of the stages."""
    if "total" in latency_ms:
        return latency_ms["total"]
    return sum(latency_ms.values()) if latency_ms else None


def _summary(case: CaseRow) -> CaseSummary:
    return CaseSummary(
        case_id=case.case_id,
        transaction_id=case.transaction_id,
        customer_id=case.customer_id,
        decision=case.decision,  # type: ignore[arg-type]
        risk_score=case.risk_score,
        policy_version=case.policy_version,
        status=case.status,  # type: ignore[arg-type]
        created_at=utc(case.created_at),
        assignee=case.assignee,
        label=case.label,  # type: ignore[arg-type]
        updated_at=utc(case.updated_at) if case.updated_at else None,
    )
