"""Logs decisions: history, audit trail, a case per flagged payment, block alerts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
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
from fraudline.errors import InvalidInput, NotFound, StoreUnavailable
from fraudline.history import TransactionRow
from fraudline.outbox import compose_alert
from fraudline.records import (
    CaseEventRow,
    CaseRecord,
    CaseRow,
    CaseSummary,
    DecisionRow,
    OutboxRow,
    ReportRow,
    TimelineEvent,
    ensure_schema,
    new_id,
    utc,
    utc_now,
)
from fraudline.schemas import DecisionResult, Transaction

logger = logging.getLogger(__name__)

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
    """

    transaction_id: str
    case_id: str | None
    audit_entry_id: int
    alert_id: str | None
    created: bool


class FraudLogger:
    """Writes each decision, its case and its alert in one database transaction.

    Every decision gets a hash-chained audit entry; every review or block gets a
    case holding the full decision as evidence; every block gets an outbox alert,
    written together with its case so that no case exists without its alert.
    Logging a transaction again returns what was stored the first time.

    Args:
        database_url: SQLite or PostgreSQL URL of the records database.
        chunk_size: Decisions written per database transaction.
        create_tables: Create missing tables on start.
        clock: Returns the current UTC time.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        chunk_size: int = 500,
        create_tables: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be 1 or more, not {chunk_size}")
        engine = make_engine(database_url)
        if create_tables:
            ensure_schema(engine)
        self._sessions = make_sessions(engine)
        self._chunk_size = chunk_size
        self._clock = clock

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
            rows = _NewRows()
            outcomes = []
            for transaction, result in chunk:
                outcome = known.get(transaction.transaction_id)
                if outcome is None:
                    outcome = rows.add(transaction, result, chain, now)
                    known[transaction.transaction_id] = outcome
                    outcomes.append(outcome)
                else:
                    outcomes.append(_replayed(outcome))
            rows.insert(session)
            chain.flush()
        created = sum(outcome.created for outcome in outcomes)
        logger.debug("logged %d decisions, %d were replays", created, len(outcomes) - created)
        return outcomes

    def latest_decision(self, transaction_id: str) -> DecisionResult | None:
        """The decision stored for a transaction, so a retry can be answered with it."""
        with self._sessions() as session:
            result_json = session.scalar(
                select(DecisionRow.result_json).where(DecisionRow.transaction_id == transaction_id)
            )
        return DecisionResult.model_validate_json(result_json) if result_json else None

    def get_case(self, case_id: str) -> CaseRecord:
        """A case with its evidence, timeline, alert state and report id."""
        with self._sessions() as session:
            case = session.get(CaseRow, case_id)
            if case is None:
                raise NotFound(
                    f"case {case_id!r} does not exist; case ids look like CASE-3F9A1C2B7D10"
                )
            events = session.scalars(
                select(CaseEventRow)
                .where(CaseEventRow.case_id == case_id)
                .order_by(CaseEventRow.at, CaseEventRow.id)
            ).all()
            alert = session.execute(
                select(OutboxRow.alert_id, OutboxRow.state).where(OutboxRow.case_id == case_id)
            ).first()
            report_id = session.scalar(
                select(ReportRow.report_id).where(ReportRow.case_id == case_id)
            )
        return CaseRecord(
            **_summary(case).model_dump(),
            transaction=json.loads(case.transaction_json),
            evidence=DecisionResult.model_validate_json(case.evidence_json),
            timeline=[
                TimelineEvent(at=utc(event.at), kind=event.kind, detail=event.detail)
                for event in events
            ],
            alert_id=alert.alert_id if alert else None,
            alert_state=alert.state if alert else None,
            report_id=report_id,
        )

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

    def verify_chain(self) -> ChainReport:
        """Walks the whole audit chain and the evidence it vouches for."""
        return verify_chain(self._sessions)


def _stored_outcomes(session: Session, transaction_ids: list[str]) -> dict[str, LogOutcome]:
    rows = session.execute(
        select(
            DecisionRow.transaction_id,
            DecisionRow.case_id,
            DecisionRow.audit_entry_id,
            DecisionRow.alert_id,
        ).where(DecisionRow.transaction_id.in_(sorted(set(transaction_ids))))
    )
    return {
        row.transaction_id: LogOutcome(
            row.transaction_id, row.case_id, row.audit_entry_id, row.alert_id, False
        )
        for row in rows
    }


def _replayed(outcome: LogOutcome) -> LogOutcome:
    return LogOutcome(
        outcome.transaction_id,
        outcome.case_id,
        outcome.audit_entry_id,
        outcome.alert_id,
        False,
    )


class _NewRows:
    """The rows one chunk adds, gathered so each table gets one bulk insert."""

    def __init__(self) -> None:
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
        case_id = new_id("CASE") if result.decision != "approve" else None
        alert_id = new_id("ALR") if result.decision == "block" else None

        seq = chain.append(
            "decision",
            {
                "customer_id": result.customer_id,
                "decision": result.decision,
                "risk_score": result.risk_score,
                "policy_version": result.policy_version,
                "decided_at": utc(result.decided_at).isoformat(),
                "reasons": [reason.code for reason in result.reasons],
                "alert_id": alert_id,
                "result_sha256": result_sha,
            },
            at=now,
            transaction_id=tid,
            case_id=case_id,
        )
        self.transactions.append(_history_row(transaction, result))
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
            }
        )
        if case_id is not None:
            self._add_case(transaction, result, result_json, case_id, alert_id, seq, now)
        return LogOutcome(tid, case_id, seq, alert_id, True)

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
        self.events.append(
            {
                "case_id": case_id,
                "at": now,
                "kind": "opened",
                "detail": (
                    f"{result.decision} at risk score {result.risk_score:g} under policy "
                    f"{result.policy_version}; audit entry {seq}"
                ),
            }
        )
        if alert_id is None:
            return
        content = compose_alert(result, case_id, transaction)
        self.alerts.append(
            {
                "alert_id": alert_id,
                "case_id": case_id,
                "transaction_id": transaction.transaction_id,
                "state": "queued",
                "subject": content.subject,
                "body_text": content.text,
                "body_html": content.html,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
        self.events.append(
            {
                "case_id": case_id,
                "at": now,
                "kind": "alert_queued",
                "detail": f"alert {alert_id}",
            }
        )

    def insert(self, session: Session) -> None:
        if self.transactions:
            session.execute(_upsert_history(session), self.transactions)
        # Parents before children: the foreign keys are checked on every insert.
        for table, rows in (
            (DecisionRow, self.decisions),
            (CaseRow, self.cases),
            (CaseEventRow, self.events),
            (OutboxRow, self.alerts),
        ):
            if rows:
                session.execute(table.__table__.insert(), rows)


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


def _summary(case: CaseRow) -> CaseSummary:
    return CaseSummary(
        case_id=case.case_id,
        transaction_id=case.transaction_id,
        customer_id=case.customer_id,
        decision=case.decision,  # type: ignore[arg-type]
        risk_score=case.risk_score,
        policy_version=case.policy_version,
        status=case.status,
        created_at=utc(case.created_at),
    )
