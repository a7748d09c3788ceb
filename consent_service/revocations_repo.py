"""The revocation log (``revocations``, ``revocation_sequence``) and the credential
generations of configured services (``service_generations``).

Entries commit in sequence order: a writer takes the next sequence from the one
counter row with ``UPDATE ... RETURNING`` in its own transaction, and that row's
lock orders the writers, so a poller reading "after N" never skips an entry
committed later with a smaller N. The rules (generations, how long an entry
lives) are in ``revocation``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import REVOKE_CLIENT, REVOKE_TOKEN, begin_write, dialect_insert

from . import revocation as revoke_rules
from .consents import RequestKey
from .requests_repo import Committed, RequestsRepo
from .revocation import RevocationRecord
from .tables import revocation_sequence_table, revocations_table, service_generations_table

__all__ = ["RevocationsRepo"]


class RevocationsRepo:
    """Appends to and reads the revocation log; raises services' generations.

    ``token_life`` is the longest lifetime of a token (with the verifiers'
    leeway): how long an entry must stay in the log."""

    def __init__(self, engine: AsyncEngine, requests: RequestsRepo, *, token_life: timedelta) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._requests = requests
        self._token_life = token_life

    # --- the log -----------------------------------------------------------------

    async def after(
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

    async def prune(self, now: datetime) -> int:
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
            return await self.append(conn, REVOKE_TOKEN, token_id, 0, now, note)

        return await self._requests.idempotent(key, now, change, encode)

    async def append(
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

    async def revoked_generation(self, conn: AsyncConnection, kind: str, key: str) -> int:
        """The highest generation a live entry of (kind, key) refuses below (0: none)."""
        r = revocations_table.c
        value = (
            await conn.execute(select(func.max(r.generation)).where(r.kind == kind, r.key == key))
        ).scalar_one_or_none()
        return int(value or 0)

    # --- configured services -------------------------------------------------------

    async def service_generation(self, service_id: str) -> int:
        """The generation a configured service's tokens carry (0 until revoked)."""
        g = service_generations_table.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(g.token_generation).where(g.service_id == service_id))).first()
        return 0 if row is None else int(row.token_generation)

    async def revoke_service_tokens(
        self, key: RequestKey, *, service_id: str, note: str, now: datetime,
        encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes every token a configured service was issued so far: raises its
        generation and appends the entry (of kind "client", as its tokens are
        checked)."""

        async def change(conn: AsyncConnection) -> RevocationRecord:
            generation = await self._raise_service_generation(conn, service_id, now)
            return await self.append(conn, REVOKE_CLIENT, service_id, generation, now, note)

        return await self._requests.idempotent(key, now, change, encode)

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


def _revocation(row: Row[Any]) -> RevocationRecord:
    return RevocationRecord(
        sequence=row.sequence, kind=row.kind, key=row.key, generation=row.generation,
        revoke_time=row.revoke_time, expire_time=row.expire_time, note=row.note,
    )
