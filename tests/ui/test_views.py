"""What the console renders from API answers: decision, gauge, map, evidence."""

from __future__ import annotations

from ui import views
from ui.console import _form_payload, field_problems

MOSCOW_TRIP = {
    "tool": "geolocation",
    "status": "ok",
    "signals": [],
    "details": {
        "current": {"name": "Moscow", "country": "RU", "latitude": 55.75, "longitude": 37.62},
        "previous": {"name": "New York City", "country": "US", "latitude": 40.71,
                     "longitude": -74.01},
        "distance_km": 7510.3,
        "elapsed_min": 30.0,
        "speed_kmh": 15020.6,
        "max_speed_kmh": 900.0,
    },
}


def test_travel_map_names_both_places_distance_and_speed_over_the_limit() -> None:
    shown = views.travel_map_html(MOSCOW_TRIP)

    assert "New York City, US (previous)" in shown
    assert "Moscow, RU (now)" in shown
    assert "<b>7,510 km</b> apart" in shown
    assert "<b>30 min</b> between the payments" in shown
    assert "15,021 km/h</b> (limit 900 km/h)" in shown


def test_travel_map_says_so_when_there_is_no_previous_place() -> None:
    trip = {"details": {**MOSCOW_TRIP["details"], "previous": None, "distance_km": None}}

    assert "No previous location to compare with." in views.travel_map_html(trip)


def test_route_across_the_date_line_is_drawn_in_two_pieces() -> None:
    tokyo = {"latitude": 35.68, "longitude": 139.69}
    anchorage = {"latitude": 61.22, "longitude": -149.9}

    assert views._route(tokyo, anchorage, 640, 300).count("<polyline") == 2


def test_gauge_needle_points_at_the_score() -> None:
    assert 'aria-label="Risk score 92 of 100"' in views.risk_gauge_svg(92.4)
    assert 'aria-label="Risk score 100 of 100"' in views.risk_gauge_svg(130)


def test_decision_panel_escapes_text_from_the_payment() -> None:
    result = {
        "decision": "block",
        "risk_score": 95,
        "reasons": [{"tool": "transaction_risk", "points": 20,
                     "text": "<script>alert(1)</script> is a risky merchant"}],
    }

    shown = views.decision_html(result)

    assert "<script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; is a risky merchant" in shown
    assert "<b>+20</b>" in shown


def test_evidence_lists_each_signal_with_its_points() -> None:
    evidence = {
        "identity": {"status": "ok", "signals": [
            {"code": "unknown_device", "text": "Device dev-unknown is new", "value": "dev-unknown",
             "points": 20},
        ]},
        "geolocation": {"status": "unavailable", "signals": [], "error": "no answer within 5 s"},
    }

    shown = views.evidence_html(evidence)

    assert "Identity: +20 points" in shown
    assert ">+20</td>" in shown
    assert "Geolocation: unavailable" in shown
    assert "no answer within 5 s" in shown


def test_audit_line_names_the_first_bad_entry() -> None:
    broken = {"ok": False, "entries_checked": 41, "first_bad_id": 17, "reason": "hash differs"}

    assert views.audit_markdown(broken) == (
        "**Audit chain BROKEN** at entry 17: hash differs (41 entries checked)."
    )


def test_overview_rates_come_from_labels_of_every_policy() -> None:
    summary = {"decisions": {"total": 20, "approve": 12, "review": 5, "block": 3},
               "latency_ms": {"p50": 12.0, "p95": 48.25, "p99": 80.0}}
    quality = {"policies": [
        {"labelled": 4, "blocks_labelled": 3, "blocks_fraud": 2, "reviews_labelled": 1,
         "false_positives": 2},
        {"labelled": 1, "blocks_labelled": 1, "blocks_fraud": 1, "reviews_labelled": 0,
         "false_positives": 0},
    ]}

    shown = views.kpi_html(summary, quality)

    assert 'data-kpi="Block precision" style="font-size:22px;font-weight:700">75%' in shown
    assert 'data-kpi="False-positive rate" style="font-size:22px;font-weight:700">40%' in shown
    assert "48.2 ms" in shown


def test_form_checks_name_fields_in_the_forms_words() -> None:
    payload = _form_payload(
        ("", "C-12345", -5, "USD", "", "Shop", "Seattle, WA", "", "soon", False, "", "1.2.3")
    )

    problems = field_problems(payload)

    assert payload["transaction_id"].startswith("TXN-UI-")
    assert "Amount: Input should be greater than 0" in problems
    assert "Merchant: is required" in problems
    assert any(p.startswith("IP address: '1.2.3' is not an IPv4 or IPv6 address") for p in problems)
    assert any(p.startswith("Time since previous payment:") for p in problems)
