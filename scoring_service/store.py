"""The scoring service's database: the score history of each subject, and the
history of which scorecard version was champion and challenger.

Tables, written with SQLAlchemy Core on SQLite or PostgreSQL:

- ``score_history``: one row per score *change* of a subject, with the feature
  vector and model version it came from (so that any score can be recomputed), its
  role (CHAMPION: the score the caller got; CHALLENGER: a shadow score stored
  beside it, ``shadow_of`` naming the champion's row) and its improvements. A
  score is written when it differs from the subject's latest champion row (see
  ``scoring.Scorer``), not at every lookup; rows are never updated;
- ``current_scores``: subject -> the id of its latest champion row, so that the
  latest row of a batch of subjects is one query by primary key, whatever the
  length of their histories. Written in the transaction that inserts the row it
  names; it holds nothing but that pointer (the export, which lists the rows,
  covers it), and a purge deletes or moves it with the rows;
- ``model_events``: the activation history. Each row carries the state after it
  (champion, challenger and the stack of champions a rollback walks back through),
  so that the current state is the row with the highest ``sequence``. A new event
  takes ``sequence = latest + 1``; the primary key makes two replicas that change
  the state at the same moment collide instead of both winning (the loser re-reads
  and retries, see ``lifecycle.Lifecycle``).

The schema is made and changed by the Alembic revisions in ``migrations/`` (run on
start or by ``python -m scoring_service migrate``): a change to these tables comes
with a new revision there. ``ScoreStore.create_schema`` only creates missing
tables, for tests and benchmarks on a scratch database.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.runtime import (
    PurgedTable,
    PurgeLedger,
    Transactions,
    UtcDateTime,
    create_schema,
    dialect_insert,
    purge_requests_table,
)
from creditscore.scorecard.model import Band, Improvement, Reason, ScoreResult, ScoreState

__all__ = [
    "MAX_IN_KEYS",
    "DriftWindow",
    "ModelEventRecord",
    "ModelEventStore",
    "ScoreRecord",
    "ScoreRole",
    "ScoreStore",
    "ScoreWriter",
    "current_scores",
    "metadata",
    "model_events",
    "purge_requests",
    "score_history",
]

metadata = MetaData()

score_history = Table(
    "score_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subject_id", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("state", String(32), nullable=False),  # ScoreState value
    Column("score", Integer, nullable=True),  # null when INSUFFICIENT_DATA
    Column("band", String(16), nullable=False),  # Band value
    Column("probability_of_bad", Double, nullable=True),
    Column("coverage", Double, nullable=False),
    Column("reasons", JSON, nullable=False),  # [{code, text, points_lost, feature}]
    Column("features", JSON, nullable=False),  # {name: value or null}, as scored
    Column("score_time", UtcDateTime, nullable=False),
    Column("role", String(16), nullable=False, server_default="CHAMPION"),  # ScoreRole value
    Column("improvements", JSON, nullable=True),  # [{feature, code, text, current_value, target_value, points_gain}]
    Column("shadow_of", BigInteger, nullable=True),  # a challenger row: the champion row's id
    Index("ix_score_history_subject_time", "subject_id", "score_time"),
    Index("ix_score_history_version_time", "model_version", "score_time"),
)

current_scores = Table(
    "current_scores",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    # The subject's latest champion row in score_history (no foreign key: a purge
    # deletes the rows and moves or deletes this in one transaction).
    Column("score_id", BigInteger, nullable=False),
)

model_events = Table(
    "model_events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("action", String(32), nullable=False),  # lifecycle.ModelAction value
    Column("version", String(64), nullable=False),
    Column("previous_version", String(64), nullable=False),
    Column("active_version", String(64), nullable=False),  # after the event
    Column("challenger_version", String(64), nullable=False),  # after the event; "" none
    Column("active_stack", JSON, nullable=False),  # champions, oldest first, current last
    Column("note", String(1000), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("request_id", String(128), nullable=True, unique=True),  # null: the first start
    Column("request_method", String(64), nullable=True),
    Column("request_digest", String(64), nullable=True),
)

#: The answers of the consent service's purge requests (``creditscore.runtime.PurgeLedger``).
purge_requests = purge_requests_table(metadata)


class ScoreRole(enum.Enum):
    CHAMPION = "CHAMPION"  # the score the caller got
    CHALLENGER = "CHALLENGER"  # a shadow score, stored only


def _improvement_dict(improvement: Improvement) -> dict[str, Any]:
    return {
        "feature": improvement.feature,
        "code": improvement.code,
        "text": improvement.text,
        "current_value": improvement.current_value,
        "target_value": improvement.target_value,
        "points_gain": improvement.points_gain,
    }


@dataclass(frozen=True)
class ScoreRecord:
    """One score as given and stored. ``id`` is None until stored."""

    subject_id: str
    model_version: str
    state: ScoreState
    score: int | None
    band: Band
    probability_of_bad: float | None
    coverage: float
    reasons: tuple[Reason, ...]
    features: Mapping[str, float | None]
    score_time: datetime
    id: int | None = None
    role: ScoreRole = ScoreRole.CHAMPION
    improvements: tuple[Improvement, ...] = ()
    shadow_of: int | None = None

    @classmethod
    def from_result(
        cls,
        subject_id: str,
        result: ScoreResult,
        features: Mapping[str, float | None],
        score_time: datetime,
        *,
        role: ScoreRole = ScoreRole.CHAMPION,
    ) -> ScoreRecord:
        return cls(
            subject_id=subject_id,
            model_version=result.model_version,
            state=result.state,
            score=result.score,
            band=result.band,
            probability_of_bad=result.probability_of_bad,
            coverage=result.coverage,
            reasons=result.reasons,
            features=dict(features),
            score_time=score_time,
            role=role,
            improvements=tuple(result.improvements),
        )

    def outcome(self) -> tuple[Any, ...]:
        """What the scorecard computed (not who, when or which row): two records
        with equal outcomes gave the same score, band, probability, coverage,
        reasons and improvements."""
        return (
            self.model_version, self.state, self.score, self.band, self.probability_of_bad,
            self.coverage, tuple(self.reasons), self.improvements,
        )


def _row(record: ScoreRecord) -> dict[str, Any]:
    return {
        "subject_id": record.subject_id,
        "model_version": record.model_version,
        "state": record.state.value,
        "score": record.score,
        "band": record.band.value,
        "probability_of_bad": record.probability_of_bad,
        "coverage": record.coverage,
        "reasons": [r._asdict() for r in record.reasons],
        "features": dict(record.features),
        "score_time": record.score_time,
        "role": record.role.value,
        "improvements": [_improvement_dict(i) for i in record.improvements],
        "shadow_of": record.shadow_of,
    }


def _record(row: Any) -> ScoreRecord:
    return ScoreRecord(
        id=row.id,
        subject_id=row.subject_id,
        model_version=row.model_version,
        state=ScoreState(row.state),
        score=row.score,
        band=Band(row.band),
        probability_of_bad=row.probability_of_bad,
        coverage=row.coverage,
        reasons=tuple(Reason(**r) for r in row.reasons),
        features=dict(row.features),
        score_time=row.score_time,
        role=ScoreRole(row.role),
        improvements=tuple(Improvement(**i) for i in (row.improvements or ())),
        shadow_of=row.shadow_of,
    )


@dataclass(frozen=True)
class DriftWindow:
    """The scores of one model version in a window (or a sample of them)."""

    scores: list[int | None]  # None: INSUFFICIENT_DATA
    vectors: list[dict[str, float | None]]
    in_window: int  # how many scores the window holds
    sampled: bool  # more than the limit: ``scores`` is a sample spread over the window


#: Subject ids (or score ids) per ``IN (...)`` list: below every driver's
#: bound-parameter limit, and above the largest batch (256), so one statement.
MAX_IN_KEYS = 500
_WINDOW_SLICE = 2000  # rows fetched at a time by ScoreStore.window
# A window sample keeps the rows whose (id * multiplier) mod modulus (a prime) falls
# under a threshold: a fixed pseudo-random choice that a regular pattern of ids
# (a challenger's row after each champion's) does not alias with.
_SAMPLE_MODULUS = 1_000_003
_SAMPLE_MULTIPLIER = 741_457


class ScoreStore:
    """The score history of one scoring service."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._tx = Transactions.of(engine)

    async def close(self) -> None:
        """Releases the synchronous side of the store (a server's stop hook)."""
        self._tx.close()

    async def create_schema(self) -> None:
        """Creates the missing tables and indexes (every table of this module),
        without migrations: the service migrates instead (``migrations/``)."""
        await create_schema(self._engine, metadata)

    async def purge_subject(
        self, request_id: str, subject_id: str, features: frozenset[str] | None, now: datetime
    ) -> list[PurgedTable]:
        """Deletes the subject's scores: all (``features`` None), or those whose
        stored vector holds a value of one of ``features`` (a purged source's), with
        the challenger scores that shadowed them. The subject's ``current_scores``
        row goes with all of them; with some, it moves to the latest champion row
        left when the one it named was deleted (rewritten), or goes when none is
        left. One transaction, idempotent on ``request_id`` (a retry answers the
        first call's counts)."""
        h = score_history.c
        c = current_scores.c
        ledger = PurgeLedger(purge_requests)
        async with self._engine.begin() as conn:
            done = await ledger.claim(conn, request_id, now)
            if done is not None:
                return done
            current_deleted = current_rewritten = 0
            if features is None:
                deleted = int((await conn.execute(score_history.delete().where(h.subject_id == subject_id))).rowcount)
                current_deleted = int(
                    (await conn.execute(current_scores.delete().where(c.subject_id == subject_id))).rowcount
                )
            else:
                rows = (
                    await conn.execute(
                        select(h.id, h.shadow_of, h.role, type_coerce(h.features, Text).label("vector"))
                        .where(h.subject_id == subject_id)
                        .order_by(h.id)
                        .with_for_update()
                    )
                ).all()
                doomed = set()
                for row in rows:
                    vector = row.vector if isinstance(row.vector, dict) else json.loads(row.vector)
                    if any(vector.get(name) is not None for name in features):
                        doomed.add(row.id)
                doomed |= {row.id for row in rows if row.shadow_of in doomed}
                ids = sorted(doomed)
                deleted = 0
                for start in range(0, len(ids), MAX_IN_KEYS):
                    part = ids[start:start + MAX_IN_KEYS]
                    result = await conn.execute(score_history.delete().where(h.id.in_(part)))
                    deleted += int(result.rowcount)
                pointer = (
                    await conn.execute(select(c.score_id).where(c.subject_id == subject_id).with_for_update())
                ).scalar_one_or_none()
                if pointer is not None and pointer in doomed:
                    left = [r.id for r in rows if r.id not in doomed and r.role == ScoreRole.CHAMPION.value]
                    if left:
                        await conn.execute(
                            current_scores.update().where(c.subject_id == subject_id).values(score_id=max(left))
                        )
                        current_rewritten = 1
                    else:
                        await conn.execute(current_scores.delete().where(c.subject_id == subject_id))
                        current_deleted = 1
            tables = [
                PurgedTable(score_history.name, deleted),
                PurgedTable(current_scores.name, current_deleted, current_rewritten),
            ]
            await ledger.record(conn, request_id, tables, now)
        return tables

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[ScoreWriter]:
        """One transaction: committed when the block exits normally, rolled back
        (nothing written) when it raises."""
        async with self._engine.begin() as conn:
            yield ScoreWriter(conn)

    async def latest(self, subject_ids: Collection[str]) -> dict[str, ScoreRecord]:
        """The latest champion row of each of ``subject_ids`` that has one
        (``latest_rows``): the lookup's read, in one step (see Transactions)."""
        return await self._tx.read(lambda conn: latest_rows(conn, subject_ids))

    async def record(self, record: ScoreRecord) -> int:
        """Stores one score, whatever the subject's latest one is; returns its id."""
        champion_id, _ = await self.record_scores(record, None)
        return champion_id

    async def record_scores(
        self, champion: ScoreRecord, challenger: ScoreRecord | None
    ) -> tuple[int, int | None]:
        """Stores the champion's score and, when given, the challenger's shadow
        score (its ``shadow_of`` set to the champion's id) in one transaction;
        returns both ids."""
        async with self.batch() as writer:
            champion_ids, challenger_ids = await writer.insert([champion], [challenger])
        return champion_ids[0], challenger_ids[0]

    async def history(
        self, subject_id: str, *, limit: int = 100, after: tuple[datetime, int] | None = None
    ) -> list[ScoreRecord]:
        """The subject's scores, newest first (by score time, then id), champion
        and challenger alike; ``after`` = ``(score_time, id)`` of the last score of
        the previous page."""
        h = score_history.c
        query = select(score_history).where(h.subject_id == subject_id)
        if after is not None:
            time, last_id = after
            query = query.where(or_(h.score_time < time, and_(h.score_time == time, h.id < last_id)))
        query = query.order_by(h.score_time.desc(), h.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(row) for row in rows]

    async def get(self, score_id: int) -> ScoreRecord | None:
        """One stored score by id, or None."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(score_history).where(score_history.c.id == score_id))).first()
        return None if row is None else _record(row)

    async def window(
        self, model_version: str, since: datetime | None, until: datetime, *, limit: int
    ) -> DriftWindow:
        """The scores ``model_version`` gave (any role) with ``since <= score_time <
        until``. A window of more than ``limit`` scores is sampled: about 95% of
        ``limit`` of them (never more than ``limit``), chosen pseudo-randomly by id,
        spread over the whole window.

        The feature vectors are read as text, in slices, and decoded in a worker
        thread, so that a large window does not hold up the scoring requests this
        process serves meanwhile."""
        h = score_history.c
        where = [h.model_version == model_version, h.score_time < until]
        if since is not None:
            where.append(h.score_time >= since)
        async with self._engine.connect() as conn:
            counted = await conn.execute(select(func.count()).select_from(score_history).where(*where))
            in_window = int(counted.scalar_one())
            sampled = in_window > limit
            if sampled:
                # Aim at 95% of the limit, so that the LIMIT below (which would drop
                # the oldest of the sample) rarely has anything to cut.
                threshold = _SAMPLE_MODULUS * limit * 19 // (20 * in_window)
                where.append((h.id * _SAMPLE_MULTIPLIER) % _SAMPLE_MODULUS < threshold)
            features_text = type_coerce(h.features, Text)  # raw JSON: decoded off the event loop
            query = (
                select(h.score, features_text)
                .where(*where)
                .order_by(h.score_time.desc(), h.id.desc())
                .limit(limit)
                .execution_options(yield_per=_WINDOW_SLICE)
            )
            scores: list[int | None] = []
            texts: list[Any] = []
            result = await conn.stream(query)
            async for part in result.partitions(_WINDOW_SLICE):  # the event loop gets a turn between slices
                scores.extend(r[0] for r in part)
                texts.extend(r[1] for r in part)
        vectors = await asyncio.to_thread(_decode_vectors, texts)
        return DriftWindow(scores, vectors, in_window, sampled)


def _decode_vectors(texts: list[str | dict[str, Any]]) -> list[dict[str, float | None]]:
    decode = json.loads
    return [decode(t) if isinstance(t, str) else dict(t) for t in texts]


def latest_rows(conn: Connection, subject_ids: Collection[str]) -> dict[str, ScoreRecord]:
    """The latest champion row of each of ``subject_ids`` that has one, by
    subject: one query through ``current_scores`` (by primary key) per
    ``MAX_IN_KEYS`` subjects, so its cost does not grow with their histories."""
    ordered = sorted(set(subject_ids))
    out: dict[str, ScoreRecord] = {}
    for start in range(0, len(ordered), MAX_IN_KEYS):
        for row in conn.execute(_LATEST_ROWS, {"subject_ids": ordered[start:start + MAX_IN_KEYS]}):
            out[row.subject_id] = _record(row)
    return out


#: ``latest_rows``' statement, built once (building one costs more than SQLite runs it).
_LATEST_ROWS = (
    select(score_history)
    .join(current_scores, and_(current_scores.c.score_id == score_history.c.id,
                               current_scores.c.subject_id == score_history.c.subject_id))
    .where(current_scores.c.subject_id.in_(bindparam("subject_ids", expanding=True)))
)


class ScoreWriter:
    """The statements of one ``ScoreStore.batch`` transaction. Each method is a
    fixed number of statements whatever the number of subjects or scores (up to
    ``MAX_IN_KEYS`` subjects, and as many rows as the driver binds in one
    statement: thousands), so that a batch costs what one score costs."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def latest(self, subject_ids: Collection[str]) -> dict[str, ScoreRecord]:
        """The latest champion row of each of ``subject_ids`` that has one, by
        subject (``latest_rows``), in this transaction."""
        return await self._conn.run_sync(latest_rows, subject_ids)

    async def insert(
        self, champions: Sequence[ScoreRecord], challengers: Sequence[ScoreRecord | None]
    ) -> tuple[list[int], list[int | None]]:
        """Stores ``champions`` (in order) and, beside each, its challenger's shadow
        score when there is one (``shadow_of`` its champion's id), and points each
        subject's ``current_scores`` row at its last champion here; returns the ids
        in the order given. Three statements at most.

        Two transactions storing scores of one subject at once both commit: its
        pointer ends on the higher id (an upsert that never moves it back)."""
        if len(challengers) != len(champions):
            raise ValueError("one challenger (or None) per champion")
        if not champions:
            return [], []
        champion_ids = await self._insert_rows([_row(r) for r in champions])
        shadows = [
            (i, {**_row(shadow), "shadow_of": champion_ids[i]})
            for i, shadow in enumerate(challengers)
            if shadow is not None
        ]
        challenger_ids: list[int | None] = [None] * len(champions)
        if shadows:
            for (i, _), shadow_id in zip(shadows, await self._insert_rows([row for _, row in shadows]), strict=True):
                challenger_ids[i] = shadow_id
        last = {record.subject_id: score_id for record, score_id in zip(champions, champion_ids, strict=True)}
        upsert = dialect_insert(self._dialect, current_scores)
        upsert = upsert.on_conflict_do_update(
            index_elements=[current_scores.c.subject_id],
            set_={"score_id": upsert.excluded.score_id},
            where=current_scores.c.score_id < upsert.excluded.score_id,
        )
        # In key order: two batches locking the same subjects' rows (PostgreSQL)
        # take them in the same order, so they wait for each other, never deadlock.
        await self._conn.execute(
            upsert, [{"subject_id": subject_id, "score_id": last[subject_id]} for subject_id in sorted(last)]
        )
        return champion_ids, challenger_ids

    async def _insert_rows(self, rows: list[dict[str, Any]]) -> list[int]:
        """Inserts ``rows`` with one multi-row statement; their ids in row order.

        PostgreSQL returns them in that order when asked (``sort_by_parameter_order``).
        SQLite would insert row by row to do so; instead the rows go in one
        statement, which SQLite inserts in the order written, each taking the
        next rowid, and the ids returned are sorted (and checked against the
        subjects, so that a different order could not go unnoticed)."""
        h = score_history.c
        if self._dialect == "postgresql":
            stmt = score_history.insert().returning(h.id, h.subject_id, sort_by_parameter_order=True)
            returned = [(int(r.id), r.subject_id) for r in await self._conn.execute(stmt, rows)]
        else:
            stmt = score_history.insert().returning(h.id, h.subject_id)
            returned = sorted((int(r.id), r.subject_id) for r in await self._conn.execute(stmt, rows))
        if [subject for _, subject in returned] != [row["subject_id"] for row in rows]:
            raise RuntimeError("the database returned the inserted score ids in an unexpected order")
        return [score_id for score_id, _ in returned]


# ------------------------------------------------------------------ model events


@dataclass(frozen=True)
class ModelEventRecord:
    """One row of ``model_events``: an event and the state after it."""

    sequence: int
    action: str  # lifecycle.ModelAction value
    version: str
    previous_version: str
    active_version: str
    challenger_version: str  # "" when none
    active_stack: tuple[str, ...]  # oldest first; the last is active_version
    note: str
    event_time: datetime
    request_id: str | None = None
    request_method: str | None = None
    request_digest: str | None = None


def _event(row: Any) -> ModelEventRecord:
    return ModelEventRecord(
        sequence=int(row.sequence),
        action=row.action,
        version=row.version,
        previous_version=row.previous_version,
        active_version=row.active_version,
        challenger_version=row.challenger_version,
        active_stack=tuple(row.active_stack),
        note=row.note,
        event_time=row.event_time,
        request_id=row.request_id,
        request_method=row.request_method,
        request_digest=row.request_digest,
    )


class ModelEventStore:
    """The activation history (``model_events``); its table is made with
    ``score_history``'s (one metadata, one migration environment)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def latest(self) -> ModelEventRecord | None:
        """The event with the highest sequence: the current state. None before the
        first event."""
        query = select(model_events).order_by(model_events.c.sequence.desc()).limit(1)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _event(row)

    async def by_request_id(self, request_id: str) -> ModelEventRecord | None:
        query = select(model_events).where(model_events.c.request_id == request_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _event(row)

    async def append(self, event: ModelEventRecord) -> bool:
        """Inserts ``event``; False when its sequence or its request id is taken
        (another replica or a concurrent retry got there first: re-read)."""
        values = {
            "sequence": event.sequence,
            "action": event.action,
            "version": event.version,
            "previous_version": event.previous_version,
            "active_version": event.active_version,
            "challenger_version": event.challenger_version,
            "active_stack": list(event.active_stack),
            "note": event.note,
            "event_time": event.event_time,
            "request_id": event.request_id,
            "request_method": event.request_method,
            "request_digest": event.request_digest,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(model_events.insert().values(**values))
        except IntegrityError:
            return False
        return True

    async def page(self, *, limit: int, before_sequence: int | None = None) -> list[ModelEventRecord]:
        """Events newest first, those with a sequence below ``before_sequence``."""
        query = select(model_events)
        if before_sequence is not None:
            query = query.where(model_events.c.sequence < before_sequence)
        query = query.order_by(model_events.c.sequence.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row) for row in rows]

    async def activation_times(self, actions: Sequence[str]) -> dict[str, datetime]:
        """Per version, the time of the latest event among ``actions`` that made it
        the champion."""
        e = model_events.c
        query = (
            select(e.active_version, func.max(e.event_time).label("t"))
            .where(e.action.in_(list(actions)))
            .group_by(e.active_version)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # max() returns its argument's type, so the value comes back aware (UtcDateTime).
        return {version: value for version, value in rows}
