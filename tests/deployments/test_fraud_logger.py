"""Tests of FraudLogger: history, audit entries, idempotent cases and block alerts."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from deployments import fraud_logger
from deployments.fraud_logger import FraudLogger, LogOutcome
from fraudline.db import make_engine, make_sessions
from fraudline.errors import InvalidInput, NotFound, StoreUnavailable
from fraudline.history import TransactionRow
from fraudline.outbox import AlertContent
from fraudline.records import AuditEntryRow, CaseRow, DecisionRow, OutboxRow
from fraudline.schemas import (
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
    Transaction,
)

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)
SCORES = {"approve": 8.0, "review": 52.0, "block": 95.0}


def _transaction(transaction_id: str, customer_id: str = "C-12345") -> Transaction:
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


def _result(transaction_id: str, decision: str, customer_id: str = "C-12345") -> DecisionResult:
    travel = Signal(
        code="impossible_travel",
        text="Moscow, RU is 7,510 km from New York, US, 30 min later: 15,020 km/h",
        value=15020.0,
        unit="km/h",
        points=40.0,
    )
    return DecisionResult(
        transaction_id=transaction_id,
        customer_id=customer_id,
        decision=decision,  # type: ignore[arg-type]
        risk_score=SCORES[decision],
        risk_level={  # type: ignore[arg-type]
            "approve": "low", "review": "medium", "block": "high"
        }[decision],
        reasons=[Reason(code=travel.code, text=travel.text, tool="geolocation", points=40.0)],
        evidence={"geolocation": Evidence(tool="geolocation", signals=[travel])},
        explanation=Explanation(text=f"{decision}: travel speed is impossible"),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )


def _pair(transaction_id: str, decision: str) -> tuple[Transaction, DecisionResult]:
    return _transaction(transaction_id), _result(transaction_id, decision)


def _count(sessions: sessionmaker, table: type, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    with sessions() as session:
        return int(session.scalar(query) or 0)


@pytest.fixture
def logger_(db_url: str) -> FraudLogger:
    return FraudLogger(db_url, clock=lambda: NOW)


@pytest.fixture
def sessions(db_url: str, logger_: FraudLogger) -> sessionmaker:
    return make_sessions(make_engine(db_url))


def test_block_writes_history_audit_entry_case_and_alert(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    (outcome,) = logger_.log_batch([_pair("TX-BLOCK-1", "block")])

    assert outcome.created is True
    assert outcome.audit_entry_id == 1
    assert outcome.case_id is not None and outcome.case_id.startswith("CASE-")
    assert len(outcome.case_id) == len("CASE-") + 12
    assert outcome.alert_id is not None and outcome.alert_id.startswith("ALR-")
    with sessions() as session:
        history = session.get(TransactionRow, "TX-BLOCK-1")
        case = session.get(CaseRow, outcome.case_id)
        alert = session.get(OutboxRow, outcome.alert_id)
        entry = session.get(AuditEntryRow, 1)
    assert history is not None and (history.decision, history.risk_score) == ("block", 95.0)
    assert history.amount == 4500.0
    assert case is not None and case.transaction_id == "TX-BLOCK-1"
    assert DecisionResult.model_validate_json(case.evidence_json) == _result("TX-BLOCK-1", "block")
    assert alert is not None and (alert.state, alert.case_id) == ("queued", outcome.case_id)
    assert "TX-BLOCK-1" in alert.subject
    assert entry is not None
    content = json.loads(entry.content)
    assert (content["decision"], content["risk_score"]) == ("block", 95.0)
    assert (content["case_id"], content["alert_id"]) == (outcome.case_id, outcome.alert_id)
    assert logger_.verify_chain().ok


def test_approve_is_recorded_and_audited_without_case_or_alert(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    (outcome,) = logger_.log_batch([_pair("TX-OK-1", "approve")])

    assert outcome == LogOutcome("TX-OK-1", None, 1, None, True)
    assert _count(sessions, CaseRow) == 0
    assert _count(sessions, OutboxRow) == 0
    assert _count(sessions, TransactionRow, decision="approve") == 1


def test_review_opens_a_case_without_an_alert(logger_: FraudLogger, sessions: sessionmaker) -> None:
    (outcome,) = logger_.log_batch([_pair("TX-REVIEW-1", "review")])

    assert outcome.case_id is not None
    assert outcome.alert_id is None
    assert _count(sessions, CaseRow, decision="review") == 1
    assert _count(sessions, OutboxRow) == 0


def test_retry_returns_the_stored_case_and_writes_nothing_new(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    (first,) = logger_.log_batch([_pair("TX-RETRY", "block")])

    (again,) = logger_.log_batch([_pair("TX-RETRY", "block")])

    assert again.created is False
    assert (again.case_id, again.audit_entry_id, again.alert_id) == (
        first.case_id,
        first.audit_entry_id,
        first.alert_id,
    )
    assert _count(sessions, CaseRow) == 1
    # The decision's entry and its hold's.
    assert _count(sessions, AuditEntryRow) == 2
    assert _count(sessions, OutboxRow) == 1


def test_parallel_retries_of_one_transaction_open_exactly_one_case(
    db_url: str, sessions: sessionmaker
) -> None:
    replicas = 8
    barrier = threading.Barrier(replicas)
    outcomes: list[LogOutcome] = []
    errors: list[BaseException] = []

    def retry() -> None:
        # Each thread is its own replica: its own engine, its own connections.
        replica = FraudLogger(db_url, create_tables=False)
        barrier.wait(timeout=10)
        try:
            outcomes.extend(replica.log_batch([_pair("TX-RACE", "block")]))
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=retry) for _ in range(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(outcomes) == replicas
    assert sum(outcome.created for outcome in outcomes) == 1
    assert len({outcome.case_id for outcome in outcomes}) == 1
    assert _count(sessions, CaseRow, transaction_id="TX-RACE") == 1
    assert _count(sessions, AuditEntryRow, transaction_id="TX-RACE", kind="decision") == 1
    assert _count(sessions, AuditEntryRow, transaction_id="TX-RACE", kind="hold_placed") == 1
    assert _count(sessions, OutboxRow, transaction_id="TX-RACE") == 1


def test_same_transaction_twice_in_one_batch_is_logged_once(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    first, second = logger_.log_batch([_pair("TX-DUP", "review"), _pair("TX-DUP", "review")])

    assert (first.created, second.created) == (True, False)
    assert first.case_id == second.case_id
    assert _count(sessions, CaseRow) == 1


def test_large_batch_is_written_in_chunks_with_one_chain(
    db_url: str, sessions: sessionmaker
) -> None:
    chunked = FraudLogger(db_url, chunk_size=2, create_tables=False)
    decisions = ["approve", "review", "block", "approve", "block"]

    outcomes = chunked.log_batch([_pair(f"TX-{n}", d) for n, d in enumerate(decisions)])

    # Each block's hold adds an entry right after the block's own (4 and 7).
    assert [outcome.audit_entry_id for outcome in outcomes] == [1, 2, 3, 5, 6]
    assert [outcome.case_id is not None for outcome in outcomes] == [
        False,
        True,
        True,
        False,
        True,
    ]
    assert [outcome.alert_id is not None for outcome in outcomes] == [
        False,
        False,
        True,
        False,
        True,
    ]
    report = chunked.verify_chain()
    assert (report.ok, report.entries_checked) == (True, 7)


def test_case_is_not_kept_when_its_alert_cannot_be_written(
    logger_: FraudLogger, sessions: sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A subject of None violates NOT NULL on the outbox insert, after the case insert.
    broken = AlertContent(subject=None, text="", html="")  # type: ignore[arg-type]
    monkeypatch.setattr(fraud_logger, "compose_alert", lambda *args: broken)

    with pytest.raises(StoreUnavailable):
        logger_.log_batch([_pair("TX-ATOMIC", "block")])

    assert _count(sessions, CaseRow) == 0
    assert _count(sessions, DecisionRow) == 0
    assert _count(sessions, AuditEntryRow) == 0
    assert _count(sessions, TransactionRow) == 0


def test_latest_decisions_return_the_stored_result(logger_: FraudLogger) -> None:
    logger_.log_batch([_pair("TX-STORED", "approve")])

    assert logger_.latest_decisions(["TX-STORED", "TX-NEVER-SEEN"]) == [
        _result("TX-STORED", "approve"), None
    ]


def test_latest_decisions_answers_each_id_in_order_across_pages(db_url: str) -> None:
    logger_ = FraudLogger(db_url, chunk_size=2, clock=lambda: NOW)
    logger_.log_batch([_pair(f"TX-{n}", "approve") for n in range(5)])

    found = logger_.latest_decisions(["TX-4", "TX-NONE", "TX-0", "TX-4", "TX-2"])

    assert [r.transaction_id if r else None for r in found] == [
        "TX-4", None, "TX-0", "TX-4", "TX-2"
    ]
    assert found[0] == _result("TX-4", "approve")


def test_get_case_returns_evidence_transaction_and_timeline(logger_: FraudLogger) -> None:
    (outcome,) = logger_.log_batch([_pair("TX-CASE", "block")])
    assert outcome.case_id is not None

    case = logger_.get_case(outcome.case_id)

    assert (case.transaction_id, case.decision, case.risk_score) == ("TX-CASE", "block", 95.0)
    assert case.transaction["merchant"] == "CRYPTO-EXCHANGE-XX"
    assert case.evidence.evidence["geolocation"].signals[0].value == 15020.0
    assert [event.kind for event in case.timeline] == ["opened", "alert_queued", "hold_placed"]
    assert (case.alert_id, case.alert_state, case.report_id) == (outcome.alert_id, "queued", None)
    assert (case.hold_id, case.hold_release_offered) == (outcome.hold_id, False)


def test_get_case_of_unknown_id_raises_not_found(logger_: FraudLogger) -> None:
    with pytest.raises(NotFound, match="CASE-000000000000"):
        logger_.get_case("CASE-000000000000")


def test_recent_cases_lists_newest_first(db_url: str) -> None:
    moments = iter([NOW, NOW + timedelta(minutes=1)])
    clocked = FraudLogger(db_url, clock=lambda: next(moments))
    clocked.log_batch([_pair("TX-OLD", "review")])
    clocked.log_batch([_pair("TX-NEW", "block")])

    assert [case.transaction_id for case in clocked.recent_cases()] == ["TX-NEW", "TX-OLD"]
    assert [case.transaction_id for case in clocked.recent_cases(decision="review")] == ["TX-OLD"]


def test_decision_paired_with_another_transaction_is_rejected(logger_: FraudLogger) -> None:
    with pytest.raises(InvalidInput, match="TX-B"):
        logger_.log_batch([(_transaction("TX-A"), _result("TX-B", "block"))])


def test_altered_case_evidence_fails_verification_at_its_entry(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    logger_.log_batch([_pair("TX-1", "approve"), _pair("TX-2", "block")])
    with sessions.begin() as session:
        session.execute(
            update(CaseRow)
            .where(CaseRow.transaction_id == "TX-2")
            .values(evidence_json=CaseRow.evidence_json + " ")
        )

    report = logger_.verify_chain()

    assert (report.ok, report.first_bad_id) == (False, 2)
    assert "evidence of case CASE-" in report.reason
