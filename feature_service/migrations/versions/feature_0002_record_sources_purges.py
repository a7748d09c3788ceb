"""The data source of each applied record version (filled in from the stored
versions), so that one source of a subject can be forgotten; and the answers of
the consent service's purge requests.

Revision ID: feature_0002
Revises: feature_0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feature_0002"
down_revision: str | Sequence[str] | None = "feature_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
_BATCH = 1000


def upgrade() -> None:
    op.add_column("applied_records", sa.Column("source", sa.Integer(), server_default="0", nullable=False))
    _fill_sources()
    op.create_table(
        "purge_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("tables", sa.Text(), nullable=False),
        sa.Column("create_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )


def _fill_sources() -> None:
    """A stored version's source follows from its body; retractions (no stored
    version) stay 0."""
    from creditscore.features.catalog import SOURCE_OF_BODY
    from creditscore.records.v1 import records_pb2

    applied = sa.table(
        "applied_records",
        sa.column("producer_id", sa.String),
        sa.column("record_id", sa.String),
        sa.column("payload", sa.LargeBinary),
        sa.column("source", sa.Integer),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(applied.c.producer_id, applied.c.record_id, applied.c.payload).where(
            applied.c.payload.is_not(None)
        )
    ).all()
    updates = []
    for row in rows:
        body = records_pb2.Record.FromString(bytes(row.payload)).WhichOneof("body")
        if body is not None:
            updates.append({"b_p": row.producer_id, "b_r": row.record_id, "b_s": SOURCE_OF_BODY[body]})
    statement = (
        applied.update()
        .where(applied.c.producer_id == sa.bindparam("b_p"), applied.c.record_id == sa.bindparam("b_r"))
        .values(source=sa.bindparam("b_s"))
    )
    for start in range(0, len(updates), _BATCH):
        connection.execute(statement, updates[start:start + _BATCH])


def downgrade() -> None:
    op.drop_table("purge_requests")
    with op.batch_alter_table("applied_records") as batch:
        batch.drop_column("source")
