"""Where a payment happens, against where the customer was and lives."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from fraudline.errors import ConfigError
from fraudline.gazetteer import Gazetteer, Place, distance_km
from fraudline.history import CustomerHistory, PastTransaction
from fraudline.schemas import Evidence, Signal, Transaction
from fraudline.timeparse import parse_elapsed

logger = logging.getLogger(__name__)

TOOL = "geolocation"
IMPOSSIBLE_TRAVEL_POINTS = 40.0
FAR_FROM_HOME_POINTS = 5.0
# Places the customer paid at before that steer an ambiguous name; the newest win.
MAX_HINTS = 20

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


@dataclass(frozen=True)
class _Previous:
    place: Place | None
    text: str | None
    elapsed: timedelta | None
    source: str


class GeolocationChecker:
    """Flags travel no one can make and payments far from a customer's places.

    Distances are great-circle (haversine) km. Travel is impossible when the
    distance exceeds what an airliner covers in the elapsed time once boarding
    is subtracted: `max_speed_kmh * (elapsed - boarding_time_min)`.

    Args:
        database_url: the history store.
        max_speed_kmh: fastest plausible travel, an airliner's cruise speed.
        boarding_time_min: time lost to airports on any flight.
        same_area_km: moves up to this far are not travel (one metro area).
        far_from_home_km: beyond this from home, and from every place the customer
            paid at lately, a payment earns `far_from_home`.
        min_city_population: floor of the gazetteer's city list.
        history: reads customer histories; built from `database_url` when None.
        gazetteer: resolves place names; a new one when None.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        max_speed_kmh: float = 900.0,
        boarding_time_min: float = 60.0,
        same_area_km: float = 50.0,
        far_from_home_km: float = 1000.0,
        min_city_population: int = 15000,
        history: HistoryReader | None = None,
        gazetteer: Gazetteer | None = None,
    ) -> None:
        if max_speed_kmh <= 0 or boarding_time_min < 0 or same_area_km < 0:
            raise ConfigError(
                f"max_speed_kmh={max_speed_kmh}, boarding_time_min={boarding_time_min}, "
                f"same_area_km={same_area_km}: speed must be above 0, the others 0 or more"
            )
        self.max_speed_kmh = max_speed_kmh
        self.boarding_time_min = boarding_time_min
        self.same_area_km = same_area_km
        self.far_from_home_km = far_from_home_km
        self._history = history if history is not None else _history_store(database_url)
        self._gazetteer = (
            gazetteer if gazetteer is not None else Gazetteer(min_population=min_city_population)
        )

    def warm_up(self) -> None:
        """Loads the gazetteer now, so the first request does not pay for it."""
        self._gazetteer.load()

    def evaluate_batch(self, transactions: list[Transaction]) -> list[Evidence]:
        """One Evidence per transaction, in order, from one history query."""
        if not transactions:
            return []
        try:
            histories = self._history.histories(
                [(tx.customer_id, tx.occurred_at()) for tx in transactions]
            )
        except SQLAlchemyError as error:
            logger.exception("history store failed for %d transactions", len(transactions))
            message = f"history store unavailable: {type(error).__name__}"
            return [Evidence.unavailable(TOOL, message) for _ in transactions]
        return [
            self._evaluate(tx, history) for tx, history in zip(transactions, histories, strict=True)
        ]

    def _evaluate(self, tx: Transaction, history: CustomerHistory) -> Evidence:
        signals: list[Signal] = []
        home = self._home(history)
        familiar = self._familiar_places(history)
        hints = ([home] if home else []) + familiar

        current = self._current(tx, hints)
        if current is None:
            signals.append(_unresolved(tx.location, "this payment"))
        previous = self._previous(tx, history, hints)
        if previous.text is not None and previous.place is None:
            signals.append(_unresolved(previous.text, "the previous payment"))
        for place, text in ((current, tx.location), (previous.place, previous.text)):
            if place is not None and place.ambiguous:
                signals.append(_ambiguous(place, text or ""))

        details: dict[str, Any] = {
            "current": _describe(current),
            "previous": _describe(previous.place),
            "previous_source": previous.source,
            "distance_km": None,
            "elapsed_min": _minutes(previous.elapsed),
            "speed_kmh": None,
            "reachable_km": None,
            "home_distance_km": None,
            "max_speed_kmh": self.max_speed_kmh,
            "boarding_time_min": self.boarding_time_min,
        }
        if current is not None and previous.place is not None:
            signals.extend(self._travel(current, previous, details))
        if current is not None and home is not None:
            signals.extend(self._far_from_home(current, home, familiar, details))
        return Evidence(tool=TOOL, signals=signals, details=details)

    def _travel(self, current: Place, previous: _Previous, details: dict[str, Any]) -> list[Signal]:
        assert previous.place is not None
        km = distance_km(
            previous.place.latitude,
            previous.place.longitude,
            current.latitude,
            current.longitude,
        )
        details["distance_km"] = round(km, 1)
        if km <= self.same_area_km or previous.elapsed is None:
            return []

        minutes = previous.elapsed.total_seconds() / 60
        reachable_km = self.max_speed_kmh * max(0.0, minutes - self.boarding_time_min) / 60
        speed_kmh = km / (minutes / 60) if minutes > 0 else None
        details["reachable_km"] = round(reachable_km, 1)
        details["speed_kmh"] = round(speed_kmh, 1) if speed_kmh is not None else None

        route = (
            f"{current.label} is {km:,.0f} km from {previous.place.label}, "
            f"{_duration(minutes)} after the previous payment"
        )
        if km > reachable_km:
            speed_text = f"{speed_kmh:,.0f} km/h" if speed_kmh is not None else "no time"
            return [
                Signal(
                    code="impossible_travel",
                    text=(
                        f"{route}: {speed_text}, beyond an airliner "
                        f"({self.max_speed_kmh:,.0f} km/h after "
                        f"{self.boarding_time_min:.0f} min of boarding)"
                    ),
                    value=round(speed_kmh, 1) if speed_kmh is not None else None,
                    unit="km/h",
                    points=IMPOSSIBLE_TRAVEL_POINTS,
                )
            ]
        return [
            Signal(
                code="plausible_travel",
                text=f"{route}: {speed_kmh:,.0f} km/h, a trip that can be made",
                value=round(speed_kmh or 0.0, 1),
                unit="km/h",
            )
        ]

    def _far_from_home(
        self,
        current: Place,
        home: tuple[float, float],
        familiar: list[tuple[float, float]],
        details: dict[str, Any],
    ) -> list[Signal]:
        km = distance_km(home[0], home[1], current.latitude, current.longitude)
        details["home_distance_km"] = round(km, 1)
        if km <= self.far_from_home_km:
            return []
        # A second city the customer pays in regularly is not "far from home".
        if any(
            distance_km(lat, lon, current.latitude, current.longitude) <= self.same_area_km
            for lat, lon in familiar
        ):
            return []
        return [
            Signal(
                code="far_from_home",
                text=(
                    f"{current.label} is {km:,.0f} km from the customer's home, "
                    "where the customer has not paid in the last 90 days"
                ),
                value=round(km, 1),
                unit="km",
                points=FAR_FROM_HOME_POINTS,
            )
        ]

    def _current(self, tx: Transaction, hints: list[tuple[float, float]]) -> Place | None:
        if tx.latitude is not None and tx.longitude is not None:
            return self._gazetteer.at(tx.latitude, tx.longitude)
        return self._gazetteer.resolve(tx.location, hints)

    def _previous(
        self, tx: Transaction, history: CustomerHistory, hints: list[tuple[float, float]]
    ) -> _Previous:
        last = history.last
        elapsed: timedelta | None = None
        if tx.time_since_last_transaction:
            elapsed = parse_elapsed(tx.time_since_last_transaction)
        elif last is not None:
            elapsed = tx.occurred_at() - last.occurred_at

        if tx.previous_location:
            place = self._gazetteer.resolve(tx.previous_location, hints)
            return _Previous(place, tx.previous_location, elapsed, "request")
        if last is not None:
            return _Previous(self._past_place(last, hints), last.location, elapsed, "history")
        # No previous payment: nothing to travel from, which is not a risk.
        return _Previous(None, None, None, "none")

    def _past_place(
        self, past: PastTransaction, hints: Sequence[tuple[float, float]] = ()
    ) -> Place | None:
        if past.latitude is not None and past.longitude is not None:
            return self._gazetteer.at(past.latitude, past.longitude)
        return self._gazetteer.resolve(past.location, hints)

    def _home(self, history: CustomerHistory) -> tuple[float, float] | None:
        customer = history.customer
        if customer is None:
            return None
        if customer.home_latitude is not None and customer.home_longitude is not None:
            return customer.home_latitude, customer.home_longitude
        if customer.home_location:
            place = self._gazetteer.resolve(customer.home_location)
            if place is not None:
                return place.latitude, place.longitude
        return None

    def _familiar_places(self, history: CustomerHistory) -> list[tuple[float, float]]:
        seen: dict[str, tuple[float, float]] = {}
        for past in reversed(history.transactions):
            key = (
                f"{past.latitude:.2f},{past.longitude:.2f}"
                if past.latitude is not None and past.longitude is not None
                else past.location
            )
            if key in seen:
                continue
            if past.latitude is not None and past.longitude is not None:
                # Coordinates are the place already; naming the city is not needed.
                seen[key] = (past.latitude, past.longitude)
            else:
                place = self._gazetteer.resolve(past.location)
                if place is not None:
                    seen[key] = (place.latitude, place.longitude)
            if len(seen) >= MAX_HINTS:
                break
        return list(seen.values())


def _history_store(database_url: str) -> HistoryReader:
    from fraudline.db import make_engine, make_sessions
    from fraudline.history import HistoryStore

    return HistoryStore(make_sessions(make_engine(database_url)))


def _describe(place: Place | None) -> dict[str, Any] | None:
    if place is None:
        return None
    return {
        "name": place.name,
        "country": place.country_code,
        "admin1": place.admin1,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "resolution": place.resolution,
    }


def _unresolved(text: str, whose: str) -> Signal:
    return Signal(
        code="location_unresolved",
        text=f"Could not place {text!r}, the location of {whose}; travel not checked",
        value=text,
    )


def _ambiguous(place: Place, text: str) -> Signal:
    how = (
        "the one nearest the customer's usual places"
        if place.resolution == "context"
        else "the most populous"
    )
    return Signal(
        code="ambiguous_location",
        text=f"{text!r} names several places; took {place.label}, {how}",
        value=text,
    )


def _minutes(elapsed: timedelta | None) -> float | None:
    return None if elapsed is None else round(elapsed.total_seconds() / 60, 1)


def _duration(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"
