"""Partner authorizations (``authorizations``): one row per (subject, partner,
purpose), granted and revoked per the rules in ``authorizations``, read with the
partner's display name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import dialect_insert

from . import authorizations as auth_rules
from .authorizations import Authorization
from .clients_repo import ClientsRepo
from .consents import RequestKey
from .purge import TableCount
from .requests_repo import Committed, RequestsRepo
from .subjects_repo import SubjectsRepo
from .tables import authorizations_table, clients_table

__all__ = ["AuthorizationsRepo", "authorization_of", "authorization_query"]


class AuthorizationsRepo:
    """Grants, revokes and reads authorizations."""

    def __init__(
        self, engine: AsyncEngine, requests: RequestsRepo, subjects: SubjectsRepo, clients: ClientsRepo
    ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._requests = requests
        self._subjects = subjects
        self._clients = clients

    # --- reads ---------------------------------------------------------------------

    async def get(self, subject_id: str, partner_id: str, purpose: int) -> Authorization | None:
        """The stored authorization of (subject, partner, purpose), in any state."""
        a = authorizations_table.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    authorization_query().where(
                        a.subject_id == subject_id, a.partner_id == partner_id, a.purpose == purpose
                    )
                )
            ).first()
        return None if row is None else authorization_of(row)

    async def page(
        self, subject_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> tuple[list[Authorization], bool]:
        """Up to ``limit`` of the subject's authorizations in (partner, purpose)
        order after ``after``, and whether more follow; ``SUBJECT_NOT_FOUND``."""
        a = authorizations_table.c
        query = authorization_query().where(a.subject_id == subject_id)
        if after is not None:
            partner_id, purpose = after
            query = query.where(
                or_(a.partner_id > partner_id, and_(a.partner_id == partner_id, a.purpose > purpose))
            )
        rows, more = await self._subjects.page(
            subject_id, query.order_by(a.partner_id, a.purpose), limit
        )
        return [authorization_of(row) for row in rows], more

    async def of_subject(self, conn: AsyncConnection, subject_id: str) -> list[Authorization]:
        """Every authorization of the subject, in (partner, purpose) order (an export)."""
        a = authorizations_table.c
        rows = await conn.execute(
            authorization_query().where(a.subject_id == subject_id).order_by(a.partner_id, a.purpose)
        )
        return [authorization_of(row) for row in rows]

    async def locked(
        self, conn: AsyncConnection, subject_id: str, partner_id: str, purpose: int
    ) -> Authorization | None:
        """The authorization row, locked for this transaction (``FOR UPDATE``: a
        revocation and a lookup being logged under it wait for each other)."""
        a = authorizations_table.c
        row = (
            await conn.execute(
                authorization_query()
                .where(a.subject_id == subject_id, a.partner_id == partner_id, a.purpose == purpose)
                .with_for_update(of=authorizations_table)
            )
        ).first()
        return None if row is None else authorization_of(row)

    # --- mutations (idempotent on the request key) -----------------------------------

    async def revoke(
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
            existing, _ = await self._locked_with_partner(conn, subject_id, partner_id, purpose)
            updated = auth_rules.revoke_authorization(existing, now=now)
            if updated != existing:
                await self._upsert(conn, updated)
            return updated

        return await self._requests.idempotent(key, now, change, encode, subject_of=lambda _: subject_id)

    async def delete_of(self, conn: AsyncConnection, subject_id: str) -> TableCount:
        """Deletes the subject's authorizations (a purge)."""
        table = authorizations_table
        result = await conn.execute(delete(table).where(table.c.subject_id == subject_id))
        return TableCount(table.name, int(result.rowcount))

    # --- internals -------------------------------------------------------------------

    async def _locked_with_partner(
        self, conn: AsyncConnection, subject_id: str, partner_id: str, purpose: int
    ) -> tuple[Authorization | None, str]:
        """The authorization row, locked, and the partner's display name, after
        making sure the subject (its row share-locked) and the partner exist."""
        await self._subjects.require(conn, subject_id, lock="share")
        partner_name = await self._clients.partner_name(conn, partner_id)
        return await self.locked(conn, subject_id, partner_id, purpose), partner_name

    async def _upsert(self, conn: AsyncConnection, grant: Authorization) -> None:
        a = authorizations_table.c
        values: dict[str, object] = {
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


def authorization_query() -> Select[Any]:
    """Authorizations with their partner's display name (``partner_name``)."""
    a, k = authorizations_table.c, clients_table.c
    return select(authorizations_table, k.display_name.label("partner_name")).join(
        clients_table, k.client_id == a.partner_id
    )


def authorization_of(row: Row[Any]) -> Authorization:
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
