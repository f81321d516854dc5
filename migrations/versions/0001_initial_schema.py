"""Initial schema: history, decisions, cases, audit trail, outbox and reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENT = sa.DateTime(timezone=True)


def _case_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"])


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("home_location", sa.String(200)),
        sa.Column("home_latitude", sa.Float()),
        sa.Column("home_longitude", sa.Float()),
        sa.Column("email", sa.String(254)),
        sa.Column("card_last4", sa.String(4)),
        sa.Column("created_at", _MOMENT, nullable=False),
    )
    op.create_table(
        "transactions",
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", _MOMENT, nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("merchant", sa.String(200), nullable=False),
        sa.Column("merchant_category", sa.String(100), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("latitude", sa.Float()),
        sa.Column("longitude", sa.Float()),
        sa.Column("card_present", sa.Boolean(), nullable=False),
        sa.Column("device_id", sa.String(128)),
        sa.Column("ip_address", sa.String(45)),
        sa.Column("decision", sa.String(10)),
        sa.Column("risk_score", sa.Float()),
        sa.Column("is_fraud", sa.Boolean()),
    )
    op.create_index("ix_transactions_customer_time", "transactions", ["customer_id", "occurred_at"])

    op.create_table(
        "decisions",
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("decided_at", _MOMENT, nullable=False),
        sa.Column("logged_at", _MOMENT, nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("audit_entry_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(20)),
        sa.Column("alert_id", sa.String(20)),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("reason_codes", sa.Text(), nullable=False),
    )
    op.create_index("ix_decisions_customer_id", "decisions", ["customer_id"])
    op.create_index("ix_decisions_decided", "decisions", ["decided_at"])

    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(20), primary_key=True),
        sa.Column("transaction_id", sa.String(64), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(100)),
        sa.Column("label", sa.String(10)),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("updated_at", _MOMENT),
        sa.Column("transaction_json", sa.Text(), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_cases_created", "cases", ["created_at"])
    op.create_index("ix_cases_customer_id", "cases", ["customer_id"])
    op.create_index("ix_cases_status", "cases", ["status"])

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(20), nullable=False),
        sa.Column("at", _MOMENT, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        _case_fk(),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])

    op.create_table(
        "case_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(20), nullable=False),
        sa.Column("at", _MOMENT, nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("audit_entry_id", sa.Integer(), nullable=False),
        _case_fk(),
    )
    op.create_index("ix_case_notes_case_id", "case_notes", ["case_id"])

    op.create_table(
        "case_tags",
        sa.Column("case_id", sa.String(20), primary_key=True),
        sa.Column("tag", sa.String(32), primary_key=True),
        _case_fk(),
    )
    op.create_index("ix_case_tags_tag", "case_tags", ["tag"])

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("lock_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("transaction_id", sa.String(64)),
        sa.Column("case_id", sa.String(20)),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_entries_transaction_id", "audit_entries", ["transaction_id"])

    op.create_table(
        "outbox",
        sa.Column("alert_id", sa.String(20), primary_key=True),
        sa.Column("case_id", sa.String(20), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("next_attempt_at", _MOMENT, nullable=False),
        sa.Column("claim_token", sa.String(32)),
        sa.Column("claimed_until", _MOMENT),
        sa.Column("sent_at", _MOMENT),
        sa.Column("last_error", sa.String(500)),
        _case_fk(),
    )
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])

    op.create_table(
        "reports",
        sa.Column("report_id", sa.String(20), primary_key=True),
        sa.Column("case_id", sa.String(20), nullable=False, unique=True),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("report_html", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _case_fk(),
    )


def downgrade() -> None:
    # Children first: every foreign key points at cases.
    for table in (
        "reports",
        "outbox",
        "audit_entries",
        "audit_chain_head",
        "case_tags",
        "case_notes",
        "case_events",
        "cases",
        "decisions",
        "transactions",
        "customers",
    ):
        op.drop_table(table)
