"""Tests of report building and its JSON, HTML and PDF renderings."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from fraudline.errors import InvalidInput
from fraudline.records import TimelineEvent
from fraudline.reports import (
    build_report,
    media_type,
    percentile,
    render_html,
    render_pdf,
    summarize_period,
)
from fraudline.schemas import (
    Action,
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
)

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def _report(merchant: str = "CRYPTO-EXCHANGE-XX") -> dict:
    travel = Signal(
        code="impossible_travel",
        text="15,020 km/h between New York, US and Moscow, RU",
        value=15020.5,
        unit="km/h",
        points=40.0,
    )
    result = DecisionResult(
        transaction_id="TX-REPORT-1",
        customer_id="C-12345",
        decision="block",
        risk_score=95.0,
        risk_level="high",
        reasons=[Reason(code=travel.code, text=travel.text, tool="geolocation", points=40)],
        evidence={
            "geolocation": Evidence(
                tool="geolocation", signals=[travel], details={"distance_km": 7510.2}
            ),
            "identity": Evidence.unavailable("identity", "store timed out after 200 ms"),
        },
        actions=[Action(kind="case", state="done", id="CASE-ABCDEF123456")],
        explanation=Explanation(text="Blocked: travel at 15,020 km/h is impossible."),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )
    return build_report(
        report_id="RPT-0123456789AB",
        case_id="CASE-ABCDEF123456",
        case_status="open",
        transaction={
            "transaction_id": "TX-REPORT-1",
            "customer_id": "C-12345",
            "amount": 4500.0,
            "currency": "USD",
            "merchant": merchant,
            "location": "Moscow, Russia",
        },
        result=result,
        timeline=[TimelineEvent(at=NOW, kind="opened", detail="block at 95")],
        audit={"head_entry_id": 7, "head_hash": "ab" * 32, "decision_entry_id": 3},
        generated_at=NOW,
    )


def test_report_carries_decision_evidence_values_and_units() -> None:
    report = _report()

    assert report["decision"] == {
        "decision": "block",
        "risk_score": 95.0,
        "risk_level": "high",
        "policy_version": "policy-2026.01",
        "decided_at": "2026-01-31T14:05:00+00:00",
    }
    geolocation, identity = report["evidence"]
    assert (geolocation["signals"][0]["value"], geolocation["signals"][0]["unit"]) == (
        15020.5,
        "km/h",
    )
    assert geolocation["points"] == 40.0
    assert (identity["status"], identity["error"]) == (
        "unavailable",
        "store timed out after 200 ms",
    )
    assert report["timeline"] == [
        {"at": "2026-01-31T14:05:00Z", "kind": "opened", "detail": "block at 95"}
    ]


def test_html_shows_the_figures_and_escapes_case_data() -> None:
    page = render_html(_report(merchant="<img src=x onerror=alert(1)>"))

    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<td>15,020.5</td><td>km/h</td><td>40</td>" in page
    assert "<td>4,500.00 USD</td>" in page
    assert "abababab" in page


def test_pdf_text_names_the_transaction_decision_and_units() -> None:
    pdf = render_pdf(_report(merchant="Shop <b>&</b> Co"))

    assert pdf.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "TX-REPORT-1" in text
    assert "BLOCK" in text
    assert "km/h" in text
    assert "Shop <b>&</b> Co" in text
    assert "policy-2026.01" in text


def test_unknown_format_is_rejected_with_the_supported_ones() -> None:
    assert media_type("pdf") == "application/pdf"
    with pytest.raises(InvalidInput, match="use json, html or pdf"):
        media_type("docx")


def test_percentile_interpolates_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]

    assert percentile(values, 50) == 25.0
    assert percentile(values, 90) == pytest.approx(37.0)
    assert percentile(values, 100) == 40.0
    assert percentile([7.5], 99) == 7.5


def test_percentile_of_nothing_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="no values"):
        percentile([], 50)


def test_summary_counts_a_reason_once_per_decision() -> None:
    summary = summarize_period(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 2, 1, tzinfo=UTC),
        generated_at=datetime(2026, 2, 1, tzinfo=UTC),
        decisions=[
            ("block", 12.0, "impossible_travel impossible_travel", "v1"),
            ("approve", None, "", "v2"),
        ],
        case_statuses={"open": 1},
        top=5,
    )

    assert summary["top_reasons"] == [{"code": "impossible_travel", "count": 1, "share": 0.5}]
    assert summary["latency_ms"] == {
        "count": 1,
        "p50": 12.0,
        "p90": 12.0,
        "p95": 12.0,
        "p99": 12.0,
        "max": 12.0,
    }
    assert summary["policy_versions"] == {"v1": 1, "v2": 1}
