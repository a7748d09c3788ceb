"""The ingest store: raw records and the transactional outbox (SQLAlchemy Core).

Two tables:

- ``records``: one row per (producer_id, record_id), the idempotency key, holding
  the record's deterministic serialization and its sha256, indexed by subject and
  event time for ListRecords.
- ``outbox``: one row per accepted record still to be handed to the feature
  service. Rows are written in the same transaction as their records, so a crash
  can neither lose an accepted record nor deliver one that was not stored.

Works on SQLite (aiosqlite) and PostgreSQL (asyncpg).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import UtcDateTime, create_schema, dialect_insert

__all__ = [
    "ExportRow",
    "NewRecord",
    "OutboxEntry",
    "OutboxFailure",
    "OutboxItem",
    "RecordPosition",
    "RecordStore",
    "StoreOutcome",
    "StoredRow",
    "metadata",
    "outbox",
    "records",
]

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("producer_id", String(64), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("source", Integer, nullable=False),  # common_pb2.DataSource
    Column("event_time", UtcDateTime, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # Record, deterministic serialization
    Column("content_hash", LargeBinary(32), nullable=False),  # sha256 of payload
    Column("ingest_time", UtcDateTime, nullable=False),
    Index("ix_records_subject_event", "subject_id", "event_time"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("producer_id", String(64), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_time", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
)

_LAST_ERROR_LIMIT = 1000


class StoreOutcome(enum.Enum):
    """What storing one record did."""

    INSERTED = "inserted"
    """Stored now (and queued, unless it is not a scoring input)."""
    SAME_CONTENT = "same_content"
    """Already stored with the same content hash: a duplicate."""
    OTHER_CONTENT = "other_content"
    """Already stored with a different content hash: a conflicting duplicate."""


@dataclass(frozen=True)
class NewRecord:
    """A valid, consented record ready to be stored for its producer."""

    record_id: str
    subject_id: str
    source: int
    event_time: datetime
    payload: bytes
    content_hash: bytes
    enqueue: bool
    """Whether it gets an outbox row (False for loan outcomes: training labels only)."""


@dataclass(frozen=True)
class StoredRow:
    """One stored record as ListRecords returns it."""

    producer_id: str
    record_id: str
    event_time: datetime
    payload: bytes
    ingest_time: datetime


@dataclass(frozen=True)
class ExportRow:
    """One stored record as the training export reads it (key order)."""

    producer_id: str
    record_id: str
    subject_id: str
    source: int
    payload: bytes
    ingest_time: datetime


@dataclass(frozen=True)
class RecordPosition:
    """Where a ListRecords page ended: the last row's sort key."""

    event_time: datetime
    producer_id: str
    record_id: str


@dataclass(frozen=True)
class OutboxItem:
    """A claimed outbox row with the record it delivers."""

    id: int
    producer_id: str
    record_id: str
    attempts: int
    payload: bytes


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as it stands (for operators and tests)."""

    id: int
    producer_id: str
    record_id: str
    attempts: int
    next_attempt_time: datetime
    last_error: str | None


@dataclass(frozen=True)
class OutboxFailure:
    """A failed delivery of one row: its new attempt count and when to retry."""

    id: int
    attempts: int
    next_attempt_time: datetime


class RecordStore:
    """Records and outbox on one engine. The engine is owned by the caller."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def create_schema(self) -> None:
        """Creates the tables and indexes that are missing."""
        await create_schema(self._engine, metadata)

    # -- ingest -----------------------------------------------------------------

    async def store_batch(
        self, producer_id: str, new: Sequence[NewRecord], ingest_time: datetime
    ) -> tuple[dict[str, StoreOutcome], int]:
        """Stores ``new`` (unique record ids) for ``producer_id`` in one transaction:
        the records that are not stored yet, and an outbox row for each of those
        with ``enqueue`` set. Returns what happened to each record id and the
        number of outbox rows written.

        The insert is ``ON CONFLICT DO NOTHING ... RETURNING`` the keys it wrote,
        so a concurrent batch that stored the same key first is seen as such:
        the rows it did not write are re-read and compared by content hash.
        """
        if not new:
            return {}, 0
        rows = [
            {
                "producer_id": producer_id,
                "record_id": r.record_id,
                "subject_id": r.subject_id,
                "source": r.source,
                "event_time": r.event_time,
                "payload": r.payload,
                "content_hash": r.content_hash,
                "ingest_time": ingest_time,
            }
            for r in new
        ]
        insert = (
            dialect_insert(self._dialect, records)
            .on_conflict_do_nothing(index_elements=["producer_id", "record_id"])
            .returning(records.c.record_id)
        )
        async with self._engine.begin() as conn:
            inserted = {row.record_id for row in await conn.execute(insert, rows)}
            outcomes: dict[str, StoreOutcome] = {}
            existing = await self._hashes(
                conn, producer_id, [r.record_id for r in new if r.record_id not in inserted]
            )
            for r in new:
                if r.record_id in inserted:
                    outcomes[r.record_id] = StoreOutcome.INSERTED
                elif existing.get(r.record_id) == r.content_hash:
                    outcomes[r.record_id] = StoreOutcome.SAME_CONTENT
                else:
                    outcomes[r.record_id] = StoreOutcome.OTHER_CONTENT
            queued = [
                {
                    "producer_id": producer_id,
                    "record_id": r.record_id,
                    "attempts": 0,
                    "next_attempt_time": ingest_time,
                    "last_error": None,
                }
                for r in new
                if r.enqueue and r.record_id in inserted
            ]
            if queued:
                await conn.execute(outbox.insert(), queued)
        return outcomes, len(queued)

    @staticmethod
    async def _hashes(
        conn: AsyncConnection, producer_id: str, record_ids: Sequence[str]
    ) -> dict[str, bytes]:
        if not record_ids:
            return {}
        result = await conn.execute(
            select(records.c.record_id, records.c.content_hash).where(
                records.c.producer_id == producer_id, records.c.record_id.in_(record_ids)
            )
        )
        return {row.record_id: bytes(row.content_hash) for row in result}

    # -- reads ------------------------------------------------------------------

    async def list_by_subject(
        self, subject_id: str, limit: int, after: RecordPosition | None = None
    ) -> list[StoredRow]:
        """Up to ``limit`` of a subject's records, newest event time first (ties by
        producer and record id, descending), starting after ``after``."""
        ev, pid, rid = records.c.event_time, records.c.producer_id, records.c.record_id
        query = select(pid, rid, ev, records.c.payload, records.c.ingest_time).where(
            records.c.subject_id == subject_id
        )
        if after is not None:
            query = query.where(
                or_(
                    ev < after.event_time,
                    and_(
                        ev == after.event_time,
                        or_(
                            pid < after.producer_id,
                            and_(pid == after.producer_id, rid < after.record_id),
                        ),
                    ),
                )
            )
        query = query.order_by(ev.desc(), pid.desc(), rid.desc()).limit(limit)
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [
                StoredRow(
                    producer_id=row.producer_id,
                    record_id=row.record_id,
                    event_time=row.event_time,
                    payload=bytes(row.payload),
                    ingest_time=row.ingest_time,
                )
                for row in result
            ]

    async def export_after(self, after: tuple[str, str] | None, limit: int) -> list[ExportRow]:
        """Up to ``limit`` records in primary-key order (producer, record id),
        starting after the key ``after``: keyset pages that stay cheap over the
        whole table."""
        pid, rid = records.c.producer_id, records.c.record_id
        query = select(
            pid, rid, records.c.subject_id, records.c.source, records.c.payload, records.c.ingest_time
        )
        if after is not None:
            query = query.where(or_(pid > after[0], and_(pid == after[0], rid > after[1])))
        query = query.order_by(pid, rid).limit(limit)
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [
                ExportRow(
                    producer_id=row.producer_id,
                    record_id=row.record_id,
                    subject_id=row.subject_id,
                    source=row.source,
                    payload=bytes(row.payload),
                    ingest_time=row.ingest_time,
                )
                for row in result
            ]

    # -- outbox -----------------------------------------------------------------

    async def claim_due(self, limit: int, now: datetime, lease_until: datetime) -> list[OutboxItem]:
        """Up to ``limit`` outbox rows due at ``now``, in id order, with their
        records; leased until ``lease_until`` so that another dispatcher (another
        replica) skips them meanwhile, and a crashed one's rows come due again.
        Rows whose record no longer exists (purged) are deleted, not returned."""
        query = (
            select(
                outbox.c.id,
                outbox.c.producer_id,
                outbox.c.record_id,
                outbox.c.attempts,
                records.c.payload,
            )
            .select_from(
                outbox.outerjoin(
                    records,
                    and_(
                        records.c.producer_id == outbox.c.producer_id,
                        records.c.record_id == outbox.c.record_id,
                    ),
                )
            )
            .where(outbox.c.next_attempt_time <= now)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=outbox)  # PostgreSQL; SQLite has no FOR UPDATE
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            gone = [row.id for row in rows if row.payload is None]
            items = [
                OutboxItem(row.id, row.producer_id, row.record_id, row.attempts, bytes(row.payload))
                for row in rows
                if row.payload is not None
            ]
            if gone:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(gone)))
            if items:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([item.id for item in items]))
                    .values(next_attempt_time=lease_until)
                )
        return items

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        """Removes delivered rows."""
        if not ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))

    async def record_failures(self, failures: Sequence[OutboxFailure], error: str) -> None:
        """Notes a failed delivery: new attempt counts, retry times, the error."""
        if not failures:
            return
        statement = (
            update(outbox)
            .where(outbox.c.id == bindparam("b_id"))
            .values(
                attempts=bindparam("b_attempts"),
                next_attempt_time=bindparam("b_next", type_=UtcDateTime),
                last_error=bindparam("b_error"),
            )
        )
        params = [
            {
                "b_id": f.id,
                "b_attempts": f.attempts,
                "b_next": f.next_attempt_time,
                "b_error": error[:_LAST_ERROR_LIMIT],
            }
            for f in failures
        ]
        async with self._engine.begin() as conn:
            await conn.execute(statement, params)

    async def outbox_backlog(self) -> int:
        """Outbox rows not yet delivered (due, backed off or leased)."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())

    async def next_due_time(self) -> datetime | None:
        """When the earliest outbox row comes due; None when the outbox is empty."""
        async with self._engine.connect() as conn:
            # min() keeps the column's type, so the value comes back as an aware datetime.
            value: datetime | None = (
                await conn.execute(select(func.min(outbox.c.next_attempt_time)))
            ).scalar_one()
        return value

    async def peek_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """The first ``limit`` outbox rows in id order, as they stand."""
        query = select(outbox).order_by(outbox.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [
                OutboxEntry(
                    id=row.id,
                    producer_id=row.producer_id,
                    record_id=row.record_id,
                    attempts=row.attempts,
                    next_attempt_time=row.next_attempt_time,
                    last_error=row.last_error,
                )
                for row in await conn.execute(query)
            ]
