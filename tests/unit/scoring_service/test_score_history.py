"""What the scoring domain records, on SQLite and PostgreSQL: a subject's score is
written when it changes (model version, state, score, feature values), never for a
vector without data; batches equal one-by-one scoring and cost a constant number
of statements; concurrent scores of one subject; purges and the migration keep the
latest-score pointer (``current_scores``) right."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from creditscore.common.v1 import common_pb2
from creditscore.runtime import InvalidArgument, Transactions, make_engine, upgrade_schema
from creditscore.scorecard.model import ScoreState
from scoring_service.lifecycle import Lifecycle
from scoring_service.migrations import MIGRATIONS
from scoring_service.registry import ModelRegistry
from scoring_service.scoring import MAX_BATCH_ITEMS, Scorer, recompute, validate_score_batch
from scoring_service.store import (
    ModelEventStore,
    ScoreRecord,
    ScoreRole,
    ScoreStore,
    current_scores,
    metadata,
    score_history,
)
from tests.holdings import rows_naming
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
A = [("pay_ontime_ratio_12m", 0.9), ("identity_verified", 1.0)]
B = [("pay_ontime_ratio_12m", 0.3), ("identity_verified", 1.0)]
C = [("pay_ontime_ratio_12m", 0.7), ("identity_verified", 0.0)]
IDENTITY_ONLY = [("identity_verified", 1.0)]


def card(version: str, *, shift: float) -> dict[str, Any]:
    """Two features; a subject at the top of both gets 600 + shift points."""

    def bins(points: list[float]) -> list[dict[str, Any]]:
        edges = [None, 0.5, None]
        return [{"lo": edges[i], "hi": edges[i + 1], "points": p} for i, p in enumerate(points)]

    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"hand-built {version}",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.5,
        "intercept_points": shift,
        "features": [
            {"name": "pay_ontime_ratio_12m", "coefficient": -1.0, "bins": bins([250.0, 300.0]),
             "missing": {"points": 270.0}},
            {"name": "identity_verified", "coefficient": -1.0, "bins": bins([260.0, 300.0]),
             "missing": {"points": 280.0}},
        ],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
    }


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    folder = tmp_path / "models"
    folder.mkdir()
    for version, shift in (("1.0.0", 0.0), ("1.1.0", 5.0)):
        (folder / f"scorecard-{version}.json").write_text(json.dumps(card(version, shift=shift)))
    return ModelRegistry.load(folder)  # 1.1.0 first


class Ticking:
    """A clock a second later at each reading (``step`` 0: a fixed one)."""

    def __init__(self, step: int = 1) -> None:
        self.now = T0
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now


@dataclass
class World:
    engine: AsyncEngine
    store: ScoreStore
    scorer: Scorer
    statements: list[str] = field(default_factory=list)

    async def history(self, subject_id: str) -> list[ScoreRecord]:
        return await self.store.history(subject_id, limit=1000)

    async def pointers(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(current_scores))).all()
        return {row.subject_id: row.score_id for row in rows}


async def open_world(url: str, registry: ModelRegistry, clock: Callable[[], datetime]) -> World:
    engine = make_engine(url)
    await upgrade_schema(engine, MIGRATIONS)
    store = ScoreStore(engine)
    lifecycle = await Lifecycle.open(registry, ModelEventStore(engine))
    world = World(engine, store, Scorer(lifecycle, store, clock=clock))

    def _count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement != "BEGIN":  # transaction control (SQLite's explicit begin), not work
            world.statements.append(statement)

    for watched in Transactions.of(engine).engines:  # the async engine and the store's one-step side
        event.listen(watched, "before_cursor_execute", _count)

    return world


@pytest.fixture
async def world(database_url: str, registry: ModelRegistry) -> AsyncIterator[World]:
    opened = await open_world(database_url, registry, Ticking())
    try:
        yield opened
    finally:
        await opened.engine.dispose()


@pytest.fixture
async def second_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/second.db"
        return
    assert POSTGRES_URL
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


# -- what is written ------------------------------------------------------------------


async def test_the_same_vector_again_answers_the_stored_score_and_writes_nothing(world: World):
    first = await world.scorer.score("s-1", A)
    assert first.id is not None and first.score_time == T0 and first.model_version == "1.1.0"
    again = await world.scorer.score("s-1", A)
    assert again == first  # its id and its time: when this score was first computed
    # Features in another order, or sent without a value, are the same vector.
    same = await world.scorer.score("s-1", [("history_months", None), *reversed(A)])
    assert same == first
    assert [r.id for r in await world.history("s-1")] == [first.id]
    assert await world.pointers() == {"s-1": first.id}


async def test_a_changed_vector_writes_a_new_row_and_going_back_is_a_change_too(world: World):
    a = await world.scorer.score("s-1", A)
    b = await world.scorer.score("s-1", B)
    assert b.id != a.id and b.score != a.score and b.score_time > a.score_time
    # A value that does not move the score is still another vector.
    c = await world.scorer.score("s-1", [("pay_ontime_ratio_12m", 0.31), ("identity_verified", 1.0)])
    assert c.score == b.score and c.id != b.id
    back = await world.scorer.score("s-1", A)
    assert back.id not in (a.id, b.id, c.id) and back.score == a.score
    assert [r.id for r in await world.history("s-1")] == [back.id, c.id, b.id, a.id]
    assert (await world.history("s-1"))[0] == back
    assert await world.pointers() == {"s-1": back.id}


async def test_a_model_activation_writes_a_new_row_for_the_same_vector(world: World):
    lifecycle = world.scorer.lifecycle
    first = await world.scorer.score("s-1", A)
    await lifecycle.activate("a-1", "1.0.0")
    older = await world.scorer.score("s-1", A)
    assert (older.model_version, older.score) == ("1.0.0", first.score - 5) and older.id != first.id
    assert await world.scorer.score("s-1", A) == older
    await lifecycle.rollback("r-1")
    back = await world.scorer.score("s-1", A)
    assert back.model_version == "1.1.0" and back.id not in (first.id, older.id)
    assert [(r.model_version, r.id) for r in await world.history("s-1")] == [
        ("1.1.0", back.id), ("1.0.0", older.id), ("1.1.0", first.id)
    ]


async def test_a_vector_without_data_is_scored_but_never_stored(world: World):
    for features in ([], [("identity_verified", None), ("pay_ontime_ratio_12m", None)]):
        score = await world.scorer.score("ghost", features)
        assert (score.state, score.score, score.id, score.model_version) == (
            ScoreState.INSUFFICIENT_DATA, None, None, "1.1.0")
    assert set((await rows_naming(world.engine, metadata, "ghost")).values()) == {0}
    # A known subject sent without data: the same answer, and its history stays as it was.
    stored = await world.scorer.score("s-1", A)
    blank = await world.scorer.score("s-1", [])
    assert blank.id is None and blank.state is ScoreState.INSUFFICIENT_DATA
    assert await world.history("s-1") == [stored]
    assert await world.scorer.score("s-1", A) == stored
    # Data the model does not use is data: INSUFFICIENT_DATA, stored as the change it is.
    unused = await world.scorer.score("s-1", [("history_months", 4.0)])
    assert unused.state is ScoreState.INSUFFICIENT_DATA and unused.id is not None


async def test_a_challenger_shadow_scores_the_changes(world: World):
    await world.scorer.lifecycle.set_challenger("c-1", "1.0.0")
    first = await world.scorer.score("s-1", A)
    assert await world.scorer.score("s-1", A) == first
    changed = await world.scorer.score("s-1", B)
    rows = await world.history("s-1")
    assert [(r.role, r.model_version, r.shadow_of) for r in rows] == [
        (ScoreRole.CHALLENGER, "1.0.0", changed.id), (ScoreRole.CHAMPION, "1.1.0", None),
        (ScoreRole.CHALLENGER, "1.0.0", first.id), (ScoreRole.CHAMPION, "1.1.0", None),
    ]
    assert rows[0].features == dict(B) and rows[0].score_time == changed.score_time
    # The pointer names the champion's row, never the shadow.
    assert await world.pointers() == {"s-1": changed.id}


# -- batches ------------------------------------------------------------------------------


BATCH = [
    ("s-1", A), ("s-2", B), ("s-1", A), ("s-3", []), ("s-1", B), ("s-2", B),
    ("s-4", C), ("s-1", A), ("s-5", IDENTITY_ONLY), ("s-4", [*C, ("history_months", None)]),
]


async def canonical(world: World, replies: list[ScoreRecord]) -> tuple[list[ScoreRecord], list[ScoreRecord]]:
    """The replies and every row, with each champion row's id replaced by its rank
    among champion rows (a challenger's row by none, its ``shadow_of`` so too):
    a batch inserts its champions, then their shadows; one by one they alternate."""
    rows = [r for subject in sorted({s for s, _ in BATCH}) for r in await world.history(subject)]
    rank = {score_id: i for i, score_id in enumerate(sorted(r.id for r in rows if r.role is ScoreRole.CHAMPION))}

    def norm(record: ScoreRecord) -> ScoreRecord:
        own = rank[record.id] if record.role is ScoreRole.CHAMPION and record.id is not None else None
        return replace(record, id=own, shadow_of=None if record.shadow_of is None else rank[record.shadow_of])

    def order(record: ScoreRecord) -> tuple[int, str]:
        return (record.id if record.id is not None else record.shadow_of or 0, record.role.value)

    return [norm(r) for r in replies], sorted((norm(r) for r in rows), key=order)


async def test_a_batch_equals_the_same_items_scored_one_by_one(database_url, second_url, registry):
    """The same items, on two databases at the same instant: one batch against one
    call per item. The same replies and rows (ids compared by their order)."""
    one_by_one = await open_world(database_url, registry, Ticking(step=0))
    batched = await open_world(second_url, registry, Ticking(step=0))
    try:
        for world in (one_by_one, batched):
            await world.scorer.lifecycle.set_challenger("c-1", "1.0.0")
            await world.scorer.score("s-2", B)  # a subject with a stored score already
            await world.scorer.score("s-4", A)
        singles = [await one_by_one.scorer.score(subject, features) for subject, features in BATCH]
        batch = await batched.scorer.score_batch(BATCH)
        assert [(r.subject_id, r.outcome(), r.id is None) for r in batch] == [
            (r.subject_id, r.outcome(), r.id is None) for r in singles]
        assert await canonical(batched, batch) == await canonical(one_by_one, singles)
        # s-1 goes A -> B -> A within the batch: a row each; s-2 and s-4's second
        # items are no change; s-3 has no data.
        assert [r.id is None for r in batch] == [False] * 3 + [True] + [False] * 6
        assert batch[2] == batch[0] and batch[5] == batch[1] and batch[9] == batch[6]
        assert len({batch[0].id, batch[4].id, batch[7].id}) == 3
        assert len(await batched.history("s-1")) == 2 * 3  # three champions, three shadows
        assert await batched.pointers() == {"s-1": batch[7].id, "s-2": batch[1].id, "s-4": batch[6].id,
                                            "s-5": batch[8].id}
    finally:
        await one_by_one.engine.dispose()
        await batched.engine.dispose()


async def test_a_batch_costs_the_same_statements_whatever_its_size(world: World):
    await world.scorer.lifecycle.set_challenger("c-1", "1.0.0")
    await world.scorer.score("warm", A)  # connections open, nothing but the scoring counted
    counts: dict[str, list[int]] = {"new": [], "same": [], "mixed": []}
    for size in (1, 50):
        items = [(f"n{size}-{i}", A if i % 2 else B) for i in range(size)]
        for kind, batch in (
            ("new", items),  # every subject new: rows, shadows and pointers written
            ("same", items),  # the same again: nothing to write
            ("mixed", [(s, B if f is A else A) if i % 3 == 0 else (s, f) for i, (s, f) in enumerate(items)]),
        ):
            world.statements.clear()
            replies = await world.scorer.score_batch(batch)
            assert len(replies) == size and all(r.id is not None for r in replies)
            counts[kind].append(len(world.statements))
    # Read; then, with changes: champions, shadows, pointers.
    assert counts == {"new": [4, 4], "same": [1, 1], "mixed": [4, 4]}, counts
    assert len(await world.history("n50-0")) == 4  # B then A, each with its shadow


def test_batch_validation_names_every_bad_field_of_every_item():
    assert validate_score_batch([("a", A), ("a", [])]) == [("a", dict(A)), ("a", {})]
    assert len(validate_score_batch([("a", [])] * MAX_BATCH_ITEMS)) == MAX_BATCH_ITEMS
    for items in ([], [("a", [])] * (MAX_BATCH_ITEMS + 1)):
        with pytest.raises(InvalidArgument) as info:
            validate_score_batch(items)
        assert [(v.field, v.description) for v in info.value.violations] == [
            ("items", f"must hold 1 to {MAX_BATCH_ITEMS} items")
        ]
    with pytest.raises(InvalidArgument) as info:
        validate_score_batch([
            ("ok", A),
            ("", [("identity_verified", 1.0), ("identity_verified", 0.0)]),
            ("ok-2", [("nope", 1.0), ("history_months", math.inf)]),
        ])
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("items[1].subject_id", "must be set"),
        ("items[1].features[1].name", "duplicate of items[1].features[0]"),
        ("items[2].features[0].name", "unknown feature 'nope'"),
        ("items[2].features[1].value", "must be a finite number (leave it unset for no data)"),
    ]


async def test_a_bad_item_refuses_the_batch_and_writes_nothing(world: World):
    with pytest.raises(InvalidArgument):
        await world.scorer.score_batch([("s-1", A), ("s-2", [("nope", 1.0)])])
    assert await world.history("s-1") == [] and await world.pointers() == {}


# -- concurrency -------------------------------------------------------------------------


async def test_concurrent_scores_of_one_subject_in_one_replica_write_one_row(world: World, monkeypatch):
    # Every call reads before any writes: each finds the change still to be written.
    calls = 7
    everyone_read = asyncio.Barrier(calls)
    read = world.store.latest

    async def read_then_wait(subject_ids):  # noqa: ANN001, ANN202
        found = await read(subject_ids)
        await everyone_read.wait()
        return found

    monkeypatch.setattr(world.store, "latest", read_then_wait)
    replies = await asyncio.gather(*(world.scorer.score("s-1", A) for _ in range(calls - 1)),
                                   world.scorer.score_batch([("s-1", A), ("s-2", B)]))
    singles, batch = replies[:6], replies[6]
    assert len({r.id for r in singles}) == 1 and batch[0] == singles[0]
    assert [r.id for r in await world.history("s-1")] == [singles[0].id]


async def test_two_replicas_scoring_one_subject_at_once_never_fail(database_url, registry, monkeypatch):
    """Two replicas (no lock in common) that both read before either writes both
    write the change: two equal rows, both valid; the pointer names the later one,
    which answers from then on; a purge takes both."""
    one = await open_world(database_url, registry, Ticking())
    two = await open_world(database_url, registry, Ticking())
    both_read = asyncio.Barrier(2)
    for world in (one, two):
        read = world.store.latest

        async def read_then_wait(subject_ids, read=read):  # noqa: ANN001, ANN202
            found = await read(subject_ids)
            await both_read.wait()
            return found

        monkeypatch.setattr(world.store, "latest", read_then_wait)
    try:
        first, second = await asyncio.gather(one.scorer.score("raced", A), two.scorer.score_batch([("raced", A)] * 3))
        rows = await one.history("raced")
        assert len(rows) == 2 and {first.id, second[0].id} == {r.id for r in rows}
        assert rows[0].outcome() == rows[1].outcome() and rows[0].features == rows[1].features == dict(A)
        assert second[0] == second[1] == second[2]
        assert all(recompute(registry, r).score == r.score for r in rows)
        latest = max(r.id for r in rows)
        assert await one.pointers() == {"raced": latest}
        monkeypatch.undo()
        assert (await one.scorer.score("raced", A)).id == latest == (await two.scorer.score("raced", A)).id
        assert len(await one.history("raced")) == 2
        tables = await two.scorer.purge("p-1", "raced", 0)
        assert [(t.table, t.deleted) for t in tables] == [("score_history", 2), ("current_scores", 1)]
    finally:
        await one.engine.dispose()
        await two.engine.dispose()


# -- purges and the migration ---------------------------------------------------------


async def test_a_full_purge_leaves_no_row_or_pointer_of_the_subject(world: World):
    await world.scorer.score("s-1", A)
    await world.scorer.score("s-1", B)
    other = await world.scorer.score("s-2", A)
    assert (await rows_naming(world.engine, metadata, "s-1"))["current_scores"] == 1
    tables = await world.scorer.purge("p-1", "s-1", 0)
    assert [(t.table, t.deleted, t.rewritten) for t in tables] == [("score_history", 2, 0), ("current_scores", 1, 0)]
    assert set((await rows_naming(world.engine, metadata, "s-1", skip={"purge_requests"})).values()) == {0}
    assert await world.pointers() == {"s-2": other.id}
    # Scored again: a first score, as for someone new.
    assert (await world.scorer.score("s-1", A)).id not in (None, other.id)


async def test_a_source_purge_moves_the_pointer_to_the_latest_row_left(world: World):
    payments = common_pb2.DATA_SOURCE_PAYMENTS
    kept = await world.scorer.score("s-1", IDENTITY_ONLY)
    await world.scorer.score("s-1", A)  # uses payments: purged
    await world.scorer.score("s-2", B)  # only ever scored with payments: nothing left
    tables = await world.scorer.purge("p-1", "s-1", payments)
    assert [(t.table, t.deleted, t.rewritten) for t in tables] == [("score_history", 1, 0), ("current_scores", 0, 1)]
    assert await world.history("s-1") == [kept]
    # The vector without the purged source is the latest score left: no new row.
    assert await world.scorer.score("s-1", IDENTITY_ONLY) == kept
    tables = await world.scorer.purge("p-2", "s-2", payments)
    assert [(t.table, t.deleted, t.rewritten) for t in tables] == [("score_history", 1, 0), ("current_scores", 1, 0)]
    assert await world.pointers() == {"s-1": kept.id}
    # A purge that deletes none of the subject's rows leaves its pointer alone.
    tables = await world.scorer.purge("p-3", "s-1", payments)
    assert [(t.table, t.deleted, t.rewritten) for t in tables] == [("score_history", 0, 0), ("current_scores", 0, 0)]


async def test_the_migration_points_every_subject_at_its_latest_champion_row(database_url, registry):
    engine = make_engine(database_url)
    try:
        await upgrade_schema(engine, MIGRATIONS, "scoring_0002")
        result = registry.get("1.1.0").score_one(dict(A))

        def row(score_id: int, subject_id: str, role: str, shadow_of: int | None = None) -> dict[str, Any]:
            return {
                "id": score_id, "subject_id": subject_id, "model_version": result.model_version,
                "state": result.state.value, "score": result.score, "band": result.band.value,
                "probability_of_bad": result.probability_of_bad, "coverage": result.coverage,
                "reasons": [r._asdict() for r in result.reasons], "features": dict(A),
                "score_time": T0 + timedelta(minutes=score_id), "role": role, "improvements": [],
                "shadow_of": shadow_of,
            }

        async with engine.begin() as conn:
            await conn.execute(score_history.insert(), [
                row(1, "s-1", "CHAMPION"), row(2, "s-1", "CHALLENGER", 1), row(3, "s-1", "CHAMPION"),
                row(4, "s-2", "CHAMPION"), row(5, "s-1", "CHALLENGER", 3),
            ])
        await upgrade_schema(engine, MIGRATIONS)
        async with engine.connect() as conn:
            pointers = {r.subject_id: r.score_id for r in (await conn.execute(select(current_scores))).all()}
        assert pointers == {"s-1": 3, "s-2": 4}
        lifecycle = await Lifecycle.open(registry, ModelEventStore(engine), clock=Ticking())
        scorer = Scorer(lifecycle, ScoreStore(engine), clock=Ticking())
        assert (await scorer.score("s-1", A)).id == 3  # the same score as the latest: answered from it
    finally:
        await engine.dispose()
