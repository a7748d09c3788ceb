"""Registered partners and producers (``clients``): registration, their credential
generations, and revocation when their contract ends. Services are configured,
not stored (``registry.load_service_credentials``); the rules are in ``registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import KIND_PARTNER, REVOKE_CLIENT, AlreadyExists, NotFound, dialect_insert

from . import revocation as revoke_rules
from .consents import RequestKey
from .registry import Client
from .requests_repo import Committed, RequestsRepo
from .revocation import RevocationRecord
from .revocations_repo import RevocationsRepo
from .tables import clients_table

__all__ = ["ClientsRepo"]


class ClientsRepo:
    """Registers, reads and revokes partners and producers."""

    def __init__(self, engine: AsyncEngine, requests: RequestsRepo, revocations: RevocationsRepo) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._requests = requests
        self._revocations = revocations

    async def get(self, client_id: str) -> Client | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(clients_table).where(clients_table.c.client_id == client_id))
            ).first()
        return None if row is None else _client(row)

    async def partner_name(self, conn: AsyncConnection, partner_id: str) -> str:
        """The display name of a registered partner; ``PARTNER_NOT_FOUND`` for
        another id (unknown, or a producer's)."""
        k = clients_table.c
        partner = (
            await conn.execute(
                select(k.display_name).where(k.client_id == partner_id, k.kind == KIND_PARTNER)
            )
        ).first()
        if partner is None:
            raise NotFound("no partner is registered under this id", reason="PARTNER_NOT_FOUND")
        return str(partner.display_name)

    # --- mutations (idempotent on the request key) -----------------------------------

    async def register(
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
                    candidate = replace(client, client_id=generated_id())
                if await self._insert(conn, candidate):
                    return candidate
                if generated_id is None:
                    raise AlreadyExists(
                        f"a client is already registered as {client.client_id!r}", reason="CLIENT_EXISTS"
                    )

        return await self._requests.idempotent(key, now, change, encode)

    async def revoke_tokens(
        self, key: RequestKey, *, client_id: str, note: str, now: datetime,
        encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes every token of a registered partner or producer issued so far:
        raises its generation and appends the entry. ``CLIENT_NOT_FOUND`` for an
        unknown id."""

        async def change(conn: AsyncConnection) -> RevocationRecord:
            client = await self._locked(conn, client_id)
            generation = await self._raise_generation(conn, client, now)
            return await self._revocations.append(conn, REVOKE_CLIENT, client_id, generation, now, note)

        return await self._requests.idempotent(key, now, change, encode)

    async def revoke(
        self, key: RequestKey, *, client_id: str, note: str, now: datetime,
        encode: Callable[[tuple[Client, RevocationRecord]], bytes],
    ) -> Committed[tuple[Client, RevocationRecord]]:
        """Ends a registered partner or producer: marks it revoked (kept: its
        lookups stay in subjects' access logs), raises its generation and appends
        the entry. Revoking it again appends another entry; ``revoke_time`` stays
        the first. ``CLIENT_NOT_FOUND`` for an unknown id."""
        k = clients_table.c

        async def change(conn: AsyncConnection) -> tuple[Client, RevocationRecord]:
            client = await self._locked(conn, client_id)
            generation = await self._raise_generation(conn, client, now)
            revoke_time = client.revoke_time or now
            await conn.execute(update(clients_table).where(k.client_id == client_id).values(revoke_time=revoke_time))
            entry = await self._revocations.append(
                conn, REVOKE_CLIENT, client_id, generation, now, note or revoke_rules.NOTE_CLIENT_REVOKED
            )
            return replace(client, token_generation=generation, revoke_time=revoke_time), entry

        return await self._requests.idempotent(key, now, change, encode)

    # --- internals -------------------------------------------------------------------

    async def _insert(self, conn: AsyncConnection, client: Client) -> bool:
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

    async def _locked(self, conn: AsyncConnection, client_id: str) -> Client:
        row = (
            await conn.execute(
                select(clients_table).where(clients_table.c.client_id == client_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("no partner or producer is registered under this id", reason="CLIENT_NOT_FOUND")
        return _client(row)

    async def _raise_generation(self, conn: AsyncConnection, client: Client, now: datetime) -> int:
        generation = revoke_rules.next_generation(client.token_generation, now)
        await conn.execute(
            update(clients_table)
            .where(clients_table.c.client_id == client.client_id)
            .values(token_generation=generation)
        )
        return generation


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
