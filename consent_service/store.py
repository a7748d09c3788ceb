"""Persistence of the consent service (SQLAlchemy Core, SQLite or PostgreSQL):
subjects and consents, registered clients, authorizations, the access log, purge
jobs (deletion receipts) and idempotent requests.

Every mutation but the access log's and a purge's runs through
``ConsentStore._idempotent``: in one transaction it first claims the
``request_id`` (inserting its ``requests`` row), then applies the change, then
stores the serialized response. A repeat of the request finds the row and gets
the stored response back; the state change and the response commit together or
not at all. Claiming the request first also serialises writers: on SQLite the
insert takes the database write lock, on PostgreSQL a concurrent insert of the
same id waits for the first to commit; rows are then read ``FOR UPDATE`` (a no-op
on SQLite) so read-modify-write does not race. A request row names the subject
it was about, so that a purge can delete it with the subject.

The access log is idempotent on (partner, transaction id) instead: a unique key,
so that concurrent duplicates cannot make two entries. ``record_accesses``, the
lookup's one question, authorizes and logs a batch of lookups in one transaction
with a fixed number of statements, whatever the batch's size. Account purges are
idempotent on their request id through the job's own unique ``request_id``: the
job is the receipt and outlives the subject.

The rules themselves are in ``consents``, ``authorizations`` and ``purge``; this
module only reads and writes what they decide.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.common.v1 import common_pb2
from creditscore.runtime import (
    KIND_PARTNER,
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    Transactions,
    UtcDateTime,
    begin_write,
    create_schema,
    dialect_insert,
)

from . import authorizations as auth_rules
from . import consents as rules
from . import revocation as revoke_rules
from .authorizations import AccessEntry, AccessOutcome, AccessOutcomeKind, AccessToRecord, Authorization
from .consents import Consent, Enrollment, RequestKey, Subject
from .purge import DeletionScope, Receipt, Step, StepTask, TableCount, new_receipt_id, plan_steps
from .registry import Client
from .revocation import RevocationRecord

__all__ = [
    "Committed",
    "ConsentStore",
    "Withdrawal",
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

T = TypeVar("T")

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


@dataclass(frozen=True)
class Committed(Generic[T]):
    """The outcome of a mutating request: the serialized response stored under its
    ``request_id``, and the domain value when this call made the change (None when
    it replayed an earlier identical request)."""

    response: bytes
    value: T | None = None

    @property
    def replayed(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Withdrawal:
    """What a withdrawal did: the consent after it, and the purge it started."""

    consent: Consent
    receipt_id: str | None = None


class ConsentStore:
    """Everything the consent service stores, in one database.

    Build with ``await ConsentStore.open(engine)`` (tests) or ``ConsentStore(engine)``
    on a migrated database; the engine stays the caller's to dispose.
    ``sweep_delay`` is when a purge's second pass comes due (see ``purge``);
    ``token_life`` the longest lifetime of a token (revocation entries outlive
    their revocation by that much).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sweep_delay: timedelta = timedelta(seconds=30),
        token_life: timedelta = timedelta(minutes=15, seconds=5),
    ) -> None:
        # The lookup's write (record_accesses) in one step (see Transactions).
        self._tx = Transactions.of(engine)
        self._engine = engine
        self._dialect = engine.dialect.name
        self._sweep_delay = sweep_delay
        #: The longest a token lives (with the verifiers' leeway): how long a
        #: revocation entry must stay in the log.
        self._token_life = token_life

    async def close(self) -> None:
        """Releases the synchronous side of the store (a server's stop hook)."""
        self._tx.close()

    @classmethod
    async def open(cls, engine: AsyncEngine, **kwargs: Any) -> ConsentStore:
        """A store on ``engine``, creating missing tables."""
        await create_schema(engine, metadata)
        return cls(engine, **kwargs)

    # --- reads ---------------------------------------------------------------

    async def get_subject(self, subject_id: str) -> Subject | None:
        async with self._engine.connect() as conn:
            return await _subject(conn, subject_id)

    async def subject_secret_hash(self, subject_id: str) -> str | None:
        """The stored hash of an enrolled subject's secret; None for an unknown
        subject and for one without a secret alike."""
        s = subjects_table.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(s.secret_hash).where(s.subject_id == subject_id))).first()
        return None if row is None else row.secret_hash

    async def consents_for(
        self, subject_ids: Collection[str], sources: Collection[int], purpose: int
    ) -> list[Consent]:
        """Every consent of ``purpose`` held by any of ``subject_ids`` for any of
        ``sources``, whatever its state, in one SELECT (the batch check)."""
        if not subject_ids or not sources:
            return []
        c = consents_table.c
        query = select(consents_table).where(
            c.purpose == purpose,
            c.subject_id.in_(list(dict.fromkeys(subject_ids))),
            c.source.in_(sorted(set(sources))),
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_consent(row) for row in rows]

    async def _subject_page(self, subject_id: str, query: Any, limit: int) -> tuple[list[Any], bool]:
        """One page of an ordered per-subject ``query``: up to ``limit`` rows and
        whether more follow (one extra row is read to know). ``SUBJECT_NOT_FOUND``
        for a subject never enrolled, so an empty page means "none", not "nobody"."""
        async with self._engine.connect() as conn:
            if await _subject(conn, subject_id) is None:
                raise _subject_not_found()
            rows = (await conn.execute(query.limit(limit + 1))).all()
        return rows[:limit], len(rows) > limit

    async def list_consents(
        self, subject_id: str, *, after: tuple[int, int] | None, limit: int
    ) -> tuple[list[Consent], bool]:
        """Up to ``limit`` of the subject's consents in (source, purpose) order,
        starting after ``after``; and whether more follow. Raises ``NotFound``
        (``SUBJECT_NOT_FOUND``) for a subject never enrolled."""
        c = consents_table.c
        query = select(consents_table).where(c.subject_id == subject_id)
        if after is not None:
            source, purpose = after
            query = query.where(or_(c.source > source, and_(c.source == source, c.purpose > purpose)))
        rows, more = await self._subject_page(subject_id, query.order_by(c.source, c.purpose), limit)
        return [_consent(row) for row in rows], more

    # --- mutations (idempotent on the request key) ---------------------------

    async def enroll_subject(
        self,
        key: RequestKey,
        subject_id: str | None,
        *,
        now: datetime,
        encode: Callable[[Enrollment], bytes],
        secret_hash: str | None = None,
    ) -> Committed[Enrollment]:
        """Enrolls ``subject_id`` (a fresh id when None) at ``now``, with
        ``secret_hash`` as its secret. An id already enrolled is returned with
        ``created=False`` (its secret unchanged); a generated id never lands on
        an existing subject. An id whose account is still being purged is
        ``FailedPrecondition`` (``PURGE_IN_PROGRESS``)."""

        async def change(conn: AsyncConnection) -> Enrollment:
            if subject_id is None:
                while True:
                    candidate = rules.new_subject_id()
                    if await self._insert_subject(conn, candidate, now, secret_hash):
                        return Enrollment(Subject(candidate, now), created=True)
            # Above every revocation of an earlier enrollment of the same id: no
            # token of that one is ever valid for this one.
            floor = await self._revoked_generation(conn, revoke_rules.REVOKE_SUBJECT, subject_id)
            generation = max(revoke_rules.generation_at(now), floor)
            if await self._insert_subject(conn, subject_id, now, secret_hash, generation):
                if await _open_purge(conn, subject_id, None, (DeletionScope.ACCOUNT,)):
                    raise _purge_in_progress("this account is still being closed")
                return Enrollment(Subject(subject_id, now), created=True)
            existing = await _subject(conn, subject_id)
            assert existing is not None
            return Enrollment(existing, created=False)

        return await self._idempotent(
            key, now, change, encode, subject_of=lambda e: e.subject.subject_id
        )

    async def rotate_subject_secret(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        secret_hash: str,
        now: datetime,
        encode: Callable[[Subject], bytes],
    ) -> Committed[Subject]:
        """Replaces the subject's secret with ``secret_hash`` and revokes every
        token issued before (a new generation and its revocation entry), once per
        request id (a repeat changes nothing and answers as stored).
        ``SUBJECT_NOT_FOUND`` for an unknown subject."""
        s = subjects_table.c

        async def change(conn: AsyncConnection) -> Subject:
            subject = await _subject(conn, subject_id, lock="update")
            if subject is None:
                raise _subject_not_found()
            generation = await self._raise_subject_generation(conn, subject_id, now)
            await conn.execute(
                update(subjects_table).where(s.subject_id == subject_id).values(secret_hash=secret_hash)
            )
            await self._append_revocation(
                conn, revoke_rules.REVOKE_SUBJECT, subject_id, generation, now, revoke_rules.NOTE_SECRET_ROTATED
            )
            return subject

        return await self._idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def grant_consent(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        source: int,
        purpose: int,
        expire_time: datetime | None,
        now: datetime,
        encode: Callable[[Consent], bytes],
    ) -> Committed[Consent]:
        """Grants (or re-grants) a consent at ``now`` per ``consents.grant``.
        Raises ``NotFound`` (``SUBJECT_NOT_FOUND``) for an unknown subject, and
        ``FailedPrecondition`` (``PURGE_IN_PROGRESS``) for the consent a source is
        collected under while a purge of that source (or of everything) runs: its
        second pass would delete what the new consent let in."""

        async def change(conn: AsyncConnection) -> Consent:
            existing = await self._locked_consent(conn, subject_id, source, purpose)
            if purpose == rules.ingestion_purpose(source) and await _open_purge(
                conn, subject_id, source, (DeletionScope.ALL_DATA, DeletionScope.ACCOUNT)
            ):
                raise _purge_in_progress("the data of this source is still being deleted")
            updated = rules.grant(
                existing,
                subject_id=subject_id,
                source=source,
                purpose=purpose,
                expire_time=expire_time,
                now=now,
            )
            if updated != existing:
                await self._upsert_consent(conn, updated)
            return updated

        return await self._idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def withdraw_consent(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        source: int,
        purpose: int,
        now: datetime,
        encode: Callable[[Withdrawal], bytes],
    ) -> Committed[Withdrawal]:
        """Withdraws a consent at ``now`` per ``consents.withdraw``; when that
        starts a purge of the source (``consents.starts_source_purge``), the job
        is made in the same transaction. Raises ``NotFound`` with
        ``SUBJECT_NOT_FOUND`` or ``CONSENT_NOT_FOUND``."""

        async def change(conn: AsyncConnection) -> Withdrawal:
            existing = await self._locked_consent(conn, subject_id, source, purpose)
            updated = rules.withdraw(existing, now=now)
            if updated == existing:
                return Withdrawal(updated)
            await self._upsert_consent(conn, updated)
            receipt_id = None
            if rules.starts_source_purge(existing, updated):
                receipt_id = new_receipt_id()
                await self._insert_job(
                    conn, receipt_id, subject_id, DeletionScope.SOURCE, source, now,
                    plan_steps(now, self._sweep_delay),
                )
            return Withdrawal(updated, receipt_id)

        return await self._idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    # --- registry ------------------------------------------------------------

    async def register_client(
        self, key: RequestKey, client: Client, *, generated_id: Callable[[], str] | None,
        encode: Callable[[Client], bytes],
    ) -> Committed[Client]:
        """Stores a new partner or producer. With ``generated_id``, ids are drawn
        from it until one is free; otherwise ``client.client_id`` taken is
        ``AlreadyExists`` (``CLIENT_EXISTS``)."""
        now = client.register_time
        assert now is not None

        async def change(conn: AsyncConnection) -> Client:
            candidate = client
            while True:
                if generated_id is not None:
                    candidate = _replace_id(client, generated_id())
                if await self._insert_client(conn, candidate):
                    return candidate
                if generated_id is None:
                    raise AlreadyExists(
                        f"a client is already registered as {client.client_id!r}", reason="CLIENT_EXISTS"
                    )

        return await self._idempotent(key, now, change, encode)

    async def get_client(self, client_id: str) -> Client | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(clients_table).where(clients_table.c.client_id == client_id))
            ).first()
        return None if row is None else _client(row)

    # --- authorizations ------------------------------------------------------

    async def grant_authorization(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        partner_id: str,
        purpose: int,
        scope: int,
        expire_time: datetime,
        now: datetime,
        encode: Callable[[Authorization], bytes],
    ) -> Committed[Authorization]:
        """Grants per ``authorizations.grant_authorization``. ``NotFound`` with
        ``SUBJECT_NOT_FOUND`` or ``PARTNER_NOT_FOUND``."""

        async def change(conn: AsyncConnection) -> Authorization:
            existing, partner_name = await self._locked_authorization(conn, subject_id, partner_id, purpose)
            updated = auth_rules.grant_authorization(
                existing, subject_id=subject_id, partner_id=partner_id, purpose=purpose,
                scope=scope, expire_time=expire_time, now=now,
            )
            if updated != existing:
                await self._upsert_authorization(conn, updated)
            return replace(updated, partner_name=partner_name)

        return await self._idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def revoke_authorization(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        partner_id: str,
        purpose: int,
        now: datetime,
        encode: Callable[[Authorization], bytes],
    ) -> Committed[Authorization]:
        """Revokes per ``authorizations.revoke_authorization``. ``NotFound`` with
        ``SUBJECT_NOT_FOUND``, ``PARTNER_NOT_FOUND`` or ``AUTHORIZATION_NOT_FOUND``."""

        async def change(conn: AsyncConnection) -> Authorization:
            existing, _ = await self._locked_authorization(conn, subject_id, partner_id, purpose)
            updated = auth_rules.revoke_authorization(existing, now=now)
            if updated != existing:
                await self._upsert_authorization(conn, updated)
            return updated

        return await self._idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def authorization(self, subject_id: str, partner_id: str, purpose: int) -> Authorization | None:
        """The stored authorization of (subject, partner, purpose), in any state."""
        a = authorizations_table.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    _authorization_query().where(
                        a.subject_id == subject_id, a.partner_id == partner_id, a.purpose == purpose
                    )
                )
            ).first()
        return None if row is None else _authorization(row)

    async def list_authorizations(
        self, subject_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> tuple[list[Authorization], bool]:
        """Up to ``limit`` of the subject's authorizations in (partner, purpose)
        order after ``after``, and whether more follow; ``SUBJECT_NOT_FOUND``."""
        a = authorizations_table.c
        query = _authorization_query().where(a.subject_id == subject_id)
        if after is not None:
            partner_id, purpose = after
            query = query.where(
                or_(a.partner_id > partner_id, and_(a.partner_id == partner_id, a.purpose > purpose))
            )
        rows, more = await self._subject_page(
            subject_id, query.order_by(a.partner_id, a.purpose), limit
        )
        return [_authorization(row) for row in rows], more

    # --- the access log ------------------------------------------------------

    async def record_access(
        self,
        *,
        subject_id: str,
        partner_id: str,
        purpose: int,
        transaction_id: str,
        answer_kind: str,
        answer: bytes,
        response: bytes,
        now: datetime,
    ) -> tuple[AccessEntry, bool]:
        """Writes one lookup to the log, in one transaction, and returns it with
        True; or, when (partner, transaction id) was recorded in the last 24 hours,
        returns that entry with False and writes nothing (a different subject or
        purpose under it is ``TRANSACTION_ID_REUSED``). A new entry needs a live
        authorization whose scope covers ``answer_kind``, read locked in the same
        transaction, so a revocation committed first refuses it
        (``NOT_AUTHORIZED``)."""
        log = access_log_table.c
        async with self._engine.begin() as conn:
            # An entry older than the window no longer holds the transaction id.
            await conn.execute(
                update(access_log_table)
                .where(
                    log.partner_id == partner_id,
                    log.transaction_key == transaction_id,
                    log.access_time <= now - auth_rules.DEDUPE_WINDOW,
                )
                .values(transaction_key=None)
            )
            existing = await _access_by_key(conn, partner_id, transaction_id)
            if existing is not None:
                auth_rules.ensure_same_lookup(existing, subject_id, purpose)
                return existing, False
            a = authorizations_table.c
            row = None
            if await _subject(conn, subject_id, lock="share") is not None:
                row = (
                    await conn.execute(
                        _authorization_query()
                        .where(a.subject_id == subject_id, a.partner_id == partner_id, a.purpose == purpose)
                        .with_for_update(of=authorizations_table)
                    )
                ).first()
            granted = auth_rules.ensure_scope_covers(
                None if row is None else _authorization(row), answer_kind, now
            )
            entry = AccessEntry(
                access_id=auth_rules.new_access_id(),
                subject_id=subject_id,
                partner_id=partner_id,
                purpose=purpose,
                transaction_id=transaction_id,
                scope=granted.scope,
                answer=answer,
                response=response,
                access_time=now,
                partner_name=granted.partner_name,
            )
            inserted = await conn.execute(
                dialect_insert(self._dialect, access_log_table)
                .values(**_access_row(entry))
                .on_conflict_do_nothing(index_elements=[log.partner_id, log.transaction_key])
                .returning(log.access_id)
            )
            if inserted.first() is not None:
                return entry, True
            # A concurrent call with the same transaction id committed first.
            existing = await _access_by_key(conn, partner_id, transaction_id)
            assert existing is not None
            auth_rules.ensure_same_lookup(existing, subject_id, purpose)
            return existing, False

    async def record_accesses(self, items: Sequence[AccessToRecord], *, now: datetime) -> list[AccessOutcome]:
        """Authorizes and logs a batch of lookups: one outcome per item, in order,
        per ``authorizations.decide_accesses``, in one transaction committed before
        returning, with the same few statements for 1 item or 256.

        It locks what ``record_access`` locks: the subjects (shared: a purge waits
        for this transaction, then deletes its entries too, or runs first and this
        finds the subject or its authorizations gone) and the authorizations (so a
        revocation commits first and refuses, or waits). Consents are read, not
        locked: a withdrawal committed first refuses (or is ``SOURCES_CHANGED``);
        one committing later is ordered after these lookups, as it reads nothing
        they write. An entry older than the 24 hours no longer holds its
        transaction id. When another transaction wrote an entry under one of the
        batch's transaction ids between the read and the write, that entry is the
        item's (REPLAYED or TRANSACTION_ID_REUSED), never a second entry."""
        if not items:
            return []
        keys = sorted({item.transaction_key for item in items})
        subject_ids = sorted({item.subject_id for item in items})
        grant_keys = sorted({item.authorization_key for item in items})
        return await self._tx.write(
            lambda conn: _record_accesses(conn, self._dialect, items, keys, subject_ids, grant_keys, now)
        )

    async def access_by_transaction(
        self, partner_id: str, transaction_id: str, *, now: datetime
    ) -> AccessEntry | None:
        """The entry (partner, transaction id) was recorded under in the last 24 hours."""
        async with self._engine.connect() as conn:
            entry = await _access_by_key(conn, partner_id, transaction_id)
        if entry is None or entry.access_time <= now - auth_rules.DEDUPE_WINDOW:
            return None
        return entry

    async def list_access_log(
        self, subject_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[AccessEntry], bool]:
        """Up to ``limit`` of the subject's entries, newest first (ties by id,
        descending), after ``after``; ``SUBJECT_NOT_FOUND`` for an unknown subject."""
        log = access_log_table.c
        query = _access_query().where(log.subject_id == subject_id)
        if after is not None:
            time, access_id = after
            query = query.where(
                or_(log.access_time < time, and_(log.access_time == time, log.access_id < access_id))
            )
        rows, more = await self._subject_page(
            subject_id, query.order_by(log.access_time.desc(), log.access_id.desc()), limit
        )
        return [_access(row) for row in rows], more

    # --- purges --------------------------------------------------------------

    async def purge_subject(
        self, key: RequestKey, *, subject_id: str, scope: DeletionScope, now: datetime
    ) -> tuple[Receipt, bool]:
        """Withdraws everything of the subject: deletes the consent service's own
        rows of it (the enrollment too for ``ACCOUNT``) and makes the job that
        purges every other service, in one transaction; returns the receipt and
        True. A repeat of the request returns its receipt and False; another
        request under its id is ``REQUEST_ID_REUSED``; an unknown subject
        ``SUBJECT_NOT_FOUND``."""
        jobs = purge_jobs_table.c
        receipt_id = new_receipt_id()
        async with self._engine.begin() as conn:
            claimed = await conn.execute(
                dialect_insert(self._dialect, purge_jobs_table)
                .values(
                    receipt_id=receipt_id, subject_id=subject_id, scope=int(scope), source=0,
                    request_id=key.request_id, method=key.method, request_sha256=key.digest,
                    request_time=now, complete_time=None,
                )
                .on_conflict_do_nothing(index_elements=[jobs.request_id])
                .returning(jobs.receipt_id)
            )
            if claimed.first() is None:
                row = (
                    await conn.execute(select(purge_jobs_table).where(jobs.request_id == key.request_id))
                ).one()
                rules.ensure_same_request(row.method or "", row.request_sha256 or "", key)
                receipt = await _receipt(conn, row.receipt_id)
                assert receipt is not None
                return receipt, False
            # Locked: a grant or a lookup being logged for the subject commits
            # first (and its rows are deleted here) or waits and finds it gone.
            if await _subject(conn, subject_id, lock="update") is None:
                raise _subject_not_found()
            if scope is DeletionScope.ACCOUNT:
                # Every token of the subject ends with the account.
                generation = await self._raise_subject_generation(conn, subject_id, now)
                await self._append_revocation(
                    conn, revoke_rules.REVOKE_SUBJECT, subject_id, generation, now,
                    revoke_rules.NOTE_ACCOUNT_CLOSED,
                )
            tables = await self._delete_own_rows(conn, subject_id, account=scope is DeletionScope.ACCOUNT)
            await _insert_steps(conn, receipt_id, plan_steps(now, self._sweep_delay, tables))
            receipt = await _receipt(conn, receipt_id)
            assert receipt is not None
            return receipt, True

    async def receipt(self, receipt_id: str) -> Receipt | None:
        async with self._engine.connect() as conn:
            return await _receipt(conn, receipt_id)

    async def receipts_of(self, subject_id: str) -> list[Receipt]:
        """Every deletion receipt of a subject, oldest first."""
        jobs = purge_jobs_table.c
        async with self._engine.connect() as conn:
            ids = (
                await conn.execute(
                    select(jobs.receipt_id)
                    .where(jobs.subject_id == subject_id)
                    .order_by(jobs.request_time, jobs.receipt_id)
                )
            ).scalars().all()
            receipts = [await _receipt(conn, receipt_id) for receipt_id in ids]
        return [r for r in receipts if r is not None]

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[StepTask]:
        """Leases, until ``lease_until``, the first unfinished step of each open job
        when it is due at ``now`` (its ``not_before`` and ``next_attempt_time``
        passed); at most ``limit``. The lease is a conditional update, so of two
        workers claiming the same step one gets it."""
        jobs, steps = purge_jobs_table.c, purge_steps_table.c
        query = (
            select(
                steps.receipt_id, steps.position, steps.service, steps.not_before,
                steps.next_attempt_time, steps.attempts, jobs.subject_id, jobs.source,
            )
            .join(purge_jobs_table, jobs.receipt_id == steps.receipt_id)
            .where(jobs.complete_time.is_(None), steps.complete_time.is_(None))
            .order_by(jobs.request_time, steps.receipt_id, steps.position)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        claimed: list[StepTask] = []
        seen: set[str] = set()
        for row in rows:
            if row.receipt_id in seen:
                continue  # only the first unfinished step of a job may run
            seen.add(row.receipt_id)
            if row.not_before > now or row.next_attempt_time > now:
                continue
            # Each lease is one conditional UPDATE of its own (a write first: no
            # read-then-write transaction for SQLite's WAL to refuse).
            async with self._engine.begin() as conn:
                leased = await conn.execute(
                    update(purge_steps_table)
                    .where(
                        steps.receipt_id == row.receipt_id,
                        steps.position == row.position,
                        steps.next_attempt_time == row.next_attempt_time,
                        steps.complete_time.is_(None),
                    )
                    .values(next_attempt_time=lease_until)
                )
            if leased.rowcount == 1:
                claimed.append(
                    StepTask(row.receipt_id, row.position, row.service, row.subject_id,
                             row.source, row.attempts)
                )
            if len(claimed) >= limit:
                break
        return claimed

    async def complete_step(
        self, receipt_id: str, position: int, tables: Sequence[TableCount], now: datetime
    ) -> None:
        """Records a step's result and, with its last step done, completes the job."""
        steps = purge_steps_table.c
        result = json.dumps([[t.table, t.deleted, t.rewritten] for t in tables])
        async with self._engine.begin() as conn:
            await conn.execute(
                update(purge_steps_table)
                .where(
                    steps.receipt_id == receipt_id,
                    steps.position == position,
                    steps.complete_time.is_(None),
                )
                .values(
                    result=result, complete_time=now, last_error=None, attempts=steps.attempts + 1
                )
            )
            left = (
                await conn.execute(
                    select(func.count())
                    .select_from(purge_steps_table)
                    .where(steps.receipt_id == receipt_id, steps.complete_time.is_(None))
                )
            ).scalar_one()
            if left == 0:
                await conn.execute(
                    update(purge_jobs_table)
                    .where(
                        purge_jobs_table.c.receipt_id == receipt_id,
                        purge_jobs_table.c.complete_time.is_(None),
                    )
                    .values(complete_time=now)
                )

    async def fail_step(
        self, receipt_id: str, position: int, attempts: int, retry_at: datetime, error: str
    ) -> None:
        steps = purge_steps_table.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(purge_steps_table)
                .where(
                    steps.receipt_id == receipt_id,
                    steps.position == position,
                    steps.complete_time.is_(None),
                )
                .values(attempts=attempts, next_attempt_time=retry_at, last_error=error)
            )

    async def release_step(self, receipt_id: str, position: int, now: datetime) -> None:
        """Ends a lease early (a worker stopping): the step is due again at ``now``."""
        steps = purge_steps_table.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(purge_steps_table)
                .where(
                    steps.receipt_id == receipt_id,
                    steps.position == position,
                    steps.complete_time.is_(None),
                )
                .values(next_attempt_time=now)
            )

    async def next_step_time(self) -> datetime | None:
        """The earliest time an unfinished step may come due; None when none is left."""
        steps = purge_steps_table.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(steps.not_before, steps.next_attempt_time).where(steps.complete_time.is_(None))
                )
            ).all()
        times = [max(r.not_before, r.next_attempt_time) for r in rows]
        return min(times) if times else None

    # --- export --------------------------------------------------------------

    async def subject_holdings(
        self, subject_id: str
    ) -> tuple[Subject, list[Consent], list[Authorization], list[AccessEntry], list[Receipt]]:
        """Everything this service holds about a subject (the access log oldest
        first); ``SUBJECT_NOT_FOUND`` for an unknown subject."""
        c, a, log = consents_table.c, authorizations_table.c, access_log_table.c
        async with self._engine.connect() as conn:
            subject = await _subject(conn, subject_id)
            if subject is None:
                raise _subject_not_found()
            consents = [
                _consent(row)
                for row in await conn.execute(
                    select(consents_table).where(c.subject_id == subject_id).order_by(c.source, c.purpose)
                )
            ]
            grants = [
                _authorization(row)
                for row in await conn.execute(
                    _authorization_query().where(a.subject_id == subject_id).order_by(a.partner_id, a.purpose)
                )
            ]
            accesses = [
                _access(row)
                for row in await conn.execute(
                    _access_query().where(log.subject_id == subject_id).order_by(log.access_time, log.access_id)
                )
            ]
        return subject, consents, grants, accesses, await self.receipts_of(subject_id)

    # --- credentials and revocation ------------------------------------------

    async def subject_credentials(self, subject_id: str) -> tuple[str | None, int] | None:
        """The stored hash of the subject's secret (None: it has none) and its
        credential generation; None for a subject not enrolled."""
        s = subjects_table.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(s.secret_hash, s.token_generation).where(s.subject_id == subject_id))
            ).first()
        return None if row is None else (row.secret_hash, row.token_generation)

    async def subject_generation(self, subject_id: str) -> int | None:
        """The generation the subject's tokens must carry; None: not enrolled."""
        held = await self.subject_credentials(subject_id)
        return None if held is None else held[1]

    async def service_generation(self, service_id: str) -> int:
        """The generation a configured service's tokens carry (0 until revoked)."""
        g = service_generations_table.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(g.token_generation).where(g.service_id == service_id))).first()
        return 0 if row is None else int(row.token_generation)

    async def revocations_after(
        self, after: int, *, now: datetime, limit: int = revoke_rules.PAGE_MAX
    ) -> tuple[list[RevocationRecord], int, bool, bool]:
        """The live entries after sequence ``after``, oldest first, at most
        ``limit``; the sequence to ask after next; whether more follow; and whether
        ``after`` was unknown (beyond the last sequence handed out: the log was
        reset), in which case the entries start from the beginning."""
        r, q = revocations_table.c, revocation_sequence_table.c
        async with self._engine.connect() as conn:
            last = (await conn.execute(select(q.last_sequence).where(q.id == 1))).scalar_one_or_none() or 0
            reset = after > last
            start = 0 if reset else after
            rows = (
                await conn.execute(
                    select(revocations_table)
                    .where(r.sequence > start, r.expire_time > now)
                    .order_by(r.sequence)
                    .limit(limit + 1)
                )
            ).all()
        records = [_revocation(row) for row in rows[:limit]]
        more = len(rows) > limit
        newest = records[-1].sequence if records else 0
        cursor = newest if more else max(last, start, newest)
        return records, cursor, more, reset

    async def prune_revocations(self, now: datetime) -> int:
        """Deletes the entries that can no longer refuse a live token."""
        async with begin_write(self._engine) as conn:
            done = await conn.execute(delete(revocations_table).where(revocations_table.c.expire_time <= now))
        return int(done.rowcount or 0)

    async def revoke_token(
        self, key: RequestKey, *, token_id: str, note: str, now: datetime,
        encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes one token by its id (the entry lives the longest token life)."""

        async def change(conn: AsyncConnection) -> RevocationRecord:
            return await self._append_revocation(conn, revoke_rules.REVOKE_TOKEN, token_id, 0, now, note)

        return await self._idempotent(key, now, change, encode)

    async def revoke_tokens(
        self, key: RequestKey, *, kind: str, principal_id: str, service: bool, note: str,
        now: datetime, encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes every token of a subject (``kind`` "subject") or a client
        ("client": a registered one, or a configured service when ``service``)
        issued so far: raises its generation and appends the entry.
        ``SUBJECT_NOT_FOUND`` / ``CLIENT_NOT_FOUND`` for an unknown id."""

        async def change(conn: AsyncConnection) -> RevocationRecord:
            if kind == revoke_rules.REVOKE_SUBJECT:
                if await _subject(conn, principal_id, lock="update") is None:
                    raise _subject_not_found()
                generation = await self._raise_subject_generation(conn, principal_id, now)
            elif service:
                generation = await self._raise_service_generation(conn, principal_id, now)
            else:
                client = await self._locked_client(conn, principal_id)
                generation = await self._raise_client_generation(conn, client, now)
            return await self._append_revocation(conn, kind, principal_id, generation, now, note)

        return await self._idempotent(
            key, now, change, encode,
            subject_of=lambda _: principal_id if kind == revoke_rules.REVOKE_SUBJECT else None,
        )

    async def revoke_client(
        self, key: RequestKey, *, client_id: str, note: str, now: datetime,
        encode: Callable[[tuple[Client, RevocationRecord]], bytes],
    ) -> Committed[tuple[Client, RevocationRecord]]:
        """Ends a registered partner or producer: marks it revoked (kept: its
        lookups stay in subjects' access logs), raises its generation and appends
        the entry. Revoking it again appends another entry; ``revoke_time`` stays
        the first. ``CLIENT_NOT_FOUND`` for an unknown id."""
        k = clients_table.c

        async def change(conn: AsyncConnection) -> tuple[Client, RevocationRecord]:
            client = await self._locked_client(conn, client_id)
            generation = await self._raise_client_generation(conn, client, now)
            revoke_time = client.revoke_time or now
            await conn.execute(update(clients_table).where(k.client_id == client_id).values(revoke_time=revoke_time))
            entry = await self._append_revocation(
                conn, revoke_rules.REVOKE_CLIENT, client_id, generation, now,
                note or revoke_rules.NOTE_CLIENT_REVOKED,
            )
            return replace(client, token_generation=generation, revoke_time=revoke_time), entry

        return await self._idempotent(key, now, change, encode)

    async def _locked_client(self, conn: AsyncConnection, client_id: str) -> Client:
        row = (
            await conn.execute(
                select(clients_table).where(clients_table.c.client_id == client_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("no partner or producer is registered under this id", reason="CLIENT_NOT_FOUND")
        return _client(row)

    async def _raise_subject_generation(self, conn: AsyncConnection, subject_id: str, now: datetime) -> int:
        s = subjects_table.c
        current = (
            await conn.execute(select(s.token_generation).where(s.subject_id == subject_id))
        ).scalar_one()
        generation = revoke_rules.next_generation(int(current), now)
        await conn.execute(
            update(subjects_table).where(s.subject_id == subject_id).values(token_generation=generation)
        )
        return generation

    async def _raise_client_generation(self, conn: AsyncConnection, client: Client, now: datetime) -> int:
        generation = revoke_rules.next_generation(client.token_generation, now)
        await conn.execute(
            update(clients_table)
            .where(clients_table.c.client_id == client.client_id)
            .values(token_generation=generation)
        )
        return generation

    async def _raise_service_generation(self, conn: AsyncConnection, service_id: str, now: datetime) -> int:
        g = service_generations_table.c
        current = (
            await conn.execute(
                select(g.token_generation).where(g.service_id == service_id).with_for_update()
            )
        ).scalar_one_or_none()
        generation = revoke_rules.next_generation(int(current or 0), now)
        if current is None:
            await conn.execute(
                dialect_insert(self._dialect, service_generations_table)
                .values(service_id=service_id, token_generation=generation)
                .on_conflict_do_update(index_elements=[g.service_id], set_={"token_generation": generation})
            )
        else:
            await conn.execute(
                update(service_generations_table)
                .where(g.service_id == service_id)
                .values(token_generation=generation)
            )
        return generation

    async def _revoked_generation(self, conn: AsyncConnection, kind: str, key: str) -> int:
        """The highest generation a live entry of (kind, key) refuses below (0: none)."""
        r = revocations_table.c
        value = (
            await conn.execute(select(func.max(r.generation)).where(r.kind == kind, r.key == key))
        ).scalar_one_or_none()
        return int(value or 0)

    async def _append_revocation(
        self, conn: AsyncConnection, kind: str, key: str, generation: int, now: datetime, note: str
    ) -> RevocationRecord:
        """Appends one entry under the next sequence number (in the caller's
        transaction: the row lock on the counter orders the writers)."""
        q = revocation_sequence_table.c
        bump = (
            update(revocation_sequence_table)
            .where(q.id == 1)
            .values(last_sequence=q.last_sequence + 1)
            .returning(q.last_sequence)
        )
        sequence = (await conn.execute(bump)).scalar_one_or_none()
        if sequence is None:  # the first entry ever (a store made without the migration's row)
            await conn.execute(
                dialect_insert(self._dialect, revocation_sequence_table)
                .values(id=1, last_sequence=0)
                .on_conflict_do_nothing(index_elements=[q.id])
            )
            sequence = (await conn.execute(bump)).scalar_one()
        record = RevocationRecord(
            sequence=int(sequence), kind=kind, key=key, generation=generation, revoke_time=now,
            expire_time=revoke_rules.expire_time(now, self._token_life), note=note,
        )
        await conn.execute(
            revocations_table.insert().values(
                sequence=record.sequence, kind=kind, key=key, generation=generation,
                revoke_time=now, expire_time=record.expire_time, note=note,
            )
        )
        return record

    # --- internals -----------------------------------------------------------

    async def _idempotent(
        self,
        key: RequestKey,
        now: datetime,
        change: Callable[[AsyncConnection], Awaitable[T]],
        encode: Callable[[T], bytes],
        *,
        subject_of: Callable[[T], str | None] = lambda _: None,
    ) -> Committed[T]:
        """Runs ``change`` once per request id: claims the id, applies the change,
        stores ``encode(value)`` and the subject it was about (``subject_of``),
        all in one transaction. A repeat returns the stored response; a different
        request under the same id is ``REQUEST_ID_REUSED``. If ``change`` raises,
        nothing is kept, the id included, so a retry is evaluated afresh."""
        r = requests_table.c
        async with begin_write(self._engine) as conn:
            claim = (
                dialect_insert(self._dialect, requests_table)
                .values(
                    request_id=key.request_id,
                    method=key.method,
                    request_sha256=key.digest,
                    response=b"",
                    create_time=now,
                )
                .on_conflict_do_nothing(index_elements=[r.request_id])
                .returning(r.request_id)
            )
            if (await conn.execute(claim)).first() is None:
                stored = (
                    await conn.execute(
                        select(r.method, r.request_sha256, r.response).where(
                            r.request_id == key.request_id
                        )
                    )
                ).one()
                rules.ensure_same_request(stored.method, stored.request_sha256, key)
                return Committed(response=bytes(stored.response))
            value = await change(conn)
            response = encode(value)
            await conn.execute(
                update(requests_table)
                .where(r.request_id == key.request_id)
                .values(response=response, subject_id=subject_of(value))
            )
            return Committed(response=response, value=value)

    async def _insert_subject(
        self,
        conn: AsyncConnection,
        subject_id: str,
        now: datetime,
        secret_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        """Inserts the subject unless it exists; True when inserted."""
        s = subjects_table.c
        inserted = await conn.execute(
            dialect_insert(self._dialect, subjects_table)
            .values(
                subject_id=subject_id, enroll_time=now, secret_hash=secret_hash,
                token_generation=revoke_rules.generation_at(now) if generation is None else generation,
            )
            .on_conflict_do_nothing(index_elements=[s.subject_id])
            .returning(s.subject_id)
        )
        return inserted.first() is not None

    async def _insert_client(self, conn: AsyncConnection, client: Client) -> bool:
        k = clients_table.c
        inserted = await conn.execute(
            dialect_insert(self._dialect, clients_table)
            .values(
                client_id=client.client_id,
                kind=client.kind,
                display_name=client.display_name,
                sources=",".join(str(s) for s in sorted(client.sources)),
                secret_hash=client.secret_hash,
                register_time=client.register_time,
            )
            .on_conflict_do_nothing(index_elements=[k.client_id])
            .returning(k.client_id)
        )
        return inserted.first() is not None

    async def _locked_consent(
        self, conn: AsyncConnection, subject_id: str, source: int, purpose: int
    ) -> Consent | None:
        """The consent row, locked for this transaction, after making sure the
        subject exists."""
        if await _subject(conn, subject_id, lock="share") is None:
            raise _subject_not_found()
        c = consents_table.c
        row = (
            await conn.execute(
                select(consents_table)
                .where(c.subject_id == subject_id, c.source == source, c.purpose == purpose)
                .with_for_update()
            )
        ).first()
        return None if row is None else _consent(row)

    async def _upsert_consent(self, conn: AsyncConnection, consent: Consent) -> None:
        c = consents_table.c
        values: dict[str, Any] = {
            "grant_time": consent.grant_time,
            "expire_time": consent.expire_time,
            "withdraw_time": consent.withdraw_time,
        }
        await conn.execute(
            dialect_insert(self._dialect, consents_table)
            .values(
                subject_id=consent.subject_id,
                source=consent.source,
                purpose=consent.purpose,
                **values,
            )
            .on_conflict_do_update(index_elements=[c.subject_id, c.source, c.purpose], set_=values)
        )

    async def _locked_authorization(
        self, conn: AsyncConnection, subject_id: str, partner_id: str, purpose: int
    ) -> tuple[Authorization | None, str]:
        """The authorization row, locked, and the partner's display name, after
        making sure the subject and the partner exist."""
        if await _subject(conn, subject_id, lock="share") is None:
            raise _subject_not_found()
        k = clients_table.c
        partner = (
            await conn.execute(
                select(k.display_name).where(k.client_id == partner_id, k.kind == KIND_PARTNER)
            )
        ).first()
        if partner is None:
            raise NotFound("no partner is registered under this id", reason="PARTNER_NOT_FOUND")
        a = authorizations_table.c
        row = (
            await conn.execute(
                _authorization_query()
                .where(a.subject_id == subject_id, a.partner_id == partner_id, a.purpose == purpose)
                .with_for_update(of=authorizations_table)
            )
        ).first()
        return (None if row is None else _authorization(row)), partner.display_name

    async def _upsert_authorization(self, conn: AsyncConnection, grant: Authorization) -> None:
        a = authorizations_table.c
        values: dict[str, Any] = {
            "scope": grant.scope,
            "grant_time": grant.grant_time,
            "expire_time": grant.expire_time,
            "revoke_time": grant.revoke_time,
        }
        await conn.execute(
            dialect_insert(self._dialect, authorizations_table)
            .values(subject_id=grant.subject_id, partner_id=grant.partner_id, purpose=grant.purpose, **values)
            .on_conflict_do_update(index_elements=[a.subject_id, a.partner_id, a.purpose], set_=values)
        )

    async def _insert_job(
        self,
        conn: AsyncConnection,
        receipt_id: str,
        subject_id: str,
        scope: DeletionScope,
        source: int,
        now: datetime,
        steps: Sequence[Step],
    ) -> None:
        await conn.execute(
            purge_jobs_table.insert().values(
                receipt_id=receipt_id, subject_id=subject_id, scope=int(scope), source=source,
                request_id=None, method=None, request_sha256=None, request_time=now, complete_time=None,
            )
        )
        await _insert_steps(conn, receipt_id, steps)

    async def _delete_own_rows(
        self, conn: AsyncConnection, subject_id: str, *, account: bool
    ) -> list[TableCount]:
        """Deletes the subject's rows of this service but the receipts (children
        before parents); the enrollment too when ``account``."""
        counts = []
        for table in (requests_table, access_log_table, authorizations_table, consents_table):
            result = await conn.execute(delete(table).where(table.c.subject_id == subject_id))
            counts.append(TableCount(table.name, int(result.rowcount)))
        if account:
            result = await conn.execute(
                delete(subjects_table).where(subjects_table.c.subject_id == subject_id)
            )
            counts.append(TableCount(subjects_table.name, int(result.rowcount)))
        return counts


async def _insert_steps(conn: AsyncConnection, receipt_id: str, steps: Sequence[Step]) -> None:
    await conn.execute(
        purge_steps_table.insert(),
        [
            {
                "receipt_id": receipt_id,
                "position": s.position,
                "service": s.service,
                "pass": s.pass_,
                "not_before": s.not_before,
                "next_attempt_time": s.next_attempt_time,
                "attempts": s.attempts,
                "last_error": s.last_error,
                "result": None
                if s.tables is None
                else json.dumps([[t.table, t.deleted, t.rewritten] for t in s.tables]),
                "complete_time": s.complete_time,
            }
            for s in steps
        ],
    )


async def _open_purge(
    conn: AsyncConnection, subject_id: str, source: int | None, whole: Collection[DeletionScope]
) -> bool:
    """Whether an unfinished purge of the subject covers ``source`` (a SOURCE purge
    of it) or is of one of the ``whole`` scopes."""
    jobs = purge_jobs_table.c
    covers = jobs.scope.in_([int(s) for s in whole])
    if source is not None:
        covers = or_(covers, and_(jobs.scope == int(DeletionScope.SOURCE), jobs.source == source))
    row = (
        await conn.execute(
            select(jobs.receipt_id)
            .where(jobs.subject_id == subject_id, jobs.complete_time.is_(None), covers)
            .limit(1)
        )
    ).first()
    return row is not None


async def _receipt(conn: AsyncConnection, receipt_id: str) -> Receipt | None:
    jobs, steps = purge_jobs_table.c, purge_steps_table.c
    job = (await conn.execute(select(purge_jobs_table).where(jobs.receipt_id == receipt_id))).first()
    if job is None:
        return None
    rows = (
        await conn.execute(
            select(purge_steps_table).where(steps.receipt_id == receipt_id).order_by(steps.position)
        )
    ).all()
    return Receipt(
        receipt_id=job.receipt_id,
        subject_id=job.subject_id,
        scope=DeletionScope(job.scope),
        source=job.source,
        request_time=job.request_time,
        complete_time=job.complete_time,
        steps=tuple(_step(row) for row in rows),
    )


def _step(row: Row[Any]) -> Step:
    tables = None
    if row.result is not None:
        tables = tuple(TableCount(t, int(d), int(w)) for t, d, w in json.loads(row.result))
    return Step(
        position=row.position,
        service=row.service,
        pass_=row._mapping["pass"],
        not_before=row.not_before,
        next_attempt_time=row.next_attempt_time,
        attempts=row.attempts,
        last_error=row.last_error,
        tables=tables,
        complete_time=row.complete_time,
    )


async def _subject(conn: AsyncConnection, subject_id: str, *, lock: str = "") -> Subject | None:
    """The enrolled subject, or None. ``lock`` (PostgreSQL; SQLite has one writer):
    ``"share"`` while this transaction adds rows of the subject (a purge waits for
    it, then deletes them too), ``"update"`` for a purge (such writers wait for it,
    then find the subject or its authorization gone)."""
    s = subjects_table.c
    query = select(s.subject_id, s.enroll_time).where(s.subject_id == subject_id)
    if lock == "share":
        query = query.with_for_update(read=True, key_share=True)
    elif lock == "update":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else Subject(row.subject_id, row.enroll_time)


def _consent(row: Row[Any]) -> Consent:
    return Consent(
        subject_id=row.subject_id,
        source=row.source,
        purpose=row.purpose,
        grant_time=row.grant_time,
        expire_time=row.expire_time,
        withdraw_time=row.withdraw_time,
    )


def _client(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        kind=row.kind,
        display_name=row.display_name,
        secret_hash=row.secret_hash,
        register_time=row.register_time,
        sources=frozenset(int(s) for s in row.sources.split(",") if s),
        token_generation=row.token_generation,
        revoke_time=row.revoke_time,
    )


def _replace_id(client: Client, client_id: str) -> Client:
    return replace(client, client_id=client_id)


def _revocation(row: Row[Any]) -> RevocationRecord:
    return RevocationRecord(
        sequence=row.sequence, kind=row.kind, key=row.key, generation=row.generation,
        revoke_time=row.revoke_time, expire_time=row.expire_time, note=row.note,
    )


def _authorization_query() -> Any:
    a, k = authorizations_table.c, clients_table.c
    return select(authorizations_table, k.display_name.label("partner_name")).join(
        clients_table, k.client_id == a.partner_id
    )


def _authorization(row: Row[Any]) -> Authorization:
    return Authorization(
        subject_id=row.subject_id,
        partner_id=row.partner_id,
        purpose=row.purpose,
        scope=row.scope,
        grant_time=row.grant_time,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
        partner_name=row.partner_name,
    )


def _access_query() -> Any:
    log, k = access_log_table.c, clients_table.c
    return select(access_log_table, k.display_name.label("partner_name")).join(
        clients_table, k.client_id == log.partner_id
    )


async def _access_by_key(conn: AsyncConnection, partner_id: str, transaction_id: str) -> AccessEntry | None:
    key = (partner_id, transaction_id)
    return (await conn.run_sync(_accesses_by_keys, [key])).get(key)


class _LookupStatements:
    """The statements of ``_record_accesses``, built once per dialect with
    expanding parameters: building and coercing a statement costs more than
    SQLite runs it, and the lookup runs these for every batch."""

    def __init__(self, dialect: str) -> None:
        a, c, log, s = authorizations_table.c, consents_table.c, access_log_table.c, subjects_table.c
        # Keys are matched as "partner in (...) and key in (...)", a superset of the
        # batch's pairs read through the (partner_id, transaction_key) index, and
        # narrowed to the pairs in Python: SQLite answers a row-value IN
        # ("(a, b) in ((?, ?), ...)") with a scan of the whole table, so the cost
        # of a lookup would grow with the access log. Releasing a stale key of a
        # pair outside the batch is harmless: a stale key holds nothing.
        self.release_stale_keys = (
            update(access_log_table)
            .where(
                log.partner_id.in_(bindparam("partners", expanding=True)),
                log.transaction_key.in_(bindparam("transactions", expanding=True)),
                log.access_time <= bindparam("cutoff"),
            )
            .values(transaction_key=None)
        )
        self.share_subjects = (
            select(s.subject_id)
            .where(s.subject_id.in_(bindparam("subject_ids", expanding=True)))
            .order_by(s.subject_id)
            .with_for_update(read=True, key_share=True)
        )
        self.grants = (
            _authorization_query()
            .where(
                a.subject_id.in_(bindparam("subject_ids", expanding=True)),
                a.partner_id.in_(bindparam("partners", expanding=True)),
            )
            .order_by(a.subject_id, a.partner_id, a.purpose)
            .with_for_update(of=authorizations_table)
        )
        self.consents = select(consents_table).where(
            c.subject_id.in_(bindparam("subject_ids", expanding=True)),
            c.purpose == common_pb2.PURPOSE_CREDIT_SCORING,
            c.source.in_(sorted(auth_rules.SCORED_SOURCES)),
        )
        self.entries = _access_query().where(
            log.partner_id.in_(bindparam("partners", expanding=True)),
            log.transaction_key.in_(bindparam("transactions", expanding=True)),
        )
        self.insert = (
            dialect_insert(dialect, access_log_table)
            .on_conflict_do_nothing(index_elements=[log.partner_id, log.transaction_key])
            .returning(log.access_id)
        )


@functools.cache
def _lookup_statements(dialect: str) -> _LookupStatements:
    return _LookupStatements(dialect)


def _record_accesses(
    conn: Connection,
    dialect: str,
    items: Sequence[AccessToRecord],
    keys: Sequence[tuple[str, str]],
    subject_ids: Sequence[str],
    grant_keys: Sequence[tuple[str, str, int]],
    now: datetime,
) -> list[AccessOutcome]:
    """``ConsentStore.record_accesses`` inside its transaction (synchronous: one step)."""
    q = _lookup_statements(dialect)
    release = {**_key_params(keys), "cutoff": now - auth_rules.DEDUPE_WINDOW}
    if dialect == "sqlite":
        # A write first, as record_access and _idempotent begin: the
        # transaction holds SQLite's one write lock from its first
        # statement, so everything read below stays true until it commits.
        conn.execute(q.release_stale_keys, release)
        subjects = set(conn.execute(q.share_subjects, {"subject_ids": list(subject_ids)}).scalars())
    else:
        # Subjects first, as a purge locks its subject before deleting the
        # subject's entries (which releasing a stale key may touch).
        subjects = set(conn.execute(q.share_subjects, {"subject_ids": list(subject_ids)}).scalars())
        conn.execute(q.release_stale_keys, release)
    wanted = set(grant_keys)
    grants = {
        key: _authorization(row)
        for row in conn.execute(q.grants, {
            "subject_ids": sorted({k[0] for k in grant_keys}), "partners": sorted({k[1] for k in grant_keys}),
        })
        if (key := (row.subject_id, row.partner_id, row.purpose)) in wanted
    }
    consents = [_consent(row) for row in conn.execute(q.consents, {"subject_ids": list(subject_ids)})]
    entries = _accesses_by_keys(conn, keys)
    outcomes = auth_rules.decide_accesses(
        items, subjects=subjects, authorizations=grants, consents=consents, entries=entries, now=now
    )
    new = [o.entry for o in outcomes if o.kind is AccessOutcomeKind.RECORDED and o.entry is not None]
    if not new:
        return outcomes
    # One INSERT for the batch, in key order (so that two batches with
    # common transaction ids wait on each other, never deadlock).
    new.sort(key=lambda e: (e.partner_id, e.transaction_id))
    inserted = conn.execute(q.insert, [_access_row(e) for e in new])
    written = set(inserted.scalars().all())
    lost = {e.access_id: e for e in new if e.access_id not in written}
    if not lost:
        return outcomes
    # Another transaction wrote under these transaction ids meanwhile: its
    # entries stand, for the items recorded here and those replaying them.
    winners = _accesses_by_keys(
        conn, sorted({(e.partner_id, e.transaction_id) for e in lost.values()})
    )
    settled: list[AccessOutcome] = []
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.entry is None or outcome.entry.access_id not in lost:
            settled.append(outcome)
            continue
        winner = winners.get(item.transaction_key)
        if winner is None:  # written, then purged, between two statements
            raise Aborted("the access log changed while recording; try again",
                          reason="ACCESS_LOG_CONFLICT")
        settled.append(auth_rules.replay_of(winner, item))
    return settled


def _accesses_by_keys(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], AccessEntry]:
    """The entries holding any of the (partner, transaction id) ``keys``, by key."""
    wanted = set(keys)
    rows = conn.execute(_lookup_statements(conn.dialect.name).entries, _key_params(keys))
    return {
        key: _access(row) for row in rows if (key := (row.partner_id, row.transaction_key)) in wanted
    }


def _key_params(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The (partner, transaction id) pairs as the two lists the statements match."""
    return {"partners": sorted({p for p, _ in keys}), "transactions": sorted({t for _, t in keys})}


def _access_row(entry: AccessEntry) -> dict[str, Any]:
    """The access log row of a new entry: it holds its transaction id."""
    return {
        "access_id": entry.access_id,
        "subject_id": entry.subject_id,
        "partner_id": entry.partner_id,
        "purpose": entry.purpose,
        "transaction_id": entry.transaction_id,
        "transaction_key": entry.transaction_id,
        "scope": entry.scope,
        "answer": entry.answer,
        "response": entry.response,
        "access_time": entry.access_time,
    }


def _access(row: Row[Any]) -> AccessEntry:
    return AccessEntry(
        access_id=row.access_id,
        subject_id=row.subject_id,
        partner_id=row.partner_id,
        purpose=row.purpose,
        transaction_id=row.transaction_id,
        scope=row.scope,
        answer=bytes(row.answer),
        response=bytes(row.response),
        access_time=row.access_time,
        partner_name=row.partner_name,
    )


def _subject_not_found() -> NotFound:
    return NotFound("no subject is enrolled under this id", reason="SUBJECT_NOT_FOUND")


def _purge_in_progress(message: str) -> FailedPrecondition:
    return FailedPrecondition(f"{message}; try again once its deletion receipt is complete",
                              reason="PURGE_IN_PROGRESS")
