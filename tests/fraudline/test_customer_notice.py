"""Tests of the customer notice template: short, cleaned, and never a card number."""

from __future__ import annotations

from datetime import UTC, datetime

from fraudline.outbox import compose_customer_notice
from fraudline.schemas import Transaction

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def _payment(merchant: str, amount: float = 4500.0, currency: str = "USD") -> Transaction:
    # Built without validation: the template must be safe whatever path the text took.
    return Transaction.model_construct(
        transaction_id="TX-1",
        customer_id="C-12345",
        amount=amount,
        currency=currency,
        merchant=merchant,
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        timestamp=NOW,
    )


def test_block_notice_names_amount_merchant_last_four_and_hold_end() -> None:
    notice = compose_customer_notice(
        _payment("CRYPTO-EXCHANGE-XX"), "block", "4242", datetime(2026, 2, 1, 14, 5, tzinfo=UTC)
    )

    assert notice.sms == (
        "Fraudline: we blocked a payment of $4,500.00 at CRYPTO-EXCHANGE-XX on your card "
        "ending 4242. Card on hold until Feb 1 14:05 UTC. If it was you, call your bank."
    )
    assert len(notice.sms) == 159
    assert notice.subject == "We blocked a payment on your card"
    assert "Your card is on hold until 2026-02-01 14:05 UTC." in notice.text


def test_review_notice_asks_the_customer_to_call_if_it_was_not_them() -> None:
    notice = compose_customer_notice(_payment("Best Buy", 1200.0, "EUR"), "review", "1111")

    assert notice.sms == (
        "Fraudline: we are checking a payment of 1,200.00 EUR at Best Buy on your card "
        "ending 1111. If it was not you, call your bank."
    )


def test_card_number_in_the_merchant_text_is_cut_to_its_last_four() -> None:
    notice = compose_customer_notice(_payment("PAY 4111 1111 1111 1111"), "block", "4242")

    for body in (notice.sms, notice.text, notice.html):
        assert "4111 1111" not in body and "4111111111111111" not in body
    assert "PAY ****1111" in notice.sms


def test_control_characters_are_stripped_and_long_merchants_truncated() -> None:
    merchant = "EVIL\r\nBcc: all@bank.test\x1b[31m\u202e" + "X" * 80

    notice = compose_customer_notice(_payment(merchant), "block", "4242")

    assert "\r" not in notice.sms and "\n" not in notice.sms and "\x1b" not in notice.sms
    assert "\u202e" not in notice.sms
    merchant_shown = notice.sms.split(" at ", 1)[1].split(" on your card")[0]
    assert len(merchant_shown) == 40 and merchant_shown.endswith("...")
    assert merchant_shown.startswith("EVIL Bcc: all@bank.test [31m")


def test_html_body_escapes_the_merchant() -> None:
    notice = compose_customer_notice(_payment("<script>x</script>"), "block", "4242")

    assert "<script>" not in notice.html
    assert "&lt;script&gt;x&lt;/script&gt;" in notice.html


def test_card_digits_that_are_not_four_digits_are_left_out() -> None:
    notice = compose_customer_notice(_payment("Shop"), "block", "42424242")

    assert "on your card. If it was you" in notice.sms
    assert "4242" not in notice.sms
