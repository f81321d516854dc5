"""Compliance reports of a case: built from stored evidence, rendered as JSON, HTML, PDF."""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fraudline.errors import InvalidInput
from fraudline.records import TimelineEvent, utc
from fraudline.schemas import DecisionResult

MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}

_TRANSACTION_FIELDS = (
    ("transaction_id", "Transaction id", ""),
    ("customer_id", "Customer id", ""),
    ("amount", "Amount", "currency"),
    ("merchant", "Merchant", ""),
    ("merchant_category", "Merchant category", ""),
    ("location", "Location", ""),
    ("previous_location", "Previous location", ""),
    ("time_since_last_transaction", "Time since previous payment", ""),
    ("card_present", "Card present", ""),
    ("device_id", "Device id", ""),
    ("ip_address", "IP address", ""),
    ("timestamp", "Time", ""),
)


def media_type(report_format: str) -> str:
    """The media type of a report format, or InvalidInput naming the formats."""
    try:
        return MEDIA_TYPES[report_format]
    except KeyError:
        raise InvalidInput(
            f"report format {report_format!r} is not supported; use json, html or pdf"
        ) from None


def build_report(
    *,
    report_id: str,
    case_id: str,
    case_status: str,
    transaction: dict[str, Any],
    result: DecisionResult,
    timeline: Sequence[TimelineEvent],
    audit: dict[str, Any],
    generated_at: datetime,
) -> dict[str, Any]:
    """The report as a JSON-ready dict; every figure comes from the stored case."""
    return {
        "report_id": report_id,
        "case_id": case_id,
        "case_status": case_status,
        "generated_at": utc(generated_at).isoformat(),
        "transaction": transaction,
        "decision": {
            "decision": result.decision,
            "risk_score": result.risk_score,
            "risk_level": result.risk_level,
            "policy_version": result.policy_version,
            "decided_at": utc(result.decided_at).isoformat(),
        },
        "reasons": [reason.model_dump() for reason in result.reasons],
        "evidence": [
            {
                "tool": name,
                "status": evidence.status,
                "error": evidence.error,
                "points": evidence.points,
                "signals": [signal.model_dump() for signal in evidence.signals],
                "details": evidence.details,
            }
            for name, evidence in result.evidence.items()
        ],
        "explanation": result.explanation.model_dump(mode="json"),
        "actions": [action.model_dump() for action in result.actions],
        "timeline": [event.model_dump(mode="json") for event in timeline],
        "audit": audit,
    }


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False, default=str)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _transaction_rows(transaction: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label, unit_key in _TRANSACTION_FIELDS:
        if key not in transaction or transaction[key] in (None, ""):
            continue
        value = _text(transaction[key])
        if key == "amount" and isinstance(transaction[key], (int, float)):
            value = f"{transaction[key]:,.2f}"
        if unit_key and transaction.get(unit_key):
            value = f"{value} {transaction[unit_key]}"
        rows.append((label, value))
    return rows


def _decision_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    decision = report["decision"]
    return [
        ("Decision", decision["decision"].upper()),
        ("Risk score", f"{_text(decision['risk_score'])} / 100 ({decision['risk_level']})"),
        ("Policy version", decision["policy_version"]),
        ("Decided at", decision["decided_at"]),
    ]


def _audit_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    audit = report["audit"]
    return [
        ("Chain head entry at writing", _text(audit.get("head_entry_id"))),
        ("Chain head hash at writing", _text(audit.get("head_hash"))),
        ("Decision audit entry", _text(audit.get("decision_entry_id"))),
        ("Evidence sha256", _text(audit.get("evidence_sha256"))),
        ("Evidence matches audit entry", _text(audit.get("evidence_matches_audit"))),
    ]


def _signal_row(signal: dict[str, Any]) -> list[str]:
    return [
        signal["code"],
        signal["text"],
        _text(signal.get("value")),
        _text(signal.get("unit")),
        _text(signal.get("points")),
    ]


_SIGNAL_HEADER = ["Signal", "Finding", "Value", "Unit", "Points"]


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page; every value from the case is escaped."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Fraud case report {e(report['case_id'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;"
        "vertical-align:top}</style></head><body>",
        f"<h1>Fraud case report {e(report['case_id'])}</h1>",
        f"<p>Report {e(report['report_id'])}, generated {e(report['generated_at'])}; "
        f"case status {e(report['case_status'])}.</p>",
        "<h2>Decision</h2>",
        _html_pairs(_decision_rows(report)),
        "<h2>Transaction</h2>",
        _html_pairs(_transaction_rows(report["transaction"])),
        "<h2>Reasons</h2><ul>",
    ]
    parts += [
        f"<li>{e(reason['text'])} ({e(reason['tool'])}, +{e(_text(reason['points']))} points)</li>"
        for reason in report["reasons"]
    ]
    parts.append("</ul><h2>Evidence</h2>")
    for evidence in report["evidence"]:
        parts.append(
            f"<h3>{e(evidence['tool'])}: {e(evidence['status'])}, "
            f"{e(_text(evidence['points']))} points</h3>"
        )
        if evidence.get("error"):
            parts.append(f"<p>Error: {e(evidence['error'])}</p>")
        if evidence["signals"]:
            rows = [_signal_row(signal) for signal in evidence["signals"]]
            parts.append(_html_table(_SIGNAL_HEADER, rows))
        if evidence["details"]:
            parts.append(_html_pairs([(k, _text(v)) for k, v in evidence["details"].items()]))
    explanation = report["explanation"]
    parts += [
        "<h2>Explanation</h2>",
        f"<p>{e(explanation['text'])}</p>",
        f"<p>Source: {e(explanation['source'])}"
        + (f", model {e(explanation['model'])}" if explanation.get("model") else "")
        + "</p>",
        "<h2>Actions</h2>",
        _html_table(
            ["Action", "State", "Id", "Detail"],
            [
                [action["kind"], action["state"], _text(action["id"]), _text(action["detail"])]
                for action in report["actions"]
            ],
        ),
        "<h2>Timeline</h2>",
        _html_table(
            ["Time", "Event", "Detail"],
            [[event["at"], event["kind"], event["detail"]] for event in report["timeline"]],
        ),
        "<h2>Audit trail</h2>",
        _html_pairs(_audit_rows(report)),
        "</body></html>",
    ]
    return "\n".join(parts)


def _html_pairs(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table>{cells}</table>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_pdf(report: dict[str, Any]) -> bytes:
    """The report as an A4 PDF; reportlab is imported only when a PDF is asked for."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)

    def para(text: Any, style: Any = body) -> Paragraph:
        # Paragraph reads a small markup language: escape so case data stays text.
        return Paragraph(html.escape(_text(text)), style)

    def table(rows: Sequence[Sequence[Any]], widths: Sequence[float], header: bool) -> Table:
        cells = [[para(cell, small) for cell in row] for row in rows]
        grid = Table(cells, colWidths=list(widths), repeatRows=1 if header else 0)
        style = [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey))
        grid.setStyle(TableStyle(style))
        return grid

    def pairs(rows: Sequence[tuple[str, str]]) -> Table:
        return table(rows, (55 * mm, 115 * mm), header=False)

    story: list[Any] = [
        para(f"Fraud case report {report['case_id']}", styles["Title"]),
        para(
            f"Report {report['report_id']}, generated {report['generated_at']}; "
            f"case status {report['case_status']}."
        ),
        para("Decision", styles["Heading2"]),
        pairs(_decision_rows(report)),
        para("Transaction", styles["Heading2"]),
        pairs(_transaction_rows(report["transaction"])),
        para("Reasons", styles["Heading2"]),
    ]
    story += [
        para(f"- {reason['text']} ({reason['tool']}, +{_text(reason['points'])} points)")
        for reason in report["reasons"]
    ]
    story.append(para("Evidence", styles["Heading2"]))
    for evidence in report["evidence"]:
        story.append(
            para(
                f"{evidence['tool']}: {evidence['status']}, {_text(evidence['points'])} points",
                styles["Heading3"],
            )
        )
        if evidence.get("error"):
            story.append(para(f"Error: {evidence['error']}"))
        if evidence["signals"]:
            rows = [_SIGNAL_HEADER] + [_signal_row(signal) for signal in evidence["signals"]]
            story.append(table(rows, (30 * mm, 75 * mm, 25 * mm, 20 * mm, 20 * mm), True))
        if evidence["details"]:
            story.append(pairs([(k, _text(v)) for k, v in evidence["details"].items()]))
    story += [
        para("Explanation", styles["Heading2"]),
        para(report["explanation"]["text"]),
        para("Timeline", styles["Heading2"]),
        table(
            [["Time", "Event", "Detail"]]
            + [[event["at"], event["kind"], event["detail"]] for event in report["timeline"]],
            (45 * mm, 30 * mm, 95 * mm),
            True,
        ),
        para("Audit trail", styles["Heading2"]),
        pairs(_audit_rows(report)),
        Spacer(1, 4 * mm),
    ]

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Fraud case report {report['case_id']}",
        author="Fraudline",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
    )
    document.build(story)
    return buffer.getvalue()


SUMMARY_PERCENTILES = (50, 90, 95, 99)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, interpolating between ranks."""
    if not ordered:
        raise InvalidInput("percentile of no values; pass at least one")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_period(
    *,
    since: datetime,
    until: datetime,
    generated_at: datetime,
    decisions: Sequence[tuple[str, float | None, str, str]],
    case_statuses: dict[str, int],
    top: int = 10,
) -> dict[str, Any]:
    """A period's figures as a JSON-ready dict.

    Args:
        since: Start of the period, inclusive.
        until: End of the period, exclusive.
        generated_at: When the summary is made.
        decisions: (decision, latency_ms or None, space-separated reason codes,
            policy version) of each decision taken in the period.
        case_statuses: How many of the period's cases are in each status.
        top: How many reasons to list, most frequent first.
    """
    counts = {"approve": 0, "review": 0, "block": 0}
    reasons: dict[str, int] = {}
    policies: dict[str, int] = {}
    latencies = []
    for decision, latency_ms, codes, policy in decisions:
        counts[decision] = counts.get(decision, 0) + 1
        policies[policy] = policies.get(policy, 0) + 1
        if latency_ms is not None:
            latencies.append(latency_ms)
        # A reason counts once per decision even when two tools raised it.
        for code in set(codes.split()):
            reasons[code] = reasons.get(code, 0) + 1
    total = sum(counts.values())
    latencies.sort()

    def share(count: int) -> float | None:
        return round(count / total, 4) if total else None

    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:top]
    latency: dict[str, Any] = {"count": len(latencies)}
    if latencies:
        for q in SUMMARY_PERCENTILES:
            latency[f"p{q}"] = round(percentile(latencies, q), 3)
        latency["max"] = round(latencies[-1], 3)
    return {
        "since": utc(since).isoformat(),
        "until": utc(until).isoformat(),
        "generated_at": utc(generated_at).isoformat(),
        "decisions": {"total": total, **counts},
        "rates": {
            "approve": share(counts["approve"]),
            "review": share(counts["review"]),
            "block": share(counts["block"]),
            "flagged": share(counts["review"] + counts["block"]),
        },
        "cases": {"opened": sum(case_statuses.values()), "by_status": dict(case_statuses)},
        "top_reasons": [
            {"code": code, "count": count, "share": share(count)} for code, count in ranked
        ],
        "latency_ms": latency,
        "policy_versions": dict(sorted(policies.items())),
    }


def render_summary_html(summary: dict[str, Any]) -> str:
    """A period summary as a self-contained HTML page."""
    e = html.escape
    title = f"Fraudline summary {summary['since']} to {summary['until']}"
    decisions, rates = summary["decisions"], summary["rates"]
    rows = [
        [kind, _text(decisions[kind]), _percent(rates[kind])]
        for kind in ("approve", "review", "block")
    ]
    rows.append(["total", _text(decisions["total"]), _percent(rates["flagged"]) + " flagged"])
    latency = summary["latency_ms"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Generated {e(summary['generated_at'])}.</p>",
        "<h2>Decisions</h2>",
        _html_table(["Decision", "Count", "Rate"], rows),
        "<h2>Cases opened</h2>",
        _html_pairs(
            [("opened", _text(summary["cases"]["opened"]))]
            + [(status, _text(n)) for status, n in summary["cases"]["by_status"].items()]
        ),
        "<h2>Top reasons</h2>",
        _html_table(
            ["Reason", "Decisions", "Share"],
            [
                [reason["code"], _text(reason["count"]), _percent(reason["share"])]
                for reason in summary["top_reasons"]
            ],
        ),
        "<h2>Decision latency (ms)</h2>",
        _html_pairs([(key, _text(value)) for key, value in latency.items()]),
        "<h2>Policy versions</h2>",
        _html_pairs([(v, _text(n)) for v, n in summary["policy_versions"].items()]),
        "</body></html>",
    ]
    return "\n".join(parts)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"
