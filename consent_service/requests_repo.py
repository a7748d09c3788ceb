"""Idempotent requests (``requests``): the unit of work of every mutation but the
access log's and a purge's.

``RequestsRepo.idempotent`` opens the transaction, claims the ``request_id`` in it
(inserting its ``requests`` row), hands the connection to the change, and stores
the serialized response beside the claim. A repeat of the request finds the row
and gets the stored response back; the state change and the response commit
together or not at all. Claiming the request first also serialises writers: on
SQLite the insert takes the database write lock, on PostgreSQL a concurrent
insert of the same id waits for the first to commit; the change then reads rows
``FOR UPDATE`` (a no-op on SQLite) so read-modify-write does not race. A request
row names the subject it was about, so that a purge deletes it with the subject.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import begin_write, dialect_insert

from .consents import RequestKey, ensure_same_request
from .purge import TableCount
from .tables import requests_table

__all__ = ["Change", "Committed", "RequestsRepo"]

T = TypeVar("T")

#: A mutation inside the unit of work: the connection of its transaction in, the
#: domain value it made out.
Change = Callable[[AsyncConnection], Awaitable[T]]


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


def _no_subject(_: object) -> str | None:
    return None


class RequestsRepo:
    """The ``requests`` table: each mutation's claim and stored response."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def idempotent(
        self,
        key: RequestKey,
        now: datetime,
        change: Change[T],
        encode: Callable[[T], bytes],
        *,
        subject_of: Callable[[T], str | None] = _no_subject,
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
                ensure_same_request(stored.method, stored.request_sha256, key)
                return Committed(response=bytes(stored.response))
            value = await change(conn)
            response = encode(value)
            await conn.execute(
                update(requests_table)
                .where(r.request_id == key.request_id)
                .values(response=response, subject_id=subject_of(value))
            )
            return Committed(response=response, value=value)

    async def delete_of(self, conn: AsyncConnection, subject_id: str) -> TableCount:
        """Deletes the requests about the subject (a purge)."""
        result = await conn.execute(delete(requests_table).where(requests_table.c.subject_id == subject_id))
        return TableCount(requests_table.name, int(result.rowcount))
