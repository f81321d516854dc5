"""Elapsed times as clients write them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraudline.errors import InvalidInput
from fraudline.timeparse import parse_elapsed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30 minutes ago", timedelta(minutes=30)),
        ("2 hours ago", timedelta(hours=2)),
        ("1 day ago", timedelta(days=1)),
        ("an hour ago", timedelta(hours=1)),
        ("45 min", timedelta(minutes=45)),
        ("PT30M", timedelta(minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("just now", timedelta(0)),
    ],
)
def test_reads_human_and_iso_spans(text: str, expected: timedelta) -> None:
    assert parse_elapsed(text) == expected


@pytest.mark.parametrize("text", ["yesterday-ish", "PT", "5 parsecs ago", "-3 hours", ""])
def test_rejects_unreadable_spans_with_an_example(text: str) -> None:
    with pytest.raises(InvalidInput, match="30 minutes ago"):
        parse_elapsed(text)


def test_rejects_spans_over_ten_years() -> None:
    with pytest.raises(InvalidInput, match="ten years"):
        parse_elapsed("5000 days ago")
