"""Materialized scores: next to each subject's aggregates, the score the scoring
service gave for the subject's vector, the model version that gave it, the scored
sources with a value, and until when the vector stays the same (indexed, so that
the rows whose vector has moved are found without a scan).

Earlier rows get no score: they are stale, and the feature service scores them
again (its refresher's first pass, or the first lookup that meets one).

Revision ID: feature_0003
Revises: feature_0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feature_0003"
down_revision: str | Sequence[str] | None = "feature_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("subject_features", sa.Column("score", sa.LargeBinary(), nullable=True))
    op.add_column("subject_features", sa.Column("model_version", sa.String(length=64), nullable=True))
    op.add_column("subject_features", sa.Column("sources_used", sa.Integer(), nullable=True))
    op.add_column("subject_features", sa.Column("valid_until", UTC_TIME, nullable=True))
    op.create_index("ix_subject_features_valid_until", "subject_features", ["valid_until"])


def downgrade() -> None:
    op.drop_index("ix_subject_features_valid_until", table_name="subject_features")
    with op.batch_alter_table("subject_features") as batch:
        batch.drop_column("valid_until")
        batch.drop_column("sources_used")
        batch.drop_column("model_version")
        batch.drop_column("score")
