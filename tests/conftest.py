"""Fixtures shared by every test."""

from __future__ import annotations

import os
from pathlib import Path

# Ray reads these when first imported: keep every Ray and vLLM address on
# loopback (without the first, Ray swaps 127.0.0.1 for the machine's address).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest


@pytest.fixture
def tmp_db_url(tmp_path: Path) -> str:
    """A SQLite URL in the test's own folder; the schema is not created yet."""
    return f"sqlite:///{tmp_path}/fraudline.db"
