"""The feature service's tables: which version of each record was applied, and
each subject's aggregates.

- ``applied_records`` (producer_id, record_id) -> subject, the revision applied,
  and that version's serialization while it feeds features (NULL for a
  retraction or a loan outcome). These rows are the idempotency keys, and the
  version kept is what a later correction takes out of the aggregates: the one
  this service applied, whatever order deliveries come in. (The ingest service
  owns the records; this is the copy the aggregates are made of, and goes with
  them.)
- ``subject_features`` subject -> state JSON (``SubjectState``), record count,
  and the materialized score of the subject's vector (``MaterializedScore``: the
  serialized ``scoring.v1.Score``, its model version, the scored sources with a
  value, and until when the vector stays the same; all NULL when the row has none).
  A lookup reads only these score columns (``FeatureStore.scores_of``); the index
  on ``valid_until`` finds the rows whose vector has moved since it was scored.

A batch of records is applied in one transaction (``FeatureStore.batch``): its
version rows and its state changes commit together, so a batch redelivered after
a crash applies nothing twice and loses nothing. On PostgreSQL the version rows
and then the state rows are locked (``SELECT ... FOR UPDATE``, each in key order)
so that replicas applying at once do not lose each other's updates; SQLite
serializes writers on its database lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.features.engine import SubjectState
from creditscore.runtime import (
    PurgedTable,
    PurgeLedger,
    Transactions,
    UtcDateTime,
    create_schema,
    dialect_insert,
    purge_requests_table,
)

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_IN_KEYS",
    "AppliedVersion",
    "FeatureStore",
    "MaterializedScore",
    "PageClaim",
    "RecordKey",
    "StaleRow",
    "StoreBatch",
    "StoredState",
    "applied_records",
    "metadata",
    "purge_requests",
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
    Column("revision", BigInteger, nullable=False),  # Record.revision applied
    # The applied version (deterministic serialization) while it feeds features.
    Column("payload", LargeBinary, nullable=True),
    # The record's common.v1.DataSource (kept through a retraction); 0 for a
    # retraction of a version never applied here.
    Column("source", Integer, nullable=False, server_default="0"),
)

subject_features = Table(
    "subject_features",
    metadata,
    Column("subject_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("state", Text, nullable=False),
    Column("record_count", BigInteger, nullable=False),
    Column("updated_time", UtcDateTime(), nullable=False),
    # The materialized score (``MaterializedScore``) of the vector of ``state``;
    # NULL when there is none (rows written without a scoring service).
    Column("score", LargeBinary, nullable=True),  # a serialized scoring.v1.Score
    Column("model_version", String(64), nullable=True),
    Column("sources_used", Integer, nullable=True),  # bit n set: common.v1.DataSource n had a value
    Column("valid_until", UtcDateTime(), nullable=True, index=True),
)

#: The answers of the consent service's purge requests (``creditscore.runtime.PurgeLedger``).
purge_requests = purge_requests_table(metadata)

#: (producer_id, record_id): the idempotency key of a record.
RecordKey = tuple[str, str]

#: Keys per ``IN (...)`` list: well below every driver's bound-parameter limit.
MAX_IN_KEYS = 500


@dataclass(frozen=True)
class AppliedVersion:
    """A version of a record: its subject, revision, serialization when it feeds
    features (None for a retraction or a loan outcome), and data source (0 when
    not known: a retraction of a version never applied here)."""

    subject_id: str
    revision: int
    payload: bytes | None
    source: int = 0


@dataclass(frozen=True)
class AppliedRow:
    """One row of ``applied_records`` as the export shows it."""

    producer_id: str
    record_id: str
    revision: int
    source: int
    feeds_features: bool
    applied_time: datetime


@dataclass(frozen=True)
class MaterializedScore:
    """A subject's score as the scoring service gave it for the vector of the
    subject's stored aggregates: the serialized ``scoring.v1.Score``, the model
    version that gave it, the scored sources with a value in that vector, and the
    instant that vector may change with no record applied (its ``valid_until``)."""

    score: bytes
    model_version: str
    sources_used: frozenset[int]
    valid_until: datetime


def _mask(sources: Iterable[int]) -> int:
    out = 0
    for source in sources:
        out |= 1 << source
    return out


def _sources(mask: int) -> frozenset[int]:
    return frozenset(n for n in range(mask.bit_length()) if mask >> n & 1)


def _score_columns(score: MaterializedScore | None) -> dict[str, object]:
    """The score columns' values for ``score`` (all None: no score)."""
    if score is None:
        return {"score": None, "model_version": None, "sources_used": None, "valid_until": None}
    return {
        "score": score.score,
        "model_version": score.model_version,
        "sources_used": _mask(score.sources_used),
        "valid_until": score.valid_until,
    }


def _score_of(row: Any) -> MaterializedScore | None:
    """The ``MaterializedScore`` of a row read with the score columns (None: none)."""
    if row.score is None:
        return None
    return MaterializedScore(bytes(row.score), row.model_version, _sources(int(row.sources_used)), row.valid_until)


@dataclass(frozen=True)
class StoredState:
    """One subject's stored aggregates."""

    subject_id: str
    state: SubjectState
    record_count: int
    updated_time: datetime


@dataclass(frozen=True)
class StaleRow:
    """A row read to be scored again (``FeatureStore.stale_page``): the subject,
    its aggregates as stored (the JSON text: the key of the conditional write
    back, ``FeatureStore.save_scores_if_unchanged``) and its record count."""

    subject_id: str
    state: str
    record_count: int
    valid_until: datetime | None  # of the score it has (None: none)


class FeatureStore:
    """The feature service's database access (SQLAlchemy Core, async)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # The lookup's read (get_many) in one step (see Transactions).
        self._tx = Transactions.of(engine)

    async def close(self) -> None:
        """Releases the synchronous side of the store (a server's stop hook)."""
        self._tx.close()

    async def applied_of(self, subject_id: str) -> list[AppliedRow]:
        """Every record version held for the subject, in key order."""
        t = applied_records.c
        query = (
            select(t.producer_id, t.record_id, t.revision, t.source, t.payload, t.applied_time)
            .where(t.subject_id == subject_id)
            .order_by(t.producer_id, t.record_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AppliedRow(r.producer_id, r.record_id, int(r.revision), int(r.source), r.payload is not None,
                       r.applied_time)
            for r in rows
        ]

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
        return (await self.get_many([subject_id])).get(subject_id)

    async def get_many(self, subject_ids: Collection[str]) -> dict[str, StoredState]:
        """The aggregates of those of ``subject_ids`` that have any, by subject id:
        one ``IN`` query per ``MAX_IN_KEYS`` distinct ids on one connection (one
        read transaction). Up to that many ids (every ``GetFeatureVectors``) that
        is one statement, so one consistent snapshot on either database whatever
        is applied meanwhile."""
        ordered = sorted(set(subject_ids))

        def read(conn: Connection) -> dict[str, StoredState]:
            out: dict[str, StoredState] = {}
            for start in range(0, len(ordered), MAX_IN_KEYS):
                rows = conn.execute(_STATES_OF, {"subject_ids": ordered[start:start + MAX_IN_KEYS]})
                for row in rows:
                    out[row.subject_id] = StoredState(
                        row.subject_id, SubjectState.from_json(row.state), int(row.record_count), row.updated_time
                    )
            return out

        return await self._tx.read(read)

    async def scores_of(self, subject_ids: Collection[str]) -> dict[str, MaterializedScore | None]:
        """The materialized scores of those of ``subject_ids`` that have an
        aggregates row, by subject id (None: a row without a score): only the score
        columns, read through the primary key with one statement per
        ``MAX_IN_KEYS`` distinct ids (one for every ``GetCurrentScores``), in one
        read transaction. No state JSON is read."""
        ordered = sorted(set(subject_ids))

        def read(conn: Connection) -> dict[str, MaterializedScore | None]:
            out: dict[str, MaterializedScore | None] = {}
            for start in range(0, len(ordered), MAX_IN_KEYS):
                for row in conn.execute(_SCORES_OF, {"subject_ids": ordered[start:start + MAX_IN_KEYS]}):
                    out[row.subject_id] = _score_of(row)
            return out

        return await self._tx.read(read)

    @property
    def claims(self) -> bool:
        """Whether the refresher claims its pages (``claim_stale_page``,
        ``claim_expired_page``): on PostgreSQL, where replicas share the table;
        not on SQLite (one writer, one process: ``stale_page``, ``expired_page``)."""
        return self._engine.dialect.name == "postgresql"

    async def stale_page(self, active_model: str, now: datetime, after: str, limit: int) -> list[StaleRow]:
        """Up to ``limit`` rows after ``after`` (a subject id, "" to start) in key
        order whose score is missing, of another model than ``active_model``, or
        expired by ``now``, with their aggregates: a page of a pass over the table
        (keyset by subject id), in one read statement and no lock."""
        query = _stale_query(active_model, now, after, limit)
        return await self._tx.read(lambda conn: [_stale_row(r) for r in conn.execute(query)])

    async def expired_page(
        self, now: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[StaleRow]:
        """Up to ``limit`` rows whose score expired by ``now`` (``valid_until <=
        now``), with their aggregates, in (valid_until, subject id) order after
        ``after`` (None: from the earliest), through the index on ``valid_until``;
        one read statement, no lock."""
        query = _expired_query(now, after, limit)
        return await self._tx.read(lambda conn: [_stale_row(r) for r in conn.execute(query)])

    async def claim_stale_page(self, active_model: str, now: datetime, after: str, limit: int) -> PageClaim:
        """``stale_page``, claimed (PostgreSQL): the rows are read with ``SELECT ...
        FOR UPDATE SKIP LOCKED`` in a transaction left open (``PageClaim``), so rows
        another transaction holds (another replica's page) are skipped, and the
        ones read stay locked until the page is saved or released."""
        return await self._claim(_stale_query(active_model, now, after, limit))

    async def claim_expired_page(
        self, now: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> PageClaim:
        """``expired_page``, claimed as ``claim_stale_page`` claims."""
        return await self._claim(_expired_query(now, after, limit))

    async def _claim(self, query: Any) -> PageClaim:
        if not self.claims:
            raise RuntimeError("pages are claimed on PostgreSQL only")
        conn = await self._engine.connect()
        try:
            await conn.begin()
            result = await conn.execute(query.with_for_update(skip_locked=True))
            rows = [_stale_row(r) for r in result]
        except BaseException:
            await conn.close()  # rolls back; the connection goes back to the pool
            raise
        return PageClaim(conn, rows)

    async def scored_rows(
        self, subject_ids: Collection[str]
    ) -> list[tuple[StaleRow, MaterializedScore | None]]:
        """The aggregates and score of those of ``subject_ids`` that have a row, in
        key order: one read statement per ``MAX_IN_KEYS`` ids, no lock."""
        ordered = sorted(set(subject_ids))

        def read(conn: Connection) -> list[tuple[StaleRow, MaterializedScore | None]]:
            out = []
            for start in range(0, len(ordered), MAX_IN_KEYS):
                for row in conn.execute(_SCORED_ROWS, {"subject_ids": ordered[start:start + MAX_IN_KEYS]}):
                    out.append((_stale_row(row), _score_of(row)))
            return out

        return await self._tx.read(read)

    async def save_scores_if_unchanged(self, scores: Sequence[tuple[StaleRow, MaterializedScore]]) -> None:
        """Writes each score to its row only if the row's aggregates are still the
        ones it was computed from (``StaleRow.state``): one executemany ``UPDATE``
        in one short write transaction, in key order. A row an apply or a purge
        changed (or deleted) since it was read is left as that wrote it: its own
        score is already there, or it has none and stays stale. On PostgreSQL the
        rows another transaction holds are skipped (one ``SELECT ... FOR UPDATE
        SKIP LOCKED`` first): a refresher's claimed page writes them itself."""
        if not scores:
            return
        params = _save_params(scores)
        claims = self.claims

        def write(conn: Connection) -> None:
            if claims:
                # PostgreSQL: a row another transaction holds (a refresher's claimed
                # page, an apply) is skipped rather than waited for: that one writes
                # the row's score itself (the page's, of the same vector), and a
                # lookup does not wait for a whole page to be scored.
                free = {row.subject_id for row in conn.execute(_LOCK_FREE, {
                    "subject_ids": [p["b_subject_id"] for p in params]})}
                todo = [p for p in params if p["b_subject_id"] in free]
            else:
                todo = params
            if todo:
                conn.execute(_SAVE_IF_UNCHANGED, todo)

        await self._tx.write(write)


#: ``FeatureStore.get_many``'s statement, built once (building one costs more
#: than SQLite runs it).
_STATES_OF = select(
    subject_features.c.subject_id, subject_features.c.state,
    subject_features.c.record_count, subject_features.c.updated_time,
).where(subject_features.c.subject_id.in_(bindparam("subject_ids", expanding=True)))

#: ``FeatureStore.scored_rows``'s statement, built once.
_SCORED_ROWS = select(
    subject_features.c.subject_id, subject_features.c.state, subject_features.c.record_count,
    subject_features.c.score, subject_features.c.model_version, subject_features.c.sources_used,
    subject_features.c.valid_until,
).where(subject_features.c.subject_id.in_(bindparam("subject_ids", expanding=True))).order_by(
    subject_features.c.subject_id)

#: The rows of ``subject_ids`` no other transaction holds, locked (PostgreSQL).
_LOCK_FREE = (
    select(subject_features.c.subject_id)
    .where(subject_features.c.subject_id.in_(bindparam("subject_ids", expanding=True)))
    .order_by(subject_features.c.subject_id)
    .with_for_update(skip_locked=True)
)

#: ``FeatureStore.scores_of``'s statement (the lookup's read), built once.
_SCORES_OF = select(
    subject_features.c.subject_id, subject_features.c.score, subject_features.c.model_version,
    subject_features.c.sources_used, subject_features.c.valid_until,
).where(subject_features.c.subject_id.in_(bindparam("subject_ids", expanding=True)))


def _stale_query(active_model: str, now: datetime, after: str, limit: int) -> Any:
    t = subject_features.c
    return (
        select(t.subject_id, t.state, t.record_count, t.valid_until)
        .where(
            t.subject_id > after,
            or_(t.score.is_(None), t.model_version != active_model, t.valid_until <= now),
        )
        .order_by(t.subject_id)
        .limit(limit)
    )


def _expired_query(now: datetime, after: tuple[datetime, str] | None, limit: int) -> Any:
    t = subject_features.c
    query = select(t.subject_id, t.state, t.record_count, t.valid_until).where(t.valid_until <= now)
    if after is not None:
        query = query.where(tuple_(t.valid_until, t.subject_id) > tuple_(
            bindparam("a_until", after[0], type_=UtcDateTime), bindparam("a_subject", after[1])))
    return query.order_by(t.valid_until, t.subject_id).limit(limit)


def _save_params(scores: Sequence[tuple[StaleRow, MaterializedScore]]) -> list[dict[str, object]]:
    """The binds of ``_SAVE_IF_UNCHANGED`` for ``scores``, in key order."""
    return [
        {"b_subject_id": row.subject_id, "b_state": row.state, **_score_binds(score)}
        for row, score in sorted(scores, key=lambda pair: pair[0].subject_id)
    ]


class PageClaim:
    """A page of rows claimed by the refresher (``FeatureStore.claim_stale_page``):
    its rows, locked by a transaction that stays open on its own connection until
    ``save`` commits it or ``release`` rolls it back. A replica that dies with a
    claim open loses its connection, and the database frees the rows with it."""

    def __init__(self, conn: AsyncConnection, rows: list[StaleRow]) -> None:
        self._conn: AsyncConnection | None = conn
        self.rows = rows

    @property
    def open(self) -> bool:
        return self._conn is not None

    async def save(self, scores: Sequence[tuple[StaleRow, MaterializedScore]]) -> None:
        """Writes the scores as ``FeatureStore.save_scores_if_unchanged`` does (one
        executemany, only to rows whose aggregates are the ones read) and commits
        the claim. The claim is over either way (rolled back when this raises)."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("this page claim is over")
        try:
            if scores:
                await conn.execute(_SAVE_IF_UNCHANGED, _save_params(scores))
            await conn.commit()
        finally:
            await conn.close()

    async def release(self) -> None:
        """Rolls the claim back, freeing its rows unwritten; nothing when it is over."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.rollback()
            finally:
                await conn.close()


def _stale_row(row: Any) -> StaleRow:
    return StaleRow(row.subject_id, row.state, int(row.record_count), row.valid_until)


def _save_if_unchanged() -> Any:
    t = subject_features.c
    return (
        update(subject_features)
        .where(t.subject_id == bindparam("b_subject_id"), t.state == bindparam("b_state"))
        .values(**_score_params())
    )


class StoreBatch:
    """The statements of one ``FeatureStore.batch`` transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name
        self._purges = PurgeLedger(purge_requests)

    # -- forgetting a subject (the consent service's purge) --------------------------

    async def claim_purge(self, request_id: str, now: datetime) -> list[PurgedTable] | None:
        """None when ``request_id`` is new (claimed by this transaction), else the
        answer an earlier purge under it committed. The transaction's first statement."""
        return await self._purges.claim(self._conn, request_id, now)

    async def record_purge(self, request_id: str, tables: Sequence[PurgedTable], now: datetime) -> None:
        await self._purges.record(self._conn, request_id, tables, now)

    async def delete_applied(self, subject_id: str, source: int | None) -> int:
        """Deletes the subject's record versions (of ``source``, or all when None)."""
        t = applied_records.c
        where = [t.subject_id == subject_id]
        if source is not None:
            where.append(t.source == source)
        return int((await self._conn.execute(delete(applied_records).where(*where))).rowcount)

    async def lock_state(self, subject_id: str) -> bool:
        """Locks the subject's aggregates row until the transaction ends, when there
        is one; whether there is."""
        t = subject_features.c
        row = (
            await self._conn.execute(
                select(t.subject_id).where(t.subject_id == subject_id).with_for_update()
            )
        ).first()
        return row is not None

    async def delete_state(self, subject_id: str) -> int:
        """Deletes the subject's aggregates (0 or 1 row)."""
        t = subject_features.c
        return int((await self._conn.execute(delete(subject_features).where(t.subject_id == subject_id))).rowcount)

    async def put_state(
        self, subject_id: str, state: SubjectState, now: datetime, score: MaterializedScore | None = None
    ) -> None:
        """Writes the subject's aggregates whether or not a row exists, with the
        score of their vector (None: the row has no score)."""
        t = subject_features.c
        values = {
            "state": state.to_json(), "record_count": state.record_count, "updated_time": now,
            **_score_columns(score),
        }
        await self._conn.execute(
            dialect_insert(self._dialect, subject_features)
            .values(subject_id=subject_id, **values)
            .on_conflict_do_update(index_elements=[t.subject_id], set_=values)
        )

    async def claim(
        self, versions: Mapping[RecordKey, AppliedVersion], now: datetime
    ) -> dict[RecordKey, AppliedVersion | None]:
        """Records ``versions`` whose key was never seen (their rows inserted now,
        mapped to None: apply them), and returns for every other key the version
        applied before, locked until the transaction ends: the caller compares
        revisions and ``replace``s the older ones. A key another transaction is
        inserting waits for it to finish (PostgreSQL) or for the database lock
        (SQLite), and is then seen as applied before."""
        if not versions:
            return {}
        keys = sorted(versions)  # a fixed order: no deadlock between concurrent batches
        table = applied_records
        stmt = (
            dialect_insert(self._dialect, table)
            .on_conflict_do_nothing(index_elements=[table.c.producer_id, table.c.record_id])
            .returning(table.c.producer_id, table.c.record_id)
        )
        rows = [
            {
                "producer_id": p,
                "record_id": r,
                "subject_id": versions[(p, r)].subject_id,
                "applied_time": now,
                "revision": versions[(p, r)].revision,
                "payload": versions[(p, r)].payload,
                "source": versions[(p, r)].source,
            }
            for p, r in keys
        ]
        fresh = {(row.producer_id, row.record_id) for row in await self._conn.execute(stmt, rows)}
        out: dict[RecordKey, AppliedVersion | None] = dict.fromkeys(fresh)
        seen = [key for key in keys if key not in fresh]
        for start in range(0, len(seen), MAX_IN_KEYS):
            part = seen[start:start + MAX_IN_KEYS]
            by_producer: dict[str, list[str]] = {}
            for producer_id, record_id in part:
                by_producer.setdefault(producer_id, []).append(record_id)
            for producer_id, record_ids in by_producer.items():
                query = (
                    select(table.c.record_id, table.c.subject_id, table.c.revision, table.c.payload,
                           table.c.source)
                    .where(table.c.producer_id == producer_id, table.c.record_id.in_(record_ids))
                    .order_by(table.c.record_id)
                    .with_for_update()
                )
                for row in await self._conn.execute(query):
                    payload = None if row.payload is None else bytes(row.payload)
                    out[(producer_id, row.record_id)] = AppliedVersion(
                        row.subject_id, int(row.revision), payload, int(row.source)
                    )
        return out

    async def replace(self, versions: Mapping[RecordKey, AppliedVersion], now: datetime) -> None:
        """Records newer versions of keys ``claim`` returned as applied before."""
        if not versions:
            return
        table = applied_records
        stmt = (
            update(table)
            .where(table.c.producer_id == bindparam("b_producer_id"), table.c.record_id == bindparam("b_record_id"))
            .values(
                subject_id=bindparam("b_subject_id"),
                revision=bindparam("b_revision", type_=BigInteger),
                payload=bindparam("b_payload", type_=LargeBinary),
                source=bindparam("b_source", type_=Integer),
                applied_time=bindparam("b_applied_time", type_=UtcDateTime),
            )
        )
        await self._conn.execute(
            stmt,
            [
                {
                    "b_producer_id": p,
                    "b_record_id": r,
                    "b_subject_id": v.subject_id,
                    "b_revision": v.revision,
                    "b_payload": v.payload,
                    "b_source": v.source,
                    "b_applied_time": now,
                }
                for (p, r), v in sorted(versions.items())
            ],
        )

    async def feeding_payloads(self, subject_id: str) -> list[bytes]:
        """The serialized versions that feed the subject's features now (this
        transaction's changes included): what ``aggregates.repair`` recomputes
        from (and a source purge rebuilds from). Reads the subject's whole
        history, so only a correction of its earliest record or latest identity
        report asks."""
        table = applied_records
        query = (
            select(table.c.payload)
            .where(table.c.subject_id == subject_id, table.c.payload.is_not(None))
            .order_by(table.c.producer_id, table.c.record_id)
        )
        return [bytes(row.payload) for row in await self._conn.execute(query)]

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

    async def save_states(
        self,
        states: Mapping[str, SubjectState],
        now: datetime,
        scores: Mapping[str, MaterializedScore] | None = None,
    ) -> None:
        """Writes back aggregates obtained from ``lock_states``, each with the score
        of its vector in ``scores`` (a subject not there: the row has no score, so
        that no score of older aggregates outlives them)."""
        if not states:
            return
        scores = scores or {}
        table = subject_features
        stmt = (
            update(table)
            .where(table.c.subject_id == bindparam("b_subject_id"))
            .values(
                state=bindparam("b_state"),
                record_count=bindparam("b_record_count"),
                updated_time=bindparam("b_updated_time"),
                **_score_params(),
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
                    **_score_binds(scores.get(subject_id)),
                }
                for subject_id, state in sorted(states.items())
            ],
        )


def _score_params() -> dict[str, Any]:
    """The score columns of an executemany ``UPDATE`` (``_score_binds`` gives their values)."""
    return {
        "score": bindparam("b_score", type_=LargeBinary),
        "model_version": bindparam("b_model_version", type_=String),
        "sources_used": bindparam("b_sources_used", type_=Integer),
        "valid_until": bindparam("b_valid_until", type_=UtcDateTime),
    }


def _score_binds(score: MaterializedScore | None) -> dict[str, object]:
    return {f"b_{name}": value for name, value in _score_columns(score).items()}


#: ``FeatureStore.save_scores_if_unchanged``'s statement, built once.
_SAVE_IF_UNCHANGED = _save_if_unchanged()
