"""Partners, producers and their credentials; authorizations; the access log;
purge jobs (deletion receipts) and their steps; and the subject each idempotency
record is about, so that a purge can delete it (filled in for existing rows from
their stored responses).

Revision ID: consent_0002
Revises: consent_0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "consent_0002"
down_revision: str | Sequence[str] | None = "consent_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("subject_id", sa.String(length=64), nullable=True))
        batch.create_index("ix_requests_subject", ["subject_id"])
    _fill_request_subjects()
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("sources", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=200), nullable=False),
        sa.Column("register_time", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "authorizations",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("scope", sa.Integer(), nullable=False),
        sa.Column("grant_time", UTC_TIME, nullable=False),
        sa.Column("expire_time", UTC_TIME, nullable=False),
        sa.Column("revoke_time", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["clients.client_id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.subject_id"]),
        sa.PrimaryKeyConstraint("subject_id", "partner_id", "purpose"),
    )
    op.create_table(
        "access_log",
        sa.Column("access_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("transaction_key", sa.String(length=128), nullable=True),
        sa.Column("scope", sa.Integer(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("access_time", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["clients.client_id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.subject_id"]),
        sa.PrimaryKeyConstraint("access_id"),
        sa.UniqueConstraint("partner_id", "transaction_key", name="uq_access_log_transaction"),
    )
    op.create_index("ix_access_log_subject_time", "access_log", ["subject_id", "access_time"])
    op.create_table(
        "purge_jobs",
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Integer(), nullable=False),
        sa.Column("source", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=64), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        sa.Column("request_time", UTC_TIME, nullable=False),
        sa.Column("complete_time", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("receipt_id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index("ix_purge_jobs_subject", "purge_jobs", ["subject_id"])
    op.create_index("ix_purge_jobs_open", "purge_jobs", ["complete_time"])
    op.create_table(
        "purge_steps",
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("pass", sa.Integer(), nullable=False),
        sa.Column("not_before", UTC_TIME, nullable=False),
        sa.Column("next_attempt_time", UTC_TIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("complete_time", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(["receipt_id"], ["purge_jobs.receipt_id"]),
        sa.PrimaryKeyConstraint("receipt_id", "position"),
    )


def _fill_request_subjects() -> None:
    """Every response stored before this revision names its subject (enrollments,
    grants and withdrawals): copy it into the new column."""
    from creditscore.consent.v1 import consent_pb2

    responses = {
        "EnrollSubject": (consent_pb2.EnrollSubjectResponse, lambda m: m.subject.subject_id),
        "GrantConsent": (consent_pb2.GrantConsentResponse, lambda m: m.consent.subject_id),
        "WithdrawConsent": (consent_pb2.WithdrawConsentResponse, lambda m: m.consent.subject_id),
    }
    requests = sa.table(
        "requests",
        sa.column("request_id", sa.String),
        sa.column("method", sa.String),
        sa.column("response", sa.LargeBinary),
        sa.column("subject_id", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(requests.c.request_id, requests.c.method, requests.c.response)).all()
    updates = []
    for row in rows:
        known = responses.get(row.method)
        if known is None or not row.response:
            continue
        message_type, subject_of = known
        subject_id = subject_of(message_type.FromString(bytes(row.response)))
        if subject_id:
            updates.append({"b_request_id": row.request_id, "b_subject_id": subject_id})
    if updates:
        connection.execute(
            requests.update()
            .where(requests.c.request_id == sa.bindparam("b_request_id"))
            .values(subject_id=sa.bindparam("b_subject_id")),
            updates,
        )


def downgrade() -> None:
    op.drop_table("purge_steps")
    op.drop_index("ix_purge_jobs_open", table_name="purge_jobs")
    op.drop_index("ix_purge_jobs_subject", table_name="purge_jobs")
    op.drop_table("purge_jobs")
    op.drop_index("ix_access_log_subject_time", table_name="access_log")
    op.drop_table("access_log")
    op.drop_table("authorizations")
    op.drop_table("clients")
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_subject")
        batch.drop_column("subject_id")
