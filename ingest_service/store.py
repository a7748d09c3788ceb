"""The ingest store: raw records and the transactional outbox (SQLAlchemy Core).

Two tables:

- ``records``: one row per (producer_id, record_id), the idempotency key, holding
  the current version of the record (its revision, whether it is a retraction's
  tombstone, its deterministic serialization and sha256), indexed by subject and
  event time for ListRecords.
- ``outbox``: one row per stored batch with changes still to be handed to the
  feature service: the ids of its records that the feature service must hear
  about (new versions, corrections, retractions), in order. Rows are written in
  the same transaction as their records, so a crash can neither lose an
  accepted record nor deliver one that was not stored. One row per batch, not
  per record, because the outbox row is write-path cost paid on every record
  (about a third of the database work when it was one row each). A row delivers
  each record's version current when it is claimed: a row queued for an older
  version that is still undelivered carries the newer one, and the feature
  service, which keeps the revision it applied, counts it once.

Every batch is a few statements whatever its size: one multi-row ``INSERT ... ON
CONFLICT DO NOTHING RETURNING`` for the records, one ``SELECT`` of the versions
already stored (only when some keys were), one executemany ``UPDATE`` for the
corrections, one outbox row.

Works on SQLite (aiosqlite) and PostgreSQL (asyncpg).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import (
    PurgedTable,
    PurgeLedger,
    UtcDateTime,
    begin_write,
    create_schema,
    dialect_insert,
    purge_requests_table,
)

from .revisions import NewRecord, StoredVersion, StoreOutcome, judge

__all__ = [
    "ExportPosition",
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
    "purge_requests",
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
    Column("revision", BigInteger, nullable=False),  # Record.revision of the stored version
    Column("retracted", Boolean, nullable=False),  # a retraction's tombstone: not listed, not exported
    Index("ix_records_subject_event", "subject_id", "event_time"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("producer_id", String(64), nullable=False),
    # The record ids to deliver, one per line (ids are printable: never a newline).
    Column("record_ids", Text, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_time", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    # The dispatcher's "what is due" and "when is the next one due" stay cheap on a long backlog.
    Index("ix_outbox_next_attempt", "next_attempt_time"),
)

#: The answers of the consent service's purge requests (``creditscore.runtime.PurgeLedger``).
purge_requests = purge_requests_table(metadata)

_LAST_ERROR_LIMIT = 1000
# Keys per ``IN (...)`` list: well below every driver's bound-parameter limit.
_IN_CHUNK = 500


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
    """One stored record as the training export reads it."""

    producer_id: str
    record_id: str
    subject_id: str
    source: int
    payload: bytes
    ingest_time: datetime

    @property
    def position(self) -> ExportPosition:
        return ExportPosition(self.subject_id, self.producer_id, self.record_id)


@dataclass(frozen=True)
class ExportPosition:
    """Where a training export page ended: its last row's sort key."""

    subject_id: str
    producer_id: str
    record_id: str


@dataclass(frozen=True)
class RecordPosition:
    """Where a ListRecords page ended: the last row's sort key."""

    event_time: datetime
    producer_id: str
    record_id: str


@dataclass(frozen=True)
class OutboxItem:
    """One record of a claimed outbox row (``id`` is the row's), with the version
    of the record current at the claim."""

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
    record_ids: tuple[str, ...]
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
        self._purges = PurgeLedger(purge_requests)

    async def create_schema(self) -> None:
        """Creates the tables and indexes that are missing."""
        await create_schema(self._engine, metadata)

    # -- ingest -----------------------------------------------------------------

    async def store_batch(
        self, producer_id: str, new: Sequence[NewRecord], ingest_time: datetime
    ) -> tuple[dict[str, StoreOutcome], int]:
        """Stores ``new`` (unique record ids) for ``producer_id`` in one
        transaction; see ``store_rounds``, of which this is the one-round case."""
        outcomes, queued = await self.store_rounds(producer_id, [new], ingest_time)
        return outcomes[0], queued

    async def store_rounds(
        self, producer_id: str, rounds: Sequence[Sequence[NewRecord]], ingest_time: datetime
    ) -> tuple[list[dict[str, StoreOutcome]], int]:
        """Stores ``rounds`` of records for ``producer_id`` in one transaction, round
        after round (the record ids of one round are unique; a later round holds
        later versions of records of an earlier one, sent in the same batch).

        Each record is inserted when its key is new; otherwise it is judged
        against the stored version (``revisions.judge``) and replaces it when it
        is a higher revision. One outbox row lists the records whose change the
        feature service must hear about. Returns, per round, what happened to
        each record id, and the number of records queued for delivery.

        The insert is ``ON CONFLICT DO NOTHING ... RETURNING`` the keys it wrote,
        so a concurrent batch that stored the same key first is seen as such: the
        stored versions of the other keys are read ``FOR UPDATE`` (PostgreSQL;
        SQLite has one writer at a time) and judged.
        """
        results: list[dict[str, StoreOutcome]] = []
        if not any(rounds):
            return [{} for _ in rounds], 0
        queue: dict[str, None] = {}  # ordered, each id once
        async with self._engine.begin() as conn:
            for batch in rounds:
                outcomes, queued = await self._store_round(conn, producer_id, batch, ingest_time)
                results.append(outcomes)
                queue.update(dict.fromkeys(queued))
            if queue:
                await conn.execute(
                    outbox.insert().values(
                        producer_id=producer_id,
                        record_ids="\n".join(queue),
                        record_count=len(queue),
                        attempts=0,
                        next_attempt_time=ingest_time,
                        last_error=None,
                    )
                )
        return results, len(queue)

    async def _store_round(
        self,
        conn: AsyncConnection,
        producer_id: str,
        new: Sequence[NewRecord],
        ingest_time: datetime,
    ) -> tuple[dict[str, StoreOutcome], list[str]]:
        """One round: what happened to each record id, and the ids to deliver."""
        if not new:
            return {}, []
        # A fixed order, so that concurrent batches lock keys in the same order.
        ordered = sorted(new, key=lambda r: r.record_id)
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
                "revision": r.revision,
                "retracted": r.retracted,
            }
            for r in ordered
        ]
        insert = (
            dialect_insert(self._dialect, records)
            .on_conflict_do_nothing(index_elements=["producer_id", "record_id"])
            .returning(records.c.record_id)
        )
        inserted = {row.record_id for row in await conn.execute(insert, rows)}
        outcomes: dict[str, StoreOutcome] = {}
        queue: list[str] = []
        replaced: list[tuple[NewRecord, int]] = []
        others = [r for r in ordered if r.record_id not in inserted]
        stored = await self._stored_versions(conn, producer_id, [r.record_id for r in others])
        for r in ordered:
            if r.record_id in inserted:
                outcomes[r.record_id] = StoreOutcome.INSERTED
                if r.enqueue:
                    queue.append(r.record_id)
                continue
            verdict = judge(stored[r.record_id], r)
            outcomes[r.record_id] = verdict.outcome
            if verdict.outcome is StoreOutcome.REPLACED:
                replaced.append((r, verdict.source))
                if verdict.enqueue:
                    queue.append(r.record_id)
        if replaced:
            await conn.execute(
                update(records)
                .where(
                    records.c.producer_id == bindparam("b_producer_id"),
                    records.c.record_id == bindparam("b_record_id"),
                )
                .values(
                    source=bindparam("b_source"),
                    event_time=bindparam("b_event_time", type_=UtcDateTime),
                    payload=bindparam("b_payload", type_=LargeBinary),
                    content_hash=bindparam("b_content_hash", type_=LargeBinary),
                    ingest_time=bindparam("b_ingest_time", type_=UtcDateTime),
                    revision=bindparam("b_revision", type_=BigInteger),
                    retracted=bindparam("b_retracted", type_=Boolean),
                ),
                [
                    {
                        "b_producer_id": producer_id,
                        "b_record_id": r.record_id,
                        "b_source": source,
                        "b_event_time": r.event_time,
                        "b_payload": r.payload,
                        "b_content_hash": r.content_hash,
                        "b_ingest_time": ingest_time,
                        "b_revision": r.revision,
                        "b_retracted": r.retracted,
                    }
                    for r, source in replaced
                ],
            )
        return outcomes, queue

    @staticmethod
    async def _stored_versions(
        conn: AsyncConnection, producer_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredVersion]:
        """The stored versions of ``record_ids``, locked until the transaction ends
        (PostgreSQL), so that two corrections of one record cannot interleave."""
        if not record_ids:
            return {}
        c = records.c
        result = await conn.execute(
            select(
                c.record_id, c.subject_id, c.source, c.revision, c.retracted, c.content_hash, c.payload
            )
            .where(c.producer_id == producer_id, c.record_id.in_(record_ids))
            .order_by(c.record_id)
            .with_for_update()
        )
        return {
            row.record_id: StoredVersion(
                subject_id=row.subject_id,
                source=row.source,
                revision=int(row.revision),
                retracted=bool(row.retracted),
                content_hash=bytes(row.content_hash),
                payload=bytes(row.payload),
            )
            for row in result
        }

    # -- reads ------------------------------------------------------------------

    async def list_by_subject(
        self, subject_id: str, limit: int, after: RecordPosition | None = None
    ) -> list[StoredRow]:
        """Up to ``limit`` of a subject's records (current versions; tombstones left
        out), newest event time first (ties by producer and record id,
        descending), starting after ``after``."""
        ev, pid, rid = records.c.event_time, records.c.producer_id, records.c.record_id
        query = select(pid, rid, ev, records.c.payload, records.c.ingest_time).where(
            records.c.subject_id == subject_id, records.c.retracted == false()
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

    async def export_after(self, after: ExportPosition | None, limit: int) -> list[ExportRow]:
        """Up to ``limit`` records (current versions; tombstones left out) in the
        order (subject, producer, record id), starting after the position
        ``after``: keyset pages along the subject index, so that a subject's
        records come together. The key never changes (a correction keeps its
        subject and id), so a record corrected during an export is sent once."""
        sid, pid, rid = records.c.subject_id, records.c.producer_id, records.c.record_id
        query = select(
            pid, rid, sid, records.c.source, records.c.payload, records.c.ingest_time
        ).where(records.c.retracted == false())
        if after is not None:
            query = query.where(
                # The first term alone bounds the index range; the second skips what was sent.
                sid >= after.subject_id,
                or_(
                    sid > after.subject_id,
                    pid > after.producer_id,
                    and_(pid == after.producer_id, rid > after.record_id),
                ),
            )
        query = query.order_by(sid, pid, rid).limit(limit)
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

    # -- forgetting a subject -----------------------------------------------------

    async def purge_subject(
        self, request_id: str, subject_id: str, source: int | None, now: datetime
    ) -> list[PurgedTable]:
        """Deletes the subject's records (of ``source``, or all when None),
        retraction tombstones included, and takes them out of the outbox: a row
        left without records is deleted, one that still lists other records is
        rewritten without them. One transaction; the answer is kept under
        ``request_id``, so a retry answers the same counts and deletes nothing
        more. A delivery already claimed from the outbox may still reach the
        feature service: the consent service's second pass takes care of it."""
        c = records.c
        where = [c.subject_id == subject_id]
        if source is not None:
            where.append(c.source == source)
        async with self._engine.begin() as conn:
            done = await self._purges.claim(conn, request_id, now)
            if done is not None:
                return done
            gone: dict[str, set[str]] = {}
            for row in await conn.execute(
                select(c.producer_id, c.record_id).where(*where).order_by(c.producer_id, c.record_id)
                .with_for_update()
            ):
                gone.setdefault(row.producer_id, set()).add(row.record_id)
            deleted = (await conn.execute(delete(records).where(*where))).rowcount if gone else 0
            rows_deleted = rows_rewritten = 0
            for producer_id, record_ids in sorted(gone.items()):
                queued = await conn.execute(
                    select(outbox.c.id, outbox.c.record_ids)
                    .where(outbox.c.producer_id == producer_id)
                    .order_by(outbox.c.id)
                    .with_for_update()
                )
                for row in queued.all():
                    listed = row.record_ids.split("\n")
                    kept = [record_id for record_id in listed if record_id not in record_ids]
                    if len(kept) == len(listed):
                        continue
                    if kept:
                        await conn.execute(
                            update(outbox).where(outbox.c.id == row.id)
                            .values(record_ids="\n".join(kept), record_count=len(kept))
                        )
                        rows_rewritten += 1
                    else:
                        await conn.execute(delete(outbox).where(outbox.c.id == row.id))
                        rows_deleted += 1
            tables = [
                PurgedTable(records.name, int(deleted)),
                PurgedTable(outbox.name, rows_deleted, rows_rewritten),
            ]
            await self._purges.record(conn, request_id, tables, now)
        return tables

    async def subject_records(
        self, subject_id: str, after: tuple[str, str] | None, limit: int
    ) -> list[ExportRow]:
        """Up to ``limit`` of the subject's records (current versions, tombstones
        included) in key order (producer, record id), after the key ``after``."""
        pid, rid = records.c.producer_id, records.c.record_id
        query = select(
            pid, rid, records.c.subject_id, records.c.source, records.c.payload, records.c.ingest_time
        ).where(records.c.subject_id == subject_id)
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
        """Outbox rows due at ``now``, in id order, holding together at most
        ``limit`` records (but always the first due row whole: a row holds one
        batch, at most 1000), each record with its current version; the rows are
        leased until ``lease_until`` so that another dispatcher (another replica)
        skips them meanwhile, and a crashed one's rows come due again. Records
        that no longer exist (purged) are left out, and a row left with none is
        deleted."""
        query = (
            select(outbox.c.id, outbox.c.producer_id, outbox.c.record_ids, outbox.c.record_count,
                   outbox.c.attempts)
            .where(outbox.c.next_attempt_time <= now)
            .order_by(outbox.c.id)
            .limit(max(1, limit))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has no FOR UPDATE
        )
        # begin_write: on SQLite the claims of this process take turns (its driver
        # runs the SELECT outside a transaction, so two claims at once could both
        # read the same due rows); PostgreSQL's row locks and SKIP LOCKED do it there.
        async with begin_write(self._engine) as conn:
            taken: list[Row[Any, Any, Any, Any, Any]] = []
            total = 0
            for candidate in (await conn.execute(query)).all():
                if taken and total + candidate.record_count > limit:
                    break
                taken.append(candidate)
                total += candidate.record_count
            if not taken:
                return []
            wanted: dict[str, list[str]] = {}
            for row in taken:
                wanted.setdefault(row.producer_id, []).extend(row.record_ids.split("\n"))
            payloads: dict[tuple[str, str], bytes] = {}
            for producer_id, record_ids in wanted.items():
                unique = list(dict.fromkeys(record_ids))
                for start in range(0, len(unique), _IN_CHUNK):
                    result = await conn.execute(
                        select(records.c.record_id, records.c.payload).where(
                            records.c.producer_id == producer_id,
                            records.c.record_id.in_(unique[start:start + _IN_CHUNK]),
                        )
                    )
                    payloads.update(((producer_id, r.record_id), bytes(r.payload)) for r in result)
            items: list[OutboxItem] = []
            gone: list[int] = []
            for row in taken:
                found = [
                    OutboxItem(row.id, row.producer_id, record_id, row.attempts, payloads[(row.producer_id, record_id)])
                    for record_id in row.record_ids.split("\n")
                    if (row.producer_id, record_id) in payloads
                ]
                if found:
                    items.extend(found)
                else:
                    gone.append(row.id)
            if gone:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(gone)))
            leased = sorted({item.id for item in items})
            if leased:
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_(leased)).values(next_attempt_time=lease_until)
                )
        return items

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        """Removes delivered rows (each id once, however many of its records)."""
        if not ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(outbox).where(outbox.c.id.in_(sorted(set(ids)))))

    async def record_failures(self, failures: Sequence[OutboxFailure], error: str) -> None:
        """Notes a failed delivery: new attempt counts, retry times, the error."""
        failures = list({f.id: f for f in failures}.values())  # a row once, whatever its records
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
        """Records not yet delivered (due, backed off or leased), over every outbox row."""
        async with self._engine.connect() as conn:
            total = (await conn.execute(select(func.sum(outbox.c.record_count)))).scalar_one()
        return int(total or 0)

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
                    record_ids=tuple(row.record_ids.split("\n")),
                    attempts=row.attempts,
                    next_attempt_time=row.next_attempt_time,
                    last_error=row.last_error,
                )
                for row in await conn.execute(query)
            ]
