"""Account holds, customer phone numbers, and customer notices in the outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("hold_id", sa.String(20), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("placed_at", _MOMENT, nullable=False),
        sa.Column("until", _MOMENT, nullable=False),
        sa.Column("placed_by", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(20)),
        sa.Column("transaction_id", sa.String(64)),
        sa.Column("updated_at", _MOMENT),
        sa.Column("released_at", _MOMENT),
        sa.Column("released_by", sa.String(100)),
        sa.Column("release_reason", sa.String(500)),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"]),
    )
    op.create_index("ix_holds_active", "holds", ["customer_id", "state", "until"])
    op.create_index("ix_holds_case_id", "holds", ["case_id"])

    op.create_table(
        "customer_contacts",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("updated_at", _MOMENT, nullable=False),
    )

    # Rows queued before this revision are all fraud-team alerts.
    with op.batch_alter_table("outbox") as outbox:
        outbox.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="alert"))
        outbox.add_column(sa.Column("customer_id", sa.String(64)))
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("hold_id", sa.String(20)))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.drop_column("hold_id")
    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("customer_id")
        outbox.drop_column("kind")
    op.drop_table("customer_contacts")
    op.drop_table("holds")
