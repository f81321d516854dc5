"""No full card number in the database files or the logs after real traffic."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text

from fraudline.db import make_engine
from fraudline.demo import EXPECTED_DECISIONS, SCENARIOS
from fraudline.pii import luhn_valid
from fraudline.records import CaseRow
from tests.serve_app.inprocess import build_local_api, scenario

VISA = "4111111111111111"
MASTERCARD = "5555-5555-5555-4444"
AMEX = "3782 822463 10005"
# A run of digits, optionally split by single spaces or hyphens, that is not the
# fractional part of a decimal number (timestamps and scores have those).
_DIGIT_RUN = re.compile(rb"(?<![0-9.])(?<![0-9]\.)[0-9](?:[ \-]?[0-9]){12,18}(?![0-9])")
# Hex digests (the audit chain's SHA-256 hashes) hold long digit runs by chance,
# some Luhn-valid; a card number alone is at most 19 characters, so 32 or more
# hex characters in a row are a digest, not a card.
_HEX_DIGEST = re.compile(rb"[0-9a-fA-F]{32,}")


def card_numbers_in(data: bytes) -> list[str]:
    """Every 13-19 digit Luhn-valid run in raw bytes, however it is grouped."""
    found = []
    for match in _DIGIT_RUN.finditer(_HEX_DIGEST.sub(b"#", data)):
        digits = re.sub(rb"[ \-]", b"", match.group()).decode()
        if luhn_valid(digits):
            found.append(digits)
    return found


def test_the_scanner_finds_cards_however_written() -> None:
    data = f"a {VISA} b {MASTERCARD} c {AMEX} d 0.{VISA} e 1234567812345678".encode()

    assert card_numbers_in(data) == [VISA, "5555555555554444", "378282246310005"]


def test_the_scanner_passes_over_hash_digests() -> None:
    # A SHA-256 audit hash seen with a Luhn-valid run of 17 digits inside it.
    digest = "9be1" + "54780644557219894" + "c0ffee" * 7 + "a"

    assert luhn_valid("54780644557219894") and len(digest) == 64
    assert card_numbers_in(f"hash={digest} card {VISA}".encode()) == [VISA]


@pytest.fixture(scope="module")
def traffic(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, list[dict[str, Any]]]]:
    """The demo scenarios and card-laden payments through the app, with every log line."""
    folder = tmp_path_factory.mktemp("pii")
    url = f"sqlite:///{folder}/fraudline.db"
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        app, _, _ = build_local_api(url)
        with TestClient(app) as client:
            answers = [
                client.post("/v1/analyze", json=scenario(name)).json() for name in SCENARIOS
            ]
            # Another customer: the high-risk scenario put C-12345's card on hold.
            card_laden = scenario(
                "high_risk",
                transaction_id="TXN-PII-001",
                customer_id="C-67890",
                merchant=f"CRYPTO-EXCHANGE-XX card {VISA}",
                location=f"Moscow, Russia {MASTERCARD}",
                device_id=f"dev-{AMEX.replace(' ', '')}",
            )
            answers.append(client.post("/v1/analyze", json=card_laden).json())
            for answer in answers:
                case = next((a["id"] for a in answer["actions"] if a["kind"] == "case"), None)
                if case:
                    client.get(f"/v1/cases/{case}")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    logs = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in records
    )
    make_engine(url).dispose()
    yield folder, logs, answers


def test_demo_scenarios_keep_their_decisions(traffic: Any) -> None:
    _, _, answers = traffic

    assert [a["decision"] for a in answers[:3]] == list(EXPECTED_DECISIONS.values())
    assert answers[3]["decision"] == "block"


def test_no_card_number_in_any_database_value(traffic: Any) -> None:
    folder, _, _ = traffic
    engine = make_engine(f"sqlite:///{folder}/fraudline.db")
    found: dict[str, list[str]] = {}
    scanned = 0
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            # Each value alone: raw pages run neighbouring fields together.
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    scanned += 1
                    hits = card_numbers_in(str(value).encode())
                    if hits:
                        found.setdefault(table, []).extend(hits)
    engine.dispose()

    assert scanned > 1000
    assert found == {}


def test_sent_card_numbers_are_in_no_database_file(traffic: Any) -> None:
    folder, _, _ = traffic
    files = sorted(folder.glob("fraudline.db*"))  # the database, its WAL and shared memory
    written = [VISA, MASTERCARD, AMEX]
    forms = {form for card in written for form in (card, re.sub(r"[ \-]", "", card))}

    assert files and files[0].name == "fraudline.db"
    for file in files:
        data = file.read_bytes()
        assert [form for form in forms if form.encode() in data] == [], file.name


def test_no_card_number_in_the_logs(traffic: Any) -> None:
    _, logs, _ = traffic

    assert logs  # the app did log something to scan
    assert card_numbers_in(logs.encode()) == []


def test_card_number_in_free_text_is_stored_as_last_four(traffic: Any) -> None:
    folder, _, _ = traffic
    engine = make_engine(f"sqlite:///{folder}/fraudline.db")
    with engine.connect() as connection:
        stored = connection.scalar(
            select(CaseRow.transaction_json).where(CaseRow.transaction_id == "TXN-PII-001")
        )
    engine.dispose()

    assert stored is not None
    assert "CRYPTO-EXCHANGE-XX card **** 1111" in stored
    assert "Moscow, Russia **** 4444" in stored
    assert "dev-**** 0005" in stored


def test_the_answer_does_not_echo_the_card_number(traffic: Any) -> None:
    _, _, answers = traffic

    assert card_numbers_in(repr(answers[3]).encode()) == []
