"""The feature service's tables: which records were applied, and each subject's
aggregates. Raw records are never kept here (the ingest service owns them).

- ``applied_records`` (producer_id, record_id) -> subject: the idempotency keys.
- ``subject_features`` subject -> state JSON (``SubjectState``), record count.

A batch of records is applied in one transaction (``FeatureStore.batch``): its
dedupe rows and its state changes commit together, so a batch redelivered after a
crash applies nothing twice and loses nothing. On PostgreSQL the state rows are
locked (``SELECT ... FOR UPDATE``) so that replicas applying at once do not lose
each other's updates; SQLite serializes writers on its database lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import UtcDateTime, create_schema, dialect_insert

from .aggregates import SubjectState

__all__ = [
    "MAX_ID_LENGTH",
    "FeatureStore",
    "RecordKey",
    "StoreBatch",
    "StoredState",
    "applied_records",
    "metadata",
    "subject_features",
]

#: Longest producer, record or subject id the tables take.
MAX_ID_LENGTH = 256

metadata = MetaData()

applied_records = Table(
    "applied_records",
    metadata,
    Column("producer_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("record_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("subject_id", String(MAX_ID_LENGTH), nullable=False, index=True),
    Column("applied_time", UtcDateTime(), nullable=False),
)

subject_features = Table(
    "subject_features",
    metadata,
    Column("subject_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("state", Text, nullable=False),
    Column("record_count", BigInteger, nullable=False),
    Column("updated_time", UtcDateTime(), nullable=False),
)

#: (producer_id, record_id): the idempotency key of a record.
RecordKey = tuple[str, str]


@dataclass(frozen=True)
class StoredState:
    """One subject's stored aggregates."""

    subject_id: str
    state: SubjectState
    record_count: int
    updated_time: datetime


class FeatureStore:
    """The feature service's database access (SQLAlchemy Core, async)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_schema(self) -> None:
        await create_schema(self._engine, metadata)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[StoreBatch]:
        """One transaction: committed when the block exits normally, rolled back
        (nothing written) when it raises."""
        async with self._engine.begin() as conn:
            yield StoreBatch(conn)

    async def get(self, subject_id: str) -> StoredState | None:
        """The subject's aggregates, or None if no record was applied for it."""
        query = select(
            subject_features.c.state, subject_features.c.record_count, subject_features.c.updated_time
        ).where(subject_features.c.subject_id == subject_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredState(subject_id, SubjectState.from_json(row.state), int(row.record_count), row.updated_time)


class StoreBatch:
    """The statements of one ``FeatureStore.batch`` transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def claim(self, records: Mapping[RecordKey, str], now: datetime) -> set[RecordKey]:
        """Inserts a dedupe row per record key (-> subject id) not seen before and
        returns the keys inserted now: the records to apply. A key another
        transaction is inserting waits for it to finish (PostgreSQL) or for the
        database lock (SQLite), so a record is claimed once."""
        if not records:
            return set()
        rows = [
            {"producer_id": p, "record_id": r, "subject_id": records[(p, r)], "applied_time": now}
            for p, r in sorted(records)  # a fixed order: no deadlock between concurrent batches
        ]
        table = applied_records
        stmt = (
            dialect_insert(self._dialect, table)
            .on_conflict_do_nothing(index_elements=[table.c.producer_id, table.c.record_id])
            .returning(table.c.producer_id, table.c.record_id)
        )
        result = await self._conn.execute(stmt, rows)
        return {(row.producer_id, row.record_id) for row in result}

    async def lock_states(self, subject_ids: Sequence[str], now: datetime) -> dict[str, SubjectState]:
        """The current aggregates of ``subject_ids`` (new subjects get an empty
        state), locked until the transaction ends."""
        if not subject_ids:
            return {}
        ordered = sorted(set(subject_ids))
        empty = SubjectState().to_json()
        table = subject_features
        # Create missing rows first so that FOR UPDATE has a row to lock even for a
        # subject two replicas see for the first time at once.
        await self._conn.execute(
            dialect_insert(self._dialect, table).on_conflict_do_nothing(index_elements=[table.c.subject_id]),
            [{"subject_id": s, "state": empty, "record_count": 0, "updated_time": now} for s in ordered],
        )
        query = (
            select(table.c.subject_id, table.c.state)
            .where(table.c.subject_id.in_(ordered))
            .order_by(table.c.subject_id)
            .with_for_update()
        )
        result = await self._conn.execute(query)
        return {row.subject_id: SubjectState.from_json(row.state) for row in result}

    async def save_states(self, states: Mapping[str, SubjectState], now: datetime) -> None:
        """Writes back aggregates obtained from ``lock_states``."""
        if not states:
            return
        table = subject_features
        stmt = (
            update(table)
            .where(table.c.subject_id == bindparam("b_subject_id"))
            .values(
                state=bindparam("b_state"),
                record_count=bindparam("b_record_count"),
                updated_time=bindparam("b_updated_time"),
            )
        )
        await self._conn.execute(
            stmt,
            [
                {
                    "b_subject_id": subject_id,
                    "b_state": state.to_json(),
                    "b_record_count": state.record_count,
                    "b_updated_time": now,
                }
                for subject_id, state in sorted(states.items())
            ],
        )
