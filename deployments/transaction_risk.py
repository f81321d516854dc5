"""TransactionRisk: a learned risk score and amount rules on the customer's own history."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudline.features import compute_features, live_events
from fraudline.riskmodel import DEFAULT_MODEL_PATH, Contribution, RiskModel
from fraudline.schemas import Evidence, Signal, Transaction

if TYPE_CHECKING:
    from fraudline.history import HistoryStore

logger = logging.getLogger(__name__)

TOOL_NAME = "transaction_risk"

FeatureRow = Mapping[str, Any]
"""One payment's features, by column name."""

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 1},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    },
    "max_ongoing_requests": 32,
}

# Categories where stolen cards are cashed out fastest; names as clients send them.
HIGH_RISK_CATEGORIES = frozenset(
    {
        "cryptocurrency",
        "crypto",
        "crypto exchange",
        "gambling",
        "casino",
        "wire transfer",
        "money transfer",
        "money order",
        "gift cards",
        "gift card",
        "prepaid cards",
    }
)
# Goods that resell easily: a smaller weight, and only on top of an unusual amount.
RESALE_CATEGORIES = frozenset({"electronics", "jewelry", "luxury goods"})

HIGH_RISK_CATEGORY_POINTS = 20.0
RESALE_CATEGORY_POINTS = 15.0
AMOUNT_MIN_RATIO = 3.0
AMOUNT_MIN_Z = 3.0
AMOUNT_MIN_POINTS = 15.0
AMOUNT_MAX_POINTS = 30.0
# Ratio at which the amount rule reaches its maximum.
AMOUNT_FULL_RATIO = 6.0
CARD_NOT_PRESENT_POINTS = 5.0
CARD_NOT_PRESENT_SMALL_POINTS = 2.0
# The model already weighs the hour; the rule only makes night visible as a reason.
NIGHT_POINTS = 1.0
# The model learnt synthetic (Sparkov) customers; on customers unlike them it can be
# confidently wrong at some hours, so it adds at most 12 points and the rules, which
# read this customer's own history, carry the rest.
MODEL_HIGH_POINTS = 4.0
MODEL_MAX_POINTS = 12.0
# Probability at which the model signal reaches MODEL_MAX_POINTS.
MODEL_FULL_PROBABILITY = 0.995

_FEATURE_LABELS = {
    "amount": ("amount", "$"),
    "amount_ratio": ("amount / customer mean", "x"),
    "amount_z": ("amount z-score", ""),
    "amount_mean": ("customer mean amount", "$"),
    "amount_std": ("customer amount std", "$"),
    "history_count": ("payments in 90 days", ""),
    "seconds_since_previous": ("time since previous payment", "s"),
    "hour": ("hour (UTC)", ""),
    "is_night": ("night", ""),
    "is_weekend": ("weekend", ""),
    "card_present": ("card present", ""),
}


class TransactionRisk:
    """Scores payments with the risk model and amount/category rules.

    Reads each customer's history before the payment with one store query per
    batch, computes the same features the model was trained on, and predicts the
    whole batch at once.

    Args:
        database_url: The history store's database.
        model_path: Folder of the risk model artifact.
        top_features: How many model drivers to report per payment.
        store: A ready history store (tests); built from `database_url` if None.
        model: A loaded model (tests, benchmarks); loaded from `model_path` if None.
    """

    def __init__(
        self,
        database_url: str = "sqlite:///var/fraudline.db",
        *,
        model_path: str | Path = DEFAULT_MODEL_PATH,
        top_features: int = 3,
        store: HistoryStore | None = None,
        model: RiskModel | None = None,
    ) -> None:
        if store is None:
            from fraudline.db import make_engine, make_sessions
            from fraudline.history import HistoryStore

            store = HistoryStore(make_sessions(make_engine(database_url)))
        self._store = store
        self._model = model or RiskModel.load(model_path)
        self._top = top_features

    @property
    def model_version(self) -> str:
        return self._model.version

    def evaluate_batch(self, transactions: list[Transaction]) -> list[Evidence]:
        """One Evidence per transaction, in order."""
        if not transactions:
            return []
        from sqlalchemy.exc import SQLAlchemyError

        try:
            histories = self._store.histories(
                [(tx.customer_id, tx.occurred_at()) for tx in transactions]
            )
        except SQLAlchemyError as exc:
            logger.exception("history store failed for %d transactions", len(transactions))
            error = f"history store unavailable: {type(exc).__name__}"
            return [Evidence.unavailable(TOOL_NAME, error) for _ in transactions]

        features = compute_features(live_events(transactions, histories), self._model.rates)
        matrix = self._model.matrix(features)
        probabilities = self._model.predict(matrix)
        drivers = self._drivers(matrix, probabilities)
        return [
            self._evidence(tx, row, float(p), top)
            for tx, row, p, top in zip(
                transactions,
                features.to_dict("records"),
                probabilities,
                drivers,
                strict=True,
            )
        ]

    def _drivers(
        self, matrix: np.ndarray, probabilities: np.ndarray
    ) -> list[list[Contribution]]:
        """The model's drivers of each payment it scores at or above its low threshold.

        TreeSHAP costs about 1 ms a row, several hundred times the prediction, and
        below the low threshold the model adds no points, so there is nothing to
        explain: those payments get no drivers.
        """
        drivers: list[list[Contribution]] = [[] for _ in probabilities]
        flagged = np.flatnonzero(probabilities >= self._model.thresholds.low)
        if flagged.size:
            found = self._model.contributions(matrix[flagged], top=self._top)
            for index, row in zip(flagged, found, strict=True):
                drivers[index] = row
        return drivers

    def _evidence(
        self,
        transaction: Transaction,
        row: FeatureRow,
        probability: float,
        drivers: list[Contribution],
    ) -> Evidence:
        signals = [
            *category_signals(transaction.merchant_category, row),
            *amount_signals(transaction, row),
            *context_signals(transaction, row),
            model_signal(probability, self._model, drivers),
        ]
        logger.debug(
            "transaction %s: probability %.4f, %.1f points",
            transaction.transaction_id,
            probability,
            sum(s.points for s in signals),
        )
        return Evidence(
            tool=TOOL_NAME,
            signals=signals,
            details={
                "probability": round(probability, 6),
                "model_version": self._model.version,
                "thresholds": {
                    "low": self._model.thresholds.low,
                    "high": self._model.thresholds.high,
                },
                "top_features": [
                    {
                        "feature": d.feature,
                        "value": _json_number(d.value),
                        "contribution": round(d.log_odds, 4),
                    }
                    for d in drivers
                ],
                "rule_hits": [s.code for s in signals if s.points > 0 and s.code != "model_risk"],
                "history_count": int(row["history_count"]),
                "customer_mean_amount": _json_number(row["amount_mean"]),
            },
        )


def category_signals(category: str, row: FeatureRow) -> list[Signal]:
    """High-risk categories always; resale goods only with an unusual amount."""
    key = " ".join(category.strip().lower().replace("_", " ").split())
    if key in HIGH_RISK_CATEGORIES:
        return [
            Signal(
                code="high_risk_category",
                text=f"{category} is a high-risk merchant category",
                value=category,
                points=HIGH_RISK_CATEGORY_POINTS,
            )
        ]
    if key in RESALE_CATEGORIES and _is_unusual_amount(row):
        return [
            Signal(
                code="resale_category",
                text=(
                    f"{category} goods resell easily, bought at "
                    f"{row['amount_ratio']:.1f}x this customer's mean amount"
                ),
                value=category,
                points=RESALE_CATEGORY_POINTS,
            )
        ]
    return []


def amount_signals(transaction: Transaction, row: FeatureRow) -> list[Signal]:
    """Amount far above this customer's own history; a context signal without one."""
    if row["history_count"] == 0:
        return [
            Signal(
                code="no_history",
                text="No earlier payments of this customer in the last 90 days",
                value=0,
                unit="payments",
            )
        ]
    if not _is_unusual_amount(row):
        return []
    ratio = float(row["amount_ratio"])
    scale = min(1.0, (ratio - AMOUNT_MIN_RATIO) / (AMOUNT_FULL_RATIO - AMOUNT_MIN_RATIO))
    points = AMOUNT_MIN_POINTS + (AMOUNT_MAX_POINTS - AMOUNT_MIN_POINTS) * scale
    return [
        Signal(
            code="amount_anomaly",
            text=(
                f"{_money(transaction.amount)} is {ratio:.1f}x this customer's mean of "
                f"{_money(row['amount_mean'])} over {int(row['history_count'])} payments "
                f"(z-score {row['amount_z']:.1f})"
            ),
            value=round(ratio, 2),
            unit="x customer mean",
            points=round(points, 1),
        )
    ]


def context_signals(transaction: Transaction, row: FeatureRow) -> list[Signal]:
    """Card not present and night time: small weights, they are common."""
    signals = []
    if not transaction.card_present:
        mean = row["amount_mean"]
        above = not math.isnan(mean) and transaction.amount > mean
        signals.append(
            Signal(
                code="card_not_present",
                text=(
                    f"Card not present for {_money(transaction.amount)}, "
                    + (
                        f"above the customer's mean of {_money(mean)}"
                        if above
                        else "not above the customer's usual amount"
                    )
                ),
                value=False,
                points=CARD_NOT_PRESENT_POINTS if above else CARD_NOT_PRESENT_SMALL_POINTS,
            )
        )
    if row["is_night"] == 1:
        hour = int(row["hour"])
        signals.append(
            Signal(
                code="night_hour",
                text=f"Payment at {hour:02d}:00 UTC, in the 22:00-06:00 night window",
                value=hour,
                unit="hour UTC",
                points=NIGHT_POINTS,
            )
        )
    return signals


def model_signal(
    probability: float, model: RiskModel, drivers: Sequence[Contribution]
) -> Signal:
    """Points from the model's probability: none below the low threshold, 12 at most.

    Log-scaled from the low to the high threshold (0 to 4 points), then linear in
    log-odds up to 99.5 % (12 points).
    """
    low, high = model.thresholds.low, model.thresholds.high
    if probability < low:
        points = 0.0
    elif probability < high:
        points = MODEL_HIGH_POINTS * math.log(probability / low) / math.log(high / low)
    else:
        share = (_logit(probability) - _logit(high)) / (
            _logit(MODEL_FULL_PROBABILITY) - _logit(high)
        )
        points = MODEL_HIGH_POINTS + (MODEL_MAX_POINTS - MODEL_HIGH_POINTS) * min(1.0, share)
    text = (
        f"Risk model {model.version} gives a {probability:.1%} fraud probability "
        f"(review threshold {low:.1%})"
    )
    pushing = [d for d in drivers if d.log_odds > 0][:2] or list(drivers[:2])
    if pushing:
        text += "; main drivers: " + ", ".join(_describe(d) for d in pushing)
    return Signal(
        code="model_risk",
        text=text,
        value=round(probability, 6),
        unit="probability",
        points=round(points, 1),
    )


def _is_unusual_amount(row: FeatureRow) -> bool:
    ratio, z = row["amount_ratio"], row["amount_z"]
    return bool(
        row["history_count"] > 0
        and not math.isnan(ratio)
        and ratio >= AMOUNT_MIN_RATIO
        and not math.isnan(z)
        and z >= AMOUNT_MIN_Z
    )


def _logit(probability: float) -> float:
    p = min(max(probability, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _describe(driver: Contribution) -> str:
    label, unit = _FEATURE_LABELS.get(driver.feature, (driver.feature.replace("_", " "), ""))
    value = driver.value
    if math.isnan(value):
        shown = "unknown"
    elif unit == "$":
        shown = _money(value)
    elif unit == "s":
        shown = f"{value / 60:,.0f} min"
    elif unit == "x":
        shown = f"{value:.1f}x"
    elif driver.feature.startswith("sum_"):
        shown = _money(value)
    else:
        shown = f"{value:,.4g}"
    return f"{label} {shown}"


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)
