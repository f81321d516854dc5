"""Index transactions by device, for the identity tool's shared-device lookup.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Without it every payment's device lookup scans the whole history table.
    op.create_index(
        "ix_transactions_device_customer", "transactions", ["device_id", "customer_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_device_customer", table_name="transactions")
