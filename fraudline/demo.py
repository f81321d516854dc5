"""Demo customers, their history, and the three scenarios every user tries first.

C-12345 usually spends $500-1,000 from New York and Seattle on two known devices;
C-67890 spends small amounts in Los Angeles. The history is laid out relative to
now, so the scenarios give the same decisions whatever the day.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.history import HistoryStore, TransactionRow

_NEW_YORK = ("New York, NY", 40.7128, -74.0060)
_SEATTLE = ("Seattle, WA", 47.6062, -122.3321)
_LOS_ANGELES = ("Los Angeles, CA", 34.0522, -118.2437)

DEMO_CUSTOMERS: list[dict[str, Any]] = [
    {
        "customer_id": "C-12345",
        "home_location": _NEW_YORK[0],
        "home_latitude": _NEW_YORK[1],
        "home_longitude": _NEW_YORK[2],
        "email": "c12345@example.com",
        "card_last4": "4242",
    },
    {
        "customer_id": "C-67890",
        "home_location": _LOS_ANGELES[0],
        "home_latitude": _LOS_ANGELES[1],
        "home_longitude": _LOS_ANGELES[2],
        "email": "c67890@example.com",
        "card_last4": "1881",
    },
]

SCENARIOS: dict[str, dict[str, Any]] = {
    "low_risk": {
        "transaction_id": "TXN-DEMO-001",
        "customer_id": "C-12345",
        "amount": 250.00,
        "merchant": "Amazon.com",
        "merchant_category": "E-commerce",
        "location": "Seattle, WA",
        "card_present": False,
        "device_id": "dev-abc123",
        "ip_address": "192.168.1.100",
        "previous_location": "Seattle, WA",
        "time_since_last_transaction": "2 hours ago",
    },
    "high_risk": {
        "transaction_id": "TXN-DEMO-002",
        "customer_id": "C-12345",
        "amount": 4500.00,
        "merchant": "CRYPTO-EXCHANGE-XX",
        "merchant_category": "Cryptocurrency",
        "location": "Moscow, Russia",
        "card_present": False,
        "device_id": "dev-unknown",
        "ip_address": "185.220.101.5",
        "previous_location": "New York, NY",
        "time_since_last_transaction": "30 minutes ago",
    },
    "medium_risk": {
        "transaction_id": "TXN-DEMO-003",
        "customer_id": "C-67890",
        "amount": 1200.00,
        "merchant": "Best Buy",
        "merchant_category": "Electronics",
        "location": "Los Angeles, CA",
        "card_present": True,
        "device_id": "dev-xyz789",
        "ip_address": "192.168.1.50",
        "previous_location": "Los Angeles, CA",
        "time_since_last_transaction": "1 day ago",
    },
}
EXPECTED_DECISIONS = {"low_risk": "approve", "high_risk": "block", "medium_risk": "review"}


def demo_history(now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """Transaction rows for the demo customers over the 90 days before `now`."""
    rng = random.Random(seed)
    stamp = now.strftime("%Y%m%d")
    rows = []
    for i in range(60):
        place = _NEW_YORK if i % 2 else _SEATTLE
        rows.append(
            _row(
                f"DEMO-{stamp}-C12345-{i:03d}",
                "C-12345",
                now - timedelta(days=90) + timedelta(hours=36 * i + rng.randint(0, 6)),
                round(rng.uniform(500, 1000), 2),
                rng.choice(["E-commerce", "Travel", "Electronics", "Restaurants"]),
                place,
                rng.choice(["dev-abc123", "dev-def456"]),
                rng.choice(["192.168.1.100", "10.0.0.12"]),
            )
        )
    for i in range(40):
        rows.append(
            _row(
                f"DEMO-{stamp}-C67890-{i:03d}",
                "C-67890",
                now - timedelta(days=89) + timedelta(hours=52 * i + rng.randint(0, 6)),
                round(rng.uniform(10, 80), 2),
                rng.choice(["Grocery", "Restaurants", "Gas"]),
                _LOS_ANGELES,
                "dev-xyz789",
                "192.168.1.50",
            )
        )
    return [row for row in rows if row["occurred_at"] < now - timedelta(hours=3)]


def seed_demo_history(database_url: str, now: datetime | None = None) -> int:
    """Stores the demo customers and, when they have no recent history, their history.

    Returns how many transactions were added (0 when the history is fresh).
    """
    now = now or datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        sessions = make_sessions(engine)
        store = HistoryStore(sessions)
        store.upsert_customers(
            [dict(c, created_at=now - timedelta(days=730)) for c in DEMO_CUSTOMERS]
        )
        with sessions() as session:
            recent = session.scalar(
                select(func.count())
                .select_from(TransactionRow)
                .where(TransactionRow.customer_id.in_(["C-12345", "C-67890"]))
                .where(TransactionRow.occurred_at >= now - timedelta(days=30))
            )
        if recent and recent >= 10:
            return 0
        rows = demo_history(now)
        store.record(rows)
        return len(rows)
    finally:
        engine.dispose()


def _row(
    transaction_id: str,
    customer_id: str,
    occurred_at: datetime,
    amount: float,
    category: str,
    place: tuple[str, float, float],
    device_id: str,
    ip_address: str,
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "amount": amount,
        "currency": "USD",
        "merchant": f"{category} merchant {transaction_id[-3:]}",
        "merchant_category": category,
        "location": place[0],
        "latitude": place[1],
        "longitude": place[2],
        "card_present": category in ("Restaurants", "Grocery", "Gas"),
        "device_id": device_id,
        "ip_address": ip_address,
        "decision": "approve",
        "risk_score": 5.0,
        "is_fraud": False,
    }
