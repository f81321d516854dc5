"""Schema migrations: brings a records database to the newest Alembic revision."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from fraudline.db import Base, make_engine
from fraudline.errors import ConfigError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def register_tables() -> None:
    """Imports every module that defines tables, so Base.metadata holds them all."""
    from fraudline import history, records  # noqa: F401


def alembic_config(database_url: str) -> Config:
    """The Alembic configuration of `migrations/`, aimed at `database_url`."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Handed over as an attribute: URL-encoded passwords hold "%", which the ini
    # parser would read as interpolation.
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> str:
    """Creates or upgrades the schema to the newest revision; returns that revision.

    A database whose tables were made by `create_schema` before it was under
    Alembic is stamped with the newest revision when its schema matches it.

    Raises:
        ConfigError: The database has tables but no revision, and they differ
            from the newest schema; it cannot be adopted safely.
    """
    register_tables()
    config = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if _unversioned_with_tables(connection):
                differences = schema_differences(connection)
                if differences:
                    raise ConfigError(
                        f"the database has Fraudline tables but no migration revision, and "
                        f"they differ from the current schema ({differences[0]!r} ...); "
                        "migrate it by hand or start from an empty database"
                    )
                logger.info("adopting an existing schema: stamping it with the head revision")
                command.stamp(config, "head")
            else:
                command.upgrade(config, "head")
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return revision or ""


def schema_differences(connection: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    register_tables()
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _unversioned_with_tables(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    return "alembic_version" not in tables and bool(tables & set(Base.metadata.tables))
