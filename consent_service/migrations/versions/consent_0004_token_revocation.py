"""Token revocation: credential generations of subjects, clients and services,
revoked clients, and the revocation log every service polls.

Existing subjects and clients start at generation 0, which the tokens issued
before this revision carry implicitly (no ``gen`` claim): they stay valid until
they expire, unless revoked.

Revision ID: consent_0004
Revises: consent_0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "consent_0004"
down_revision: str | Sequence[str] | None = "consent_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(sa.Column("token_generation", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("token_generation", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("revoke_time", UTC_TIME, nullable=True))
    op.create_table(
        "service_generations",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("token_generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("service_id"),
    )
    op.create_table(
        "revocations",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("revoke_time", UTC_TIME, nullable=False),
        sa.Column("expire_time", UTC_TIME, nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )
    op.create_index("ix_revocations_key", "revocations", ["kind", "key"])
    op.create_index("ix_revocations_expire", "revocations", ["expire_time"])
    sequence = op.create_table(
        "revocation_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(sequence, [{"id": 1, "last_sequence": 0}])


def downgrade() -> None:
    op.drop_table("revocation_sequence")
    op.drop_index("ix_revocations_expire", table_name="revocations")
    op.drop_index("ix_revocations_key", table_name="revocations")
    op.drop_table("revocations")
    op.drop_table("service_generations")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("revoke_time")
        batch.drop_column("token_generation")
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("token_generation")
