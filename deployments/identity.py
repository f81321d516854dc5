"""Whether the device and network of a payment fit the customer who owns the card."""

from __future__ import annotations

import functools
import ipaddress
import logging
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fraudline.errors import ConfigError
from fraudline.gazetteer import Gazetteer
from fraudline.history import CustomerHistory, PastTransaction, TransactionRow
from fraudline.ipinfo import IpFacts, IpLookup
from fraudline.schemas import Evidence, Signal, Transaction

logger = logging.getLogger(__name__)

TOOL = "identity"
UNKNOWN_DEVICE_POINTS = 20.0
NEW_IP_POINTS = 5.0
IP_COUNTRY_MISMATCH_POINTS = 10.0
ANONYMISING_NETWORK_POINTS = 10.0
DEVICE_SHARED_POINTS = 10.0
NEW_DEVICE_UNUSUAL_AMOUNT_POINTS = 5.0
# Points at which nothing is left of the confidence that the card holder is
# paying: a new device on a new foreign anonymising network (20+5+10+10+10 = 55)
# comes close.
NO_CONFIDENCE_POINTS = 60.0
# Without any history there is nothing to recognise the customer by.
NO_HISTORY_CONFIDENCE = 0.5

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 0.5},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    },
    "max_ongoing_requests": 32,
}


class HistoryReader(Protocol):
    def histories(self, requests: Sequence[tuple[str, Any]]) -> list[CustomerHistory]: ...


class DeviceReader(Protocol):
    def customers_by_device(self, device_ids: Iterable[str]) -> dict[str, set[str]]: ...


class DeviceDirectory:
    """Which customers have paid from each device, over the whole history."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def customers_by_device(self, device_ids: Iterable[str]) -> dict[str, set[str]]:
        """Device id -> customer ids that used it; one query for all devices."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return {}
        query = (
            select(TransactionRow.device_id, TransactionRow.customer_id)
            .where(TransactionRow.device_id.in_(wanted))
            .distinct()
        )
        found: dict[str, set[str]] = {}
        with self._sessions() as session:
            for device_id, customer_id in session.execute(query):
                if device_id is not None:
                    found.setdefault(device_id, set()).add(customer_id)
        return found


class IdentityVerifier:
    """Recognises (or not) the device, IP and network a payment comes from.

    Returns named signals and, in `details["confidence"]`, how sure it is (0-1)
    that the customer's usual person is paying.

    Args:
        database_url: the history store.
        shared_device_customers: a device used by this many customers or more is
            shared suspiciously (card-testing rigs, mule phones).
        unusual_amount_ratio: an amount above this many times the customer's
            median is unusual.
        min_city_population: floor of the gazetteer's city list.
        history: reads customer histories; built from `database_url` when None.
        devices: reads who used which device; built from `database_url` when None.
        gazetteer: finds the transaction's country; a new one when None.
        ip_lookup: scope, country and anonymiser of addresses; a new one when None.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        shared_device_customers: int = 3,
        unusual_amount_ratio: float = 3.0,
        min_city_population: int = 15000,
        history: HistoryReader | None = None,
        devices: DeviceReader | None = None,
        gazetteer: Gazetteer | None = None,
        ip_lookup: IpLookup | None = None,
    ) -> None:
        if shared_device_customers < 2 or unusual_amount_ratio <= 1:
            raise ConfigError(
                f"shared_device_customers={shared_device_customers} must be 2 or more "
                f"and unusual_amount_ratio={unusual_amount_ratio} above 1"
            )
        self.shared_device_customers = shared_device_customers
        self.unusual_amount_ratio = unusual_amount_ratio
        if history is None or devices is None:
            sessions = _sessions(database_url)
            history = history if history is not None else _history_store(sessions)
            devices = devices if devices is not None else DeviceDirectory(sessions)
        self._history = history
        self._devices = devices
        self._gazetteer = (
            gazetteer if gazetteer is not None else Gazetteer(min_population=min_city_population)
        )
        self._ip_lookup = ip_lookup if ip_lookup is not None else IpLookup()

    def warm_up(self) -> None:
        """Loads the gazetteer and IP data now, so the first request does not pay."""
        self._gazetteer.load()
        self._ip_lookup.lookup("192.0.2.1")
        self._ip_lookup.lookup("8.8.8.8")

    def evaluate_batch(self, transactions: list[Transaction]) -> list[Evidence]:
        """One Evidence per transaction, in order: one history and one device query."""
        if not transactions:
            return []
        try:
            histories = self._history.histories(
                [(tx.customer_id, tx.occurred_at()) for tx in transactions]
            )
            sharing = self._devices.customers_by_device(
                tx.device_id for tx in transactions if tx.device_id
            )
        except SQLAlchemyError as error:
            logger.exception("history store failed for %d transactions", len(transactions))
            message = f"history store unavailable: {type(error).__name__}"
            return [Evidence.unavailable(TOOL, message) for _ in transactions]

        addresses = [tx.ip_address for tx in transactions if tx.ip_address]
        facts = iter(self._ip_lookup.lookup_many(addresses))
        return [
            self._evaluate(tx, history, sharing, next(facts) if tx.ip_address else None)
            for tx, history in zip(transactions, histories, strict=True)
        ]

    def _evaluate(
        self,
        tx: Transaction,
        history: CustomerHistory,
        sharing: dict[str, set[str]],
        ip: IpFacts | None,
    ) -> Evidence:
        signals: list[Signal] = []
        details: dict[str, Any] = {}
        has_history = history.customer is not None or bool(history.transactions)
        if not has_history:
            signals.append(
                Signal(
                    code="no_history",
                    text=f"{tx.customer_id} has no profile or payments to compare with",
                    value=tx.customer_id,
                )
            )

        signals.extend(self._device_signals(tx, history, sharing, details))
        signals.extend(self._ip_signals(tx, history, ip, details))
        details.update(_account_age(tx, history))

        points = sum(signal.points for signal in signals)
        confidence = max(0.0, 1.0 - points / NO_CONFIDENCE_POINTS)
        if not has_history:
            confidence = min(confidence, NO_HISTORY_CONFIDENCE)
        details["confidence"] = round(confidence, 2)
        return Evidence(tool=TOOL, signals=signals, details=details)

    def _device_signals(
        self,
        tx: Transaction,
        history: CustomerHistory,
        sharing: dict[str, set[str]],
        details: dict[str, Any],
    ) -> list[Signal]:
        first_seen: dict[str, datetime] = {}
        for past in _trusted(history):
            if past.device_id and past.device_id not in first_seen:
                first_seen[past.device_id] = past.occurred_at
        details["known_devices"] = len(first_seen)
        details["device_id"] = tx.device_id
        if not tx.device_id:
            details["device_first_seen"] = None
            return [Signal(code="device_missing", text="The payment names no device")]

        signals: list[Signal] = []
        seen = first_seen.get(tx.device_id)
        details["device_first_seen"] = seen.isoformat() if seen else None
        if seen is not None:
            days = (tx.occurred_at() - seen).total_seconds() / 86400
            signals.append(
                Signal(
                    code="known_device",
                    text=(
                        f"Device {tx.device_id} is known for {tx.customer_id}, "
                        f"first seen {days:.0f} days ago"
                    ),
                    value=round(days, 1),
                    unit="days",
                )
            )
        elif first_seen:
            signals.append(
                Signal(
                    code="unknown_device",
                    text=(
                        f"Device {tx.device_id} was never used by {tx.customer_id}, "
                        f"who paid from {len(first_seen)} other device(s) in 90 days"
                    ),
                    value=tx.device_id,
                    points=UNKNOWN_DEVICE_POINTS,
                )
            )

        users = set(sharing.get(tx.device_id, set())) | {tx.customer_id}
        details["device_customers"] = len(users)
        if len(users) >= self.shared_device_customers:
            signals.append(
                Signal(
                    code="device_shared_by_many",
                    text=f"Device {tx.device_id} has paid for {len(users)} different customers",
                    value=len(users),
                    unit="customers",
                    points=DEVICE_SHARED_POINTS,
                )
            )

        amounts = [past.amount for past in history.transactions]
        median = statistics.median(amounts) if amounts else None
        details["median_amount"] = round(median, 2) if median is not None else None
        if seen is None and median and tx.amount > self.unusual_amount_ratio * median:
            ratio = tx.amount / median
            signals.append(
                Signal(
                    code="new_device_unusual_amount",
                    text=(
                        f"A new device pays {tx.amount:,.2f} {tx.currency}, {ratio:.1f} times "
                        f"{tx.customer_id}'s median of {median:,.2f}"
                    ),
                    value=round(ratio, 2),
                    unit="x median",
                    points=NEW_DEVICE_UNUSUAL_AMOUNT_POINTS,
                )
            )
        return signals

    def _ip_signals(
        self,
        tx: Transaction,
        history: CustomerHistory,
        ip: IpFacts | None,
        details: dict[str, Any],
    ) -> list[Signal]:
        if ip is None or tx.ip_address is None:
            details.update(ip=None, ip_scope=None, ip_country=None, ip_seen_before=None)
            return [Signal(code="ip_missing", text="The payment names no IP address")]

        signals: list[Signal] = []
        known = {_normalised(past.ip_address) for past in _trusted(history)}
        known.discard(None)
        seen_before = tx.ip_address in known
        details.update(
            ip=ip.masked,
            ip_scope=ip.scope,
            ip_country=ip.country_code,
            ip_seen_before=seen_before,
            anonymising_network=ip.anonymiser,
        )
        if not ip.is_public:
            signals.append(
                Signal(
                    code="private_ip",
                    text=(
                        f"The address in {ip.masked} is {ip.scope.replace('_', '-')}: "
                        "it cannot place the payer"
                    ),
                    value=ip.scope,
                )
            )
        if known and not seen_before:
            signals.append(
                Signal(
                    code="new_ip",
                    text=(
                        f"{tx.customer_id} never paid from this address ({ip.masked}) "
                        f"in 90 days, among {len(known)} known"
                    ),
                    value=ip.masked,
                    points=NEW_IP_POINTS,
                )
            )

        country = self._transaction_country(tx, history)
        details["transaction_country"] = country
        if ip.country_code and country and ip.country_code != country:
            signals.append(
                Signal(
                    code="ip_country_mismatch",
                    text=(
                        f"The IP address is registered in {self._country(ip.country_code)}, "
                        f"the payment is in {self._country(country)}"
                    ),
                    value=ip.country_code,
                    points=IP_COUNTRY_MISMATCH_POINTS,
                )
            )
        if ip.anonymiser:
            signals.append(
                Signal(
                    code="anonymising_network",
                    text=f"The IP address ({ip.masked}) belongs to {ip.anonymiser}",
                    value=ip.anonymiser,
                    points=ANONYMISING_NETWORK_POINTS,
                )
            )
        return signals

    def _transaction_country(self, tx: Transaction, history: CustomerHistory) -> str | None:
        if tx.latitude is not None and tx.longitude is not None:
            return self._gazetteer.at(tx.latitude, tx.longitude).country_code
        customer = history.customer
        hints: list[tuple[float, float]] = []
        if customer and customer.home_latitude is not None and customer.home_longitude is not None:
            hints.append((customer.home_latitude, customer.home_longitude))
        place = self._gazetteer.resolve(tx.location, hints)
        return place.country_code if place else None

    def _country(self, code: str) -> str:
        name = self._gazetteer.country_name(code)
        return f"{name} ({code})" if name else code


def _trusted(history: CustomerHistory) -> list[PastTransaction]:
    # A device or address seen only on payments that were reviewed or blocked has
    # not earned trust: a fraudster's second try must not look familiar.
    return [past for past in history.transactions if past.decision in (None, "approve")]


def _account_age(tx: Transaction, history: CustomerHistory) -> dict[str, Any]:
    if history.customer is not None:
        since, source = history.customer.created_at, "profile"
    elif history.transactions:
        # Only the 90-day window is read: the account is at least this old.
        since, source = history.transactions[0].occurred_at, "first_payment_in_window"
    else:
        return {"account_age_days": None, "account_age_source": None}
    days = (tx.occurred_at() - since).total_seconds() / 86400
    return {"account_age_days": round(days, 1), "account_age_source": source}


@functools.lru_cache(maxsize=65536)
def _normalised(address: str | None) -> str | None:
    # Cached: a batch compares each payment with every past address of its customer.
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _sessions(database_url: str) -> sessionmaker[Session]:
    from fraudline.db import make_engine, make_sessions

    return make_sessions(make_engine(database_url))


def _history_store(sessions: sessionmaker[Session]) -> HistoryReader:
    from fraudline.history import HistoryStore

    return HistoryStore(sessions)
