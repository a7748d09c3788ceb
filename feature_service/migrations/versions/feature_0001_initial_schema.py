"""Initial schema: the version of each record applied (the idempotency key, and
what a correction takes out), and each subject's aggregates.

Revision ID: feature_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feature_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every time is stored in UTC (timestamptz on PostgreSQL), as creditscore.runtime.UtcDateTime.
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "applied_records",
        sa.Column("producer_id", sa.String(length=256), nullable=False),
        sa.Column("record_id", sa.String(length=256), nullable=False),
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("applied_time", UTC_TIME, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("producer_id", "record_id"),
    )
    op.create_index("ix_applied_records_subject_id", "applied_records", ["subject_id"])
    op.create_table(
        "subject_features",
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("subject_id"),
    )


def downgrade() -> None:
    op.drop_table("subject_features")
    op.drop_index("ix_applied_records_subject_id", table_name="applied_records")
    op.drop_table("applied_records")
