"""The console driven in headless Chromium as an analyst would, against a live API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from fraudline.demo import SCENARIOS
from tests.ui.conftest import screenshot

QUEUE_CASES = 12
MAX_TABS = 80


@pytest.fixture(scope="session")
def queued_cases(console_url: str) -> list[str]:
    """Twelve flagged payments of new customers, decided through the public API."""
    transactions = [
        dict(
            SCENARIOS["high_risk"],
            transaction_id=f"TXN-QUEUE-{n:02d}",
            customer_id=f"C-QUEUE-{n:02d}",
        )
        for n in range(QUEUE_CASES)
    ]
    answer = httpx.post(
        f"{console_url}/v1/analyze/batch", json={"transactions": transactions}, timeout=60
    ).json()
    flagged = [r for r in answer["results"] if r.get("decision") in ("review", "block")]
    assert len(flagged) == QUEUE_CASES
    return [r["transaction_id"] for r in flagged]


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _tab_to(page: Any, text: str) -> None:
    """Presses Tab until the focused element reads `text`, as a keyboard user would."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => (document.activeElement?.innerText || '').trim()")
        if focused.startswith(text):
            return
    raise AssertionError(f"{MAX_TABS} presses of Tab never reached {text!r}")


def _risk_score(page: Any) -> int:
    label = page.locator("svg[aria-label^='Risk score']").get_attribute("aria-label")
    return int(re.search(r"Risk score (\d+)", label or "").group(1))


def test_high_risk_scenario_is_blocked_with_its_travel_on_the_map(page: Any) -> None:
    expect = _expect()

    page.get_by_role("button", name="Scenario 2: high risk").click()

    expect(page.get_by_test_id("decision")).to_have_text("BLOCK")
    assert _risk_score(page) >= 90
    progress = page.locator("#progress")
    for tool in ("Transaction risk", "Identity", "Geolocation"):
        expect(progress).to_contain_text(f"✓ {tool}:")
    expect(page.locator("#decision-panel")).to_contain_text("7,510 km from New York")
    travel = page.get_by_test_id("travel-map")
    expect(travel).to_contain_text("7,510 km apart")
    expect(travel).to_contain_text("30 min between the payments")
    expect(travel).to_contain_text("15,021 km/h")
    screenshot(page, "analyse")


def test_field_checks_name_each_bad_field_before_calling_the_api(page: Any) -> None:
    expect = _expect()
    page.get_by_label("Customer id").fill("C-12345")
    page.get_by_label("Amount").fill("-5")
    page.get_by_label("IP address").fill("999.1.1.1")

    page.locator("#analyse").click()

    checks = page.locator("#field-checks")
    expect(checks).to_contain_text("Amount: Input should be greater than 0")
    expect(checks).to_contain_text("IP address: '999.1.1.1' is not an IPv4 or IPv6 address")
    expect(checks).to_contain_text("Merchant: is required")
    expect(page.get_by_test_id("decision")).to_have_count(0)


def test_confirming_fraud_changes_the_case_status(page: Any) -> None:
    expect = _expect()
    page.get_by_role("button", name="Scenario 2: high risk").click()
    page.locator("#open-case").click()
    status = page.get_by_test_id("case-status")
    expect(status).to_be_visible()
    expect(page.locator("#audit-status")).to_contain_text("Audit chain intact")
    expect(page.locator("#report-pdf")).to_be_visible()

    page.get_by_role("button", name="Confirm fraud").click()

    expect(status).to_have_text("Confirmed fraud")
    expect(page.locator("#case-timeline")).to_contain_text("labelled")
    page.get_by_label("New note").fill("Customer confirmed the card was stolen.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#case-notes")).to_contain_text("Customer confirmed the card was stolen.")
    screenshot(page, "case")


def test_queue_pages_through_flagged_cases_newest_first(
    page: Any, queued_cases: list[str]
) -> None:
    expect = _expect()
    page.get_by_role("tab", name="Queue").click()
    _choose(page, "Decision", "block")
    _choose(page, "Per page", "10")

    info = page.locator("#page-info")
    expect(info).to_contain_text("Page 1 of 2")
    created = _column(page, 1)
    assert len(created) == 10
    assert created == sorted(created, reverse=True)
    screenshot(page, "queue")

    page.get_by_role("button", name="Next page").click()

    expect(info).to_contain_text("Page 2 of 2")


def test_overview_counts_decisions_and_label_quality(
    page: Any, queued_cases: list[str]
) -> None:
    expect = _expect()

    page.get_by_role("tab", name="Overview").click()

    kpis = page.get_by_test_id("kpis")
    expect(kpis).to_contain_text("Block precision")
    decisions = int(kpis.locator("[data-kpi='Decisions']").inner_text().replace(",", ""))
    assert decisions >= QUEUE_CASES
    expect(kpis.locator("[data-kpi='Latency p95']")).to_contain_text(" ms")
    expect(page.get_by_text("Decisions over time by outcome")).to_be_visible()
    screenshot(page, "overview")


def test_keyboard_alone_runs_the_main_flow(page: Any) -> None:
    expect = _expect()

    _tab_to(page, "Scenario 3: medium risk")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("decision")).to_have_text("REVIEW")
    _tab_to(page, "Open case")
    page.keyboard.press("Enter")
    status = page.get_by_test_id("case-status")
    expect(status).to_have_text("Open")
    _tab_to(page, "Mark legitimate")
    page.keyboard.press("Enter")

    expect(status).to_have_text("Legitimate (false positive)")
    screenshot(page, "keyboard-case")


def _choose(page: Any, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def _column(page: Any, index: int) -> list[datetime]:
    cells = page.locator(f"#queue-table [role=gridcell][data-col='{index}']").all()
    return [
        datetime.strptime(cell.inner_text().strip(), "%Y-%m-%d %H:%M:%S UTC") for cell in cells
    ]
