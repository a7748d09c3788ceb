"""Persistence of subjects, consents and idempotent requests (SQLAlchemy Core,
SQLite or PostgreSQL).

Every mutation runs through ``ConsentStore._idempotent``: in one transaction it
first claims the ``request_id`` (inserting its ``requests`` row), then applies the
change, then stores the serialized response. A repeat of the request finds the
row and gets the stored response back; the state change and the response commit
together or not at all. Claiming the request first also serialises writers: on
SQLite the insert takes the database write lock, on PostgreSQL a concurrent
insert of the same id waits for the first to commit; consent rows are then read
``FOR UPDATE`` (a no-op on SQLite) so read-modify-write does not race.

The rules themselves (what a grant or withdrawal does, when a consent is live)
are in ``consents``; this module only reads and writes what they decide.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import NotFound, UtcDateTime, create_schema, dialect_insert

from . import consents as rules
from .consents import Consent, Enrollment, RequestKey, Subject

__all__ = ["Committed", "ConsentStore", "metadata", "consents_table", "requests_table", "subjects_table"]

T = TypeVar("T")

metadata = MetaData()

subjects_table = Table(
    "subjects",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("enroll_time", UtcDateTime(), nullable=False),
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


class ConsentStore:
    """Subjects, consents and the request log in one database.

    Build with ``await ConsentStore.open(engine)``; the engine stays the caller's
    to dispose.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    async def open(cls, engine: AsyncEngine) -> ConsentStore:
        """A store on ``engine``, creating missing tables."""
        await create_schema(engine, metadata)
        return cls(engine)

    # --- reads ---------------------------------------------------------------

    async def get_subject(self, subject_id: str) -> Subject | None:
        async with self._engine.connect() as conn:
            return await _subject(conn, subject_id)

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
        query = query.order_by(c.source, c.purpose).limit(limit + 1)
        async with self._engine.connect() as conn:
            if await _subject(conn, subject_id) is None:
                raise _subject_not_found()
            rows = (await conn.execute(query)).all()
        return [_consent(row) for row in rows[:limit]], len(rows) > limit

    # --- mutations (idempotent on the request key) ---------------------------

    async def enroll_subject(
        self,
        key: RequestKey,
        subject_id: str | None,
        *,
        now: datetime,
        encode: Callable[[Enrollment], bytes],
    ) -> Committed[Enrollment]:
        """Enrolls ``subject_id`` (a fresh id when None) at ``now``. An id already
        enrolled is returned with ``created=False``; a generated id never lands on
        an existing subject."""

        async def change(conn: AsyncConnection) -> Enrollment:
            if subject_id is None:
                while True:
                    candidate = rules.new_subject_id()
                    if await self._insert_subject(conn, candidate, now):
                        return Enrollment(Subject(candidate, now), created=True)
            if await self._insert_subject(conn, subject_id, now):
                return Enrollment(Subject(subject_id, now), created=True)
            existing = await _subject(conn, subject_id)
            assert existing is not None
            return Enrollment(existing, created=False)

        return await self._idempotent(key, now, change, encode)

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
        Raises ``NotFound`` (``SUBJECT_NOT_FOUND``) for an unknown subject."""

        async def change(conn: AsyncConnection) -> Consent:
            existing = await self._locked_consent(conn, subject_id, source, purpose)
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

        return await self._idempotent(key, now, change, encode)

    async def withdraw_consent(
        self,
        key: RequestKey,
        *,
        subject_id: str,
        source: int,
        purpose: int,
        now: datetime,
        encode: Callable[[Consent], bytes],
    ) -> Committed[Consent]:
        """Withdraws a consent at ``now`` per ``consents.withdraw``. Raises
        ``NotFound`` with ``SUBJECT_NOT_FOUND`` or ``CONSENT_NOT_FOUND``."""

        async def change(conn: AsyncConnection) -> Consent:
            existing = await self._locked_consent(conn, subject_id, source, purpose)
            updated = rules.withdraw(existing, now=now)
            if updated != existing:
                await self._upsert_consent(conn, updated)
            return updated

        return await self._idempotent(key, now, change, encode)

    # --- internals -----------------------------------------------------------

    async def _idempotent(
        self,
        key: RequestKey,
        now: datetime,
        change: Callable[[AsyncConnection], Awaitable[T]],
        encode: Callable[[T], bytes],
    ) -> Committed[T]:
        """Runs ``change`` once per request id: claims the id, applies the change,
        stores ``encode(value)``, all in one transaction. A repeat returns the
        stored response; a different request under the same id is
        ``REQUEST_ID_REUSED``. If ``change`` raises, nothing is kept, the id
        included, so a retry is evaluated afresh."""
        r = requests_table.c
        async with self._engine.begin() as conn:
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
                .values(response=response)
            )
            return Committed(response=response, value=value)

    async def _insert_subject(self, conn: AsyncConnection, subject_id: str, now: datetime) -> bool:
        """Inserts the subject unless it exists; True when inserted."""
        s = subjects_table.c
        inserted = await conn.execute(
            dialect_insert(self._dialect, subjects_table)
            .values(subject_id=subject_id, enroll_time=now)
            .on_conflict_do_nothing(index_elements=[s.subject_id])
            .returning(s.subject_id)
        )
        return inserted.first() is not None

    async def _locked_consent(
        self, conn: AsyncConnection, subject_id: str, source: int, purpose: int
    ) -> Consent | None:
        """The consent row, locked for this transaction, after making sure the
        subject exists."""
        if await _subject(conn, subject_id) is None:
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


async def _subject(conn: AsyncConnection, subject_id: str) -> Subject | None:
    s = subjects_table.c
    row = (await conn.execute(select(s.subject_id, s.enroll_time).where(s.subject_id == subject_id))).first()
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


def _subject_not_found() -> NotFound:
    return NotFound("no subject is enrolled under this id", reason="SUBJECT_NOT_FOUND")
