"""Consents (``consents``): one row per (subject, source, purpose), granted and
withdrawn per the rules in ``consents``. A withdrawal that stops a source's
collection starts the purge of that source in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import dialect_insert

from . import consents as rules
from .consents import Consent, RequestKey
from .purge import TableCount
from .purges_repo import PurgesRepo
from .requests_repo import Committed, RequestsRepo
from .subjects_repo import SubjectsRepo
from .tables import consents_table

__all__ = ["ConsentsRepo", "Withdrawal", "consent_of"]


@dataclass(frozen=True)
class Withdrawal:
    """What a withdrawal did: the consent after it, and the purge it started."""

    consent: Consent
    receipt_id: str | None = None


class ConsentsRepo:
    """Withdraws and reads consents (grants are group-committed: ``signup_repo``)."""

    def __init__(
        self, engine: AsyncEngine, requests: RequestsRepo, subjects: SubjectsRepo, purges: PurgesRepo
    ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._requests = requests
        self._subjects = subjects
        self._purges = purges

    # --- reads ---------------------------------------------------------------------

    async def for_subjects(
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
        return [consent_of(row) for row in rows]

    async def page(
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
        rows, more = await self._subjects.page(subject_id, query.order_by(c.source, c.purpose), limit)
        return [consent_of(row) for row in rows], more

    async def of_subject(self, conn: AsyncConnection, subject_id: str) -> list[Consent]:
        """Every consent of the subject, in (source, purpose) order (an export)."""
        c = consents_table.c
        rows = await conn.execute(
            select(consents_table).where(c.subject_id == subject_id).order_by(c.source, c.purpose)
        )
        return [consent_of(row) for row in rows]

    # --- mutations (idempotent on the request key) -----------------------------------

    async def withdraw(
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
            existing = await self._locked(conn, subject_id, source, purpose)
            updated = rules.withdraw(existing, now=now)
            if updated == existing:
                return Withdrawal(updated)
            await self._upsert(conn, updated)
            receipt_id = None
            if rules.starts_source_purge(existing, updated):
                receipt_id = await self._purges.start_source_purge(conn, subject_id, source, now)
            return Withdrawal(updated, receipt_id)

        return await self._requests.idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def delete_of(self, conn: AsyncConnection, subject_id: str) -> TableCount:
        """Deletes the subject's consents (a purge)."""
        result = await conn.execute(delete(consents_table).where(consents_table.c.subject_id == subject_id))
        return TableCount(consents_table.name, int(result.rowcount))

    # --- internals -------------------------------------------------------------------

    async def _locked(self, conn: AsyncConnection, subject_id: str, source: int, purpose: int) -> Consent | None:
        """The consent row, locked for this transaction, after making sure the
        subject exists (its row share-locked)."""
        await self._subjects.require(conn, subject_id, lock="share")
        c = consents_table.c
        row = (
            await conn.execute(
                select(consents_table)
                .where(c.subject_id == subject_id, c.source == source, c.purpose == purpose)
                .with_for_update()
            )
        ).first()
        return None if row is None else consent_of(row)

    async def _upsert(self, conn: AsyncConnection, consent: Consent) -> None:
        c = consents_table.c
        values: dict[str, object] = {
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


def consent_of(row: Row[Any]) -> Consent:
    return Consent(
        subject_id=row.subject_id,
        source=row.source,
        purpose=row.purpose,
        grant_time=row.grant_time,
        expire_time=row.expire_time,
        withdraw_time=row.withdraw_time,
    )
