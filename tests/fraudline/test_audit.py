"""Tests of the hash-chained audit trail and its command line check."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import sessionmaker

from fraudline import audit_cli
from fraudline.audit import (
    GENESIS_HASH,
    canonical_json,
    lock_chain,
    verify_chain,
)
from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.records import AuditEntryRow

AT = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> sessionmaker:
    engine = make_engine(db_url)
    create_schema(engine)
    return make_sessions(engine)


def _append(sessions: sessionmaker, count: int, kind: str = "decision") -> list[int]:
    with sessions.begin() as session:
        chain = lock_chain(session)
        ids = [chain.append(kind, {"n": n}, at=AT, transaction_id=f"TX-{n}") for n in range(count)]
        chain.flush()
    return ids


def _entries(sessions: sessionmaker) -> list[AuditEntryRow]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))


def test_entry_hash_is_sha256_of_previous_hash_and_canonical_content(
    sessions: sessionmaker,
) -> None:
    assert _append(sessions, 2) == [1, 2]

    first, second = _entries(sessions)
    content = {
        "n": 0,
        "seq": 1,
        "at": "2026-01-31T14:05:00+00:00",
        "kind": "decision",
        "transaction_id": "TX-0",
        "case_id": None,
    }
    expected = hashlib.sha256((GENESIS_HASH + canonical_json(content)).encode()).hexdigest()
    assert first.prev_hash == GENESIS_HASH
    assert first.entry_hash == expected
    assert json.loads(first.content) == content
    assert second.prev_hash == first.entry_hash


def test_intact_chain_verifies_and_reports_its_head(sessions: sessionmaker) -> None:
    _append(sessions, 3)
    _append(sessions, 2)

    report = verify_chain(sessions)

    assert report.ok
    assert report.entries_checked == 5
    assert report.first_bad_id is None
    assert report.head_hash == _entries(sessions)[-1].entry_hash


def test_edited_entry_is_named_first_bad(sessions: sessionmaker) -> None:
    _append(sessions, 4)
    with sessions.begin() as session:
        row = session.get(AuditEntryRow, 2)
        assert row is not None
        session.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.seq == 2)
            .values(content=row.content.replace('"n":1', '"n":7'))
        )

    report = verify_chain(sessions)

    assert not report.ok
    assert report.first_bad_id == 2
    assert report.entries_checked == 1
    assert "hash no longer matches" in report.reason


def test_edited_column_outside_the_content_is_named_first_bad(sessions: sessionmaker) -> None:
    _append(sessions, 3)
    with sessions.begin() as session:
        session.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(transaction_id="TX-99")
        )

    report = verify_chain(sessions)

    assert (report.ok, report.first_bad_id) == (False, 3)
    assert "transaction_id" in report.reason


def test_rehashed_edit_is_caught_by_the_next_entry(sessions: sessionmaker) -> None:
    _append(sessions, 3)
    with sessions.begin() as session:
        first = session.get(AuditEntryRow, 1)
        assert first is not None
        forged = json.loads(first.content) | {"n": 42}
        forged_hash = hashlib.sha256((GENESIS_HASH + canonical_json(forged)).encode()).hexdigest()
        session.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.seq == 1)
            .values(content=canonical_json(forged), entry_hash=forged_hash)
        )

    report = verify_chain(sessions)

    assert (report.ok, report.first_bad_id) == (False, 2)
    assert "prev_hash" in report.reason


def test_deleted_middle_entry_is_named_by_its_number(sessions: sessionmaker) -> None:
    _append(sessions, 5)
    with sessions.begin() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 3))

    report = verify_chain(sessions)

    assert (report.ok, report.first_bad_id, report.entries_checked) == (False, 3, 2)
    assert "entry 3 was deleted" in report.reason


def test_deleted_last_entry_is_caught_by_the_chain_head(sessions: sessionmaker) -> None:
    _append(sessions, 3)
    with sessions.begin() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 3))

    report = verify_chain(sessions)

    assert (report.ok, report.first_bad_id, report.entries_checked) == (False, 3, 2)
    assert "head names entry 3" in report.reason


def test_verification_pages_through_long_chains(sessions: sessionmaker) -> None:
    _append(sessions, 25)
    with sessions.begin() as session:
        session.execute(text("UPDATE audit_entries SET content = '{}' WHERE seq = 23"))

    report = verify_chain(sessions, page_size=10)

    assert (report.ok, report.first_bad_id, report.entries_checked) == (False, 23, 22)


def test_parallel_writers_with_their_own_connections_keep_one_unbroken_chain(
    db_url: str, sessions: sessionmaker
) -> None:
    writers, appends = 6, 10
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        own = make_sessions(make_engine(db_url))
        barrier.wait(timeout=10)
        try:
            for _ in range(appends):
                _append(own, 1)
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert [entry.seq for entry in _entries(sessions)] == list(range(1, 61))
    assert verify_chain(sessions).ok


def test_cli_exits_0_on_an_intact_chain(
    db_url: str, sessions: sessionmaker, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(sessions, 2)

    code = audit_cli.main(["verify", "--database-url", db_url])

    assert code == 0
    assert capsys.readouterr().out.startswith("OK: 2 entries verified")


def test_cli_exits_1_and_names_the_first_bad_entry(
    db_url: str, sessions: sessionmaker, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(sessions, 3)
    with sessions.begin() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 2))

    code = audit_cli.main(["verify", "--database-url", db_url, "--json"])

    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["first_bad_id"], result["entries_checked"]) == (False, 2, 1)


def test_cli_exits_2_when_the_database_has_no_audit_trail(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = audit_cli.main(["verify", "--database-url", f"sqlite:///{tmp_path}/empty.db"])

    assert code == 2
    assert "--database-url" in capsys.readouterr().err
