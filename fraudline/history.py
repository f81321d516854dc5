"""Customer profiles and the history of decided transactions."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Index,
    String,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from fraudline.db import Base


class CustomerRow(Base):
    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    home_location: Mapped[str | None] = mapped_column(String(200))
    home_latitude: Mapped[float | None] = mapped_column(Float)
    home_longitude: Mapped[float | None] = mapped_column(Float)
    email: Mapped[str | None] = mapped_column(String(254))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransactionRow(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_customer_time", "customer_id", "occurred_at"),
        # Which customers used a device: the identity tool asks for every payment.
        Index("ix_transactions_device_customer", "device_id", "customer_id"),
    )

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    merchant: Mapped[str] = mapped_column(String(200))
    merchant_category: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    card_present: Mapped[bool] = mapped_column(Boolean, default=False)
    device_id: Mapped[str | None] = mapped_column(String(128))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    decision: Mapped[str | None] = mapped_column(String(10))
    risk_score: Mapped[float | None] = mapped_column(Float)
    is_fraud: Mapped[bool | None] = mapped_column(Boolean)


@dataclass(frozen=True)
class Customer:
    customer_id: str
    home_location: str | None
    home_latitude: float | None
    home_longitude: float | None
    email: str | None
    card_last4: str | None
    created_at: datetime


@dataclass(frozen=True)
class PastTransaction:
    """A transaction of the customer's, as the tools read it back."""

    transaction_id: str
    occurred_at: datetime
    amount: float
    merchant: str
    merchant_category: str
    location: str
    latitude: float | None
    longitude: float | None
    card_present: bool
    device_id: str | None
    ip_address: str | None
    decision: str | None


@dataclass(frozen=True)
class CustomerHistory:
    """A customer's profile and their transactions before a moment, oldest first."""

    customer: Customer | None
    transactions: Sequence[PastTransaction]

    @property
    def last(self) -> PastTransaction | None:
        return self.transactions[-1] if self.transactions else None


# Where `occurred_at` falls among PastTransaction's fields, as histories() selects them.
_OCCURRED_AT = [field.name for field in fields(PastTransaction)].index("occurred_at")


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class HistoryStore:
    """Reads and writes customers and their transactions, a batch at a time."""

    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def histories(
        self,
        requests: Iterable[tuple[str, datetime]],
        window: timedelta = timedelta(days=90),
        limit: int = 500,
    ) -> list[CustomerHistory]:
        """Each (customer, moment)'s history strictly before that moment.

        One query per batch: the widest window is read once and cut per request,
        so a later transaction never leaks into an earlier one's history.
        """
        wanted = [(customer_id, _utc(moment)) for customer_id, moment in requests]
        if not wanted:
            return []
        customer_ids = sorted({customer_id for customer_id, _ in wanted})
        earliest = min(moment for _, moment in wanted) - window
        latest = max(moment for _, moment in wanted)

        with self._sessions() as session:
            customers = {
                row.customer_id: _to_customer(row)
                for row in session.scalars(
                    select(CustomerRow).where(CustomerRow.customer_id.in_(customer_ids))
                )
            }
            # Plain rows, not ORM objects: building entities cost more than the
            # query itself on a batch of a few thousand past payments.
            by_customer: dict[str, list[PastTransaction]] = defaultdict(list)
            columns = [getattr(TransactionRow, field.name) for field in fields(PastTransaction)]
            rows = session.execute(
                select(TransactionRow.customer_id, *columns)
                .where(TransactionRow.customer_id.in_(customer_ids))
                .where(TransactionRow.occurred_at >= earliest)
                .where(TransactionRow.occurred_at < latest)
                .order_by(TransactionRow.occurred_at)
            )
            for customer_id, *values in rows:
                values[_OCCURRED_AT] = _utc(values[_OCCURRED_AT])
                by_customer[customer_id].append(PastTransaction(*values))

        moments = {
            customer_id: [past.occurred_at for past in found]
            for customer_id, found in by_customer.items()
        }
        result = []
        for customer_id, moment in wanted:
            found = by_customer.get(customer_id, [])
            times = moments.get(customer_id, [])
            first = bisect_left(times, moment - window)
            end = bisect_left(times, moment)
            past = found[max(first, end - limit) : end]
            result.append(CustomerHistory(customers.get(customer_id), past))
        return result

    def record(self, rows: Sequence[dict]) -> None:
        """Stores decided transactions; a transaction id already stored is kept as is."""
        if not rows:
            return
        with self._sessions.begin() as session:
            insert = _insert_ignoring_duplicates(session.bind.dialect.name)
            # Parameters as a list, not .values(): SQLAlchemy then sends them in
            # pages, under SQLite's limit on bound variables per statement.
            session.execute(insert(TransactionRow), list(rows))

    def upsert_customers(self, customers: Sequence[dict]) -> None:
        with self._sessions.begin() as session:
            for customer in customers:
                session.merge(CustomerRow(**customer))


def _insert_ignoring_duplicates(dialect: str):  # type: ignore[no-untyped-def]
    if dialect == "postgresql":
        return lambda table: postgresql.insert(table).on_conflict_do_nothing()
    return lambda table: sqlite.insert(table).on_conflict_do_nothing()


def _to_customer(row: CustomerRow) -> Customer:
    return Customer(
        customer_id=row.customer_id,
        home_location=row.home_location,
        home_latitude=row.home_latitude,
        home_longitude=row.home_longitude,
        email=row.email,
        card_last4=row.card_last4,
        created_at=_utc(row.created_at),
    )
