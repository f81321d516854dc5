"""Tests of the case workflow in FraudLogger: lists, transitions, notes, tags, labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from deployments.fraud_logger import FraudLogger
from fraudline.db import make_engine, make_sessions
from fraudline.errors import InvalidInput, NotFound
from fraudline.history import TransactionRow
from fraudline.records import AuditEntryRow, CaseNoteRow
from fraudline.schemas import DecisionResult, Evidence, Explanation, Reason, Signal, Transaction

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _pair(
    transaction_id: str, decision: str, score: float, policy: str = "policy-2026.01"
) -> tuple[Transaction, DecisionResult]:
    signal = Signal(code="unknown_device", text="new device dev-unknown", points=score)
    transaction = Transaction(
        transaction_id=transaction_id,
        customer_id="C-12345",
        amount=1200.0,
        merchant="Best Buy",
        merchant_category="Electronics",
        location="Los Angeles, CA",
        timestamp=NOW,
    )
    result = DecisionResult(
        transaction_id=transaction_id,
        customer_id="C-12345",
        decision=decision,  # type: ignore[arg-type]
        risk_score=score,
        risk_level="high" if decision == "block" else "medium",
        reasons=[Reason(code=signal.code, text=signal.text, tool="identity", points=score)],
        evidence={"identity": Evidence(tool="identity", signals=[signal])},
        explanation=Explanation(text="test"),
        policy_version=policy,
        decided_at=NOW,
    )
    return transaction, result


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logger_(db_url: str, clock: Clock) -> Iterator[FraudLogger]:
    yield FraudLogger(db_url, clock=clock)


@pytest.fixture
def sessions(db_url: str, logger_: FraudLogger) -> sessionmaker:
    return make_sessions(make_engine(db_url))


def _log(logger_: FraudLogger, clock: Clock, *cases: tuple[str, str, float]) -> list[str]:
    """Logs one case per (transaction id, decision, score), a minute apart."""
    ids = []
    for transaction_id, decision, score in cases:
        (outcome,) = logger_.log_batch([_pair(transaction_id, decision, score)])
        assert outcome.case_id is not None
        ids.append(outcome.case_id)
        clock.now += timedelta(minutes=1)
    return ids


def _audit_kinds(sessions: sessionmaker, case_id: str) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditEntryRow.kind)
                .where(AuditEntryRow.case_id == case_id)
                .order_by(AuditEntryRow.seq)
            )
        )


def test_list_filters_by_status_decision_score_and_time(logger_: FraudLogger, clock: Clock) -> None:
    _, _, third, _ = _log(
        logger_,
        clock,
        ("TX-1", "review", 45.0),
        ("TX-2", "block", 80.0),
        ("TX-3", "block", 95.0),
        ("TX-4", "review", 70.0),
    )
    logger_.update_case(third, status="investigating", actor="ana")

    def ids(**filters: object) -> list[str]:
        return [case.transaction_id for case in logger_.list_cases(**filters).items]

    assert ids() == ["TX-4", "TX-3", "TX-2", "TX-1"]
    assert ids(status="open") == ["TX-4", "TX-2", "TX-1"]
    assert ids(decision="block") == ["TX-3", "TX-2"]
    assert ids(min_score=70, max_score=90) == ["TX-4", "TX-2"]
    assert ids(since=NOW + timedelta(minutes=1), until=NOW + timedelta(minutes=3)) == [
        "TX-3",
        "TX-2",
    ]
    assert ids(status="investigating", decision="block") == ["TX-3"]
    assert ids(decision="block", max_score=94) == ["TX-2"]
    assert logger_.list_cases(status="open", decision="review").total == 2


def test_list_pages_report_the_total_that_matched(logger_: FraudLogger, clock: Clock) -> None:
    _log(logger_, clock, *[(f"TX-{n}", "review", 50.0 + n) for n in range(5)])

    page = logger_.list_cases(limit=2, offset=2)

    assert (page.total, page.limit, page.offset) == (5, 2, 2)
    assert [case.transaction_id for case in page.items] == ["TX-2", "TX-1"]
    assert logger_.list_cases(limit=2, offset=4).items[0].transaction_id == "TX-0"
    assert logger_.list_cases(offset=9).items == []


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "pending"}, "status 'pending' is unknown"),
        ({"decision": "approve"}, "decision 'approve' has no cases"),
        ({"min_score": 80, "max_score": 20}, "min_score 80 is above max_score 20"),
        ({"max_score": 101}, "max_score 101 is outside"),
        ({"limit": 0}, "limit 0 is out of range"),
        ({"offset": -1}, "offset -1 is negative"),
        ({"since": datetime(2026, 1, 1)}, "needs a UTC offset"),
        ({"since": NOW, "until": NOW}, "is not before until"),
        ({"tag": "no spaces"}, "tag 'no spaces' is not valid"),
    ],
)
def test_list_rejects_filters_no_case_can_match(
    logger_: FraudLogger, filters: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        logger_.list_cases(**filters)  # type: ignore[arg-type]


def test_workflow_moves_forward_and_writes_timeline_and_audit_entries(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-FLOW", "block", 90.0))

    logger_.update_case(case_id, status="investigating", assignee="ana", actor="lead")
    logger_.update_case(case_id, status="confirmed_fraud", actor="ana")
    case = logger_.update_case(case_id, status="closed", actor="ana")

    assert (case.status, case.label, case.assignee) == ("closed", "fraud", "ana")
    assert case.updated_at == clock.now
    assert [event.kind for event in case.timeline] == [
        "opened",
        "alert_queued",
        "hold_placed",
        "status_changed",
        "assigned",
        "labelled",
        "status_changed",
    ]
    assert case.timeline[3].detail.startswith("open -> investigating by lead; audit entry 3")
    assert _audit_kinds(sessions, case_id) == [
        "decision",
        "hold_placed",
        "case_status_changed",
        "case_assigned",
        "case_labelled",
        "case_status_changed",
    ]
    assert logger_.verify_chain().ok


@pytest.mark.parametrize(
    ("path", "wanted", "message"),
    [
        ([], "closed", "is open; it can move to investigating, not closed"),
        ([], "confirmed_fraud", "it can move to investigating, not confirmed_fraud"),
        (
            ["investigating"],
            "closed",
            "can move to confirmed_fraud or false_positive, not closed",
        ),
        (
            ["investigating", "false_positive", "closed"],
            "investigating",
            "nothing \\(closed is final\\)",
        ),
        ([], "escalated", "status 'escalated' is unknown"),
    ],
)
def test_transition_outside_the_workflow_names_the_allowed_ones(
    logger_: FraudLogger, clock: Clock, path: list[str], wanted: str, message: str
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-BAD", "review", 55.0))
    for status in path:
        logger_.update_case(case_id, status=status, actor="ana")

    with pytest.raises(InvalidInput, match=message):
        logger_.update_case(case_id, status=wanted, actor="ana")

    assert logger_.get_case(case_id).status == (path[-1] if path else "open")


def test_unchanged_values_write_nothing(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-SAME", "review", 55.0))
    logger_.update_case(case_id, assignee="ana", actor="lead")

    case = logger_.update_case(case_id, status="open", assignee="ana", actor="lead")

    assert [event.kind for event in case.timeline] == ["opened", "assigned"]
    assert _audit_kinds(sessions, case_id) == ["decision", "case_assigned"]


def test_empty_assignee_unassigns(logger_: FraudLogger, clock: Clock) -> None:
    (case_id,) = _log(logger_, clock, ("TX-UN", "review", 55.0))
    logger_.update_case(case_id, assignee="ana", actor="lead")

    case = logger_.update_case(case_id, assignee="", actor="lead")

    assert case.assignee is None
    assert case.timeline[-1].detail.startswith("unassigned from ana by lead")


def test_label_sets_status_and_marks_the_payment_in_history(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-LABEL", "block", 92.0))

    fraud = logger_.label_case(case_id, "fraud", actor="ana")
    with sessions() as session:
        marked = session.scalar(
            select(TransactionRow.is_fraud).where(TransactionRow.transaction_id == "TX-LABEL")
        )
    legitimate = logger_.label_case(case_id, "legitimate", actor="lead")
    with sessions() as session:
        corrected = session.scalar(
            select(TransactionRow.is_fraud).where(TransactionRow.transaction_id == "TX-LABEL")
        )

    assert (fraud.status, fraud.label, marked) == ("confirmed_fraud", "fraud", True)
    assert (legitimate.status, legitimate.label, corrected) == (
        "false_positive",
        "legitimate",
        False,
    )
    assert legitimate.timeline[-1].detail.startswith(
        "labelled legitimate by lead: confirmed_fraud -> false_positive"
    )
    assert _audit_kinds(sessions, case_id)[-2:] == ["case_labelled", "case_labelled"]


def test_label_is_refused_on_a_closed_case_and_for_unknown_labels(
    logger_: FraudLogger, clock: Clock
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-CLOSED", "review", 50.0))
    logger_.label_case(case_id, "legitimate", actor="ana")
    logger_.update_case(case_id, status="closed", actor="ana")

    with pytest.raises(InvalidInput, match="closed case cannot be relabelled"):
        logger_.label_case(case_id, "fraud", actor="ana")
    with pytest.raises(InvalidInput, match="label 'maybe' is unknown"):
        logger_.label_case(case_id, "maybe", actor="ana")


def test_notes_are_kept_in_order_and_an_edited_note_breaks_the_chain(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    (case_id,) = _log(logger_, clock, ("TX-NOTE", "review", 60.0))

    logger_.add_note(case_id, "Called the customer: no answer.", actor="ana")
    case = logger_.add_note(case_id, "  Customer confirms the purchase.  ", actor="ben")

    assert [(note.author, note.text) for note in case.notes] == [
        ("ana", "Called the customer: no answer."),
        ("ben", "Customer confirms the purchase."),
    ]
    assert case.timeline[-1].detail == "note by ben (31 characters); audit entry 3"
    assert logger_.verify_chain().ok

    with sessions.begin() as session:
        session.execute(
            update(CaseNoteRow)
            .where(CaseNoteRow.author == "ana")
            .values(text="Customer confirms the purchase.")
        )
    report = logger_.verify_chain()
    assert (report.ok, report.first_bad_id) == (False, 2)
    assert "note" in report.reason and "was altered" in report.reason


def test_note_and_actor_must_have_text(logger_: FraudLogger, clock: Clock) -> None:
    (case_id,) = _log(logger_, clock, ("TX-EMPTY", "review", 60.0))

    with pytest.raises(InvalidInput, match="this one 0"):
        logger_.add_note(case_id, "   ", actor="ana")
    with pytest.raises(InvalidInput, match="actor '' is not a usable name"):
        logger_.add_note(case_id, "text", actor="")
    with pytest.raises(InvalidInput, match="this one 5,001"):
        logger_.add_note(case_id, "x" * 5001, actor="ana")


def test_tags_are_normalised_deduplicated_and_filterable(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    tagged, other = _log(logger_, clock, ("TX-T1", "block", 90.0), ("TX-T2", "block", 91.0))

    logger_.add_tags(tagged, ["Card-Testing", "crypto"], actor="ana")
    case = logger_.add_tags(tagged, ["crypto", "mule"], actor="ana")
    unchanged = logger_.add_tags(tagged, ["MULE"], actor="ana")

    assert case.tags == ["card-testing", "crypto", "mule"]
    assert case.timeline[-1].detail.startswith("tagged mule by ana")
    assert len(unchanged.timeline) == len(case.timeline)
    assert _audit_kinds(sessions, tagged).count("case_tagged") == 2
    assert [c.case_id for c in logger_.list_cases(tag="Crypto").items] == [tagged]
    assert other not in [c.case_id for c in logger_.list_cases(tag="crypto").items]
    with pytest.raises(InvalidInput, match="tag '-x' is not valid"):
        logger_.add_tags(tagged, ["-x"], actor="ana")
    with pytest.raises(InvalidInput, match="list of 1-20 tags"):
        logger_.add_tags(tagged, "crypto", actor="ana")


def test_changes_to_an_unknown_case_raise_not_found(logger_: FraudLogger) -> None:
    with pytest.raises(NotFound, match="CASE-000000000000"):
        logger_.update_case("CASE-000000000000", status="investigating", actor="ana")
    with pytest.raises(NotFound, match="CASE-000000000000"):
        logger_.add_note("CASE-000000000000", "text", actor="ana")


def test_quality_metrics_per_policy_version(
    logger_: FraudLogger, clock: Clock, sessions: sessionmaker
) -> None:
    logged = []
    for n, (decision, policy) in enumerate(
        [
            ("block", "v1"),
            ("block", "v1"),
            ("block", "v1"),
            ("review", "v1"),
            ("review", "v1"),
            ("review", "v1"),
            ("block", "v2"),
        ]
    ):
        (outcome,) = logger_.log_batch([_pair(f"TX-Q{n}", decision, 80.0, policy)])
        logged.append(outcome.case_id)
    labels = ["fraud", "fraud", "legitimate", "fraud", "legitimate", None, "legitimate"]
    for case_id, label in zip(logged, labels, strict=True):
        if label:
            logger_.label_case(case_id, label, actor="ana")

    v1, v2 = logger_.quality_metrics().policies

    assert (v1.policy_version, v1.cases, v1.labelled) == ("v1", 6, 5)
    assert (v1.blocks_labelled, v1.blocks_fraud, v1.block_precision) == (3, 2, 0.6667)
    assert (v1.reviews_labelled, v1.reviews_fraud, v1.review_precision) == (2, 1, 0.5)
    assert (v1.false_positives, v1.false_positive_rate) == (2, 0.4)
    assert (v2.policy_version, v2.block_precision, v2.review_precision) == ("v2", 0.0, None)
    assert v2.false_positive_rate == 1.0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TransactionRow)) == 7
