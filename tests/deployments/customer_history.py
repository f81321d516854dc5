"""The demo customers' profiles and history rows, for the evidence tool tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import sessionmaker

from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.history import HistoryStore
from fraudline.schemas import Transaction

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def seed_customers(url: str) -> tuple[HistoryStore, sessionmaker]:
    """Creates the schema and stores C-12345 (home New York) and C-67890 (no coordinates)."""
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_sessions(engine)
    store = HistoryStore(sessions)
    store.upsert_customers(
        [
            dict(
                customer_id="C-12345",
                home_location="New York, NY",
                home_latitude=40.7128,
                home_longitude=-74.0060,
                email="c12345@example.com",
                card_last4="4242",
                created_at=NOW - timedelta(days=730),
            ),
            dict(
                customer_id="C-67890",
                home_location="Los Angeles, CA",
                home_latitude=None,
                home_longitude=None,
                email=None,
                card_last4=None,
                created_at=NOW - timedelta(days=400),
            ),
        ]
    )
    return store, sessions


def history_row(
    transaction_id: str,
    customer_id: str,
    occurred_at: datetime,
    *,
    amount: float = 600.0,
    location: str = "New York, NY",
    device_id: str = "dev-abc123",
    ip_address: str = "192.168.1.100",
) -> dict[str, Any]:
    """One approved past card-not-present payment at an e-commerce shop."""
    return dict(
        transaction_id=transaction_id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        amount=amount,
        currency="USD",
        merchant="Shop",
        merchant_category="E-commerce",
        location=location,
        latitude=None,
        longitude=None,
        card_present=False,
        device_id=device_id,
        ip_address=ip_address,
        decision="approve",
    )


def payment(**fields: Any) -> Transaction:
    """Demo scenario 1's payment ($250.00 at Amazon.com from Seattle), with `fields` changed."""
    base: dict[str, Any] = dict(
        transaction_id="T-1",
        customer_id="C-12345",
        amount=250.0,
        merchant="Amazon.com",
        merchant_category="E-commerce",
        location="Seattle, WA",
        timestamp=NOW,
    )
    base.update(fields)
    return Transaction(**base)
