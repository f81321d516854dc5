"""Tests of the Alembic migrations: they build exactly the schema the models declare."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text

from deployments.fraud_logger import FraudLogger
from fraudline.db import Base, create_schema, make_engine
from fraudline.errors import ConfigError
from fraudline.migrations import (
    alembic_config,
    register_tables,
    schema_differences,
    upgrade_to_head,
)
from fraudline.schemas import DecisionResult, Explanation, Transaction

HEAD = "0003"


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return schema_differences(connection)
    finally:
        engine.dispose()


def test_upgrade_builds_every_table_exactly_as_the_models_declare(db_url: str) -> None:
    register_tables()

    assert upgrade_to_head(db_url) == HEAD

    assert _tables(db_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert _differences(db_url) == []


def test_upgrade_twice_changes_nothing(db_url: str) -> None:
    upgrade_to_head(db_url)

    assert upgrade_to_head(db_url) == HEAD
    assert _differences(db_url) == []


def test_logger_writes_and_verifies_on_a_migrated_database(db_url: str) -> None:
    upgrade_to_head(db_url)
    transaction = Transaction(
        transaction_id="TX-MIGRATED",
        customer_id="C-12345",
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        timestamp=datetime(2026, 1, 31, 14, 5, tzinfo=UTC),
    )
    result = DecisionResult(
        transaction_id="TX-MIGRATED",
        customer_id="C-12345",
        decision="block",
        risk_score=95.0,
        risk_level="high",
        reasons=[],
        evidence={},
        explanation=Explanation(text="test"),
        policy_version="policy-2026.01",
        decided_at=datetime(2026, 1, 31, 14, 5, tzinfo=UTC),
    )
    logger_ = FraudLogger(db_url, create_tables=False)

    (outcome,) = logger_.log_batch([(transaction, result)])
    case = logger_.add_note(outcome.case_id or "", "checked", actor="ana")

    assert (outcome.audit_entry_id, case.notes[0].text) == (1, "checked")
    assert logger_.verify_chain().ok


def test_database_made_before_migrations_is_stamped_with_head(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    engine.dispose()

    assert upgrade_to_head(db_url) == HEAD
    assert _differences(db_url) == []


def test_unversioned_database_that_drifted_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_cases_status"))
    engine.dispose()

    with pytest.raises(ConfigError, match="no migration revision"):
        upgrade_to_head(db_url)
    assert "alembic_version" not in _tables(db_url)


def test_downgrade_to_base_drops_every_table(db_url: str) -> None:
    upgrade_to_head(db_url)

    command.downgrade(alembic_config(db_url), "base")

    assert _tables(db_url) == {"alembic_version"}
