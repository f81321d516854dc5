"""Tests of ReportGenerator: reports from stored evidence, idempotent, three formats."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, update

from deployments.fraud_logger import FraudLogger
from deployments.report_generator import ReportGenerator
from fraudline.db import make_engine, make_sessions
from fraudline.errors import InvalidInput, NotFound
from fraudline.records import CaseRow, ReportRow
from fraudline.schemas import (
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
    Transaction,
)

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def _pair(transaction_id: str, decision: str = "block") -> tuple[Transaction, DecisionResult]:
    device = Signal(
        code="unknown_device",
        text="Device dev-unknown was never used by C-12345 (2 known devices)",
        value="dev-unknown",
        unit=None,
        points=20.0,
    )
    travel = Signal(
        code="impossible_travel",
        text="7,510 km in 30 min: 15,020 km/h, above the 1,000 km/h limit",
        value=15020.0,
        unit="km/h",
        points=40.0,
    )
    transaction = Transaction(
        transaction_id=transaction_id,
        customer_id="C-12345",
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        device_id="dev-unknown",
        timestamp=NOW,
    )
    result = DecisionResult(
        transaction_id=transaction_id,
        customer_id="C-12345",
        decision=decision,  # type: ignore[arg-type]
        risk_score=95.0 if decision == "block" else 55.0,
        risk_level="high" if decision == "block" else "medium",
        reasons=[
            Reason(code=travel.code, text=travel.text, tool="geolocation", points=40),
            Reason(code=device.code, text=device.text, tool="identity", points=20),
        ],
        evidence={
            "geolocation": Evidence(tool="geolocation", signals=[travel]),
            "identity": Evidence(tool="identity", signals=[device]),
        },
        explanation=Explanation(text="Impossible travel from an unknown device."),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )
    return transaction, result


@pytest.fixture
def case_ids(db_url: str) -> list[str]:
    # No hold: these tests count the entries a report adds to the chain.
    logged = FraudLogger(db_url, clock=lambda: NOW, hold_hours=0).log_batch(
        [_pair("TX-R1"), _pair("TX-R2", "review")]
    )
    return [outcome.case_id for outcome in logged if outcome.case_id]


@pytest.fixture
def generator(db_url: str, case_ids: list[str]) -> ReportGenerator:
    return ReportGenerator(db_url, clock=lambda: NOW)


def test_report_is_built_from_the_stored_case(
    generator: ReportGenerator, case_ids: list[str]
) -> None:
    (report_id,) = generator.generate_batch(case_ids[:1])

    report = generator.get(report_id)
    assert report_id.startswith("RPT-") and len(report_id) == len("RPT-") + 12
    assert report["case_id"] == case_ids[0]
    assert report["transaction"]["amount"] == 4500.0
    assert report["decision"]["decision"] == "block"
    assert report["decision"]["risk_score"] == 95.0
    assert report["decision"]["policy_version"] == "policy-2026.01"
    assert report["explanation"]["text"] == "Impossible travel from an unknown device."
    signals = {
        signal["code"]: (signal["value"], signal["unit"])
        for evidence in report["evidence"]
        for signal in evidence["signals"]
    }
    assert signals == {
        "impossible_travel": (15020.0, "km/h"),
        "unknown_device": ("dev-unknown", None),
    }
    assert [event["kind"] for event in report["timeline"]] == ["opened", "alert_queued"]


def test_report_records_the_audit_head_it_was_written_after(
    generator: ReportGenerator, case_ids: list[str], db_url: str
) -> None:
    head_before = FraudLogger(db_url, create_tables=False).verify_chain().head_hash

    first, second = generator.generate_batch(case_ids)

    audit = generator.get(first)["audit"]
    assert (audit["head_entry_id"], audit["head_hash"]) == (2, head_before)
    assert (audit["decision_entry_id"], audit["evidence_matches_audit"]) == (1, True)
    # The first report's own audit entry (3) precedes the second report.
    assert generator.get(second)["audit"]["head_entry_id"] == 3
    chain = FraudLogger(db_url, create_tables=False).verify_chain()
    assert (chain.ok, chain.entries_checked) == (True, 4)


def test_second_request_returns_the_same_report_id(
    generator: ReportGenerator, case_ids: list[str], db_url: str
) -> None:
    first = generator.generate_batch(case_ids)

    again = generator.generate_batch(list(reversed(case_ids)))

    assert again == list(reversed(first))
    case = FraudLogger(db_url, create_tables=False).get_case(case_ids[0])
    assert case.report_id == first[0]
    assert [event.kind for event in case.timeline][-1] == "report_written"


def test_pdf_renders_transaction_id_and_decision(
    generator: ReportGenerator, case_ids: list[str]
) -> None:
    (report_id,) = generator.generate_batch(case_ids[:1])

    pdf, kind = generator.render(report_id, "pdf")

    assert kind == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "TX-R1" in text
    assert "BLOCK" in text
    assert "15,020" in text


def test_json_and_html_renderings_come_from_the_stored_report(
    generator: ReportGenerator, case_ids: list[str]
) -> None:
    (report_id,) = generator.generate_batch(case_ids[1:])

    body, kind = generator.render(report_id, "json")
    page, page_kind = generator.render(report_id, "html")

    assert kind == "application/json"
    assert json.loads(body)["transaction"]["transaction_id"] == "TX-R2"
    assert page_kind == "text/html; charset=utf-8"
    assert "REVIEW" in page.decode()
    assert "dev-unknown" in page.decode()


def test_unknown_case_writes_no_report(
    generator: ReportGenerator, case_ids: list[str], db_url: str
) -> None:
    with pytest.raises(NotFound, match="CASE-FFFFFFFFFFFF"):
        generator.generate_batch([case_ids[0], "CASE-FFFFFFFFFFFF"])

    assert generator.report_for_case(case_ids[0]) is None


def test_unknown_report_and_format_are_rejected(
    generator: ReportGenerator, case_ids: list[str]
) -> None:
    (report_id,) = generator.generate_batch(case_ids[:1])

    with pytest.raises(NotFound, match="RPT-000000000000"):
        generator.render("RPT-000000000000", "pdf")
    with pytest.raises(InvalidInput, match="xml"):
        generator.render(report_id, "xml")


def test_altered_stored_report_fails_chain_verification(
    generator: ReportGenerator, case_ids: list[str], db_url: str
) -> None:
    (report_id,) = generator.generate_batch(case_ids[:1])
    sessions = make_sessions(make_engine(db_url))
    with sessions.begin() as session:
        session.execute(
            update(ReportRow)
            .where(ReportRow.report_id == report_id)
            .values(report_json=func.replace(ReportRow.report_json, "block", "approve"))
        )

    chain = FraudLogger(db_url, create_tables=False).verify_chain()

    assert (chain.ok, chain.first_bad_id) == (False, 3)
    assert report_id in chain.reason


def test_report_flags_evidence_edited_before_it_was_written(
    generator: ReportGenerator, case_ids: list[str], db_url: str
) -> None:
    sessions = make_sessions(make_engine(db_url))
    with sessions.begin() as session:
        session.execute(
            update(CaseRow)
            .where(CaseRow.case_id == case_ids[0])
            .values(evidence_json=func.replace(CaseRow.evidence_json, "95.0", "15.0"))
        )

    (report_id,) = generator.generate_batch(case_ids[:1])

    report = generator.get(report_id)
    assert report["decision"]["risk_score"] == 15.0
    assert report["audit"]["evidence_matches_audit"] is False


def _timed(
    transaction_id: str, decision: str, minutes: int, total_ms: float, codes: list[str]
) -> tuple[Transaction, DecisionResult]:
    transaction, result = _pair(transaction_id, "block" if decision == "block" else "review")
    reasons = [Reason(code=code, text=code, tool="t", points=10) for code in codes]
    return transaction, result.model_copy(
        update={
            "decision": decision,
            "reasons": reasons,
            "decided_at": NOW + timedelta(minutes=minutes),
            "latency_ms": {"evidence": total_ms - 1, "policy": 0.5, "model": 0.5},
        }
    )


def test_period_summary_counts_rates_reasons_and_latency(db_url: str) -> None:
    logger_ = FraudLogger(db_url, clock=lambda: NOW)
    logger_.log_batch(
        [
            _timed("TX-A1", "approve", 0, 10.0, []),
            _timed("TX-A2", "approve", 1, 20.0, []),
            _timed("TX-R1", "review", 2, 30.0, ["unknown_device"]),
            _timed("TX-B1", "block", 3, 40.0, ["unknown_device", "impossible_travel"]),
            _timed("TX-B2", "block", 4, 50.0, ["impossible_travel", "impossible_travel"]),
            # Outside the period: decided at its end, which is exclusive.
            _timed("TX-LATE", "block", 60, 999.0, ["tor_exit"]),
        ]
    )
    generator = ReportGenerator(db_url, clock=lambda: NOW)

    summary = generator.period_summary(NOW, NOW + timedelta(hours=1))

    assert summary["decisions"] == {"total": 5, "approve": 2, "review": 1, "block": 2}
    assert summary["rates"] == {"approve": 0.4, "review": 0.2, "block": 0.4, "flagged": 0.6}
    assert summary["top_reasons"] == [
        {"code": "impossible_travel", "count": 2, "share": 0.4},
        {"code": "unknown_device", "count": 2, "share": 0.4},
    ]
    assert summary["latency_ms"] == {
        "count": 5,
        "p50": 30.0,
        "p90": 46.0,
        "p95": 48.0,
        "p99": 49.6,
        "max": 50.0,
    }
    assert summary["cases"] == {"opened": 3, "by_status": {"open": 3}}
    assert summary["policy_versions"] == {"policy-2026.01": 5}


def test_period_summary_of_an_empty_period_has_zero_counts(db_url: str) -> None:
    generator = ReportGenerator(db_url, clock=lambda: NOW)

    summary = generator.period_summary(NOW - timedelta(days=1), NOW)

    assert summary["decisions"]["total"] == 0
    assert summary["rates"]["block"] is None
    assert summary["latency_ms"] == {"count": 0}
    assert summary["top_reasons"] == []


def test_period_summary_renders_html_and_rejects_bad_bounds(db_url: str) -> None:
    FraudLogger(db_url, clock=lambda: NOW).log_batch(
        [_timed("TX-H", "block", 0, 12.0, ["impossible_travel"])]
    )
    generator = ReportGenerator(db_url, clock=lambda: NOW)

    page, kind = generator.render_period_summary(NOW, NOW + timedelta(days=1), "html")

    assert kind == "text/html; charset=utf-8"
    assert "impossible_travel" in page.decode()
    assert "100.0% flagged" in page.decode()
    with pytest.raises(InvalidInput, match="is not before until"):
        generator.period_summary(NOW, NOW)
    with pytest.raises(InvalidInput, match="needs a UTC offset"):
        generator.period_summary(datetime(2026, 1, 1), NOW)
    with pytest.raises(InvalidInput, match="'pdf' is not supported"):
        generator.render_period_summary(NOW, NOW + timedelta(days=1), "pdf")
