"""TransactionRisk on the demo customers: budgets, rules, drivers and batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployments.transaction_risk import TransactionRisk
from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.history import HistoryStore
from fraudline.riskmodel import RiskModel
from fraudline.schemas import Evidence, Transaction

NEW_YORK = (40.7128, -74.0060)
SEATTLE = (47.6062, -122.3321)
LOS_ANGELES = (34.0522, -118.2437)


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return RiskModel.load()


def _past(customer: str, index: int, when: datetime, amount: float, category: str,
          place: str, coords: tuple[float, float], present: bool, device: str,
          ip: str) -> dict:
    return {
        "transaction_id": f"{customer}-past-{index:03d}",
        "customer_id": customer,
        "occurred_at": when,
        "amount": amount,
        "currency": "USD",
        "merchant": f"Merchant {index % 7}",
        "merchant_category": category,
        "location": place,
        "latitude": coords[0],
        "longitude": coords[1],
        "card_present": present,
        "device_id": device,
        "ip_address": ip,
        "decision": "approve",
        "risk_score": 5.0,
        "is_fraud": False,
    }


def demo_rows(now: datetime) -> list[dict]:
    """The demo history: C-12345 (60 payments $500-1,000) and C-67890 (40, $10-80)."""
    rows = []
    categories = ["E-commerce", "Travel", "Electronics", "Restaurants"]
    for i in range(60):
        # Oldest first, the last one in Seattle two hours before `now`.
        when = now - timedelta(hours=2) - timedelta(hours=36 * (59 - i))
        seattle = i % 2 == 1
        category = categories[i % 4]
        rows.append(_past(
            "C-12345", i, when, 500.0 + (i * 137) % 500, category,
            "Seattle, WA" if seattle else "New York, NY", SEATTLE if seattle else NEW_YORK,
            category != "E-commerce", "dev-abc123" if i % 3 else "dev-def456",
            "192.168.1.100" if seattle else "10.0.0.12",
        ))
    for i in range(40):
        when = now - timedelta(days=1) - timedelta(hours=53 * (39 - i))
        rows.append(_past(
            "C-67890", i, when, 10.0 + (i * 23) % 70, ["Grocery", "Restaurants", "Gas"][i % 3],
            "Los Angeles, CA", LOS_ANGELES, True, "dev-xyz789", "192.168.1.50",
        ))
    return rows


def make_tool(tmp_db_url: str, model: RiskModel, now: datetime,
              extra: list[dict] | None = None) -> TransactionRisk:
    engine = make_engine(tmp_db_url)
    create_schema(engine)
    store = HistoryStore(make_sessions(engine))
    store.upsert_customers([
        {"customer_id": "C-12345", "home_location": "New York, NY",
         "home_latitude": NEW_YORK[0], "home_longitude": NEW_YORK[1],
         "email": "c12345@example.com", "card_last4": "4242",
         "created_at": now - timedelta(days=730)},
        {"customer_id": "C-67890", "home_location": "Los Angeles, CA",
         "home_latitude": LOS_ANGELES[0], "home_longitude": LOS_ANGELES[1],
         "email": "c67890@example.com", "card_last4": "1881",
         "created_at": now - timedelta(days=500)},
    ])
    store.record(demo_rows(now) + (extra or []))
    return TransactionRisk(tmp_db_url, store=store, model=model)


def scenario1(now: datetime) -> Transaction:
    return Transaction(
        transaction_id="TX-S1", customer_id="C-12345", amount=250.00, merchant="Amazon.com",
        merchant_category="E-commerce", location="Seattle, WA",
        previous_location="Seattle, WA", time_since_last_transaction="2 hours ago",
        card_present=False, device_id="dev-abc123", ip_address="192.168.1.100",
        timestamp=now,
    )


def scenario2(now: datetime) -> Transaction:
    return Transaction(
        transaction_id="TX-S2", customer_id="C-12345", amount=4500.00,
        merchant="CRYPTO-EXCHANGE-XX", merchant_category="Cryptocurrency",
        location="Moscow, Russia", previous_location="New York, NY",
        time_since_last_transaction="30 minutes ago", card_present=False,
        device_id="dev-unknown", ip_address="185.220.101.5", timestamp=now,
    )


def scenario3(now: datetime) -> Transaction:
    return Transaction(
        transaction_id="TX-S3", customer_id="C-67890", amount=1200.00, merchant="Best Buy",
        merchant_category="Electronics", location="Los Angeles, CA",
        previous_location="Los Angeles, CA", time_since_last_transaction="1 day ago",
        card_present=True, device_id="dev-xyz789", ip_address="192.168.1.50",
        timestamp=now,
    )


def _signal(evidence: Evidence, code: str):  # type: ignore[no-untyped-def]
    return next(s for s in evidence.signals if s.code == code)


# Three times of day, so the budgets hold whenever the demo runs (hours are UTC).
HOURS = [3, 15, 21, 23]


@pytest.mark.parametrize("hour", HOURS)
def test_scenario1_small_everyday_purchase_stays_within_10_points(
    tmp_db_url: str, model: RiskModel, hour: int
) -> None:
    now = datetime(2026, 1, 15, hour, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)

    [evidence] = tool.evaluate_batch([scenario1(now)])

    assert evidence.status == "ok"
    assert evidence.points <= 10
    codes = {s.code for s in evidence.signals if s.points > 0}
    assert "amount_anomaly" not in codes and "high_risk_category" not in codes
    assert _signal(evidence, "card_not_present").points == 2.0


@pytest.mark.parametrize("hour", HOURS)
def test_scenario2_crypto_at_six_times_the_mean_scores_at_least_45(
    tmp_db_url: str, model: RiskModel, hour: int
) -> None:
    now = datetime(2026, 1, 15, hour, 10, tzinfo=UTC)
    new_york = _past("C-12345", 900, now - timedelta(minutes=30), 640.0, "Restaurants",
                     "New York, NY", NEW_YORK, True, "dev-abc123", "10.0.0.12")
    tool = make_tool(tmp_db_url, model, now, extra=[new_york])

    [evidence] = tool.evaluate_batch([scenario2(now)])

    assert evidence.points >= 45
    category = _signal(evidence, "high_risk_category")
    assert category.points == 20 and "Cryptocurrency" in category.text
    amount = _signal(evidence, "amount_anomaly")
    assert amount.points == 30
    assert "$4,500.00" in amount.text and "x this customer's mean of $" in amount.text
    assert _signal(evidence, "card_not_present").points == 5.0


@pytest.mark.parametrize("hour", HOURS)
def test_scenario3_electronics_far_above_usual_scores_45_to_60(
    tmp_db_url: str, model: RiskModel, hour: int
) -> None:
    now = datetime(2026, 1, 15, hour, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)

    [evidence] = tool.evaluate_batch([scenario3(now)])

    assert 45 <= evidence.points <= 60
    amount = _signal(evidence, "amount_anomaly")
    assert amount.points == 30
    assert amount.value > 20  # $1,200 against a mean near $45
    assert "$1,200.00" in amount.text
    assert _signal(evidence, "resale_category").points == 15


def test_model_signal_names_probability_and_two_drivers(
    tmp_db_url: str, model: RiskModel
) -> None:
    now = datetime(2026, 1, 15, 15, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)

    [evidence] = tool.evaluate_batch([scenario3(now)])

    signal = _signal(evidence, "model_risk")
    assert signal.value == evidence.details["probability"]
    assert f"{signal.value:.1%}" in signal.text
    assert evidence.details["model_version"] == model.version
    drivers = evidence.details["top_features"]
    assert len(drivers) == 3
    assert all(set(d) == {"feature", "value", "contribution"} for d in drivers)
    assert drivers[0]["feature"] in model.feature_names


def test_drivers_are_worked_out_only_at_or_above_the_low_threshold(
    tmp_db_url: str, model: RiskModel
) -> None:
    now = datetime(2026, 1, 15, 15, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)

    groceries = scenario3(now).model_copy(
        update={"transaction_id": "TX-G", "amount": 45.0, "merchant_category": "Grocery"}
    )

    everyday, flagged = tool.evaluate_batch([groceries, scenario3(now)])

    assert everyday.details["probability"] < model.thresholds.low
    assert everyday.details["top_features"] == []
    assert _signal(everyday, "model_risk").points == 0
    assert "drivers" not in _signal(everyday, "model_risk").text
    assert flagged.details["probability"] >= model.thresholds.low
    assert len(flagged.details["top_features"]) == 3
    assert "main drivers: " in _signal(flagged, "model_risk").text


def test_new_customer_gets_no_history_context_and_no_amount_anomaly(
    tmp_db_url: str, model: RiskModel
) -> None:
    now = datetime(2026, 1, 15, 15, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)
    newcomer = scenario3(now).model_copy(update={"customer_id": "C-NEW", "amount": 9000.0})

    [evidence] = tool.evaluate_batch([newcomer])

    codes = {s.code for s in evidence.signals}
    assert "amount_anomaly" not in codes and "resale_category" not in codes
    assert _signal(evidence, "no_history").points == 0
    assert evidence.details["history_count"] == 0


def test_batch_returns_one_evidence_per_transaction_in_order_with_one_query(
    tmp_db_url: str, model: RiskModel
) -> None:
    now = datetime(2026, 1, 15, 15, 10, tzinfo=UTC)
    tool = make_tool(tmp_db_url, model, now)
    calls = []
    original = tool._store.histories

    def counting(requests, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(requests))
        return original(calls[-1], **kwargs)

    tool._store.histories = counting  # type: ignore[method-assign]
    batch = [scenario3(now), scenario1(now), scenario2(now)]

    evidences = tool.evaluate_batch(batch)

    assert len(calls) == 1 and len(calls[0]) == 3
    alone = [tool.evaluate_batch([tx])[0] for tx in batch]
    assert [e.points for e in evidences] == [e.points for e in alone]
    assert [e.details["history_count"] for e in evidences] == [40, 60, 60]


def test_store_failure_gives_unavailable_evidence(model: RiskModel) -> None:
    from sqlalchemy.exc import OperationalError

    class BrokenStore:
        def histories(self, requests, **kwargs):  # type: ignore[no-untyped-def]
            raise OperationalError("select", {}, Exception("database is locked"))

    tool = TransactionRisk(store=BrokenStore(), model=model)  # type: ignore[arg-type]
    now = datetime(2026, 1, 15, 15, 10, tzinfo=UTC)

    evidences = tool.evaluate_batch([scenario1(now), scenario3(now)])

    assert [e.status for e in evidences] == ["unavailable", "unavailable"]
    assert evidences[0].error == "history store unavailable: OperationalError"
