"""Tests of the geolocation evidence tool: travel speed, home distance, context."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from deployments.geolocation import DEPLOYMENT_DEFAULTS, GeolocationChecker
from fraudline.gazetteer import Gazetteer
from fraudline.history import CustomerHistory, HistoryStore
from fraudline.schemas import Evidence, Transaction
from tests.deployments.customer_history import NOW, history_row, payment, seed_customers


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


def _seed(url: str) -> HistoryStore:
    store, _ = seed_customers(url)
    rows = []
    for i in range(60):
        rows.append(
            _row(
                f"T-A{i}",
                "C-12345",
                NOW - timedelta(days=89 - i * 1.45),
                ["New York, NY", "Seattle, WA"][i % 2],
            )
        )
    for i in range(40):
        rows.append(
            _row(f"T-B{i}", "C-67890", NOW - timedelta(days=88 - i * 2.1), "Los Angeles, CA")
        )
    store.record(rows)
    return store


def _row(tx_id: str, customer: str, when: datetime, location: str) -> dict[str, Any]:
    return history_row(tx_id, customer, when, location=location)


_tx = payment


@pytest.fixture
def checker(tmp_db_url: str, gazetteer: Gazetteer) -> GeolocationChecker:
    return GeolocationChecker(history=_seed(tmp_db_url), gazetteer=gazetteer)


def _codes(evidence: Evidence) -> dict[str, float]:
    return {signal.code: signal.points for signal in evidence.signals}


def test_new_york_to_moscow_in_30_minutes_is_impossible(checker: GeolocationChecker) -> None:
    # Demo scenario 2.
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                amount=4500.0,
                location="Moscow, Russia",
                previous_location="New York, NY",
                time_since_last_transaction="30 minutes ago",
            )
        ]
    )

    assert _codes(evidence) == {"impossible_travel": 40.0, "far_from_home": 5.0}
    assert evidence.points == 45.0
    assert evidence.details["distance_km"] == pytest.approx(7510.4, abs=0.1)
    assert evidence.details["elapsed_min"] == 30.0
    assert evidence.details["speed_kmh"] == pytest.approx(15020.9, abs=0.2)
    assert evidence.details["reachable_km"] == 0.0
    assert evidence.details["current"]["country"] == "RU"
    assert evidence.details["previous"]["name"] == "New York City"
    travel = evidence.signals[0]
    assert "7,510 km" in travel.text and "15,021 km/h" in travel.text
    assert (travel.value, travel.unit) == (pytest.approx(15020.9, abs=0.2), "km/h")


def test_seattle_after_seattle_is_no_travel_and_no_points(checker: GeolocationChecker) -> None:
    # Demo scenario 1: Seattle is far from the New York home, but the customer
    # pays there regularly, so it earns nothing either.
    (evidence,) = checker.evaluate_batch(
        [_tx(previous_location="Seattle, WA", time_since_last_transaction="2 hours ago")]
    )

    assert evidence.signals == []
    assert evidence.details["distance_km"] == 0.0
    assert evidence.details["speed_kmh"] is None
    assert evidence.details["home_distance_km"] == pytest.approx(3865.5, abs=0.5)


def test_los_angeles_after_los_angeles_a_day_ago_scores_nothing(
    checker: GeolocationChecker,
) -> None:
    # Demo scenario 3; this customer's home has only a name, no coordinates.
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                customer_id="C-67890",
                amount=1200.0,
                location="Los Angeles, CA",
                previous_location="Los Angeles, CA",
                time_since_last_transaction="1 day ago",
            )
        ]
    )

    assert evidence.points == 0.0
    assert evidence.details["elapsed_min"] == 1440.0
    assert evidence.details["home_distance_km"] == 0.0


def test_new_york_to_boston_in_five_hours_is_plausible(checker: GeolocationChecker) -> None:
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                location="Boston, MA",
                previous_location="New York, NY",
                time_since_last_transaction="5 hours ago",
            )
        ]
    )

    assert _codes(evidence) == {"plausible_travel": 0.0}
    assert evidence.details["distance_km"] == pytest.approx(305.8, abs=0.1)
    assert evidence.details["speed_kmh"] == pytest.approx(61.2, abs=0.1)
    assert evidence.details["reachable_km"] == 3600.0


def test_new_york_to_seattle_in_five_hours_is_impossible_with_boarding(
    checker: GeolocationChecker,
) -> None:
    # 3,865 km at 773 km/h is under cruise speed, but not once an hour of boarding
    # leaves 4 h of flight: 3,600 km.
    (evidence,) = checker.evaluate_batch(
        [_tx(previous_location="New York, NY", time_since_last_transaction="PT5H")]
    )

    assert _codes(evidence)["impossible_travel"] == 40.0
    assert evidence.details["speed_kmh"] == pytest.approx(773.1, abs=0.1)


def test_suva_to_apia_across_the_date_line_measures_1152_km(
    checker: GeolocationChecker,
) -> None:
    three_hours, one_hour = checker.evaluate_batch(
        [
            _tx(
                location="Apia, Samoa",
                previous_location="Suva, Fiji",
                time_since_last_transaction="3 hours",
            ),
            _tx(
                transaction_id="T-2",
                location="Apia, Samoa",
                previous_location="Suva, Fiji",
                time_since_last_transaction="1 hour",
            ),
        ]
    )

    assert three_hours.details["distance_km"] == pytest.approx(1152.1, abs=0.1)
    assert "impossible_travel" not in _codes(three_hours)
    assert _codes(one_hour)["impossible_travel"] == 40.0


def test_anchorage_to_tokyo_measures_5563_km(checker: GeolocationChecker) -> None:
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                location="Tokyo, Japan",
                previous_location="Anchorage, AK",
                time_since_last_transaction="2 hours ago",
            )
        ]
    )

    assert evidence.details["distance_km"] == pytest.approx(5562.6, abs=0.1)
    assert _codes(evidence)["impossible_travel"] == 40.0


def test_previous_place_and_time_come_from_history_when_not_given(
    tmp_db_url: str, gazetteer: Gazetteer
) -> None:
    store = _seed(tmp_db_url)
    store.record([_row("T-NY", "C-12345", NOW - timedelta(minutes=30), "New York, NY")])
    checker = GeolocationChecker(history=store, gazetteer=gazetteer)

    (evidence,) = checker.evaluate_batch([_tx(location="Moscow, RU")])

    assert evidence.details["previous_source"] == "history"
    assert evidence.details["elapsed_min"] == 30.0
    assert _codes(evidence)["impossible_travel"] == 40.0


def test_customer_without_history_gets_no_travel_signal(checker: GeolocationChecker) -> None:
    (evidence,) = checker.evaluate_batch([_tx(customer_id="C-NEW", location="Moscow, RU")])

    assert evidence.signals == []
    assert evidence.details["previous"] is None
    assert evidence.details["previous_source"] == "none"


def test_unknown_place_is_context_without_points(checker: GeolocationChecker) -> None:
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                location="Xyzzyville, Narnia",
                previous_location="New York, NY",
                time_since_last_transaction="30 minutes ago",
            )
        ]
    )

    assert _codes(evidence) == {"location_unresolved": 0.0}
    assert evidence.signals[0].value == "Xyzzyville, Narnia"
    assert evidence.details["current"] is None
    assert evidence.details["distance_km"] is None


def test_ambiguous_name_is_read_near_the_customer_and_said_so(
    checker: GeolocationChecker,
) -> None:
    # Of the Springfields, the one in Pennsylvania is nearest the New York home
    # (141 km), though Springfield, MO has seven times its people.
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                location="Springfield",
                previous_location="New York, NY",
                time_since_last_transaction="1 day ago",
            )
        ]
    )

    assert _codes(evidence) == {"ambiguous_location": 0.0, "plausible_travel": 0.0}
    assert evidence.details["current"]["admin1"] == "PA"
    assert evidence.details["current"]["resolution"] == "context"
    assert evidence.details["distance_km"] == pytest.approx(141.4, abs=0.5)


def test_coordinates_in_the_request_override_the_location_text(
    checker: GeolocationChecker,
) -> None:
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                location="Seattle, WA",
                latitude=55.7558,
                longitude=37.6173,
                previous_location="New York, NY",
                time_since_last_transaction="2 hours ago",
            )
        ]
    )

    assert evidence.details["current"]["name"] == "Moscow"
    assert evidence.details["current"]["latitude"] == 55.7558
    assert _codes(evidence)["impossible_travel"] == 40.0


def test_far_from_home_when_customer_never_paid_there(checker: GeolocationChecker) -> None:
    (evidence,) = checker.evaluate_batch(
        [
            _tx(
                customer_id="C-67890",
                location="New York, NY",
                previous_location="Los Angeles, CA",
                time_since_last_transaction="3 days ago",
            )
        ]
    )

    assert _codes(evidence) == {"plausible_travel": 0.0, "far_from_home": 5.0}
    assert evidence.details["home_distance_km"] == pytest.approx(3935.7, abs=0.5)


class _SpyHistory:
    def __init__(self, inner: HistoryStore) -> None:
        self.inner = inner
        self.calls: list[list[tuple[str, datetime]]] = []

    def histories(self, requests: Sequence[tuple[str, Any]]) -> list[CustomerHistory]:
        self.calls.append(list(requests))
        return self.inner.histories(requests)


def test_batch_of_three_reads_history_once(tmp_db_url: str, gazetteer: Gazetteer) -> None:
    spy = _SpyHistory(_seed(tmp_db_url))
    checker = GeolocationChecker(history=spy, gazetteer=gazetteer)

    results = checker.evaluate_batch(
        [
            _tx(transaction_id="T-1"),
            _tx(transaction_id="T-2", customer_id="C-67890", location="Los Angeles, CA"),
            _tx(
                transaction_id="T-3",
                location="Moscow, RU",
                previous_location="New York, NY",
                time_since_last_transaction="30 minutes ago",
            ),
        ]
    )

    assert len(spy.calls) == 1
    assert [customer for customer, _ in spy.calls[0]] == ["C-12345", "C-67890", "C-12345"]
    assert [e.points for e in results] == [0.0, 0.0, 45.0]


class _BrokenHistory:
    def histories(self, requests: Sequence[tuple[str, Any]]) -> list[CustomerHistory]:
        raise OperationalError("SELECT", {}, Exception("database is locked"))


def test_store_failure_makes_evidence_unavailable(gazetteer: Gazetteer) -> None:
    checker = GeolocationChecker(history=_BrokenHistory(), gazetteer=gazetteer)

    results = checker.evaluate_batch([_tx(), _tx(transaction_id="T-2")])

    assert [(e.status, e.error) for e in results] == [
        ("unavailable", "history store unavailable: OperationalError")
    ] * 2


def test_empty_batch_reads_nothing(gazetteer: Gazetteer) -> None:
    checker = GeolocationChecker(history=_BrokenHistory(), gazetteer=gazetteer)

    assert checker.evaluate_batch([]) == []


def test_deployment_defaults_name_resources_and_autoscaling() -> None:
    assert DEPLOYMENT_DEFAULTS["ray_actor_options"]["num_cpus"] == 0.5
    assert DEPLOYMENT_DEFAULTS["autoscaling_config"]["min_replicas"] == 1


@pytest.mark.parametrize(
    ("scenario", "points"), [("low_risk", 0.0), ("high_risk", 45.0), ("medium_risk", 0.0)]
)
def test_demo_scenarios_score_their_geolocation_points(
    tmp_db_url: str, gazetteer: Gazetteer, scenario: str, points: float
) -> None:
    from fraudline.demo import SCENARIOS, seed_demo_history

    seed_demo_history(tmp_db_url, now=NOW)
    checker = GeolocationChecker(tmp_db_url, gazetteer=gazetteer)

    (evidence,) = checker.evaluate_batch([Transaction(**SCENARIOS[scenario], timestamp=NOW)])

    assert evidence.points == points
