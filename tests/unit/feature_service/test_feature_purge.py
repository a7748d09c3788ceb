"""Forgetting a subject, or one source of it, on SQLite and PostgreSQL: the
aggregates become those of a subject that never had the source, a retraction
keeps its record's source, a retried request answers the same; and the
migration that gives earlier rows their source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import select

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import SOURCE_OF_BODY, features_of_source
from creditscore.features.engine import rebuild_state
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import InvalidArgument, PurgedTable, make_engine, to_timestamp
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.migrations import MIGRATIONS
from feature_service.store import FeatureStore, applied_records

NOW = datetime(2026, 11, 1, tzinfo=UTC)
PAYMENTS, COMMERCE = common_pb2.DATA_SOURCE_PAYMENTS, common_pb2.DATA_SOURCE_COMMERCE


@pytest.fixture
def book(store: FeatureStore) -> FeatureBook:
    return FeatureBook(store, clock=lambda: NOW)


@pytest.fixture(scope="module")
def population():
    return simulate(8, seed=9, as_of=NOW - timedelta(days=1))


def richest(population) -> str:
    return max(population.subjects, key=lambda s: len(s.sources)).subject_id


async def test_a_source_purge_leaves_the_state_of_a_subject_without_it(book, store, population):
    envelopes = [(producer_of(r), r) for r in population.records]
    await book.apply(envelopes)
    sid = richest(population)
    others = [r for _, r in envelopes if r.subject_id != sid]
    before_others = {s.subject_id: await store.get(s.subject_id) for s in population.subjects if s.subject_id != sid}

    tables = await book.purge("p-1", sid, PAYMENTS)
    mine = [r for _, r in envelopes if r.subject_id == sid]
    kept = [r for r in mine if SOURCE_OF_BODY[r.WhichOneof("body")] != PAYMENTS]
    assert tables == [PurgedTable("applied_records", len(mine) - len(kept)), PurgedTable("subject_features", 0, 1)]
    stored = await store.get(sid)
    assert stored is not None and stored.state == rebuild_state(kept) and stored.record_count == len(kept)
    vector = (await book.vector(sid)).values
    assert all(vector[name] is None for name in features_of_source(PAYMENTS))
    assert {r.source for r in await store.applied_of(sid)} == {SOURCE_OF_BODY[r.WhichOneof("body")] for r in kept}
    # Nobody else's aggregates moved.
    assert {s: await store.get(s) for s in before_others} == before_others
    assert others

    # A retry answers the same; the same purge under a new id finds nothing left.
    assert await book.purge("p-1", sid, PAYMENTS) == tables
    assert await book.purge("p-2", sid, PAYMENTS) == [
        PurgedTable("applied_records", 0), PurgedTable("subject_features", 0, 1)]
    # Forgetting the subject altogether.
    assert await book.purge("p-3", sid, 0) == [
        PurgedTable("applied_records", len(kept)), PurgedTable("subject_features", 1)]
    assert await store.get(sid) is None and await store.applied_of(sid) == []


async def test_a_retraction_keeps_its_records_source(book, store):
    bill = R.Record(record_id="b-1", subject_id="s-1", event_time=to_timestamp(NOW - timedelta(days=3)),
                    bill=R.Bill(category=R.BILL_CATEGORY_UTILITY,
                                amount_due=R.Money(currency_code="USD", minor_units=100),
                                issue_time=to_timestamp(NOW - timedelta(days=40)),
                                due_time=to_timestamp(NOW - timedelta(days=10))))
    retraction = R.Record(record_id="b-1", subject_id="s-1", event_time=to_timestamp(NOW - timedelta(days=1)),
                          revision=1, retracted=True)
    await book.apply([("wallet", bill)])
    await book.apply([("wallet", retraction)])
    [row] = await store.applied_of("s-1")
    assert (row.source, row.feeds_features, row.revision) == (PAYMENTS, False, 1)
    # So the purge of that source takes the tombstone too, and nothing feeds the subject.
    assert await book.purge("p-1", "s-1", PAYMENTS) == [
        PurgedTable("applied_records", 1), PurgedTable("subject_features", 1)]
    assert await store.applied_of("s-1") == []


async def test_a_bad_purge_request_is_refused(book):
    with pytest.raises(InvalidArgument) as info:
        await book.purge("", "not a subject", 99)
    assert [v.field for v in info.value.violations] == ["request_id", "subject_id", "source"]


async def test_the_migration_gives_earlier_rows_their_source(sqlite_url, population):
    engine = make_engine(sqlite_url)
    try:
        def upgrade(sync, revision: str) -> None:
            config = MIGRATIONS.config()
            config.attributes["connection"] = sync
            command.upgrade(config, revision)

        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "feature_0001")
            for record in population.records[:50]:
                await conn.exec_driver_sql(
                    "INSERT INTO applied_records (producer_id, record_id, subject_id, applied_time, revision, "
                    "payload) VALUES (?, ?, ?, '2026-11-01 00:00:00', 0, ?)",
                    (producer_of(record), record.record_id, record.subject_id,
                     record.SerializeToString(deterministic=True)),
                )
            await conn.exec_driver_sql(
                "INSERT INTO applied_records (producer_id, record_id, subject_id, applied_time, revision, payload) "
                "VALUES ('wallet', 'gone', 's-1', '2026-11-01 00:00:00', 1, NULL)")
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "head")
        async with engine.connect() as conn:
            rows = dict((await conn.execute(select(applied_records.c.record_id, applied_records.c.source))).all())
        assert rows.pop("gone") == 0
        assert rows == {r.record_id: SOURCE_OF_BODY[r.WhichOneof("body")] for r in population.records[:50]}
    finally:
        await engine.dispose()
