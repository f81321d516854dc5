"""Fixtures of the store tests: `db_url` runs each on SQLite and on PostgreSQL."""

from tests.store_backends import db_url  # noqa: F401
