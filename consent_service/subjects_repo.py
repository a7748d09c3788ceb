"""Enrolled subjects (``subjects``): enrollment, the subject's secret and credential
generation, and the subject row every write about a subject locks first.

The lock (``find``'s ``lock``, PostgreSQL; SQLite has one writer) orders the
writers of a subject's rows against a purge: ``"share"`` while a transaction adds
rows of the subject (a purge waits for it, then deletes them too), ``"update"``
for a purge or a change of the subject's credentials (such writers wait for it,
then find the subject or its rows gone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import REVOKE_SUBJECT, NotFound, dialect_insert

from . import revocation as revoke_rules
from .consents import RequestKey, Subject
from .purge import TableCount
from .purges_repo import PurgesRepo
from .requests_repo import Committed, RequestsRepo
from .revocation import RevocationRecord
from .revocations_repo import RevocationsRepo
from .tables import subjects_table

__all__ = ["SubjectLock", "SubjectsRepo", "subject_not_found"]

#: How ``SubjectsRepo.find`` locks the subject's row: not at all, shared, exclusive.
SubjectLock = Literal["", "share", "update"]


class SubjectsRepo:
    """Enrolls subjects, keeps their secrets and generations, and locks their rows."""

    def __init__(
        self, engine: AsyncEngine, requests: RequestsRepo, revocations: RevocationsRepo, purges: PurgesRepo
    ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._requests = requests
        self._revocations = revocations
        self._purges = purges

    # --- in the caller's transaction -------------------------------------------------

    async def find(self, conn: AsyncConnection, subject_id: str, *, lock: SubjectLock = "") -> Subject | None:
        """The enrolled subject, or None; its row locked as ``lock`` says (see the
        module docstring)."""
        s = subjects_table.c
        query = select(s.subject_id, s.enroll_time).where(s.subject_id == subject_id)
        if lock == "share":
            query = query.with_for_update(read=True, key_share=True)
        elif lock == "update":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return None if row is None else Subject(row.subject_id, row.enroll_time)

    async def require(self, conn: AsyncConnection, subject_id: str, *, lock: SubjectLock = "") -> Subject:
        """``find``, and ``SUBJECT_NOT_FOUND`` for a subject never enrolled."""
        subject = await self.find(conn, subject_id, lock=lock)
        if subject is None:
            raise subject_not_found()
        return subject

    async def end_tokens(self, conn: AsyncConnection, subject_id: str, now: datetime, note: str) -> RevocationRecord:
        """Ends every token of the subject issued so far: raises its generation and
        appends the revocation entry (the subject's row locked by the caller)."""
        generation = await self._raise_generation(conn, subject_id, now)
        return await self._revocations.append(conn, REVOKE_SUBJECT, subject_id, generation, now, note)

    async def delete(self, conn: AsyncConnection, subject_id: str) -> TableCount:
        """Deletes the enrollment (closing the account)."""
        result = await conn.execute(delete(subjects_table).where(subjects_table.c.subject_id == subject_id))
        return TableCount(subjects_table.name, int(result.rowcount))

    # --- reads ---------------------------------------------------------------------

    async def get(self, subject_id: str) -> Subject | None:
        async with self._engine.connect() as conn:
            return await self.find(conn, subject_id)

    async def secret_hash(self, subject_id: str) -> str | None:
        """The stored hash of an enrolled subject's secret; None for an unknown
        subject and for one without a secret alike."""
        s = subjects_table.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(s.secret_hash).where(s.subject_id == subject_id))).first()
        return None if row is None else row.secret_hash

    async def credentials(self, subject_id: str) -> tuple[str | None, int] | None:
        """The stored hash of the subject's secret (None: it has none) and its
        credential generation; None for a subject not enrolled."""
        s = subjects_table.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(s.secret_hash, s.token_generation).where(s.subject_id == subject_id))
            ).first()
        return None if row is None else (row.secret_hash, row.token_generation)

    async def page(self, subject_id: str, query: Select[Any], limit: int) -> tuple[Sequence[Row[Any]], bool]:
        """One page of an ordered ``query`` of the subject's rows: up to ``limit``
        rows and whether more follow (one extra row is read to know).
        ``SUBJECT_NOT_FOUND`` for a subject never enrolled, so an empty page means
        "none", not "nobody"."""
        async with self._engine.connect() as conn:
            await self.require(conn, subject_id)
            rows = (await conn.execute(query.limit(limit + 1))).all()
        return rows[:limit], len(rows) > limit

    # --- mutations (idempotent on the request key) -----------------------------------

    async def rotate_secret(
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
            subject = await self.require(conn, subject_id, lock="update")
            generation = await self._raise_generation(conn, subject_id, now)
            await conn.execute(
                update(subjects_table).where(s.subject_id == subject_id).values(secret_hash=secret_hash)
            )
            await self._revocations.append(
                conn, REVOKE_SUBJECT, subject_id, generation, now, revoke_rules.NOTE_SECRET_ROTATED
            )
            return subject

        return await self._requests.idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def revoke_tokens(
        self, key: RequestKey, *, subject_id: str, note: str, now: datetime,
        encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes every token of the subject issued so far (``end_tokens``), once
        per request id. ``SUBJECT_NOT_FOUND`` for an unknown subject."""

        async def change(conn: AsyncConnection) -> RevocationRecord:
            await self.require(conn, subject_id, lock="update")
            return await self.end_tokens(conn, subject_id, now, note)

        return await self._requests.idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    # --- internals -------------------------------------------------------------------

    async def _insert(
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

    async def _raise_generation(self, conn: AsyncConnection, subject_id: str, now: datetime) -> int:
        s = subjects_table.c
        current = (
            await conn.execute(select(s.token_generation).where(s.subject_id == subject_id))
        ).scalar_one()
        generation = revoke_rules.next_generation(int(current), now)
        await conn.execute(
            update(subjects_table).where(s.subject_id == subject_id).values(token_generation=generation)
        )
        return generation


def subject_not_found() -> NotFound:
    return NotFound("no subject is enrolled under this id", reason="SUBJECT_NOT_FOUND")
