"""HTML and Markdown the console shows: decision, risk gauge, travel map, evidence, case."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any

# The policy's bands: approve < 40 <= review < 75 <= block.
REVIEW_FROM = 40.0
BLOCK_FROM = 75.0

DECISION_COLOURS = {"approve": "#1a7f37", "review": "#9a5b00", "block": "#c62828"}
_MUTED = "#57606a"
_TOOL_NAMES = {
    "transaction_risk": "Transaction risk",
    "identity": "Identity",
    "geolocation": "Geolocation",
}
STATUS_NAMES = {
    "open": "Open",
    "investigating": "Investigating",
    "confirmed_fraud": "Confirmed fraud",
    "false_positive": "Legitimate (false positive)",
    "closed": "Closed",
}


def tool_name(tool: str) -> str:
    """A tool's name as analysts read it."""
    return _TOOL_NAMES.get(tool, tool.replace("_", " ").capitalize())


def decision_badge(decision: str, size_px: int = 28) -> str:
    """The decision in its colour, e.g. a red BLOCK."""
    colour = DECISION_COLOURS.get(decision, _MUTED)
    return (
        f'<span data-testid="decision" style="display:inline-block;padding:4px 14px;'
        f"border-radius:6px;background:{colour};color:#fff;font-weight:700;"
        f'font-size:{size_px}px;letter-spacing:1px">{escape(decision.upper())}</span>'
    )


def risk_gauge_svg(score: float) -> str:
    """A half-dial from 0 to 100 with the policy's three bands and a needle at `score`."""
    score = max(0.0, min(100.0, score))
    cx, cy, r = 110.0, 105.0, 85.0
    bands = (
        (0.0, REVIEW_FROM, DECISION_COLOURS["approve"]),
        (REVIEW_FROM, BLOCK_FROM, DECISION_COLOURS["review"]),
        (BLOCK_FROM, 100.0, DECISION_COLOURS["block"]),
    )
    arcs = "".join(
        f'<path d="{_arc(cx, cy, r, start, end)}" stroke="{colour}" stroke-width="18" '
        f'fill="none" opacity="0.85"/>'
        for start, end, colour in bands
    )
    nx, ny = _dial_point(cx, cy, r - 14, score)
    return (
        f'<svg viewBox="0 0 220 130" width="220" height="130" role="img" '
        f'aria-label="Risk score {score:.0f} of 100">{arcs}'
        f'<line x1="{cx}" y1="{cy}" x2="{nx:.1f}" y2="{ny:.1f}" stroke="#24292f" '
        f'stroke-width="4" stroke-linecap="round"/>'
        f'<circle cx="{cx}" cy="{cy}" r="6" fill="#24292f"/>'
        f'<text x="{cx}" y="{cy + 22}" text-anchor="middle" font-size="20" '
        f'font-weight="700" fill="#24292f">{score:.0f} / 100</text>'
        f'<text x="18" y="{cy + 22}" font-size="11" fill="{_MUTED}">0</text>'
        f'<text x="196" y="{cy + 22}" font-size="11" fill="{_MUTED}">100</text>'
        "</svg>"
    )


def decision_html(result: dict[str, Any]) -> str:
    """The decision with its gauge, its reasons and what Fraudline did about it."""
    decision = str(result.get("decision", "?"))
    score = float(result.get("risk_score", 0.0))
    reasons = result.get("reasons") or []
    reason_items = "".join(
        f"<li><b>+{float(reason.get('points', 0)):.0f}</b> "
        f"<span style='color:{_MUTED}'>{escape(tool_name(str(reason.get('tool', ''))))}"
        f":</span> {escape(str(reason.get('text', '')))}</li>"
        for reason in reasons
    ) or "<li>No risk signal scored points.</li>"
    actions = [
        f"{escape(str(a.get('kind', '')).replace('_', ' '))}"
        + (f" {escape(str(a['id']))}" if a.get("id") else "")
        + f" ({escape(str(a.get('state', '')))})"
        for a in result.get("actions") or []
    ]
    total_ms = (result.get("latency_ms") or {}).get("total")
    latency = f" · decided in {float(total_ms):,.0f} ms" if total_ms is not None else ""
    return (
        '<div style="display:flex;gap:20px;align-items:center;flex-wrap:wrap">'
        f"<div>{risk_gauge_svg(score)}</div>"
        f"<div>{decision_badge(decision)}"
        f'<div style="margin-top:8px;font-size:15px">Transaction '
        f"<b>{escape(str(result.get('transaction_id', '')))}</b> of "
        f"<b>{escape(str(result.get('customer_id', '')))}</b></div>"
        f'<div style="color:{_MUTED};font-size:13px">'
        f'risk {escape(str(result.get("risk_level", "")))}'
        f" · policy {escape(str(result.get('policy_version', '')))}{latency}</div></div></div>"
        f'<h4 style="margin:10px 0 4px">Reasons</h4>'
        f'<ul style="margin:0 0 0 18px;font-size:15px;line-height:1.45">{reason_items}</ul>'
        + (
            f'<div style="margin-top:8px;font-size:14px"><b>Actions:</b> {", ".join(actions)}</div>'
            if actions
            else ""
        )
    )


def travel_map_html(geolocation: dict[str, Any] | None) -> str:
    """A schematic world map with the previous and current place, distance and speed."""
    details = (geolocation or {}).get("details") or {}
    current, previous = details.get("current"), details.get("previous")
    if not current:
        return _note("No map: the payment's location could not be placed.")
    width, height = 640.0, 300.0
    places = [p for p in (previous, current) if p]
    parts = [
        f'<rect width="{width}" height="{height}" fill="#eaf2fb"/>',
        _graticule(width, height),
        *(
            f'<polygon points="{_polygon_points(outline, width, height)}" fill="#d8dee4" '
            f'stroke="#afb8c1" stroke-width="0.6"/>'
            for outline in _LAND
        ),
    ]
    if previous:
        parts.append(_route(previous, current, width, height))
    for place, colour, name in ((previous, "#0b5cad", "previous"), (current, "#c62828", "now")):
        if not place:
            continue
        x, y = _project(place["longitude"], place["latitude"], width, height)
        anchor = "end" if x > width - 160 else "start"
        dx = -9 if anchor == "end" else 9
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{colour}" stroke="#fff" '
            f'stroke-width="2"/><text x="{x + dx:.1f}" y="{y - 8:.1f}" text-anchor="{anchor}" '
            f'font-size="14" font-weight="700" fill="{colour}" paint-order="stroke" '
            f'stroke="#fff" stroke-width="3">{escape(_place_label(place))} ({name})</text>'
        )
    svg = (
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-label="Map of {escape(" and ".join(_place_label(p) for p in places))}" '
        f'style="max-width:{width:.0f}px;border-radius:6px">{"".join(parts)}</svg>'
    )
    return f'<div data-testid="travel-map">{svg}{_travel_caption(details)}</div>'


def evidence_html(evidence: dict[str, Any]) -> str:
    """Each tool's status, points and signals, one table per tool."""
    sections = []
    for tool, found in evidence.items():
        signals = found.get("signals") or []
        points = sum(float(s.get("points", 0)) for s in signals)
        if found.get("status") != "ok":
            sections.append(
                f"<h4 style='margin:12px 0 4px'>{escape(tool_name(tool))}: unavailable</h4>"
                f"<p>{escape(str(found.get('error') or ''))}</p>"
            )
            continue
        rows = "".join(
            f"<tr><td style='{_TD}'>{escape(str(s.get('text', '')))}</td>"
            f"<td style='{_TD}'>{escape(_value(s.get('value'), s.get('unit')))}</td>"
            f"<td style='{_TD}text-align:right;white-space:nowrap;font-weight:700'>"
            f"{float(s.get('points', 0)):+.0f}</td></tr>"
            for s in signals
        ) or f"<tr><td style='{_TD}' colspan='3'>No signal.</td></tr>"
        sections.append(
            f"<h4 style='margin:12px 0 4px'>{escape(tool_name(tool))}: {points:+.0f} points</h4>"
            "<table style='width:100%;border-collapse:collapse;font-size:14px'>"
            f"<colgroup><col><col style='width:24%'><col style='width:52px'></colgroup>"
            f"<thead><tr><th style='{_TH}'>Finding</th><th style='{_TH}'>Value</th>"
            f"<th style='{_TH}text-align:right'>Pts</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(sections) or "<p>No evidence recorded.</p>"


_TD = "border-bottom:1px solid #d0d7de;padding:5px 6px;vertical-align:top;"
_TH = "border-bottom:2px solid #8c959f;padding:5px 6px;text-align:left;"


def case_header_html(case: dict[str, Any]) -> str:
    """Who, what, where and the case's state, above its evidence."""
    tx = case.get("transaction") or {}
    status = str(case.get("status", ""))
    label = case.get("label")
    amount = tx.get("amount")
    money = f"{float(amount):,.2f} {escape(str(tx.get('currency', 'USD')))}" if amount else "?"
    facts = [
        ("Customer", case.get("customer_id")),
        ("Transaction", case.get("transaction_id")),
        ("Amount", None),
        ("Merchant", f"{tx.get('merchant', '?')} ({tx.get('merchant_category', '?')})"),
        ("Location", tx.get("location")),
        ("Created", short_time(case.get("created_at"))),
        ("Assignee", case.get("assignee") or "nobody"),
    ]
    cells = "".join(
        f'<div><div style="color:{_MUTED};font-size:12px">{name}</div>'
        f'<div style="font-size:15px;font-weight:600">'
        f"{money if name == 'Amount' else escape(str(value or '?'))}</div></div>"
        for name, value in facts
    )
    label_text = f" · labelled <b>{escape(str(label))}</b>" if label else ""
    return (
        '<div style="display:flex;gap:18px;align-items:center;flex-wrap:wrap">'
        f"{decision_badge(str(case.get('decision', '?')), 22)}"
        '<span style="font-size:20px;font-weight:700">'
        f'{escape(str(case.get("case_id", "")))}</span><span style="font-size:16px">'
        f'risk <b>{float(case.get("risk_score", 0)):.0f}</b>/100</span>'
        f'<span data-testid="case-status" style="font-size:16px;padding:2px 10px;'
        f'border:1px solid #8c959f;border-radius:12px">{escape(STATUS_NAMES.get(status, status))}'
        f"</span><span>{label_text}</span></div>"
        '<div style="display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:8px 18px;'
        f'margin-top:10px">{cells}</div>'
    )


def timeline_markdown(case: dict[str, Any]) -> str:
    """The case's timeline, oldest first, one line per event."""
    events = case.get("timeline") or []
    if not events:
        return "_No events yet._"
    return "\n".join(
        f"- {short_time(e.get('at'))} · **{_cell(str(e.get('kind', '')).replace('_', ' '))}**"
        + (f": {_cell(e.get('detail'))}" if e.get("detail") else "")
        for e in events
    )


def notes_markdown(case: dict[str, Any]) -> str:
    """The case's notes, oldest first."""
    notes = case.get("notes") or []
    if not notes:
        return "_No notes yet._"
    return "\n".join(
        f"- **{_cell(n.get('author'))}**, {short_time(n.get('at'))}: {_cell(n.get('text'))}"
        for n in notes
    )


def audit_markdown(report: dict[str, Any]) -> str:
    """The audit chain's state in one line."""
    checked = int(report.get("entries_checked", 0))
    if report.get("ok"):
        return f"**Audit chain intact**: {checked:,} entries checked, every hash agrees."
    return (
        f"**Audit chain BROKEN** at entry {report.get('first_bad_id')}: "
        f"{_cell(report.get('reason'))} ({checked:,} entries checked)."
    )


def kpi_html(summary: dict[str, Any], quality: dict[str, Any] | None) -> str:
    """The period's headline figures: decisions, latency percentiles, label quality."""
    decisions = summary.get("decisions") or {}
    latency = summary.get("latency_ms") or {}
    tiles = [
        ("Decisions", f"{int(decisions.get('total', 0)):,}"),
        ("Approve", f"{int(decisions.get('approve', 0)):,}"),
        ("Review", f"{int(decisions.get('review', 0)):,}"),
        ("Block", f"{int(decisions.get('block', 0)):,}"),
        *((f"Latency p{q}", _ms(latency.get(f"p{q}"))) for q in (50, 95, 99)),
    ]
    policies = (quality or {}).get("policies") or []
    if quality is not None:
        labelled = sum(int(p.get("labelled", 0)) for p in policies)
        blocks = sum(int(p.get("blocks_labelled", 0)) for p in policies)
        blocks_fraud = sum(int(p.get("blocks_fraud", 0)) for p in policies)
        flagged = blocks + sum(int(p.get("reviews_labelled", 0)) for p in policies)
        false_pos = sum(int(p.get("false_positives", 0)) for p in policies)
        tiles += [
            ("Labelled cases", f"{labelled:,}"),
            ("Block precision", _share(blocks_fraud, blocks)),
            ("False-positive rate", _share(false_pos, flagged)),
        ]
    return (
        '<div data-testid="kpis" style="display:grid;'
        'grid-template-columns:repeat(5,minmax(0,1fr));gap:10px">'
        + "".join(
            '<div style="border:1px solid #d0d7de;border-radius:8px;padding:8px 12px">'
            f'<div style="color:{_MUTED};font-size:13px">{escape(name)}</div>'
            f'<div data-kpi="{escape(name)}" style="font-size:22px;font-weight:700">'
            f"{escape(value)}</div></div>"
            for name, value in tiles
        )
        + "</div>"
    )


def quality_rows(quality: dict[str, Any]) -> list[list[Any]]:
    """Per policy version: cases, labelled, precisions and false-positive rate."""
    return [
        [
            p.get("policy_version"),
            p.get("cases"),
            p.get("labelled"),
            _percent(p.get("block_precision")),
            _percent(p.get("review_precision")),
            _percent(p.get("false_positive_rate")),
        ]
        for p in quality.get("policies") or []
    ]


def short_time(value: Any, *, seconds: bool = False) -> str:
    """An ISO time as "2026-03-10 15:30 UTC" (or 15:30:07); anything else as it is."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def _note(text: str) -> str:
    return f'<div style="color:{_MUTED};font-size:14px;padding:8px 0">{escape(text)}</div>'


def _travel_caption(details: dict[str, Any]) -> str:
    km, minutes = details.get("distance_km"), details.get("elapsed_min")
    speed, limit = details.get("speed_kmh"), details.get("max_speed_kmh")
    if km is None:
        return _note("No previous location to compare with.")
    facts = [f"<b>{float(km):,.0f} km</b> apart"]
    if minutes is not None:
        facts.append(f"<b>{_duration(float(minutes))}</b> between the payments")
    if speed is not None:
        too_fast = limit is not None and float(speed) > float(limit)
        colour = DECISION_COLOURS["block"] if too_fast else "#24292f"
        limit_text = f" (limit {float(limit):,.0f} km/h)" if limit is not None else ""
        facts.append(
            f'implied speed <b style="color:{colour}">{float(speed):,.0f} km/h</b>{limit_text}'
        )
    return f'<div style="font-size:15px;margin-top:6px">{" · ".join(facts)}</div>'


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:,.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:,.1f} h"
    return f"{minutes / 1440:,.1f} days"


def _place_label(place: dict[str, Any]) -> str:
    country = place.get("country")
    return f"{place.get('name', '?')}, {country}" if country else str(place.get("name", "?"))


def _cell(value: Any) -> str:
    # Markdown table cells: no line breaks, no pipes, no raw HTML.
    text = " ".join(str(value if value is not None else "").split())
    return escape(text).replace("|", "\\|")


def _value(value: Any, unit: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        value = f"{value:,.1f}"
    return f"{value} {unit}" if unit else str(value)


def _ms(value: Any) -> str:
    return f"{float(value):,.1f} ms" if value is not None else "n/a"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def _percent(value: Any) -> str:
    return f"{100 * float(value):.0f}%" if value is not None else "n/a"


def _dial_point(cx: float, cy: float, r: float, score: float) -> tuple[float, float]:
    angle = math.pi * (1 - score / 100)
    return cx + r * math.cos(angle), cy - r * math.sin(angle)


def _arc(cx: float, cy: float, r: float, start: float, end: float) -> str:
    x1, y1 = _dial_point(cx, cy, r, start)
    x2, y2 = _dial_point(cx, cy, r, end)
    return f"M {x1:.1f} {y1:.1f} A {r} {r} 0 0 1 {x2:.1f} {y2:.1f}"


# The map shows latitudes 85 N to 60 S: the south holds no payments worth the space.
_TOP_LAT, _BOTTOM_LAT = 85.0, -60.0


def _project(lon: float, lat: float, width: float, height: float) -> tuple[float, float]:
    lat = max(_BOTTOM_LAT, min(_TOP_LAT, lat))
    x = (lon + 180.0) / 360.0 * width
    y = (_TOP_LAT - lat) / (_TOP_LAT - _BOTTOM_LAT) * height
    return x, y


def _polygon_points(outline: tuple[tuple[float, float], ...], width: float, height: float) -> str:
    return " ".join(
        "{:.1f},{:.1f}".format(*_project(lon, lat, width, height)) for lon, lat in outline
    )


def _graticule(width: float, height: float) -> str:
    lines = []
    for lon in range(-150, 180, 30):
        x, _ = _project(lon, 0, width, height)
        lines.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height:.0f}"/>')
    for lat in range(-30, 90, 30):
        _, y = _project(0, lat, width, height)
        lines.append(f'<line x1="0" y1="{y:.1f}" x2="{width:.0f}" y2="{y:.1f}"/>')
    return f'<g stroke="#c9d6e3" stroke-width="0.6">{"".join(lines)}</g>'


def _route(
    start: dict[str, Any], end: dict[str, Any], width: float, height: float, steps: int = 48
) -> str:
    """The great-circle path, split where it crosses the date line."""
    a = _unit_vector(start["latitude"], start["longitude"])
    b = _unit_vector(end["latitude"], end["longitude"])
    omega = math.acos(max(-1.0, min(1.0, sum(p * q for p, q in zip(a, b, strict=True)))))
    segments: list[list[tuple[float, float]]] = [[]]
    last_lon: float | None = None
    for step in range(steps + 1):
        t = step / steps
        if omega < 1e-9:
            point = a
        else:
            wa = math.sin((1 - t) * omega) / math.sin(omega)
            wb = math.sin(t * omega) / math.sin(omega)
            point = tuple(wa * p + wb * q for p, q in zip(a, b, strict=True))
        lat = math.degrees(math.atan2(point[2], math.hypot(point[0], point[1])))
        lon = math.degrees(math.atan2(point[1], point[0]))
        if last_lon is not None and abs(lon - last_lon) > 180:
            segments.append([])
        segments[-1].append(_project(lon, lat, width, height))
        last_lon = lon
    return "".join(
        '<polyline fill="none" stroke="#c62828" stroke-width="2.5" stroke-dasharray="7 5" '
        f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in segment)}"/>'
        for segment in segments
        if len(segment) > 1
    )


def _unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


# Coarse coastlines (lon, lat) drawn by hand for orientation only; a few hundred km off.
_LAND: tuple[tuple[tuple[float, float], ...], ...] = (
    (  # North and Central America
        (-168, 66), (-162, 70), (-140, 70), (-115, 73), (-95, 72), (-80, 73), (-68, 66),
        (-62, 58), (-56, 52), (-66, 45), (-70, 42), (-76, 35), (-81, 31), (-80, 25),
        (-84, 30), (-90, 29), (-97, 27), (-97, 22), (-95, 18), (-88, 15), (-83, 10),
        (-78, 8), (-80, 8), (-86, 12), (-92, 15), (-105, 20), (-110, 24), (-115, 30),
        (-117, 33), (-121, 36), (-124, 41), (-124, 47), (-128, 51), (-135, 57), (-142, 60),
        (-152, 59), (-158, 57), (-165, 55), (-160, 59), (-166, 62),
    ),
    (  # South America
        (-78, 8), (-72, 12), (-62, 11), (-52, 5), (-50, 0), (-44, -2), (-35, -6),
        (-39, -14), (-41, -22), (-48, -26), (-53, -34), (-58, -38), (-65, -41), (-66, -47),
        (-68, -52), (-72, -54), (-75, -50), (-73, -40), (-71, -30), (-70, -18), (-76, -14),
        (-81, -6), (-80, 0),
    ),
    (  # Greenland
        (-73, 78), (-60, 82), (-30, 83), (-20, 80), (-20, 72), (-40, 65), (-44, 60),
        (-50, 64), (-55, 70), (-66, 76),
    ),
    (  # Africa
        (-17, 21), (-10, 30), (-6, 36), (10, 37), (11, 33), (20, 31), (32, 31), (34, 28),
        (43, 12), (51, 12), (44, 2), (40, -10), (41, -15), (35, -24), (33, -28), (27, -34),
        (20, -35), (18, -32), (12, -17), (13, -6), (9, 4), (5, 6), (-4, 5), (-8, 4),
        (-13, 8), (-17, 14),
    ),
    (  # Europe and Asia
        (-9, 43), (-9, 39), (-6, 36), (-2, 37), (3, 43), (8, 44), (12, 44), (16, 41),
        (18, 40), (20, 40), (23, 37), (26, 40), (28, 41), (36, 36), (35, 29), (39, 22),
        (43, 13), (52, 16), (57, 19), (59, 23), (56, 26), (52, 24), (50, 27), (48, 30),
        (57, 25), (62, 25), (67, 24), (70, 21), (73, 16), (77, 8), (80, 13), (80, 16),
        (87, 21), (92, 22), (94, 16), (98, 16), (98, 8), (103, 1), (104, 2), (101, 7),
        (100, 13), (105, 9), (109, 12), (108, 16), (107, 21), (111, 21), (117, 23),
        (121, 28), (122, 31), (120, 35), (122, 38), (119, 39), (121, 41), (126, 38),
        (129, 35), (129, 40), (133, 43), (140, 48), (141, 53), (138, 55), (143, 59),
        (156, 62), (163, 61), (160, 57), (163, 55), (170, 60), (180, 65), (180, 69),
        (170, 70), (160, 70), (140, 72), (130, 72), (114, 74), (105, 78), (95, 76),
        (80, 73), (68, 77), (57, 70), (43, 68), (41, 66), (34, 69), (28, 71), (15, 69),
        (5, 62), (5, 58), (8, 57), (10, 54), (9, 53), (4, 52), (1, 50), (-2, 48),
        (-4, 48), (-1, 46), (-2, 44),
    ),
    (  # Great Britain
        (-5, 50), (1, 51), (2, 53), (-2, 56), (-2, 58), (-5, 58.6), (-6, 56), (-3, 54),
        (-5, 52),
    ),
    (  # Japan
        (130, 31), (132, 34), (136, 34), (140, 35), (142, 39), (141, 42), (144, 43),
        (145, 44), (141, 45), (140, 42), (139, 39), (136, 36), (131, 34),
    ),
    (  # Australia
        (114, -22), (122, -18), (130, -12), (137, -12), (136, -15), (141, -12), (146, -19),
        (153, -25), (151, -34), (146, -39), (140, -38), (135, -34), (131, -31), (124, -33),
        (115, -34),
    ),
    ((44, -25), (47, -25), (50, -15), (49, -12), (44, -17)),  # Madagascar
)
