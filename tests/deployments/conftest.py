"""Fixtures of the store tests: `db_url` runs each on SQLite and on PostgreSQL.

`smtp` is a real SMTP server on 127.0.0.1 for the email tests.
"""

from tests.smtp_server import smtp  # noqa: F401
from tests.store_backends import db_url  # noqa: F401
