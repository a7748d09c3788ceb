"""Each subject's latest champion score (``current_scores``: subject -> score id),
so that scoring compares a new score with the latest one by primary key instead of
searching the subject's history; filled from the history already stored.

Revision ID: scoring_0003
Revises: scoring_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0003"
down_revision: str | Sequence[str] | None = "scoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "current_scores",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("score_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id"),
    )
    op.execute(
        "INSERT INTO current_scores (subject_id, score_id) "
        "SELECT subject_id, MAX(id) FROM score_history WHERE role = 'CHAMPION' GROUP BY subject_id"
    )


def downgrade() -> None:
    op.drop_table("current_scores")
