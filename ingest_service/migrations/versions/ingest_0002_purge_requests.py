"""The answers of the consent service's purge requests (request id -> rows deleted
per table), kept with each purge so that a retried request answers the same.

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0002"
down_revision: str | Sequence[str] | None = "ingest_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "purge_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("tables", sa.Text(), nullable=False),
        sa.Column("create_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )


def downgrade() -> None:
    op.drop_table("purge_requests")
