"""Subjects' own secrets (for their tokens): a nullable hash column on
``subjects``. Subjects enrolled before it have none, so they get no token until
a secret is rotated for them (``RotateSubjectSecret``, an operator's call).

Revision ID: consent_0003
Revises: consent_0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "consent_0003"
down_revision: str | Sequence[str] | None = "consent_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(sa.Column("secret_hash", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("secret_hash")
