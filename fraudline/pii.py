"""Personal data: card numbers found and masked, keyed card hashes, redacted logs."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fraudline.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from fraudline.schemas import Transaction

# Groups of digits joined by single spaces or hyphens, as people type card numbers.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ \-][0-9]+)*(?![0-9])")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_IPV4 = re.compile(r"(?<![0-9.])((?:[0-9]{1,3}\.){3})[0-9]{1,3}(?![0-9.])")
MIN_HASH_SECRET_BYTES = 16
HASH_SECRET_ENV = "FRAUDLINE_CARD_HASH_KEY"
# Transaction fields a person or a merchant types freely, where a card number may hide.
FREE_TEXT_FIELDS = (
    "merchant",
    "merchant_category",
    "location",
    "previous_location",
    "device_id",
    "time_since_last_transaction",
)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn check used by payment cards."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Yields (start, end, digits) of each Luhn-valid 13-19 digit card number in text."""
    for run in _DIGIT_RUN.finditer(text):
        groups = [
            (run.start() + group.start(), run.start() + group.end())
            for group in _DIGIT_GROUP.finditer(run.group())
        ]
        # A card may sit among other numbers ("4111 1111 1111 1111 exp 2028"):
        # try the longest joined groups first from each starting group.
        first = 0
        while first < len(groups):
            found = None
            for last in range(len(groups) - 1, first - 1, -1):
                digits = "".join(text[start:end] for start, end in groups[first : last + 1])
                if 13 <= len(digits) <= 19 and luhn_valid(digits):
                    found = (groups[first][0], groups[last][1], digits)
                    break
            if found is None:
                first += 1
                continue
            yield found
            first = last + 1


def contains_card_number(text: str) -> bool:
    return next(card_spans(text), None) is not None


def last4(card_number: str) -> str:
    """The last four digits, the only part of a card number ever shown."""
    digits = _digits(card_number)
    return digits[-4:]


def mask_card_number(card_number: str) -> str:
    """`**** 1111`: what an analyst sees instead of the number."""
    return f"**** {last4(card_number)}"


def mask_card_numbers(text: str) -> str:
    """Replaces each card number in free text by its masked form; other text stays."""
    pieces: list[str] = []
    cursor = 0
    for start, end, digits in card_spans(text):
        pieces += [text[cursor:start], mask_card_number(digits)]
        cursor = end
    if not pieces:
        return text
    return "".join(pieces) + text[cursor:]


def mask_transaction(transaction: Transaction) -> Transaction:
    """The same transaction with any card number in its free-text fields masked.

    Call it where a transaction enters (before it is decided, stored or logged),
    so no table, log line, alert or report sees the number.
    """
    changes: dict[str, Any] = {}
    for field in FREE_TEXT_FIELDS:
        value = getattr(transaction, field, None)
        if isinstance(value, str):
            masked = mask_card_numbers(value)
            if masked != value:
                changes[field] = masked
    return transaction.model_copy(update=changes) if changes else transaction


def redact(text: str) -> str:
    """Text safe for logs: card numbers masked, emails and IPv4 hosts shortened."""
    text = mask_card_numbers(text)
    text = _EMAIL.sub(r"\1***@\2", text)
    return _IPV4.sub(r"\1x", text)


class CardHasher:
    """Keyed hashes of card numbers, to match a card again without storing it.

    Args:
        secret: The HMAC key, at least 16 bytes; the same on every replica, kept
            in a secret store, never in the database it protects.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_HASH_SECRET_BYTES:
            raise ConfigError(
                f"the card hash key has {len(secret)} bytes; use {MIN_HASH_SECRET_BYTES} "
                "or more, e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        self._secret = secret

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CardHasher:
        """Reads the key from `FRAUDLINE_CARD_HASH_KEY`."""
        value = (env if env is not None else os.environ).get(HASH_SECRET_ENV, "")
        if not value:
            raise ConfigError(f"set {HASH_SECRET_ENV} to a random secret of 32+ characters")
        return cls(value.encode("utf-8"))

    def fingerprint(self, card_number: str) -> str:
        """`hmac-sha256:<hex>` of the digits; equal for equal cards, however typed."""
        digits = _digits(card_number)
        digest = hmac.new(self._secret, digits.encode("ascii"), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"

    def card_reference(self, card_number: str) -> dict[str, str]:
        """What may be stored about a card: its fingerprint and last four digits."""
        return {"card_fingerprint": self.fingerprint(card_number), "card_last4": last4(card_number)}


_installed_factory: Any = None


def install_log_redaction() -> None:
    """Masks card numbers, emails and IPv4 addresses in every log record from now on.

    Works at record creation, so it covers every logger and handler, Ray's and
    uvicorn's included. Calling it again changes nothing.
    """
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return record
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return record

    _installed_factory = factory
    logging.setLogRecordFactory(factory)


def _digits(card_number: str) -> str:
    digits = re.sub(r"[ \-]", "", card_number)
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise InvalidInput("a card number has 12-19 digits, optionally grouped by spaces or -")
    return digits
