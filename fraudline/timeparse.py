"""Elapsed times as people and ISO 8601 write them."""

from __future__ import annotations

import re
from datetime import timedelta

from fraudline.errors import InvalidInput

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "half an": 0.5, "half a": 0.5}

_HUMAN = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?|an?|one|half an?)\s*(?P<unit>[a-z]+)(?:\s+ago)?$"
)
_ISO = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
MAX_ELAPSED = timedelta(days=3650)


def parse_elapsed(text: str) -> timedelta:
    """Reads "30 minutes ago", "2 hours", "1 day ago", "PT30M" or "P1DT2H".

    Raises:
        InvalidInput: the text is none of these forms, or longer than ten years.
    """
    cleaned = " ".join(text.strip().lower().split())
    elapsed = _parse_iso(text.strip().upper()) or _parse_human(cleaned)
    if elapsed is None:
        raise InvalidInput(
            f"cannot read {text!r} as a time span; write e.g. '30 minutes ago', "
            "'2 hours ago', '1 day ago' or ISO 8601 'PT30M'"
        )
    if elapsed > MAX_ELAPSED:
        raise InvalidInput(f"{text!r} is longer than ten years")
    return elapsed


def _parse_human(text: str) -> timedelta | None:
    if text in ("just now", "now"):
        return timedelta(0)
    match = _HUMAN.match(text)
    if not match or match["unit"] not in _UNIT_SECONDS:
        return None
    raw = match["number"]
    number = _WORD_NUMBERS[raw] if raw in _WORD_NUMBERS else float(raw)
    return timedelta(seconds=number * _UNIT_SECONDS[match["unit"]])


def _parse_iso(text: str) -> timedelta | None:
    match = _ISO.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    return timedelta(**parts)
