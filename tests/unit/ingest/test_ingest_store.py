"""The ingest store on SQLite and PostgreSQL: idempotent batches, the outbox, listing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from creditscore.common.v1 import common_pb2
from creditscore.runtime import make_engine
from ingest_service.store import (
    NewRecord,
    OutboxFailure,
    RecordPosition,
    RecordStore,
    StoreOutcome,
    records,
)

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def store(engine):
    store = RecordStore(engine)
    await store.create_schema()
    return store


def new(record_id: str, *, subject: str = "s1", payload: bytes = b"p", event: datetime = T0,
        enqueue: bool = True) -> NewRecord:
    return NewRecord(record_id, subject, common_pb2.DATA_SOURCE_PAYMENTS, event, payload,
                     hashlib.sha256(payload).digest(), enqueue)


async def test_a_batch_is_stored_with_outbox_rows_for_queued_records_only(store):
    outcomes, queued = await store.store_batch(
        "prod", [new("a"), new("b", enqueue=False), new("c")], T0)
    assert outcomes == {"a": StoreOutcome.INSERTED, "b": StoreOutcome.INSERTED, "c": StoreOutcome.INSERTED}
    assert queued == 2
    entries = await store.peek_outbox()
    assert [(e.producer_id, e.record_id, e.attempts, e.last_error) for e in entries] == [
        ("prod", "a", 0, None), ("prod", "c", 0, None)]
    assert entries[0].id < entries[1].id
    assert await store.outbox_backlog() == 2
    assert await store.next_due_time() == T0


async def test_storing_again_is_a_duplicate_and_other_content_a_conflict(store):
    await store.store_batch("prod", [new("a", payload=b"one")], T0)
    outcomes, queued = await store.store_batch(
        "prod", [new("a", payload=b"one"), new("b")], T0 + timedelta(seconds=1))
    assert outcomes == {"a": StoreOutcome.SAME_CONTENT, "b": StoreOutcome.INSERTED} and queued == 1
    outcomes, queued = await store.store_batch("prod", [new("a", payload=b"two")], T0)
    assert outcomes == {"a": StoreOutcome.OTHER_CONTENT} and queued == 0
    # The key is per producer: another producer may use the same record id.
    outcomes, _ = await store.store_batch("other", [new("a", payload=b"two")], T0)
    assert outcomes == {"a": StoreOutcome.INSERTED}
    assert await store.outbox_backlog() == 3
    rows = await store.list_by_subject("s1", 10)
    assert sorted((r.producer_id, r.record_id, r.payload) for r in rows) == [
        ("other", "a", b"two"), ("prod", "a", b"one"), ("prod", "b", b"p")]
    assert all(r.ingest_time in (T0, T0 + timedelta(seconds=1)) for r in rows)


async def test_list_by_subject_is_newest_first_and_resumes_after_a_position(store):
    batch = [new(f"r{i}", event=T0 - timedelta(hours=i // 2)) for i in range(7)]
    batch.append(new("elsewhere", subject="s2"))
    await store.store_batch("prod", batch, T0)
    first = await store.list_by_subject("s1", 3)
    assert [r.record_id for r in first] == ["r1", "r0", "r3"]
    last = first[-1]
    rest = await store.list_by_subject("s1", 10, RecordPosition(last.event_time, last.producer_id, last.record_id))
    assert [r.record_id for r in rest] == ["r2", "r5", "r4", "r6"]
    assert [r.record_id for r in await store.list_by_subject("nobody", 10)] == []


async def test_claimed_rows_are_leased_then_come_due_again(store):
    await store.store_batch("prod", [new("a"), new("b"), new("c")], T0)
    lease = T0 + timedelta(seconds=15)
    claimed = await store.claim_due(2, T0, lease)
    assert [(i.record_id, i.attempts, i.payload) for i in claimed] == [("a", 0, b"p"), ("b", 0, b"p")]
    again = await store.claim_due(10, T0, lease)
    assert [i.record_id for i in again] == ["c"]
    assert await store.claim_due(10, T0, lease) == []
    assert [i.record_id for i in await store.claim_due(10, lease, lease + timedelta(seconds=15))] == ["a", "b", "c"]


async def test_failures_back_rows_off_and_delivered_rows_go(store):
    await store.store_batch("prod", [new("a"), new("b")], T0)
    a, b = await store.claim_due(10, T0, T0 + timedelta(seconds=15))
    await store.record_failures([OutboxFailure(a.id, 1, T0 + timedelta(seconds=1)),
                                 OutboxFailure(b.id, 3, T0 + timedelta(seconds=2))], "boom " * 500)
    entries = await store.peek_outbox()
    assert [(e.attempts, e.next_attempt_time) for e in entries] == [
        (1, T0 + timedelta(seconds=1)), (3, T0 + timedelta(seconds=2))]
    assert entries[0].last_error.startswith("boom") and len(entries[0].last_error) <= 1000
    assert await store.next_due_time() == T0 + timedelta(seconds=1)
    assert [i.attempts for i in await store.claim_due(10, T0 + timedelta(seconds=1), T0)] == [1]
    await store.delete_outbox([a.id])
    assert [e.record_id for e in await store.peek_outbox()] == ["b"]
    await store.delete_outbox([b.id])
    assert await store.outbox_backlog() == 0 and await store.next_due_time() is None


async def test_an_outbox_row_whose_record_was_purged_is_dropped(store, engine):
    await store.store_batch("prod", [new("a"), new("b")], T0)
    async with engine.begin() as conn:
        await conn.execute(delete(records).where(records.c.record_id == "a"))
    claimed = await store.claim_due(10, T0, T0 + timedelta(seconds=15))
    assert [i.record_id for i in claimed] == ["b"]
    assert [e.record_id for e in await store.peek_outbox()] == ["b"]


async def test_an_empty_batch_touches_nothing(store):
    assert await store.store_batch("prod", [], T0) == ({}, 0)
    assert await store.outbox_backlog() == 0
