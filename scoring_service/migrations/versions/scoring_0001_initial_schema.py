"""Initial schema: every score given (the champion's, and a challenger's shadow
score beside it) with the feature vector and model version it came from, and the
model events, each carrying the champion and challenger after it.

Revision ID: scoring_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every time is stored in UTC (timestamptz on PostgreSQL), as creditscore.runtime.UtcDateTime.
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "score_history",
        # BIGSERIAL on PostgreSQL; SQLite numbers rows only with an INTEGER PRIMARY KEY.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("band", sa.String(length=16), nullable=False),
        sa.Column("probability_of_bad", sa.Double(), nullable=True),
        sa.Column("coverage", sa.Double(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("score_time", UTC_TIME, nullable=False),
        sa.Column("role", sa.String(length=16), server_default="CHAMPION", nullable=False),
        sa.Column("improvements", sa.JSON(), nullable=True),
        sa.Column("shadow_of", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_score_history_subject_time", "score_history", ["subject_id", "score_time"])
    op.create_index("ix_score_history_version_time", "score_history", ["model_version", "score_time"])
    op.create_table(
        "model_events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("previous_version", sa.String(length=64), nullable=False),
        sa.Column("active_version", sa.String(length=64), nullable=False),
        sa.Column("challenger_version", sa.String(length=64), nullable=False),
        sa.Column("active_stack", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("event_time", UTC_TIME, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("request_method", sa.String(length=64), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("sequence"),
        sa.UniqueConstraint("request_id"),
    )


def downgrade() -> None:
    op.drop_table("model_events")
    op.drop_index("ix_score_history_version_time", table_name="score_history")
    op.drop_index("ix_score_history_subject_time", table_name="score_history")
    op.drop_table("score_history")
