"""The whole graph in a local Ray with the tiny model, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fraudline.demo import EXPECTED_DECISIONS, SCENARIOS

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def decided(running_app: Any) -> dict:
    # Another test's block may have put the demo card on hold; lift it as an analyst.
    httpx.delete(f"{running_app.url}/v1/customers/C-12345/hold", params={"actor": "test"})
    results = {}
    for name, scenario in SCENARIOS.items():
        response = httpx.post(f"{running_app.url}/v1/analyze", json=scenario, timeout=120)
        assert response.status_code == 200, response.text
        results[name] = response.json()
    return results


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_demo_scenario_gets_its_decision(decided: Any, name: Any) -> None:
    assert decided[name]["decision"] == EXPECTED_DECISIONS[name]


def test_high_risk_scenario_blocks_with_named_reasons(decided: Any) -> None:
    result = decided["high_risk"]
    codes = {reason["code"] for reason in result["reasons"]}

    assert result["risk_score"] >= 90
    assert {"impossible_travel", "unknown_device", "high_risk_category"} <= codes
    kinds = {action["kind"]: action for action in result["actions"]}
    assert kinds["case"]["id"].startswith("CASE-")
    assert kinds["report"]["id"].startswith("RPT-")
    assert kinds["alert"]["state"] in ("done", "queued")


def test_block_emails_the_team_and_the_customer_once_each(running_app: Any, decided: Any) -> None:
    actions = decided["high_risk"]["actions"]
    alert = next(a["id"] for a in actions if a["kind"] == "alert")
    notice = next(a["id"] for a in actions if a["kind"] == "notification")
    messages = running_app.wait_for_emails(alert, notice)

    to_team = [m for m in messages if alert in m["Message-ID"]]
    to_customer = [m for m in messages if notice in m["Message-ID"]]
    assert (len(to_team), len(to_customer)) == (1, 1)
    assert to_team[0]["To"] == "fraud-team@localhost"
    assert "TXN-DEMO-002" in to_team[0]["Subject"]
    assert to_customer[0]["To"] == "c12345@example.com"
    [text] = [
        part.get_payload(decode=True).decode()
        for part in to_customer[0].walk()
        if part.get_content_type() == "text/plain"
    ]
    assert "4242" in text and "CRYPTO-EXCHANGE-XX" in text


def test_grey_zone_goes_to_the_real_model(decided: Any) -> None:
    explanation = decided["medium_risk"]["explanation"]

    assert explanation["model"] == "fraudline-tiny"
    assert explanation["model_status"] in ("ok", "unavailable")
    assert decided["medium_risk"]["latency_ms"]["model"] > 0


def test_report_renders_as_pdf_and_html(running_app: Any, decided: Any) -> None:
    report_id = next(a["id"] for a in decided["high_risk"]["actions"] if a["kind"] == "report")

    html = httpx.get(f"{running_app.url}/v1/reports/{report_id}", params={"format": "html"})
    pdf = httpx.get(f"{running_app.url}/v1/reports/{report_id}", params={"format": "pdf"})

    assert html.status_code == 200 and "TXN-DEMO-002" in html.text
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_audit_chain_verifies(running_app: Any, decided: Any) -> None:
    report = httpx.get(f"{running_app.url}/v1/audit/verify").json()

    assert report["ok"] is True
    assert report["entries_checked"] >= 3


def test_bad_amount_is_rejected_naming_the_field(running_app: Any) -> None:
    bad = dict(SCENARIOS["low_risk"], transaction_id="TXN-BAD-1", amount=-5)

    response = httpx.post(f"{running_app.url}/v1/analyze", json=bad)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "amount"


def test_batch_endpoint_answers_each_item_in_order(running_app: Any) -> None:
    items = [
        dict(SCENARIOS["low_risk"], transaction_id=f"TXN-BATCH-{i}", amount=100 + i)
        for i in range(5)
    ]
    items[2]["ip_address"] = "not-an-ip"

    response = httpx.post(
        f"{running_app.url}/v1/analyze/batch", json={"transactions": items}, timeout=60
    )

    body = response.json()
    assert response.status_code == 200
    assert (body["decided"], body["rejected"]) == (4, 1)
    assert [r.get("transaction_id") for r in body["results"]] == [
        f"TXN-BATCH-{i}" for i in range(5)
    ]
    assert body["results"][2]["errors"][0]["loc"] == ["ip_address"]


def test_block_holds_the_card_until_an_analyst_releases_it(running_app: Any, decided: Any) -> None:
    hold = next(a for a in decided["high_risk"]["actions"] if a["kind"] == "hold")
    ordinary = dict(SCENARIOS["low_risk"], transaction_id="TXN-AFTER-HOLD-1")

    held = httpx.post(f"{running_app.url}/v1/analyze", json=ordinary, timeout=60).json()
    released = httpx.delete(
        f"{running_app.url}/v1/customers/C-12345/hold",
        params={"actor": "analyst-1", "reason": "customer confirmed"},
    )
    ordinary["transaction_id"] = "TXN-AFTER-HOLD-2"
    after = httpx.post(f"{running_app.url}/v1/analyze", json=ordinary, timeout=60).json()

    assert hold["id"] and "hold placed until" in hold["detail"]
    assert held["decision"] == "block"
    assert [r["code"] for r in held["reasons"]] == ["account_on_hold"]
    assert "until" in held["reasons"][0]["text"]
    assert held["evidence"] == {} and held["explanation"]["model_status"] == "skipped"
    assert released.status_code == 200 and released.json()["released"] is True
    assert after["decision"] == "approve"
