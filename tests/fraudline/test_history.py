"""The history store: bulk writes and each payment's own window of history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.history import HistoryStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _store(url: str) -> HistoryStore:
    engine = make_engine(url)
    create_schema(engine)
    return HistoryStore(make_sessions(engine))


def _row(transaction_id: str, customer_id: str, occurred_at: datetime) -> dict[str, Any]:
    return dict(
        transaction_id=transaction_id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        amount=42.0,
        currency="USD",
        merchant="Shop",
        merchant_category="grocery_pos",
        location="Denver, CO",
        latitude=39.74,
        longitude=-104.99,
        card_present=True,
        device_id="dev-1",
        ip_address="203.0.113.9",
        decision="approve",
    )


def test_one_call_stores_more_rows_than_sqlite_binds_in_one_statement(db_url: str) -> None:
    # 15 columns x 20,000 rows is 300,000 parameters, past what SQLite builds
    # allow in one statement (32,766 by default, 250,000 in Debian's).
    store = _store(db_url)
    rows = [
        _row(f"T-{i}", f"C-{i % 50}", NOW - timedelta(days=10) + timedelta(seconds=i))
        for i in range(20_000)
    ]

    store.record(rows)

    found = store.histories([(f"C-{k}", NOW) for k in range(50)], limit=1000)
    assert sum(len(history.transactions) for history in found) == 20_000


def test_each_request_sees_only_its_customer_before_its_own_moment(db_url: str) -> None:
    store = _store(db_url)
    store.record([
        _row("OLD", "C-1", NOW - timedelta(days=91)),
        _row("EDGE", "C-1", NOW - timedelta(days=90)),
        _row("A", "C-1", NOW - timedelta(hours=2)),
        _row("B", "C-1", NOW - timedelta(hours=1)),
        _row("SAME", "C-1", NOW),
        _row("OTHER", "C-2", NOW - timedelta(hours=1)),
    ])

    early, late, other = store.histories(
        [("C-1", NOW - timedelta(hours=1)), ("C-1", NOW), ("C-2", NOW)]
    )

    assert [tx.transaction_id for tx in early.transactions] == ["EDGE", "A"]
    assert [tx.transaction_id for tx in late.transactions] == ["EDGE", "A", "B"]
    assert [tx.transaction_id for tx in other.transactions] == ["OTHER"]
    assert late.transactions[-1].occurred_at == NOW - timedelta(hours=1)
    assert late.transactions[-1].occurred_at.tzinfo is not None


def test_limit_keeps_the_newest_payments(db_url: str) -> None:
    store = _store(db_url)
    store.record([_row(f"T-{i}", "C-1", NOW - timedelta(minutes=100 - i)) for i in range(100)])

    [history] = store.histories([("C-1", NOW)], limit=10)

    assert [tx.transaction_id for tx in history.transactions] == [
        f"T-{i}" for i in range(90, 100)
    ]
