"""Card numbers are found by Luhn, masked to the last four, and hashed with a key."""

from __future__ import annotations

import logging

import pytest

from fraudline.errors import ConfigError, InvalidInput
from fraudline.pii import (
    CardHasher,
    card_spans,
    contains_card_number,
    install_log_redaction,
    last4,
    luhn_valid,
    mask_card_numbers,
    mask_transaction,
    redact,
)
from fraudline.schemas import Transaction

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


@pytest.mark.parametrize("number", [VISA, MASTERCARD, AMEX, "6011111111111117"])
def test_luhn_accepts_test_card_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "", "41x1"])
def test_luhn_rejects_numbers_with_a_wrong_check_digit(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "text",
    [
        f"paid with {VISA} today",
        "paid with 4111 1111 1111 1111 today",
        "paid with 4111-1111-1111-1111 today",
        f"card:{AMEX}.",
    ],
)
def test_mask_keeps_only_the_last_four_digits(text: str) -> None:
    masked = mask_card_numbers(text)

    assert "4111111111111111" not in masked.replace(" ", "").replace("-", "")
    assert "1111 1111" not in masked
    assert masked.count("**** ") == 1
    assert masked.endswith(("today", "."))


def test_card_next_to_other_numbers_is_still_masked() -> None:
    masked = mask_card_numbers("4111 1111 1111 1111 2028 cvv 123")

    assert masked == "**** 1111 2028 cvv 123"


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567812345678",  # 16 digits, fails Luhn
        "phone +1 212 555 0100",
        "41111111111111111111",  # 20 digits: too long for a card
        "amount 4500.00 at 2026-03-10T15:30:00Z",
    ],
)
def test_numbers_that_are_not_cards_stay(text: str) -> None:
    assert mask_card_numbers(text) == text
    assert not contains_card_number(text)


def test_card_spans_name_the_digits_and_where_they_are() -> None:
    text = f"a {VISA} b {MASTERCARD}"

    assert list(card_spans(text)) == [(2, 18, VISA), (21, 37, MASTERCARD)]


def test_last4_reads_the_digits_however_they_are_grouped() -> None:
    assert last4("5555-5555-5555-4444") == "4444"
    with pytest.raises(InvalidInput):
        last4("not a card")


def test_fingerprint_matches_the_same_card_however_typed() -> None:
    hasher = CardHasher(b"k" * 32)

    assert hasher.fingerprint(VISA) == hasher.fingerprint("4111 1111 1111 1111")
    assert hasher.fingerprint(VISA) != hasher.fingerprint(MASTERCARD)
    assert hasher.fingerprint(VISA).startswith("hmac-sha256:")
    assert VISA not in hasher.fingerprint(VISA)
    assert len(hasher.fingerprint(VISA)) == len("hmac-sha256:") + 64


def test_fingerprint_depends_on_the_secret() -> None:
    assert CardHasher(b"a" * 32).fingerprint(VISA) != CardHasher(b"b" * 32).fingerprint(VISA)


def test_card_reference_stores_fingerprint_and_last_four_only() -> None:
    reference = CardHasher(b"k" * 32).card_reference(VISA)

    assert set(reference) == {"card_fingerprint", "card_last4"}
    assert reference["card_last4"] == "1111"


def test_short_or_missing_hash_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="16 or more"):
        CardHasher(b"short")
    with pytest.raises(ConfigError, match="FRAUDLINE_CARD_HASH_KEY"):
        CardHasher.from_env({})
    assert CardHasher.from_env({"FRAUDLINE_CARD_HASH_KEY": "x" * 32}).fingerprint(VISA)


def test_mask_transaction_masks_every_free_text_field() -> None:
    transaction = Transaction(
        transaction_id="T-1",
        customer_id="C-1",
        amount=10.0,
        merchant=f"Shop {VISA}",
        merchant_category="Retail",
        location=f"Paris, FR {MASTERCARD}",
        device_id=f"dev-{AMEX}",
    )

    masked = mask_transaction(transaction)

    assert masked.merchant == "Shop **** 1111"
    assert masked.location == "Paris, FR **** 4444"
    assert masked.device_id == "dev-**** 0005"
    assert masked.amount == 10.0


def test_mask_transaction_returns_a_clean_transaction_unchanged() -> None:
    transaction = Transaction(
        transaction_id="T-1", customer_id="C-1", amount=10.0, merchant="Shop",
        merchant_category="Retail", location="Paris, FR",
    )

    assert mask_transaction(transaction) is transaction


def test_redact_shortens_emails_and_ip_addresses() -> None:
    text = redact(f"c12345@example.com paid from 185.220.101.5 with {VISA}")

    assert text == "c***@example.com paid from 185.220.101.x with **** 1111"


def test_log_records_are_redacted_before_any_handler_sees_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # a second call must not wrap twice
        with caplog.at_level(logging.INFO):
            logging.getLogger("fraudline.test").info("card %s from %s", VISA, "10.1.2.3")
    finally:
        logging.setLogRecordFactory(previous)

    assert caplog.messages == ["card **** 1111 from 10.1.2.x"]
