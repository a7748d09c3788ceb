"""Initial schema: subjects, their consents per source and purpose, and the
request log that makes every mutation idempotent.

Revision ID: consent_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "consent_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every time is stored in UTC (timestamptz on PostgreSQL), as creditscore.runtime.UtcDateTime.
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("enroll_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("subject_id"),
    )
    op.create_table(
        "consents",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("purpose", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("grant_time", UTC_TIME, nullable=False),
        sa.Column("expire_time", UTC_TIME, nullable=True),
        sa.Column("withdraw_time", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.subject_id"]),
        sa.PrimaryKeyConstraint("subject_id", "source", "purpose"),
    )
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )


def downgrade() -> None:
    op.drop_table("requests")
    op.drop_table("consents")
    op.drop_table("subjects")
