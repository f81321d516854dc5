"""Wire types shared by the API, the tools and the agent."""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fraudline.timeparse import parse_elapsed

Decision = Literal["approve", "review", "block"]
EvidenceStatus = Literal["ok", "unavailable"]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
_CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_AMOUNT = 10_000_000.0


class Transaction(BaseModel):
    """One payment to decide on, as a client sends it to `POST /v1/analyze`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    transaction_id: str = Field(
        pattern=_ID_PATTERN,
        description="Unique id of the payment; letters, digits and . _ : - (1-64).",
    )
    customer_id: str = Field(
        pattern=_ID_PATTERN, description="The card holder's customer id."
    )
    amount: float = Field(
        gt=0,
        le=MAX_AMOUNT,
        description="Amount in `currency`, a finite number above 0.",
    )
    merchant: str = Field(min_length=1, max_length=200)
    merchant_category: str = Field(min_length=1, max_length=100)
    location: str = Field(
        min_length=1,
        max_length=200,
        description='Where the payment happens: "City, ST", "City, Country" or "lat,lon".',
    )
    card_present: bool = False
    device_id: str | None = Field(default=None, max_length=128)
    ip_address: str | None = Field(
        default=None, description="IPv4 or IPv6 address the payment came from."
    )
    previous_location: str | None = Field(default=None, max_length=200)
    time_since_last_transaction: str | None = Field(
        default=None,
        max_length=64,
        description='Time since the previous payment: "30 minutes ago", "PT2H".',
    )
    timestamp: datetime | None = Field(
        default=None,
        description="ISO 8601 time with a UTC offset; the time of receipt when absent.",
    )
    currency: str = Field(default="USD", pattern=_CURRENCY_PATTERN)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("amount", "latitude", "longitude")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number, not NaN or infinity")
        return value

    @field_validator("ip_address")
    @classmethod
    def _valid_ip(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 or IPv6 address; send e.g. 203.0.113.7"
            ) from None

    @field_validator("time_since_last_transaction")
    @classmethod
    def _valid_elapsed(cls, value: str | None) -> str | None:
        if value:
            parse_elapsed(value)
        return value or None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(
                "needs a UTC offset, e.g. 2026-01-31T14:05:00+00:00 or ...Z"
            )
        return value

    @field_validator(
        "merchant", "merchant_category", "location", "previous_location", "device_id"
    )
    @classmethod
    def _printable_without_cards(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", value):
            raise ValueError("must not contain control characters")
        # A card number typed into free text is masked before anything keeps it.
        from fraudline.pii import mask_card_numbers

        return mask_card_numbers(value)

    def occurred_at(self) -> datetime:
        """The payment's time in UTC; `timestamp` must be filled in first."""
        assert self.timestamp is not None
        return self.timestamp.astimezone(UTC)


class Signal(BaseModel):
    """One named finding of a tool, with the value behind it."""

    code: str = Field(description="Stable machine name, e.g. impossible_travel.")
    text: str = Field(description="One sentence an analyst can read.")
    value: float | int | str | bool | None = None
    unit: str | None = None
    points: float = Field(
        default=0.0, description="What it adds to the 0-100 risk score."
    )


class Evidence(BaseModel):
    """What one evidence tool found about one transaction."""

    tool: str
    status: EvidenceStatus = "ok"
    signals: list[Signal] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None

    @property
    def points(self) -> float:
        return sum(signal.points for signal in self.signals)

    @classmethod
    def unavailable(cls, tool: str, error: str) -> Evidence:
        return cls(tool=tool, status="unavailable", error=error)


class Reason(BaseModel):
    """One reason behind a decision, taken from a tool's signal."""

    code: str
    text: str
    tool: str
    points: float


ActionKind = Literal[
    "transaction_blocked", "alert", "case", "report", "hold", "notification"
]
ActionState = Literal["done", "queued", "skipped", "failed"]


class Action(BaseModel):
    """Something Fraudline did because of a decision."""

    kind: ActionKind
    state: ActionState
    id: str | None = None
    detail: str | None = None


class Explanation(BaseModel):
    """Why the decision was taken, in words."""

    text: str
    source: Literal["policy", "model"] = "policy"
    model_status: Literal["ok", "skipped", "unavailable"] = "skipped"
    model: str | None = None
    key_factors: list[str] = Field(default_factory=list)
    recommended_action: Decision | None = None
    confidence: float | None = None


class DecisionResult(BaseModel):
    """The answer to `POST /v1/analyze`."""

    transaction_id: str
    customer_id: str
    decision: Decision
    risk_score: float = Field(ge=0, le=100)
    risk_level: Literal["low", "medium", "high"]
    reasons: list[Reason]
    evidence: dict[str, Evidence]
    actions: list[Action] = Field(default_factory=list)
    explanation: Explanation
    policy_version: str
    decided_at: datetime
    latency_ms: dict[str, float] = Field(default_factory=dict)
