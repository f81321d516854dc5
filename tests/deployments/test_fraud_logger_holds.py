"""Tests of account holds and queued customer notices in FraudLogger."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from deployments.fraud_logger import FraudLogger, hold_action
from fraudline.db import make_engine, make_sessions
from fraudline.errors import ConfigError, InvalidInput, NotFound
from fraudline.records import AuditEntryRow, CaseEventRow, CaseRow, HoldRow, OutboxRow
from tests.deployments.blocked_payments import (
    NOW,
    Clock,
    block,
    high_risk,
    on_hold,
    ordinary,
    review,
    seed_customer,
)

DAY_LATER = NOW + timedelta(hours=24)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logger_(db_url: str, clock: Clock) -> FraudLogger:
    return FraudLogger(db_url, clock=clock)


@pytest.fixture
def sessions(db_url: str, logger_: FraudLogger) -> sessionmaker:
    return make_sessions(make_engine(db_url))


def _audit(sessions: sessionmaker, kind: str) -> list[dict[str, object]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEntryRow.content)
            .where(AuditEntryRow.kind == kind)
            .order_by(AuditEntryRow.seq)
        ).all()
    return [json.loads(content) for content in rows]


def _timeline(logger_: FraudLogger, case_id: str) -> list[str]:
    return [event.kind for event in logger_.get_case(case_id).timeline]


def test_block_places_a_24_hour_hold_with_its_audit_entry(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    (outcome,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    assert outcome.hold_id is not None and outcome.hold_id.startswith("HOLD-")
    assert (outcome.hold_until, outcome.hold_change) == (DAY_LATER, "placed")
    holds = logger_.active_holds(["C-12345", "C-67890"], NOW + timedelta(minutes=1))
    assert list(holds) == ["C-12345"]
    hold = holds["C-12345"]
    assert (hold.hold_id, hold.until, hold.case_id, hold.transaction_id) == (
        outcome.hold_id,
        DAY_LATER,
        outcome.case_id,
        "TX-HIGH",
    )
    assert (hold.state, hold.placed_by) == ("active", "fraudline")
    (entry,) = _audit(sessions, "hold_placed")
    assert (entry["hold_id"], entry["until"], entry["case_id"]) == (
        outcome.hold_id,
        "2026-02-01T14:05:00+00:00",
        outcome.case_id,
    )
    assert _timeline(logger_, outcome.case_id or "") == ["opened", "alert_queued", "hold_placed"]
    action = hold_action(outcome)
    assert action is not None
    assert (action.kind, action.state, action.id, action.detail) == (
        "hold",
        "done",
        outcome.hold_id,
        "hold placed until 2026-02-01T14:05:00Z",
    )
    assert logger_.verify_chain().ok


def test_hold_ends_after_its_hours_and_survives_a_restart(db_url: str, clock: Clock) -> None:
    (outcome,) = FraudLogger(db_url, clock=clock, hold_hours=2).log_batch(
        [block(high_risk("TX-HIGH"))]
    )
    restarted = FraudLogger(db_url, clock=clock, create_tables=False)

    assert list(restarted.active_holds(["C-12345"], NOW + timedelta(hours=1, minutes=59))) == [
        "C-12345"
    ]
    assert restarted.active_holds(["C-12345"], NOW + timedelta(hours=2)) == {}
    assert outcome.hold_until == NOW + timedelta(hours=2)


def test_payment_during_hold_is_logged_without_case_alert_or_new_hold(
    logger_: FraudLogger, sessions: sessionmaker, clock: Clock
) -> None:
    (first,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    clock.advance(minutes=5)

    (held,) = logger_.log_batch([on_hold(ordinary("TX-NEXT"), DAY_LATER)])

    assert (held.case_id, held.alert_id, held.notification_ids) == (None, None, ())
    assert (held.hold_id, held.hold_until, held.hold_change) == (
        first.hold_id,
        DAY_LATER,
        "on_hold",
    )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CaseRow)) == 1
        assert session.scalar(select(func.count()).select_from(HoldRow)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1
    (entry,) = [e for e in _audit(sessions, "decision") if e["transaction_id"] == "TX-NEXT"]
    assert (entry["hold_id"], entry["reasons"]) == (first.hold_id, ["account_on_hold"])
    case = logger_.get_case(first.case_id or "")
    assert case.timeline[-1].kind == "blocked_on_hold"
    assert "payment TX-NEXT blocked" in case.timeline[-1].detail
    action = hold_action(held)
    assert action is not None and action.detail == "account on hold until 2026-02-01T14:05:00Z"


def test_second_block_moves_the_hold_end_later_and_to_its_case(
    logger_: FraudLogger, sessions: sessionmaker, clock: Clock
) -> None:
    (first,) = logger_.log_batch([block(high_risk("TX-1"))])
    clock.advance(hours=3)

    (second,) = logger_.log_batch([block(high_risk("TX-2"))])

    assert (second.hold_id, second.hold_change) == (first.hold_id, "extended")
    assert second.hold_until == NOW + timedelta(hours=27)
    hold = logger_.active_holds(["C-12345"], clock.now)["C-12345"]
    assert (hold.until, hold.case_id, hold.transaction_id) == (
        NOW + timedelta(hours=27),
        second.case_id,
        "TX-2",
    )
    (extended,) = _audit(sessions, "hold_extended")
    assert (extended["from"], extended["until"]) == (
        "2026-02-01T14:05:00+00:00",
        "2026-02-01T17:05:00+00:00",
    )
    assert _timeline(logger_, first.case_id or "")[-1] == "hold_extended"


def test_two_blocks_in_one_batch_share_one_hold(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    first, second = logger_.log_batch([block(high_risk("TX-1")), block(high_risk("TX-2"))])

    assert first.hold_id == second.hold_id
    assert (first.hold_change, second.hold_change) == ("placed", "kept")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(HoldRow)) == 1


def test_block_after_a_hold_lapsed_places_a_new_one(
    logger_: FraudLogger, sessions: sessionmaker, clock: Clock
) -> None:
    (first,) = logger_.log_batch([block(high_risk("TX-1"))])
    clock.advance(hours=25)

    (second,) = logger_.log_batch([block(high_risk("TX-2"))])

    assert second.hold_change == "placed" and second.hold_id != first.hold_id
    with sessions() as session:
        states = dict(session.execute(select(HoldRow.hold_id, HoldRow.state)).all())
    assert states == {first.hold_id: "expired", second.hold_id: "active"}


def test_release_lets_the_next_payment_through_and_is_audited(
    logger_: FraudLogger, sessions: sessionmaker, clock: Clock
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    clock.advance(minutes=10)

    released = logger_.release_hold("C-12345", actor="ana", reason="customer called: it was her")

    assert released is not None
    assert (released.hold_id, released.state, released.released_by) == (
        blocked.hold_id,
        "released",
        "ana",
    )
    assert released.released_at == NOW + timedelta(minutes=10)
    assert logger_.active_holds(["C-12345"], clock.now) == {}
    assert logger_.release_hold("C-12345", actor="ana") is None
    (entry,) = _audit(sessions, "hold_released")
    assert (entry["actor"], entry["reason"], entry["case_id"]) == (
        "ana",
        "customer called: it was her",
        blocked.case_id,
    )
    case = logger_.get_case(blocked.case_id or "")
    assert case.timeline[-1].kind == "hold_released"
    assert case.timeline[-1].detail.startswith(f"hold {blocked.hold_id} released by ana")
    assert case.hold_id is None
    # With the hold gone the agent decides the next payment normally; it logs as any other.
    (next_one,) = logger_.log_batch([review(ordinary("TX-NEXT"))])
    assert (next_one.hold_id, next_one.hold_change) == (None, None)
    assert logger_.verify_chain().ok


def test_legitimate_label_offers_to_release_the_hold(logger_: FraudLogger) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    case_id = blocked.case_id or ""

    labelled = logger_.label_case(case_id, "legitimate", actor="ana")

    assert (labelled.hold_id, labelled.hold_until) == (blocked.hold_id, DAY_LATER)
    assert labelled.hold_release_offered is True
    logger_.release_hold("C-12345", actor="ana", reason="false positive")
    assert logger_.get_case(case_id).hold_release_offered is False


def test_fraud_label_does_not_offer_a_release(logger_: FraudLogger) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    labelled = logger_.label_case(blocked.case_id or "", "fraud", actor="ana")

    assert (labelled.hold_id, labelled.hold_release_offered) == (blocked.hold_id, False)


def test_analyst_extends_a_hold_by_hours_or_to_a_moment(
    logger_: FraudLogger, sessions: sessionmaker, clock: Clock
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    clock.advance(hours=1)

    longer = logger_.extend_hold("C-12345", hours=48, actor="ana", reason="more checks")
    shorter = logger_.extend_hold("C-12345", until=NOW + timedelta(hours=6), actor="ana")

    assert (longer.hold_id, longer.until) == (blocked.hold_id, NOW + timedelta(hours=49))
    assert shorter.until == NOW + timedelta(hours=6)
    assert [entry["until"] for entry in _audit(sessions, "hold_extended")] == [
        "2026-02-02T15:05:00+00:00"
    ]
    assert [entry["until"] for entry in _audit(sessions, "hold_shortened")] == [
        "2026-01-31T20:05:00+00:00"
    ]
    assert _timeline(logger_, blocked.case_id or "")[-2:] == ["hold_extended", "hold_shortened"]


def test_analyst_places_a_hold_by_hand_without_a_case(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    hold = logger_.extend_hold("C-67890", hours=12, actor="ana", reason="card reported lost")

    assert (hold.customer_id, hold.case_id, hold.placed_by) == ("C-67890", None, "ana")
    assert hold.until == NOW + timedelta(hours=12)
    assert logger_.get_hold("C-67890") == hold
    (entry,) = _audit(sessions, "hold_placed")
    assert (entry["actor"], entry["reason"], entry["case_id"]) == (
        "ana",
        "card reported lost",
        None,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, "either hours or until"),
        ({"hours": 1, "until": NOW}, "either hours or until"),
        ({"hours": -1}, "not within the next 90 days"),
        ({"hours": 24 * 91}, "not within the next 90 days"),
        ({"until": NOW.replace(tzinfo=None)}, "needs a UTC offset"),
    ],
)
def test_unusable_hold_end_is_refused(
    logger_: FraudLogger, change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        logger_.extend_hold("C-12345", actor="ana", **change)  # type: ignore[arg-type]


def test_customer_without_a_hold_is_not_found(logger_: FraudLogger) -> None:
    with pytest.raises(NotFound, match="C-12345"):
        logger_.get_hold("C-12345")


def test_zero_hold_hours_places_no_hold(db_url: str, clock: Clock) -> None:
    logger_ = FraudLogger(db_url, clock=clock, hold_hours=0)

    (outcome,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    assert (outcome.hold_id, hold_action(outcome)) == (None, None)
    assert logger_.active_holds(["C-12345"], NOW) == {}


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"hold_hours": -1}, "hold_hours -1"),
        ({"notify_channels": ["pigeon"]}, "notify_channels"),
        ({"notify_channels": "email"}, "notify_channels"),
    ],
)
def test_unusable_logger_knobs_are_config_errors(
    tmp_db_url: str, knobs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        FraudLogger(tmp_db_url, **knobs)  # type: ignore[arg-type]


def test_block_queues_one_notice_per_configured_reachable_channel(
    db_url: str, clock: Clock, sessions: sessionmaker
) -> None:
    seed_customer(db_url)
    logger_ = FraudLogger(db_url, clock=clock, notify_channels=("email", "sms"))

    (outcome,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    assert len(outcome.notification_ids) == 2 and outcome.notification_skipped is None
    with sessions() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.alert_id.in_(outcome.notification_ids))
        ).all()
    by_kind = {row.kind: row for row in rows}
    assert sorted(by_kind) == ["customer_email", "customer_sms"]
    assert by_kind["customer_sms"].body_text == (
        "Fraudline: we blocked a payment of $4,500.00 at CRYPTO-EXCHANGE-XX on your card "
        "ending 4242. Card on hold until Feb 1 14:05 UTC. If it was you, call your bank."
    )
    assert by_kind["customer_email"].subject == "We blocked a payment on your card"
    assert {row.customer_id for row in rows} == {"C-12345"}
    # The address is read when the notice is sent, never stored with it.
    assert all("c12345@example.com" not in row.body_text for row in rows)
    kinds = _timeline(logger_, outcome.case_id or "")
    assert kinds.count("notification_queued") == 2
    # A retry answers with the same notices and queues none.
    (again,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    assert (again.created, sorted(again.notification_ids)) == (
        False,
        sorted(outcome.notification_ids),
    )
    assert (again.hold_id, again.hold_until) == (outcome.hold_id, DAY_LATER)


def test_without_channels_no_notice_is_queued_and_the_outcome_says_so(
    db_url: str, clock: Clock
) -> None:
    seed_customer(db_url)

    (outcome,) = FraudLogger(db_url, clock=clock).log_batch([block(high_risk("TX-HIGH"))])

    assert (outcome.notification_ids, outcome.notification_skipped) == (
        (),
        "no channel configured",
    )


def test_customer_without_contacts_gets_no_notice_and_the_outcome_says_why(
    db_url: str, clock: Clock
) -> None:
    seed_customer(db_url, email=None, phone=None)
    logger_ = FraudLogger(db_url, clock=clock, notify_channels=("email", "sms"))

    (outcome,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    assert (outcome.notification_ids, outcome.notification_skipped) == (
        (),
        "no email address or phone number on file",
    )


def test_reviews_notify_only_when_asked(db_url: str, clock: Clock) -> None:
    seed_customer(db_url)
    quiet = FraudLogger(db_url, clock=clock, notify_channels=("email",))
    chatty = FraudLogger(db_url, clock=clock, notify_channels=("email",), notify_on_review=True)

    (silent,) = quiet.log_batch([review(ordinary("TX-R1"))])
    (told,) = chatty.log_batch([review(ordinary("TX-R2"))])

    assert (silent.notification_ids, silent.notification_skipped, silent.hold_id) == (
        (),
        None,
        None,
    )
    assert len(told.notification_ids) == 1 and told.hold_id is None


def test_hold_lookup_for_a_batch_takes_under_20_ms(db_url: str, clock: Clock) -> None:
    logger_ = FraudLogger(db_url, clock=clock)
    logger_.log_batch([block(high_risk(f"TX-{n}", f"C-{n:05d}")) for n in range(200)])
    batch = [f"C-{n:05d}" for n in range(0, 400, 4)]
    logger_.active_holds(batch, NOW)

    started = time.perf_counter()
    holds = logger_.active_holds(batch, NOW + timedelta(minutes=1))
    elapsed_ms = (time.perf_counter() - started) * 1000

    assert len(holds) == 50
    assert elapsed_ms < 20, f"hold lookup of 100 customers took {elapsed_ms:.1f} ms"


def test_events_of_a_hold_are_on_its_case_timeline(
    logger_: FraudLogger, sessions: sessionmaker
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    with sessions() as session:
        details = session.scalars(
            select(CaseEventRow.detail).where(CaseEventRow.kind == "hold_placed")
        ).all()

    assert details == [
        f"card on hold until 2026-02-01T14:05:00Z ({blocked.hold_id}); audit entry 2"
    ]


def test_high_risk_then_ordinary_payment_is_held_and_logged_in_under_20_ms(
    logger_: FraudLogger, clock: Clock
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    logger_.active_holds(["C-67890"], NOW)  # warm the connection pool
    clock.advance(minutes=1)

    started = time.perf_counter()
    hold = logger_.active_holds(["C-12345"], clock.now)["C-12345"]
    (held,) = logger_.log_batch([on_hold(ordinary("TX-NEXT"), hold.until)])
    elapsed_ms = (time.perf_counter() - started) * 1000

    assert (held.hold_id, held.hold_change, held.case_id) == (blocked.hold_id, "on_hold", None)
    assert elapsed_ms < 20, f"hold lookup and logging took {elapsed_ms:.1f} ms"
