"""Alembic environment: runs the migrations against the records database."""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy.engine import Connection

from fraudline.db import Base, make_engine
from fraudline.migrations import register_tables

config = context.config
register_tables()


def _database_url() -> str:
    # A URL handed over in code wins, then the deployment's own variable.
    return (
        config.attributes.get("database_url")
        or os.environ.get("FRAUDLINE_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
        or ""
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table by copying it; batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Writes the SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=_database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Runs on the caller's connection when given one, else on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as fresh:
            _configure(fresh)
            fresh.commit()
    finally:
        engine.dispose()


if config.config_file_name and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()
