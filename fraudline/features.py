"""Point-in-time transaction features, one implementation for training and serving."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from fraudline.history import CustomerHistory
    from fraudline.schemas import Transaction

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S

# The store hands back at most this much history (HistoryStore.histories defaults);
# offline features apply the same cut so a model sees the same numbers in both places.
HISTORY_DAYS = 90
HISTORY_LIMIT = 500

SPENDING_WINDOWS: tuple[tuple[str, int], ...] = (
    ("1h", 3_600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
)
# Gaps shorter than a minute would turn GPS noise into absurd speeds.
MIN_SPEED_GAP_S = 60.0
NIGHT_HOURS = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
EARTH_RADIUS_KM = 6371.0088

# Columns every event frame carries; `target` marks the rows to compute features for.
EVENT_COLUMNS = (
    "group",
    "time_us",
    "amount",
    "category",
    "latitude",
    "longitude",
    "home_latitude",
    "home_longitude",
    "card_present",
    "target",
)

# Product categories as clients name them, mapped onto the training vocabulary
# (Sparkov's). A pair is (card present, card not present).
_CATEGORY_ALIASES: dict[str, tuple[str, str]] = {
    "electronics": ("shopping_pos", "shopping_net"),
    "e-commerce": ("shopping_net", "shopping_net"),
    "ecommerce": ("shopping_net", "shopping_net"),
    "online shopping": ("shopping_net", "shopping_net"),
    "shopping": ("shopping_pos", "shopping_net"),
    "retail": ("shopping_pos", "shopping_net"),
    "clothing": ("shopping_pos", "shopping_net"),
    "jewelry": ("shopping_pos", "shopping_net"),
    "grocery": ("grocery_pos", "grocery_net"),
    "groceries": ("grocery_pos", "grocery_net"),
    "supermarket": ("grocery_pos", "grocery_net"),
    "gas": ("gas_transport", "gas_transport"),
    "fuel": ("gas_transport", "gas_transport"),
    "transport": ("gas_transport", "gas_transport"),
    "restaurants": ("food_dining", "food_dining"),
    "restaurant": ("food_dining", "food_dining"),
    "dining": ("food_dining", "food_dining"),
    "food": ("food_dining", "food_dining"),
    "travel": ("travel", "travel"),
    "airline": ("travel", "travel"),
    "hotel": ("travel", "travel"),
    "entertainment": ("entertainment", "entertainment"),
    "health": ("health_fitness", "health_fitness"),
    "fitness": ("health_fitness", "health_fitness"),
    "pharmacy": ("health_fitness", "health_fitness"),
    "personal care": ("personal_care", "personal_care"),
    "home": ("home", "home"),
    "home improvement": ("home", "home"),
    "kids": ("kids_pets", "kids_pets"),
    "pets": ("kids_pets", "kids_pets"),
    # No crypto, gambling or money-transfer merchants exist in the training data;
    # "miscellaneous" is the closest honest match.
    "cryptocurrency": ("misc_pos", "misc_net"),
    "crypto": ("misc_pos", "misc_net"),
    "gambling": ("misc_pos", "misc_net"),
    "wire transfer": ("misc_pos", "misc_net"),
    "money transfer": ("misc_pos", "misc_net"),
    "gift cards": ("misc_pos", "misc_net"),
}


def canonical_category(name: str, card_present: bool) -> str:
    """The training-vocabulary category for a client's category name.

    Sparkov names (``shopping_net``) pass through; known client names
    (``Electronics``) map by card presence; anything else is lower-cased as is,
    and then has no fraud-rate history.
    """
    key = " ".join(name.strip().lower().replace("_", " ").split())
    if key in _CATEGORY_ALIASES:
        present, not_present = _CATEGORY_ALIASES[key]
        return present if card_present else not_present
    return name.strip().lower().replace(" ", "_")


def sparkov_card_present(category: str) -> bool:
    """Sparkov has no card-present flag: `_net` categories are taken as online."""
    return not category.endswith("_net")


@dataclass(frozen=True)
class DelayedRates:
    """Fraud rate per key (category, terminal) over day windows that end `delay_days` ago.

    Labels arrive late, so the rate for day d counts only days
    [d - delay - w, d - delay). Days after the last labelled day read the
    latest window there is, which is how a shipped model serves.

    Attributes:
        name: Feature prefix, e.g. "category".
        keys: The known keys; row i of `counts`/`frauds`.
        first_day: Day number (days since 1970-01-01 UTC) of column 0.
        counts: Transactions per key and day.
        frauds: Frauds per key and day.
        delay_days: Days until a label is known.
        windows_days: Window lengths in days.
    """

    name: str
    keys: tuple[str, ...]
    first_day: int
    counts: np.ndarray
    frauds: np.ndarray
    delay_days: int = 7
    windows_days: tuple[int, ...] = (7, 30)

    @classmethod
    def fit(
        cls,
        name: str,
        keys: Sequence[str] | np.ndarray,
        days: np.ndarray,
        labels: np.ndarray,
        *,
        delay_days: int = 7,
        windows_days: tuple[int, ...] = (7, 30),
    ) -> DelayedRates:
        """Counts transactions and frauds per key and day."""
        codes, uniques = _factorize(keys)
        first_day = int(days.min())
        n_days = int(days.max()) - first_day + 1
        cells = codes * n_days + (days.astype(np.int64) - first_day)
        size = len(uniques) * n_days
        counts = np.bincount(cells, minlength=size).reshape(len(uniques), n_days)
        frauds = np.bincount(cells, weights=labels.astype(float), minlength=size)
        return cls(
            name=name,
            keys=tuple(str(k) for k in uniques),
            first_day=first_day,
            counts=counts.astype(np.int64),
            frauds=frauds.reshape(len(uniques), n_days).astype(np.int64),
            delay_days=delay_days,
            windows_days=tuple(windows_days),
        )

    @property
    def last_day(self) -> int:
        return self.first_day + self.counts.shape[1] - 1

    def columns(self) -> list[str]:
        names = []
        for window in self.windows_days:
            names += [self._count_name(window), self._rate_name(window)]
        return names

    def lookup(self, keys: Sequence[str] | np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
        """Count and fraud rate per window for each (key, day); NaN rate when none."""
        index = {key: i for i, key in enumerate(self.keys)}
        codes = np.array([index.get(str(k), -1) for k in keys], dtype=np.int64)
        known = codes >= 0
        cum_counts = _cumulative(self.counts)
        cum_frauds = _cumulative(self.frauds)
        # Labels exist up to last_day; later days read the latest window.
        ends = np.minimum(days.astype(np.int64) - self.delay_days, self.last_day + 1)
        out: dict[str, np.ndarray] = {}
        for window in self.windows_days:
            stop = np.clip(ends - self.first_day, 0, self.counts.shape[1])
            start = np.clip(ends - window - self.first_day, 0, self.counts.shape[1])
            safe = np.where(known, codes, 0)
            n = np.where(known, cum_counts[safe, stop] - cum_counts[safe, start], 0)
            f = np.where(known, cum_frauds[safe, stop] - cum_frauds[safe, start], 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(n > 0, f / np.maximum(n, 1), np.nan)
            out[self._count_name(window)] = n.astype(float)
            out[self._rate_name(window)] = rate
        return out

    def trimmed(self) -> DelayedRates:
        """Only the days that can still be read after the last labelled day."""
        keep = self.delay_days + max(self.windows_days)
        if self.counts.shape[1] <= keep:
            return self
        return DelayedRates(
            name=self.name,
            keys=self.keys,
            first_day=self.last_day - keep + 1,
            counts=self.counts[:, -keep:].copy(),
            frauds=self.frauds[:, -keep:].copy(),
            delay_days=self.delay_days,
            windows_days=self.windows_days,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keys": list(self.keys),
            "first_day": self.first_day,
            "counts": self.counts.tolist(),
            "frauds": self.frauds.tolist(),
            "delay_days": self.delay_days,
            "windows_days": list(self.windows_days),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DelayedRates:
        return cls(
            name=str(data["name"]),
            keys=tuple(data["keys"]),
            first_day=int(data["first_day"]),
            counts=np.asarray(data["counts"], dtype=np.int64).reshape(len(data["keys"]), -1),
            frauds=np.asarray(data["frauds"], dtype=np.int64).reshape(len(data["keys"]), -1),
            delay_days=int(data["delay_days"]),
            windows_days=tuple(int(w) for w in data["windows_days"]),
        )

    def _count_name(self, window: int) -> str:
        return f"{self.name}_count_{window}d_delayed"

    def _rate_name(self, window: int) -> str:
        return f"{self.name}_fraud_rate_{window}d_delayed"


def feature_names(rates: Iterable[DelayedRates] = ()) -> list[str]:
    """Every column `compute_features` returns, in order."""
    names = ["amount"]
    for label, _ in SPENDING_WINDOWS:
        names += [f"count_{label}", f"sum_{label}"]
    names += [
        "history_count",
        "amount_mean",
        "amount_std",
        "amount_z",
        "amount_ratio",
        "seconds_since_previous",
        "distance_home_km",
        "distance_previous_km",
        "speed_previous_kmh",
        "hour",
        "is_night",
        "is_weekend",
        "card_present",
    ]
    for table in rates:
        names += table.columns()
    return names


def compute_features(
    events: pd.DataFrame, rates: Mapping[str, DelayedRates] | None = None
) -> pd.DataFrame:
    """Features of each target row from the rows of its group strictly before it.

    A row's history is its group's rows in [t - 90 days, t), at most the last
    500, exactly what `HistoryStore.histories` returns; spending windows count
    that history plus the row itself. Nothing at or after t is read, so adding a
    later row never changes an earlier row's features.

    Args:
        events: One row per transaction with `EVENT_COLUMNS` (times in UTC
            microseconds since the epoch); extra columns are ignored.
        rates: Delayed fraud-rate tables keyed by the event column they look up,
            e.g. {"category": DelayedRates}.

    Returns:
        One row per target row, in the target rows' original order and index.
    """
    import pandas as pd

    rates = dict(rates or {})
    group_codes, _ = _factorize(events["group"].to_numpy())
    times = events["time_us"].to_numpy(dtype=np.int64)
    order = np.lexsort((np.arange(len(events)), times, group_codes))
    keys = _sort_keys(group_codes[order], times[order])
    amounts = events["amount"].to_numpy(dtype=float)[order]
    lat = events["latitude"].to_numpy(dtype=float)[order]
    lon = events["longitude"].to_numpy(dtype=float)[order]
    targets = order[events["target"].to_numpy(dtype=bool)[order]]
    rows = np.flatnonzero(events["target"].to_numpy(dtype=bool)[order])

    # History of row i: sorted rows [hist_start, hist_end).
    t_keys = keys[rows]
    hist_end = np.searchsorted(keys, t_keys, side="left")
    hist_start = np.searchsorted(keys, t_keys - HISTORY_DAYS * US_PER_DAY, side="left")
    hist_start = np.maximum(hist_start, hist_end - HISTORY_LIMIT)
    cum = np.concatenate([[0.0], np.cumsum(amounts)])
    cum_sq = np.concatenate([[0.0], np.cumsum(amounts**2)])
    amount = amounts[rows]

    out: dict[str, np.ndarray] = {"amount": amount}
    for label, seconds in SPENDING_WINDOWS:
        start = np.searchsorted(keys, t_keys - seconds * US_PER_S, side="left")
        start = np.maximum(start, hist_start)
        out[f"count_{label}"] = (hist_end - start + 1).astype(float)
        out[f"sum_{label}"] = cum[hist_end] - cum[start] + amount

    n = (hist_end - hist_start).astype(float)
    total = cum[hist_end] - cum[hist_start]
    total_sq = cum_sq[hist_end] - cum_sq[hist_start]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        var = np.where(n > 1, (total_sq - n * mean**2) / np.maximum(n - 1, 1), np.nan)
        std = np.sqrt(np.clip(var, 0.0, None))
        # A flat history (std 0) would give infinite z; a cent of spread keeps it finite.
        z = (amount - mean) / np.maximum(std, 0.01)
        ratio = amount / mean
    out.update(
        history_count=n, amount_mean=mean, amount_std=std, amount_z=z, amount_ratio=ratio
    )

    has_previous = hist_end > hist_start
    previous = np.where(has_previous, hist_end - 1, 0)
    gap_s = np.where(has_previous, (times[order][rows] - times[order][previous]) / 1e6, np.nan)
    home_lat = events["home_latitude"].to_numpy(dtype=float)[order][rows]
    home_lon = events["home_longitude"].to_numpy(dtype=float)[order][rows]
    distance_previous = np.where(
        has_previous, haversine_km(lat[rows], lon[rows], lat[previous], lon[previous]), np.nan
    )
    out["seconds_since_previous"] = gap_s
    out["distance_home_km"] = haversine_km(lat[rows], lon[rows], home_lat, home_lon)
    out["distance_previous_km"] = distance_previous
    out["speed_previous_kmh"] = distance_previous / (np.maximum(gap_s, MIN_SPEED_GAP_S) / 3600)

    moments = pd.to_datetime(times[targets], unit="us", utc=True)
    hour = moments.hour.to_numpy()
    out["hour"] = hour.astype(float)
    out["is_night"] = np.isin(hour, list(NIGHT_HOURS)).astype(float)
    out["is_weekend"] = (moments.day_of_week.to_numpy() >= 5).astype(float)
    out["card_present"] = events["card_present"].to_numpy(dtype=float)[targets]

    days = times[targets] // US_PER_DAY
    for column, table in rates.items():
        out.update(table.lookup(events[column].to_numpy()[targets], days))

    frame = pd.DataFrame(out, index=events.index[targets])
    names = feature_names(rates.values())
    return frame.loc[events.index[events["target"].to_numpy(dtype=bool)], names]


def haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in km; NaN where a coordinate is missing."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def sparkov_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Event rows for a Sparkov transactions frame (same index), one group per card."""
    import pandas as pd

    times = pd.to_datetime(frame["trans_date_trans_time"]).astype("datetime64[us]")
    return pd.DataFrame(
        {
            "group": frame["cc_num"].astype(str),
            "time_us": times.astype("int64"),
            "amount": frame["amt"].astype(float),
            "category": frame["category"].astype(str),
            "latitude": frame["merch_lat"].astype(float),
            "longitude": frame["merch_long"].astype(float),
            "home_latitude": frame["lat"].astype(float),
            "home_longitude": frame["long"].astype(float),
            "card_present": [float(sparkov_card_present(c)) for c in frame["category"]],
            "target": True,
        },
        index=frame.index,
    )


def handbook_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Event rows for the Fraud Detection Handbook's simulated set, one group per customer."""
    import pandas as pd

    times = pd.to_datetime(frame["TX_DATETIME"]).astype("datetime64[us]")
    return pd.DataFrame(
        {
            "group": frame["CUSTOMER_ID"].astype(str),
            "time_us": times.astype("int64"),
            "amount": frame["TX_AMOUNT"].astype(float),
            "category": "",
            "terminal": frame["TERMINAL_ID"].astype(str),
            "latitude": np.nan,
            "longitude": np.nan,
            "home_latitude": np.nan,
            "home_longitude": np.nan,
            "card_present": np.nan,
            "target": True,
        },
        index=frame.index,
    )


def live_events(
    transactions: Sequence[Transaction], histories: Sequence[CustomerHistory]
) -> pd.DataFrame:
    """Event rows for a live batch: each transaction is its own group with its history.

    Batch siblings never see each other: each transaction's history is what the
    store returned for its own moment.
    """
    import pandas as pd

    columns: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for index, (transaction, history) in enumerate(zip(transactions, histories, strict=True)):
        customer = history.customer
        home_lat = _or_nan(customer.home_latitude if customer else None)
        home_lon = _or_nan(customer.home_longitude if customer else None)
        for past in history.transactions:
            _append(
                columns,
                index,
                _epoch_us(past.occurred_at),
                past.amount,
                canonical_category(past.merchant_category, past.card_present),
                past.latitude,
                past.longitude,
                home_lat,
                home_lon,
                past.card_present,
                target=False,
            )
        _append(
            columns,
            index,
            _epoch_us(transaction.occurred_at()),
            transaction.amount,
            canonical_category(transaction.merchant_category, transaction.card_present),
            transaction.latitude,
            transaction.longitude,
            home_lat,
            home_lon,
            transaction.card_present,
            target=True,
        )
    return pd.DataFrame(columns)


def _append(
    columns: dict[str, list[Any]],
    group: int,
    time_us: int,
    amount: float,
    category: str,
    latitude: float | None,
    longitude: float | None,
    home_latitude: float,
    home_longitude: float,
    card_present: bool,
    *,
    target: bool,
) -> None:
    columns["group"].append(group)
    columns["time_us"].append(time_us)
    columns["amount"].append(amount)
    columns["category"].append(category)
    columns["latitude"].append(_or_nan(latitude))
    columns["longitude"].append(_or_nan(longitude))
    columns["home_latitude"].append(home_latitude)
    columns["home_longitude"].append(home_longitude)
    columns["card_present"].append(float(card_present))
    columns["target"].append(target)


def _epoch_us(moment: Any) -> int:
    seconds = moment.timestamp()
    return int(round(seconds * US_PER_S))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _factorize(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return codes.astype(np.int64), uniques


def _sort_keys(group_codes: np.ndarray, times_us: np.ndarray) -> np.ndarray:
    """One sortable int64 per row: groups laid end to end on a time axis.

    The padding keeps a window that reaches back past a group's first row from
    landing in the previous group.
    """
    if len(times_us) == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(times_us.min())
    span = int(times_us.max()) - low + (HISTORY_DAYS + 10) * US_PER_DAY
    if (int(group_codes.max()) + 1) * span >= 2**62:
        raise ValueError(
            f"{int(group_codes.max()) + 1} groups over {span / US_PER_DAY:.0f} days do not "
            "fit one int64 time axis; compute features in smaller chunks of groups"
        )
    return group_codes * span + (times_us - low)


def _cumulative(table: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((table.shape[0], 1), dtype=table.dtype),
                           np.cumsum(table, axis=1)], axis=1)
