"""Initial schema: the current version of every producer's record (revision,
tombstone of a retraction), and the outbox: per stored batch, the records whose
change the feature service must hear about.

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every time is stored in UTC (timestamptz on PostgreSQL), as creditscore.runtime.UtcDateTime.
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("producer_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Integer(), nullable=False),
        sa.Column("event_time", UTC_TIME, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ingest_time", UTC_TIME, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("producer_id", "record_id"),
    )
    op.create_index("ix_records_subject_event", "records", ["subject_id", "event_time"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("producer_id", sa.String(length=64), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_time", UTC_TIME, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_next_attempt", "outbox", ["next_attempt_time"])


def downgrade() -> None:
    op.drop_index("ix_outbox_next_attempt", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_records_subject_event", table_name="records")
    op.drop_table("records")
