"""Feature values, point-in-time correctness, and online == offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.features import (
    US_PER_DAY,
    DelayedRates,
    canonical_category,
    compute_features,
    feature_names,
    haversine_km,
    live_events,
    sparkov_card_present,
    sparkov_events,
)
from fraudline.history import HistoryStore
from fraudline.schemas import Transaction

# Ten whole card histories (2019-2020) cut from sparkov_dev.parquet: every 25th card,
# in card-number order, among the cards with at least one fraud.
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sparkov_sample.parquet"


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    frame = pd.read_parquet(SAMPLE)
    return frame.sort_values(["trans_date_trans_time", "trans_num"]).reset_index(drop=True)


def _events(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    times = pd.to_datetime([t for _, t, _ in rows], utc=True).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "group": [g for g, _, _ in rows],
            "time_us": times.astype("int64"),
            "amount": [a for _, _, a in rows],
            "category": "shopping_net",
            "latitude": 40.7128,
            "longitude": -74.0060,
            "home_latitude": 40.7128,
            "home_longitude": -74.0060,
            "card_present": 0.0,
            "target": True,
        }
    )


def test_spending_windows_count_history_plus_the_payment_itself() -> None:
    events = _events(
        [
            ("A", "2024-03-01 10:00", 100.0),
            ("A", "2024-03-01 10:30", 50.0),
            ("A", "2024-03-02 09:00", 20.0),
            ("B", "2024-03-02 09:10", 999.0),
            ("A", "2024-03-02 10:20", 40.0),
        ]
    )

    features = compute_features(events)

    last = features.iloc[4]
    assert (last["count_1h"], last["sum_1h"]) == (1, 40.0)
    # 10:20 on the 2nd reaches back to 10:20 on the 1st: the 10:30 payment and 09:00.
    assert (last["count_24h"], last["sum_24h"]) == (3, 110.0)
    assert (last["count_7d"], last["sum_7d"]) == (4, 210.0)
    assert last["history_count"] == 3
    assert last["amount_mean"] == pytest.approx(170 / 3)
    assert last["amount_std"] == pytest.approx(np.std([100, 50, 20], ddof=1))
    assert last["seconds_since_previous"] == 80 * 60
    assert features.iloc[3]["history_count"] == 0  # B's own history is empty
    assert np.isnan(features.iloc[3]["amount_mean"])


def test_ratio_and_z_score_compare_with_the_customer_mean() -> None:
    events = _events(
        [("A", f"2024-03-0{d} 12:00", a) for d, a in [(1, 40.0), (2, 50.0), (3, 60.0)]]
        + [("A", "2024-03-04 12:00", 500.0)]
    )

    last = compute_features(events).iloc[3]

    assert last["amount_ratio"] == pytest.approx(10.0)
    assert last["amount_z"] == pytest.approx((500 - 50) / 10)


def test_adding_later_payments_never_changes_earlier_features(sample: pd.DataFrame) -> None:
    events = sparkov_events(sample)
    days = events["time_us"].to_numpy() // US_PER_DAY
    rates = DelayedRates.fit(
        "category", events["category"].to_numpy(), days, sample["is_fraud"].to_numpy()
    )
    cut = len(events) * 2 // 3

    early = compute_features(events.iloc[:cut], {"category": rates})
    full = compute_features(events, {"category": rates})

    pd.testing.assert_frame_equal(early, full.iloc[:cut])
    assert len(early) == cut


def test_online_features_equal_offline_features(sample: pd.DataFrame, tmp_path: Path) -> None:
    card = sample["cc_num"].iloc[0]
    rows = sample[sample["cc_num"] == card].tail(400).reset_index(drop=True)
    targets = rows.tail(25)
    engine = make_engine(f"sqlite:///{tmp_path}/features.db")
    create_schema(engine)
    store = HistoryStore(make_sessions(engine))
    store.upsert_customers(
        [
            {
                "customer_id": "C-1",
                "home_location": rows["city"].iloc[0],
                "home_latitude": float(rows["lat"].iloc[0]),
                "home_longitude": float(rows["long"].iloc[0]),
                "created_at": datetime(2018, 1, 1, tzinfo=UTC),
            }
        ]
    )
    store.record([_stored(row) for row in rows.itertuples()])
    transactions = [_transaction(row) for row in targets.itertuples()]

    histories = store.histories([(tx.customer_id, tx.occurred_at()) for tx in transactions])
    online = compute_features(live_events(transactions, histories))
    offline = compute_features(sparkov_events(rows)).loc[targets.index]

    assert online["history_count"].min() > 100
    np.testing.assert_allclose(online.to_numpy(), offline.to_numpy(), rtol=1e-9, atol=1e-6)


def test_delayed_rates_see_a_fraud_only_after_the_delay() -> None:
    days = np.array([100, 100, 101, 101])
    rates = DelayedRates.fit(
        "category", ["a", "a", "a", "b"], days, np.array([1, 0, 0, 0]), delay_days=7,
        windows_days=(7,),
    )

    looked_up = rates.lookup(["a", "a", "a", "c"], np.array([107, 108, 200, 108]))

    # Day 107 reads days 93..99: the fraud of day 100 is not known yet.
    counts = looked_up["category_count_7d_delayed"]
    assert counts.tolist() == [0.0, 2.0, 3.0, 0.0]
    rate = looked_up["category_fraud_rate_7d_delayed"]
    assert np.isnan(rate[0]) and rate[1] == 0.5 and rate[2] == pytest.approx(1 / 3)
    assert np.isnan(rate[3])


def test_delayed_rates_after_the_last_label_read_the_latest_window() -> None:
    days = np.arange(0, 60)
    labels = (days >= 50).astype(int)
    rates = DelayedRates.fit("category", ["a"] * 60, days, labels, windows_days=(10,))

    shipped = DelayedRates.from_dict(rates.trimmed().to_dict())

    later = shipped.lookup(["a", "a"], np.array([500, 1000]))
    assert later["category_fraud_rate_10d_delayed"].tolist() == [1.0, 1.0]
    assert shipped.counts.shape == (1, 17)


def test_distance_new_york_to_los_angeles_is_3936_km() -> None:
    km = haversine_km(np.array([40.7128]), np.array([-74.0060]),
                      np.array([34.0522]), np.array([-118.2437]))
    assert km[0] == pytest.approx(3936, abs=2)


def test_speed_uses_distance_over_gap_from_previous_payment() -> None:
    events = _events([("A", "2024-03-01 10:00", 10.0), ("A", "2024-03-01 12:00", 10.0)])
    events.loc[1, ["latitude", "longitude"]] = [34.0522, -118.2437]

    last = compute_features(events).iloc[1]

    assert last["distance_previous_km"] == pytest.approx(3936, abs=2)
    assert last["speed_previous_kmh"] == pytest.approx(3936 / 2, abs=1)
    assert last["distance_home_km"] == pytest.approx(3936, abs=2)


def test_client_categories_map_onto_training_categories_by_card_presence() -> None:
    assert canonical_category("Electronics", card_present=True) == "shopping_pos"
    assert canonical_category("Electronics", card_present=False) == "shopping_net"
    assert canonical_category("Cryptocurrency", card_present=False) == "misc_net"
    assert canonical_category("grocery_pos", card_present=False) == "grocery_pos"
    assert sparkov_card_present("shopping_net") is False
    assert sparkov_card_present("travel") is True


def test_feature_names_list_every_returned_column() -> None:
    events = _events([("A", "2024-03-01 10:00", 10.0)])
    assert list(compute_features(events).columns) == feature_names()


def _stored(row) -> dict:  # type: ignore[no-untyped-def]
    return {
        "transaction_id": row.trans_num,
        "customer_id": "C-1",
        "occurred_at": row.trans_date_trans_time.tz_localize("UTC").to_pydatetime(),
        "amount": float(row.amt),
        "merchant": row.merchant,
        "merchant_category": row.category,
        "location": row.city,
        "latitude": float(row.merch_lat),
        "longitude": float(row.merch_long),
        "card_present": sparkov_card_present(row.category),
    }


def _transaction(row) -> Transaction:  # type: ignore[no-untyped-def]
    return Transaction(
        transaction_id=row.trans_num,
        customer_id="C-1",
        amount=float(row.amt),
        merchant=row.merchant,
        merchant_category=row.category,
        location=row.city,
        latitude=float(row.merch_lat),
        longitude=float(row.merch_long),
        card_present=sparkov_card_present(row.category),
        timestamp=row.trans_date_trans_time.tz_localize("UTC").to_pydatetime(),
    )
