"""A hash-chained, append-only audit trail in which any edit or deletion shows."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from fraudline.records import (
    AuditChainHeadRow,
    AuditEntryRow,
    CaseNoteRow,
    CaseRow,
    DecisionRow,
    ReportRow,
)

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
_HEAD_ID = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the exact text an entry's hash covers."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, content_json: str) -> str:
    """The hash of an entry: sha256 of the previous entry's hash and its own content."""
    return sha256_hex(prev_hash + content_json)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the audit chain from its first entry to its head.

    Attributes:
        ok: True when every entry, the head and the evidence they vouch for agree.
        entries_checked: How many entries were read.
        first_bad_id: The sequence number of the first entry that fails, or None.
        reason: What is wrong with it, in words; empty when ok.
        head_hash: The hash of the last entry read.
    """

    ok: bool
    entries_checked: int
    first_bad_id: int | None = None
    reason: str = ""
    head_hash: str = GENESIS_HASH


class ChainAppender:
    """Appends entries to the chain inside one locked database transaction.

    Get one from `lock_chain`; call `append` for each entry and `flush` once
    before the transaction commits.
    """

    def __init__(self, session: Session, last_seq: int, last_hash: str) -> None:
        self._session = session
        self.last_seq = last_seq
        self.last_hash = last_hash
        self._pending: list[dict[str, Any]] = []

    def append(
        self,
        kind: str,
        fields: dict[str, Any],
        *,
        at: datetime,
        transaction_id: str | None = None,
        case_id: str | None = None,
    ) -> int:
        """Adds one entry and returns its sequence number (its audit entry id)."""
        seq = self.last_seq + 1
        content = {
            **fields,
            "seq": seq,
            "at": at.isoformat(),
            "kind": kind,
            "transaction_id": transaction_id,
            "case_id": case_id,
        }
        entry_hash = chain_hash(self.last_hash, canonical_json(content))
        self._pending.append(
            {
                "seq": seq,
                "kind": kind,
                "transaction_id": transaction_id,
                "case_id": case_id,
                "content": canonical_json(content),
                "prev_hash": self.last_hash,
                "entry_hash": entry_hash,
            }
        )
        self.last_seq, self.last_hash = seq, entry_hash
        return seq

    def flush(self) -> None:
        """Writes the appended entries and moves the chain head past them."""
        if not self._pending:
            return
        self._session.execute(insert(AuditEntryRow), self._pending)
        self._session.execute(
            update(AuditChainHeadRow)
            .where(AuditChainHeadRow.id == _HEAD_ID)
            .values(last_seq=self.last_seq, last_hash=self.last_hash)
            .execution_options(synchronize_session=False)
        )
        self._pending = []


def lock_chain(session: Session) -> ChainAppender:
    """Takes the chain's write lock for the rest of `session`'s transaction.

    Must be the session's first statement. The head row is updated before anything
    is read: on SQLite that write takes the database's write lock (as BEGIN
    IMMEDIATE would, waiting out the busy timeout), on PostgreSQL it locks the head
    row until commit, so appends from every process and replica are serialised.
    """
    if not _bump_head(session):
        _insert_head(session)
        _bump_head(session)
    query = select(AuditChainHeadRow.last_seq, AuditChainHeadRow.last_hash).where(
        AuditChainHeadRow.id == _HEAD_ID
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    last_seq, last_hash = session.execute(query).one()
    return ChainAppender(session, last_seq, last_hash)


def _bump_head(session: Session) -> bool:
    result = session.execute(
        update(AuditChainHeadRow)
        .where(AuditChainHeadRow.id == _HEAD_ID)
        .values(lock_count=AuditChainHeadRow.lock_count + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _insert_head(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_into(AuditChainHeadRow)
        .values(id=_HEAD_ID, last_seq=0, last_hash=GENESIS_HASH, lock_count=0)
        .on_conflict_do_nothing()
    )


def read_head(session: Session) -> tuple[int, str]:
    """The last entry's sequence number and hash, without locking."""
    row = session.get(AuditChainHeadRow, _HEAD_ID)
    return (row.last_seq, row.last_hash) if row else (0, GENESIS_HASH)


def verify_chain(sessions: sessionmaker, page_size: int = 2000) -> ChainReport:
    """Walks every entry in order, then checks the stored evidence they vouch for.

    An entry fails when a number is missing, its `prev_hash` is not the previous
    entry's hash, its recomputed hash differs, or its columns differ from the
    hashed content. Stored decisions, case evidence, case notes and reports fail
    when their sha256 differs from the one their audit entry recorded.
    """
    with sessions() as session:
        report = _walk_entries(session, page_size)
        if not report.ok:
            return report
        bad = _first_evidence_mismatch(session, page_size)
    if bad is not None:
        seq, reason = bad
        return ChainReport(False, report.entries_checked, seq, reason, report.head_hash)
    return report


def _walk_entries(session: Session, page_size: int) -> ChainReport:
    prev_hash, expected, checked = GENESIS_HASH, 1, 0
    while True:
        rows = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.seq >= expected)
            .order_by(AuditEntryRow.seq)
            .limit(page_size)
        ).all()
        for row in rows:
            reason = _entry_fault(row, expected, prev_hash)
            if reason:
                # A gap is named by the missing number, anything else by the entry.
                bad_id = min(row.seq, expected)
                return ChainReport(False, checked, bad_id, reason, prev_hash)
            prev_hash, expected, checked = row.entry_hash, expected + 1, checked + 1
        if len(rows) < page_size:
            break

    last_seq, last_hash = read_head(session)
    if (last_seq, last_hash) != (checked, prev_hash):
        reason = (
            f"the chain head names entry {last_seq} with hash {last_hash[:12]}..., but "
            f"the entries end at {checked} with hash {prev_hash[:12]}...: entries after "
            f"{checked} were deleted or the head was edited"
        )
        return ChainReport(False, checked, checked + 1, reason, prev_hash)
    return ChainReport(True, checked, None, "", prev_hash)


def _entry_fault(row: AuditEntryRow, expected: int, prev_hash: str) -> str:
    if row.seq != expected:
        return f"entry {expected} was deleted: the entry after {expected - 1} is {row.seq}"
    if row.prev_hash != prev_hash:
        return (
            f"prev_hash does not match entry {expected - 1}'s hash: "
            f"entry {expected - 1} or this one was altered"
        )
    try:
        content = json.loads(row.content)
    except ValueError:
        return "content is not valid JSON: it was altered after it was written"
    if not isinstance(content, dict):
        return "content is not a JSON object: it was altered after it was written"
    columns = {
        "seq": row.seq,
        "kind": row.kind,
        "transaction_id": row.transaction_id,
        "case_id": row.case_id,
    }
    for name, value in columns.items():
        if content.get(name) != value:
            return f"column {name} ({value!r}) differs from the hashed content"
    if chain_hash(prev_hash, canonical_json(content)) != row.entry_hash:
        return "content was changed after it was written: its hash no longer matches"
    return ""


def _first_evidence_mismatch(session: Session, page_size: int) -> tuple[int, str] | None:
    faults: list[tuple[int, str]] = []

    decisions = select(
        AuditEntryRow.seq,
        AuditEntryRow.content,
        DecisionRow.transaction_id,
        DecisionRow.result_json,
    ).join(DecisionRow, DecisionRow.audit_entry_id == AuditEntryRow.seq)
    for seq, content, transaction_id, result_json in _paged(session, decisions, page_size):
        if json.loads(content).get("result_sha256") != sha256_hex(result_json):
            faults.append((seq, f"stored decision of {transaction_id} was altered"))
            break

    cases = (
        select(
            AuditEntryRow.seq,
            AuditEntryRow.content,
            CaseRow.case_id,
            CaseRow.evidence_json,
        )
        .join(CaseRow, CaseRow.transaction_id == AuditEntryRow.transaction_id)
        .where(AuditEntryRow.kind == "decision")
    )
    for seq, content, case_id, evidence_json in _paged(session, cases, page_size):
        if json.loads(content).get("result_sha256") != sha256_hex(evidence_json):
            faults.append((seq, f"evidence of case {case_id} was altered"))
            break

    reports = (
        select(
            AuditEntryRow.seq,
            AuditEntryRow.content,
            ReportRow.report_id,
            ReportRow.report_json,
        )
        .join(ReportRow, ReportRow.case_id == AuditEntryRow.case_id)
        .where(AuditEntryRow.kind == "report_written")
    )
    for seq, content, report_id, report_json in _paged(session, reports, page_size):
        if json.loads(content).get("report_sha256") != sha256_hex(report_json):
            faults.append((seq, f"report {report_id} was altered"))
            break

    notes = select(
        AuditEntryRow.seq,
        AuditEntryRow.content,
        CaseNoteRow.id,
        CaseNoteRow.text,
    ).join(CaseNoteRow, CaseNoteRow.audit_entry_id == AuditEntryRow.seq)
    for seq, content, note_id, text in _paged(session, notes, page_size):
        if json.loads(content).get("text_sha256") != sha256_hex(text):
            faults.append((seq, f"note {note_id} was altered"))
            break

    return min(faults) if faults else None


def _paged(session: Session, query: Any, page_size: int) -> Any:
    last = 0
    while True:
        rows = session.execute(
            query.where(AuditEntryRow.seq > last).order_by(AuditEntryRow.seq).limit(page_size)
        ).all()
        yield from rows
        if len(rows) < page_size:
            return
        last = rows[-1][0]
