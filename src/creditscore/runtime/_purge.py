"""What every store needs to forget a subject on the consent service's request.

The consent service drives a purge step by step and retries a step until it has
its answer; the answer (rows deleted and rewritten per table) goes on the subject's
deletion receipt. So that a retry after a lost answer (a crash between the
store's commit and the consent service's) gets the first call's counts, not
zeros, each store keeps the answer of every purge request id in a
``purge_requests`` table, written in the same transaction as the deletion::

    purge_requests = purge_requests_table(metadata)
    ledger = PurgeLedger(purge_requests)

    async with engine.begin() as conn:
        done = await ledger.claim(conn, request_id, now)
        if done is not None:
            return done                    # a retry: the first call's answer
        ...delete the subject's rows, count them...
        await ledger.record(conn, request_id, tables, now)

The claim is an ``INSERT ... ON CONFLICT DO NOTHING`` and the store's first
statement, so two calls with one request id are serialised (the second waits for
the first's commit, or the database lock) and the second reads the first's
answer. The table holds no subject id: request ids are the consent service's
(``<receipt id>.<step>``), and answers older than ``keep`` are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, MetaData, String, Table, Text, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ._db import UtcDateTime, dialect_insert
from ._errors import Violations
from ._ids import check_subject_id

__all__ = [
    "PURGE_REQUEST_ID_LENGTH",
    "PurgeLedger",
    "PurgedTable",
    "check_purge_request",
    "purge_requests_table",
]

PURGE_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True)
class PurgedTable:
    """What a purge did to one table: rows deleted, and rows kept but rewritten
    without the subject's data."""

    table: str
    deleted: int
    rewritten: int = 0


def purge_requests_table(metadata: MetaData) -> Table:
    """The ``purge_requests`` table of a store's ``metadata``."""
    return Table(
        "purge_requests",
        metadata,
        Column("request_id", String(PURGE_REQUEST_ID_LENGTH), primary_key=True),
        # [[table, deleted, rewritten], ...]; "" while the purge is being made.
        Column("tables", Text, nullable=False),
        Column("create_time", UtcDateTime(), nullable=False),
    )


class PurgeLedger:
    """The answers of purge requests, in ``table`` (see the module docstring)."""

    def __init__(self, table: Table, *, keep: timedelta = timedelta(days=30)) -> None:
        self._table = table
        self._keep = keep

    async def claim(self, conn: AsyncConnection, request_id: str, now: datetime) -> list[PurgedTable] | None:
        """Claims ``request_id`` for this transaction and returns None, or returns
        the answer an earlier call with it committed."""
        t = self._table.c
        inserted = await conn.execute(
            dialect_insert(conn.dialect.name, self._table)
            .values(request_id=request_id, tables="", create_time=now)
            .on_conflict_do_nothing(index_elements=[t.request_id])
            .returning(t.request_id)
        )
        if inserted.first() is not None:
            return None
        stored = (await conn.execute(select(t.tables).where(t.request_id == request_id))).scalar_one()
        return [PurgedTable(name, int(deleted), int(rewritten)) for name, deleted, rewritten in json.loads(stored)]

    async def record(
        self, conn: AsyncConnection, request_id: str, tables: Sequence[PurgedTable], now: datetime
    ) -> None:
        """Stores the answer of the claimed ``request_id``; drops answers past ``keep``."""
        t = self._table.c
        await conn.execute(
            update(self._table)
            .where(t.request_id == request_id)
            .values(tables=json.dumps([[p.table, p.deleted, p.rewritten] for p in tables]))
        )
        await conn.execute(delete(self._table).where(t.create_time < now - self._keep))


def check_purge_request(v: Violations, request_id: str, subject_id: str, source: int, sources: frozenset[int]) -> None:
    """The fields of a ``PurgeSubjectRequest``: a request id (1-128 printable
    characters), a subject id, and a source that is 0 (all) or one of ``sources``."""
    if not request_id:
        v.add("request_id", "must be set")
    elif len(request_id) > PURGE_REQUEST_ID_LENGTH or not request_id.isprintable():
        v.add("request_id", f"must be 1-{PURGE_REQUEST_ID_LENGTH} printable characters")
    check_subject_id(v, subject_id)
    if source and source not in sources:
        v.add("source", f"unknown data source {source}")
