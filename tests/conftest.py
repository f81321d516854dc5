"""Fixtures shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tmp_db_url(tmp_path: Path) -> str:
    """A SQLite URL in the test's own folder; the schema is not created yet."""
    return f"sqlite:///{tmp_path}/fraudline.db"
