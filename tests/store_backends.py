"""The databases the store tests run on: SQLite always, PostgreSQL when one is given."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

POSTGRES_ENV = "FRAUDLINE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file, or a fresh PostgreSQL schema.

    The PostgreSQL case runs when FRAUDLINE_TEST_POSTGRES_URL names a throwaway
    database (`eval "$(bash scripts/postgres.sh)"` starts one); each test gets
    its own schema, first on the search path, dropped afterwards.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fraudline.db"
        return

    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f'{POSTGRES_ENV} is unset; eval "$(bash scripts/postgres.sh)" sets it')
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        # Engines the test left behind close their connections when collected,
        # which keeps the server below its connection limit.
        gc.collect()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
