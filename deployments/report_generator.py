"""Writes a compliance report per case from its stored evidence, and renders it."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fraudline.audit import ChainAppender, lock_chain, sha256_hex
from fraudline.db import make_engine, make_sessions
from fraudline.errors import InvalidInput, NotFound
from fraudline.records import (
    AuditEntryRow,
    CaseEventRow,
    CaseRow,
    DecisionRow,
    ReportRow,
    TimelineEvent,
    ensure_schema,
    new_id,
    utc,
    utc_now,
)
from fraudline.reports import (
    build_report,
    media_type,
    render_html,
    render_pdf,
    render_summary_html,
    report_json,
    summarize_period,
)
from fraudline.schemas import DecisionResult

logger = logging.getLogger(__name__)

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    # PDF rendering is CPU-bound but rare: one report per flagged case.
    "ray_actor_options": {"num_cpus": 0.5},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 4,
    },
    "max_ongoing_requests": 8,
}


class ReportGenerator:
    """Builds one compliance report per case, from the evidence stored with it.

    The report holds the transaction, each tool's evidence with values and units,
    the decision, risk score, policy version, explanation, the case timeline and
    the audit chain's head hash when it was written. Its JSON and HTML are stored
    and its sha256 goes into the audit chain; the PDF is rendered on demand.

    Args:
        database_url: SQLite or PostgreSQL URL of the records database.
        create_tables: Create missing tables on start.
        clock: Returns the current UTC time.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        create_tables: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        engine = make_engine(database_url)
        if create_tables:
            ensure_schema(engine)
        self._sessions = make_sessions(engine)
        self._clock = clock

    def generate_batch(self, case_ids: Sequence[str]) -> list[str]:
        """One report id per case id, same order; a case's report is written once.

        Raises:
            NotFound: A case id does not exist; nothing is written then.
        """
        wanted = list(dict.fromkeys(case_ids))
        if not wanted:
            return []
        now = self._clock()
        with self._sessions.begin() as session:
            chain = lock_chain(session)
            stored = session.execute(
                select(ReportRow.case_id, ReportRow.report_id).where(ReportRow.case_id.in_(wanted))
            )
            report_ids = {case_id: report_id for case_id, report_id in stored}
            missing = [case_id for case_id in wanted if case_id not in report_ids]
            if missing:
                report_ids.update(self._write(session, chain, missing, now))
                chain.flush()
        return [report_ids[case_id] for case_id in case_ids]

    def _write(
        self, session: Session, chain: ChainAppender, case_ids: list[str], now: datetime
    ) -> dict[str, str]:
        cases = {
            case.case_id: case
            for case in session.scalars(select(CaseRow).where(CaseRow.case_id.in_(case_ids)))
        }
        unknown = [case_id for case_id in case_ids if case_id not in cases]
        if unknown:
            raise NotFound(
                f"case {unknown[0]!r} does not exist; pass ids of logged cases (CASE-3F9A1C2B7D10)"
            )
        timelines = _timelines(session, case_ids)
        vouchers = _decision_entries(session, [case.transaction_id for case in cases.values()])

        written = {}
        for case_id in case_ids:
            case = cases[case_id]
            report_id = new_id("RPT")
            entry_id, recorded_sha = vouchers.get(case.transaction_id, (None, None))
            evidence_sha = sha256_hex(case.evidence_json)
            report = build_report(
                report_id=report_id,
                case_id=case_id,
                case_status=case.status,
                transaction=json.loads(case.transaction_json),
                result=DecisionResult.model_validate_json(case.evidence_json),
                timeline=timelines[case_id],
                audit={
                    "head_entry_id": chain.last_seq,
                    "head_hash": chain.last_hash,
                    "decision_entry_id": entry_id,
                    "evidence_sha256": evidence_sha,
                    "evidence_matches_audit": recorded_sha == evidence_sha,
                },
                generated_at=now,
            )
            text = report_json(report)
            digest = sha256_hex(text)
            session.add(
                ReportRow(
                    report_id=report_id,
                    case_id=case_id,
                    created_at=now,
                    report_json=text,
                    report_html=render_html(report),
                    sha256=digest,
                )
            )
            chain.append(
                "report_written",
                {"report_id": report_id, "report_sha256": digest},
                at=now,
                transaction_id=case.transaction_id,
                case_id=case_id,
            )
            session.add(
                CaseEventRow(
                    case_id=case_id,
                    at=now,
                    kind="report_written",
                    detail=f"report {report_id}, sha256 {digest[:16]}...",
                )
            )
            written[case_id] = report_id
        logger.info("wrote %d case reports", len(written))
        return written

    def report_for_case(self, case_id: str) -> str | None:
        """The id of a case's report, or None when none was written yet."""
        with self._sessions() as session:
            return session.scalar(select(ReportRow.report_id).where(ReportRow.case_id == case_id))

    def get(self, report_id: str) -> dict[str, Any]:
        """The stored report as a dict."""
        return json.loads(self._row(report_id).report_json)

    def render(self, report_id: str, format: str = "json") -> tuple[bytes, str]:
        """The report as bytes in "json", "html" or "pdf", with its media type."""
        kind = media_type(format)
        row = self._row(report_id)
        if format == "json":
            return row.report_json.encode("utf-8"), kind
        if format == "html":
            return row.report_html.encode("utf-8"), kind
        return render_pdf(json.loads(row.report_json)), kind

    def period_summary(self, since: datetime, until: datetime, top: int = 10) -> dict[str, Any]:
        """Figures of the decisions taken in [since, until) and the cases they opened.

        Counts and rates by decision, the `top` most frequent reasons, percentiles
        of decision latency (ms) and decisions per policy version.

        Raises:
            InvalidInput: A bound lacks a UTC offset, or since is not before until.
        """
        for name, moment in (("since", since), ("until", until)):
            if moment.tzinfo is None:
                raise InvalidInput(f"{name} {moment.isoformat()} needs a UTC offset, e.g. +00:00")
        if since >= until:
            raise InvalidInput(
                f"since {since.isoformat()} is not before until {until.isoformat()}; swap them"
            )
        if not 1 <= top <= 100:
            raise InvalidInput(f"top {top} is out of range; ask for 1-100 reasons")
        start, end = utc(since), utc(until)
        decided = (
            select(
                DecisionRow.decision,
                DecisionRow.latency_ms,
                DecisionRow.reason_codes,
                DecisionRow.policy_version,
            )
            .where(DecisionRow.decided_at >= start, DecisionRow.decided_at < end)
            .execution_options(yield_per=5000)
        )
        statuses = (
            select(CaseRow.status, func.count())
            .join(DecisionRow, DecisionRow.transaction_id == CaseRow.transaction_id)
            .where(DecisionRow.decided_at >= start, DecisionRow.decided_at < end)
            .group_by(CaseRow.status)
        )
        with self._sessions() as session:
            rows = [tuple(row) for row in session.execute(decided)]
            by_status = {status: count for status, count in session.execute(statuses)}
        return summarize_period(
            since=start,
            until=end,
            generated_at=self._clock(),
            decisions=rows,  # type: ignore[arg-type]
            case_statuses=dict(sorted(by_status.items())),
            top=top,
        )

    def render_period_summary(
        self, since: datetime, until: datetime, format: str = "json"
    ) -> tuple[bytes, str]:
        """The period summary as bytes in "json" or "html", with its media type."""
        if format not in ("json", "html"):
            raise InvalidInput(f"summary format {format!r} is not supported; use json or html")
        summary = self.period_summary(since, until)
        if format == "json":
            return report_json(summary).encode("utf-8"), media_type("json")
        return render_summary_html(summary).encode("utf-8"), media_type("html")

    def _row(self, report_id: str) -> ReportRow:
        with self._sessions() as session:
            row = session.get(ReportRow, report_id)
        if row is None:
            raise NotFound(
                f"report {report_id!r} does not exist; report ids look like RPT-3F9A1C2B7D10"
            )
        return row


def _timelines(session: Session, case_ids: list[str]) -> dict[str, list[TimelineEvent]]:
    timelines: dict[str, list[TimelineEvent]] = defaultdict(list)
    events = session.scalars(
        select(CaseEventRow)
        .where(CaseEventRow.case_id.in_(case_ids))
        .order_by(CaseEventRow.at, CaseEventRow.id)
    )
    for event in events:
        timelines[event.case_id].append(
            TimelineEvent(at=utc(event.at), kind=event.kind, detail=event.detail)
        )
    return timelines


def _decision_entries(
    session: Session, transaction_ids: list[str]
) -> dict[str, tuple[int, str | None]]:
    """Each transaction's decision audit entry id and the evidence hash it recorded."""
    rows = session.execute(
        select(DecisionRow.transaction_id, AuditEntryRow.seq, AuditEntryRow.content)
        .join(AuditEntryRow, AuditEntryRow.seq == DecisionRow.audit_entry_id)
        .where(DecisionRow.transaction_id.in_(transaction_ids))
    )
    return {
        transaction_id: (seq, json.loads(content).get("result_sha256"))
        for transaction_id, seq, content in rows
    }
