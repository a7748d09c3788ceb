"""The consent service's tables, defined once: the repositories (``*_repo``) read
and write them, the migrations (``migrations/versions``) create them, and a test
compares the two on SQLite and PostgreSQL.

Table families and their repositories: ``subjects`` (``SubjectsRepo``),
``consents`` (``ConsentsRepo``), ``clients`` (``ClientsRepo``), ``authorizations``
(``AuthorizationsRepo``), ``access_log`` (``AccessLogRepo``), ``purge_jobs`` and
``purge_steps`` (``PurgesRepo``), ``revocations``, ``revocation_sequence`` and
``service_generations`` (``RevocationsRepo``), ``requests`` (``RequestsRepo``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from creditscore.runtime import UtcDateTime

__all__ = [
    "access_log_table",
    "authorizations_table",
    "clients_table",
    "consents_table",
    "metadata",
    "purge_jobs_table",
    "purge_steps_table",
    "requests_table",
    "revocation_sequence_table",
    "revocations_table",
    "service_generations_table",
    "subjects_table",
]

metadata = MetaData()

subjects_table = Table(
    "subjects",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("enroll_time", UtcDateTime(), nullable=False),
    # The subject's own secret for IssueToken, as registry.hash_generated_secret stores it;
    # NULL for a subject enrolled before subject secrets (no token until an
    # operator rotates one). Deleted with the row; never read but to check it.
    Column("secret_hash", String(200), nullable=True),
    # The credential generation the subject's tokens carry (revocation.py): a
    # token of another one is not this enrollment's, or was revoked.
    Column("token_generation", BigInteger, nullable=False, server_default="0"),
)

consents_table = Table(
    "consents",
    metadata,
    Column("subject_id", String(64), ForeignKey("subjects.subject_id"), primary_key=True),
    # creditscore.common.v1.DataSource / Purpose numbers (stable by proto rules).
    Column("source", Integer, primary_key=True, autoincrement=False),
    Column("purpose", Integer, primary_key=True, autoincrement=False),
    Column("grant_time", UtcDateTime(), nullable=False),
    Column("expire_time", UtcDateTime(), nullable=True),
    Column("withdraw_time", UtcDateTime(), nullable=True),
)

requests_table = Table(
    "requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("method", String(64), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("create_time", UtcDateTime(), nullable=False),
    # The subject the request was about (its response names it): purged with it.
    Column("subject_id", String(64), nullable=True),
    Index("ix_requests_subject", "subject_id"),
)

clients_table = Table(
    "clients",
    metadata,
    # Partners and producers (services are configured, not stored).
    Column("client_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # "partner" | "producer"
    Column("display_name", String(200), nullable=False),
    # Producers: the DataSource numbers they may send, comma-separated; "" otherwise.
    Column("sources", String(64), nullable=False),
    Column("secret_hash", String(200), nullable=False),  # registry.hash_secret
    Column("register_time", UtcDateTime(), nullable=False),
    # The credential generation its tokens carry (revocation.py).
    Column("token_generation", BigInteger, nullable=False, server_default="0"),
    # Set when an operator revoked the client (its contract ended): no token since.
    Column("revoke_time", UtcDateTime(), nullable=True),
)

service_generations_table = Table(
    "service_generations",
    metadata,
    # Configured services (SERVICE_CREDENTIALS_FILE) whose tokens were revoked:
    # the generation their tokens must carry from then on (none: 0).
    Column("service_id", String(64), primary_key=True),
    Column("token_generation", BigInteger, nullable=False),
)

revocations_table = Table(
    "revocations",
    metadata,
    # The revocation log every service polls (ListRevocations), in sequence order.
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # "token" | "subject" | "client"
    Column("key", String(128), nullable=False),  # token id, subject id, client id
    Column("generation", BigInteger, nullable=False),
    Column("revoke_time", UtcDateTime(), nullable=False),
    # Dropped after this: every token the entry refuses has expired by then.
    Column("expire_time", UtcDateTime(), nullable=False),
    Column("note", String(200), nullable=False),
    Index("ix_revocations_key", "kind", "key"),
    Index("ix_revocations_expire", "expire_time"),
)

revocation_sequence_table = Table(
    "revocation_sequence",
    metadata,
    # One row: the last sequence handed out. Taken with UPDATE ... RETURNING, its
    # row lock orders the writers, so entries commit in sequence order and a
    # poller reading "after N" never skips one committed later with a smaller N.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
)

authorizations_table = Table(
    "authorizations",
    metadata,
    Column("subject_id", String(64), ForeignKey("subjects.subject_id"), primary_key=True),
    Column("partner_id", String(64), ForeignKey("clients.client_id"), primary_key=True),
    Column("purpose", Integer, primary_key=True, autoincrement=False),  # common.v1.AccessPurpose
    Column("scope", Integer, nullable=False),  # common.v1.AuthorizationScope
    Column("grant_time", UtcDateTime(), nullable=False),
    Column("expire_time", UtcDateTime(), nullable=False),
    Column("revoke_time", UtcDateTime(), nullable=True),
)

access_log_table = Table(
    "access_log",
    metadata,
    Column("access_id", String(40), primary_key=True),
    Column("subject_id", String(64), ForeignKey("subjects.subject_id"), nullable=False),
    Column("partner_id", String(64), ForeignKey("clients.client_id"), nullable=False),
    Column("purpose", Integer, nullable=False),
    Column("transaction_id", String(128), nullable=False),
    # The transaction id while it dedupes (24 hours); cleared when a later lookup
    # reuses it, so that the unique key holds one live entry per (partner, id).
    Column("transaction_key", String(128), nullable=True),
    Column("scope", Integer, nullable=False),
    Column("answer", LargeBinary, nullable=False),  # consent.v1.AccessAnswer
    Column("response", LargeBinary, nullable=False),  # as the partner got it
    Column("access_time", UtcDateTime(), nullable=False),
    UniqueConstraint("partner_id", "transaction_key", name="uq_access_log_transaction"),
    Index("ix_access_log_subject_time", "subject_id", "access_time"),
)

purge_jobs_table = Table(
    "purge_jobs",
    metadata,
    # A job is a deletion receipt: it outlives the subject it names.
    Column("receipt_id", String(40), primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("scope", Integer, nullable=False),  # purge.DeletionScope
    Column("source", Integer, nullable=False),  # SOURCE scope: common.v1.DataSource
    # Account and all-data purges: the request that asked, for idempotency.
    Column("request_id", String(128), nullable=True, unique=True),
    Column("method", String(64), nullable=True),
    Column("request_sha256", String(64), nullable=True),
    Column("request_time", UtcDateTime(), nullable=False),
    Column("complete_time", UtcDateTime(), nullable=True),
    Index("ix_purge_jobs_subject", "subject_id"),
    Index("ix_purge_jobs_open", "complete_time"),
)

purge_steps_table = Table(
    "purge_steps",
    metadata,
    Column("receipt_id", String(40), ForeignKey("purge_jobs.receipt_id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("service", String(32), nullable=False),
    Column("pass", Integer, nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    # When the step may next be tried: a failure's backoff, or a claim's lease.
    Column("next_attempt_time", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    # Done: [[table, deleted, rewritten], ...] as the service answered.
    Column("result", Text, nullable=True),
    Column("complete_time", UtcDateTime(), nullable=True),
)
