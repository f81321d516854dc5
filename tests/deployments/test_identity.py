"""Tests of the identity evidence tool: devices, IP addresses, networks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployments.identity import DeviceDirectory, IdentityVerifier
from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.gazetteer import Gazetteer
from fraudline.history import CustomerHistory, HistoryStore
from fraudline.schemas import Evidence, Transaction
from tests.deployments.customer_history import NOW, history_row, payment, seed_customers


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


def _seed(url: str) -> tuple[HistoryStore, DeviceDirectory]:
    store, sessions = seed_customers(url)
    rows = []
    for i in range(60):
        # Amounts 500-997, median 706.50.
        rows.append(
            _row(
                f"T-A{i}",
                "C-12345",
                NOW - timedelta(days=89 - i * 1.45),
                500.0 + (i * 7) % 500,
                ["dev-abc123", "dev-def456"][i % 2],
                ["192.168.1.100", "10.0.0.12"][i % 2],
            )
        )
    for i in range(40):
        rows.append(
            _row(
                f"T-B{i}",
                "C-67890",
                NOW - timedelta(days=88 - i * 2.1),
                10.0 + (i * 3) % 70,
                "dev-xyz789",
                "192.168.1.50",
            )
        )
    store.record(rows)
    return store, DeviceDirectory(sessions)


def _row(
    tx_id: str, customer: str, when: datetime, amount: float, device: str, ip: str
) -> dict[str, Any]:
    return history_row(tx_id, customer, when, amount=amount, device_id=device, ip_address=ip)


def _tx(**fields: Any) -> Transaction:
    return payment(**{"device_id": "dev-abc123", "ip_address": "192.168.1.100", **fields})


@pytest.fixture
def verifier(tmp_db_url: str, gazetteer: Gazetteer) -> IdentityVerifier:
    store, devices = _seed(tmp_db_url)
    return IdentityVerifier(history=store, devices=devices, gazetteer=gazetteer)


def _codes(evidence: Evidence) -> dict[str, float]:
    return {signal.code: signal.points for signal in evidence.signals}


def test_known_device_and_private_ip_score_nothing(verifier: IdentityVerifier) -> None:
    # Demo scenario 1.
    (evidence,) = verifier.evaluate_batch([_tx()])

    assert _codes(evidence) == {"known_device": 0.0, "private_ip": 0.0}
    assert evidence.details["device_first_seen"] == "2025-10-18T12:00:00+00:00"
    assert evidence.details["known_devices"] == 2
    assert evidence.details["ip_seen_before"] is True
    assert evidence.details["ip"] == "192.168.1.0/24"
    assert evidence.details["confidence"] == 1.0
    assert evidence.details["account_age_days"] == 730.0


def test_new_device_on_tor_abroad_scores_50(verifier: IdentityVerifier) -> None:
    # Demo scenario 2: 185.220.101.5 is a Tor exit registered in Germany.
    (evidence,) = verifier.evaluate_batch(
        [
            _tx(
                amount=4500.0,
                merchant="CRYPTO-EXCHANGE-XX",
                merchant_category="Cryptocurrency",
                location="Moscow, Russia",
                device_id="dev-unknown",
                ip_address="185.220.101.5",
            )
        ]
    )

    assert _codes(evidence) == {
        "unknown_device": 20.0,
        "new_device_unusual_amount": 5.0,
        "new_ip": 5.0,
        "ip_country_mismatch": 10.0,
        "anonymising_network": 10.0,
    }
    assert evidence.points == 50.0
    assert evidence.details["confidence"] == 0.17
    assert evidence.details["median_amount"] == 706.5
    assert (evidence.details["ip_country"], evidence.details["transaction_country"]) == (
        "DE",
        "RU",
    )
    by_code = {signal.code: signal for signal in evidence.signals}
    assert by_code["new_device_unusual_amount"].value == pytest.approx(6.37, abs=0.01)
    assert "Germany (DE)" in by_code["ip_country_mismatch"].text
    assert "Russia (RU)" in by_code["ip_country_mismatch"].text
    assert "185.220.101.5" not in " ".join(s.text for s in evidence.signals)


def test_known_device_in_los_angeles_scores_nothing(verifier: IdentityVerifier) -> None:
    # Demo scenario 3.
    (evidence,) = verifier.evaluate_batch(
        [
            _tx(
                customer_id="C-67890",
                amount=1200.0,
                merchant="Best Buy",
                merchant_category="Electronics",
                location="Los Angeles, CA",
                card_present=True,
                device_id="dev-xyz789",
                ip_address="192.168.1.50",
            )
        ]
    )

    assert evidence.points == 0.0
    assert evidence.details["device_customers"] == 1
    assert evidence.details["account_age_days"] == 400.0


def test_unknown_customer_is_context_only(verifier: IdentityVerifier) -> None:
    (evidence,) = verifier.evaluate_batch(
        [
            _tx(
                customer_id="C-NEW",
                device_id="dev-new",
                ip_address="8.8.8.8",
                location="New York, NY",
            )
        ]
    )

    assert _codes(evidence) == {"no_history": 0.0}
    assert evidence.details["confidence"] == 0.5
    assert evidence.details["account_age_days"] is None
    assert evidence.details["ip_country"] == "US"


def test_device_used_by_three_customers_is_shared(tmp_db_url: str, gazetteer: Gazetteer) -> None:
    store, devices = _seed(tmp_db_url)
    store.record(
        [
            _row("T-S1", "C-OTHER1", NOW - timedelta(days=3), 40.0, "dev-abc123", "10.9.9.9"),
            _row("T-S2", "C-OTHER2", NOW - timedelta(days=2), 40.0, "dev-abc123", "10.9.9.9"),
        ]
    )
    verifier = IdentityVerifier(history=store, devices=devices, gazetteer=gazetteer)

    (evidence,) = verifier.evaluate_batch([_tx()])

    assert _codes(evidence)["device_shared_by_many"] == 10.0
    assert evidence.details["device_customers"] == 3


def test_two_customers_on_one_device_is_not_shared_by_many(
    tmp_db_url: str, gazetteer: Gazetteer
) -> None:
    store, devices = _seed(tmp_db_url)
    store.record([_row("T-S1", "C-OTHER1", NOW - timedelta(days=3), 40.0, "dev-abc123", "::1")])
    verifier = IdentityVerifier(history=store, devices=devices, gazetteer=gazetteer)

    (evidence,) = verifier.evaluate_batch([_tx()])

    assert "device_shared_by_many" not in _codes(evidence)
    assert evidence.details["device_customers"] == 2


def test_public_ipv6_in_the_transaction_country_is_only_new(
    verifier: IdentityVerifier,
) -> None:
    (evidence,) = verifier.evaluate_batch(
        [_tx(location="New York, NY", ip_address="2001:4860:4860::8888")]
    )

    assert _codes(evidence) == {"known_device": 0.0, "new_ip": 5.0}
    assert evidence.details["ip_country"] == "US"
    assert evidence.details["ip"] == "2001:4860:4860::/48"


def test_country_of_the_payment_comes_from_its_coordinates(
    verifier: IdentityVerifier,
) -> None:
    (evidence,) = verifier.evaluate_batch(
        [_tx(location="somewhere", latitude=48.8566, longitude=2.3522, ip_address="8.8.8.8")]
    )

    assert evidence.details["transaction_country"] == "FR"
    assert _codes(evidence)["ip_country_mismatch"] == 10.0


def test_loopback_ipv6_is_a_private_ip_context(verifier: IdentityVerifier) -> None:
    (evidence,) = verifier.evaluate_batch([_tx(ip_address="::1")])

    signal = next(s for s in evidence.signals if s.code == "private_ip")
    assert (signal.value, signal.points) == ("loopback", 0.0)


def test_missing_device_and_ip_are_context(verifier: IdentityVerifier) -> None:
    (evidence,) = verifier.evaluate_batch([_tx(device_id=None, ip_address=None)])

    assert _codes(evidence) == {"device_missing": 0.0, "ip_missing": 0.0}
    assert evidence.details["confidence"] == 1.0


def test_new_device_with_usual_amount_scores_only_unknown_device(
    verifier: IdentityVerifier,
) -> None:
    # 2,000 is 2.8 times the 706.50 median: under the 3x line.
    (evidence,) = verifier.evaluate_batch([_tx(amount=2000.0, device_id="dev-new")])

    assert _codes(evidence) == {"unknown_device": 20.0, "private_ip": 0.0}
    assert evidence.details["confidence"] == 0.67


class _SpyHistory:
    def __init__(self, inner: HistoryStore) -> None:
        self.inner = inner
        self.calls = 0

    def histories(self, requests: Sequence[tuple[str, Any]]) -> list[CustomerHistory]:
        self.calls += 1
        return self.inner.histories(requests)


class _SpyDevices:
    def __init__(self, inner: DeviceDirectory) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def customers_by_device(self, device_ids: Iterable[str]) -> dict[str, set[str]]:
        wanted = list(device_ids)
        self.calls.append(wanted)
        return self.inner.customers_by_device(wanted)


def test_batch_of_three_reads_history_once_and_devices_once(
    tmp_db_url: str, gazetteer: Gazetteer
) -> None:
    store, devices = _seed(tmp_db_url)
    history_spy, device_spy = _SpyHistory(store), _SpyDevices(devices)
    verifier = IdentityVerifier(history=history_spy, devices=device_spy, gazetteer=gazetteer)

    results = verifier.evaluate_batch(
        [
            _tx(transaction_id="T-1"),
            _tx(
                transaction_id="T-2",
                customer_id="C-67890",
                device_id="dev-xyz789",
                ip_address="192.168.1.50",
                location="Los Angeles, CA",
            ),
            _tx(
                transaction_id="T-3",
                device_id="dev-unknown",
                ip_address="185.220.101.5",
                location="Moscow, Russia",
                amount=4500.0,
            ),
        ]
    )

    assert history_spy.calls == 1
    assert device_spy.calls == [["dev-abc123", "dev-xyz789", "dev-unknown"]]
    assert [e.points for e in results] == [0.0, 0.0, 50.0]


@pytest.mark.parametrize(
    ("scenario", "points"), [("low_risk", 0.0), ("high_risk", 50.0), ("medium_risk", 0.0)]
)
def test_demo_scenarios_score_their_identity_points(
    tmp_db_url: str, gazetteer: Gazetteer, scenario: str, points: float
) -> None:
    from fraudline.demo import SCENARIOS, seed_demo_history

    seed_demo_history(tmp_db_url, now=NOW)
    verifier = IdentityVerifier(tmp_db_url, gazetteer=gazetteer)

    (evidence,) = verifier.evaluate_batch([Transaction(**SCENARIOS[scenario], timestamp=NOW)])

    assert evidence.points == points


def test_device_seen_only_on_a_blocked_payment_is_still_unknown(tmp_db_url: str) -> None:
    from datetime import datetime, timedelta

    from deployments.identity import IdentityVerifier
    from fraudline.demo import demo_history
    from fraudline.history import HistoryStore
    from fraudline.schemas import Transaction

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    engine = make_engine(tmp_db_url)
    create_schema(engine)
    store = HistoryStore(make_sessions(engine))
    blocked = dict(
        demo_history(now)[-1],
        transaction_id="T-BLOCKED",
        device_id="dev-evil",
        occurred_at=now - timedelta(hours=1),
        decision="block",
    )
    store.record([*demo_history(now), blocked])
    tx = Transaction(
        transaction_id="T-NEXT",
        customer_id="C-12345",
        amount=300.0,
        merchant="Shop",
        merchant_category="E-commerce",
        location="New York, NY",
        device_id="dev-evil",
        timestamp=now,
    )

    [evidence] = IdentityVerifier(tmp_db_url).evaluate_batch([tx])

    assert "unknown_device" in {signal.code for signal in evidence.signals}


def test_shared_device_lookup_reads_an_index_not_the_whole_table(tmp_db_url: str) -> None:
    # Regression: the lookup scanned every stored payment, about 19 ms a call at
    # 20,000 payments and growing with the table.
    from sqlalchemy import event

    _, devices = _seed(tmp_db_url)
    engine = make_engine(tmp_db_url)
    statements: list[tuple[str, Any]] = []
    event.listen(
        engine, "before_cursor_execute",
        lambda _c, _k, statement, parameters, *_: statements.append((statement, parameters)),
    )
    DeviceDirectory(make_sessions(engine)).customers_by_device(["dev-abc123"])

    [(statement, parameters)] = statements
    with engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert "ix_transactions_device_customer" in plan
    assert "SCAN transactions" not in plan
