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


async def test_a_batch_is_stored_with_one_outbox_row_of_its_queued_records(store):
    outcomes, queued = await store.store_batch(
        "prod", [new("a"), new("b", enqueue=False), new("c")], T0)
    assert outcomes == {"a": StoreOutcome.INSERTED, "b": StoreOutcome.INSERTED, "c": StoreOutcome.INSERTED}
    assert queued == 2
    entries = await store.peek_outbox()
    assert [(e.producer_id, e.record_ids, e.attempts, e.last_error) for e in entries] == [
        ("prod", ("a", "c"), 0, None)]
    await store.store_batch("prod", [new("d")], T0)
    entries = await store.peek_outbox()
    assert [e.record_ids for e in entries] == [("a", "c"), ("d",)] and entries[0].id < entries[1].id
    assert await store.outbox_backlog() == 3
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
    for batch in (["a", "b"], ["c"], ["d", "e"]):
        await store.store_batch("prod", [new(x) for x in batch], T0)
    lease = T0 + timedelta(seconds=15)
    claimed = await store.claim_due(3, T0, lease)  # whole rows, up to 3 records
    assert [(i.record_id, i.attempts, i.payload) for i in claimed] == [("a", 0, b"p"), ("b", 0, b"p"), ("c", 0, b"p")]
    assert len({i.id for i in claimed}) == 2
    again = await store.claim_due(1, T0, lease)  # a row bigger than the limit still goes whole
    assert [i.record_id for i in again] == ["d", "e"]
    assert await store.claim_due(10, T0, lease) == []
    due_again = await store.claim_due(10, lease, lease + timedelta(seconds=15))
    assert [i.record_id for i in due_again] == ["a", "b", "c", "d", "e"]


async def test_failures_back_rows_off_and_delivered_rows_go(store):
    await store.store_batch("prod", [new("a")], T0)
    await store.store_batch("prod", [new("b")], T0)
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
    assert [e.record_ids for e in await store.peek_outbox()] == [("b",)]
    await store.delete_outbox([b.id])
    assert await store.outbox_backlog() == 0 and await store.next_due_time() is None


async def test_purged_records_are_left_out_and_an_outbox_row_left_empty_is_dropped(store, engine):
    await store.store_batch("prod", [new("a"), new("b")], T0)
    await store.store_batch("prod", [new("c")], T0)
    async with engine.begin() as conn:
        await conn.execute(delete(records).where(records.c.record_id.in_(["a", "c"])))
    claimed = await store.claim_due(10, T0, T0 + timedelta(seconds=15))
    assert [i.record_id for i in claimed] == ["b"]
    assert [e.record_ids for e in await store.peek_outbox()] == [("a", "b")]


async def test_an_empty_batch_touches_nothing(store):
    assert await store.store_batch("prod", [], T0) == ({}, 0)
    assert await store.outbox_backlog() == 0


# -- versions: corrections, retractions, stale revisions ------------------------------------

def version(record_id: str, revision: int, *, payload: bytes, subject: str = "s1", kind: str = "bill",
            retracted: bool = False, source: int = common_pb2.DATA_SOURCE_PAYMENTS) -> NewRecord:
    from creditscore.records.v1 import records_pb2

    if not retracted and payload == b"":
        payload = records_pb2.Record(record_id=record_id, revision=revision).SerializeToString()
    return NewRecord(record_id, subject, 0 if retracted else source, T0, payload,
                     hashlib.sha256(payload).digest(), not retracted and source != common_pb2.DATA_SOURCE_OUTCOMES,
                     revision=revision, retracted=retracted, kind="" if retracted else kind)


def bill_payload(record_id: str, revision: int, units: int) -> bytes:
    from creditscore.records.v1 import records_pb2

    record = records_pb2.Record(record_id=record_id, subject_id="s1", revision=revision)
    record.bill.amount_due.minor_units = units
    return record.SerializeToString(deterministic=True)


async def test_a_higher_revision_replaces_a_lower_is_stale_and_each_change_is_queued(store):
    await store.store_batch("prod", [version("a", 0, payload=bill_payload("a", 0, 1))], T0)
    later = T0 + timedelta(minutes=1)
    outcomes, queued = await store.store_batch("prod", [version("a", 2, payload=bill_payload("a", 2, 2))], later)
    assert outcomes == {"a": StoreOutcome.REPLACED} and queued == 1
    outcomes, queued = await store.store_batch("prod", [version("a", 1, payload=bill_payload("a", 1, 3))], later)
    assert outcomes == {"a": StoreOutcome.STALE_REVISION} and queued == 0
    outcomes, _ = await store.store_batch("prod", [version("a", 2, payload=bill_payload("a", 2, 2))], later)
    assert outcomes == {"a": StoreOutcome.SAME_CONTENT}
    outcomes, _ = await store.store_batch("prod", [version("a", 2, payload=bill_payload("a", 2, 9))], later)
    assert outcomes == {"a": StoreOutcome.OTHER_CONTENT}
    [row] = await store.list_by_subject("s1", 10)
    assert (row.payload, row.ingest_time) == (bill_payload("a", 2, 2), later)
    assert [e.record_ids for e in await store.peek_outbox()] == [("a",), ("a",)]
    # Both outbox rows deliver the version current when claimed.
    claimed = await store.claim_due(10, later, later + timedelta(seconds=5))
    assert [i.payload for i in claimed] == [bill_payload("a", 2, 2)] * 2


async def test_a_correction_may_not_move_a_record_to_another_subject_or_kind(store):
    await store.store_batch("prod", [version("a", 0, payload=bill_payload("a", 0, 1))], T0)
    outcomes, queued = await store.store_batch("prod", [
        version("a", 1, payload=b"x", subject="s2")], T0)
    assert outcomes == {"a": StoreOutcome.SUBJECT_CHANGED} and queued == 0
    outcomes, _ = await store.store_batch("prod", [version("a", 1, payload=b"", kind="order")], T0)
    assert outcomes == {"a": StoreOutcome.KIND_CHANGED}
    [row] = await store.list_by_subject("s1", 10)
    assert row.payload == bill_payload("a", 0, 1)


async def test_a_retraction_leaves_a_tombstone_that_is_not_listed_and_keeps_old_versions_out(store):
    await store.store_batch("prod", [version("a", 0, payload=bill_payload("a", 0, 1)), version("b", 0, payload=b"")],
                            T0)
    outcomes, queued = await store.store_batch("prod", [version("a", 1, payload=b"gone", retracted=True)], T0)
    assert outcomes == {"a": StoreOutcome.REPLACED} and queued == 1  # the feature service must undo it
    assert [r.record_id for r in await store.list_by_subject("s1", 10)] == ["b"]
    assert [r.record_id for r in await store.export_after(None, 10)] == ["b"]
    outcomes, _ = await store.store_batch("prod", [version("a", 0, payload=bill_payload("a", 0, 1))], T0)
    assert outcomes == {"a": StoreOutcome.STALE_REVISION}
    # Retracting a tombstone again, or a record never sent: stored, nothing to deliver.
    _, queued = await store.store_batch("prod", [version("a", 2, payload=b"gone2", retracted=True),
                                                 version("z", 1, payload=b"z", retracted=True)], T0)
    assert queued == 0
    # A later version restores a retracted record.
    outcomes, queued = await store.store_batch("prod", [version("a", 3, payload=bill_payload("a", 3, 4))], T0)
    assert outcomes == {"a": StoreOutcome.REPLACED} and queued == 1
    assert sorted(r.record_id for r in await store.list_by_subject("s1", 10)) == ["a", "b"]


async def test_retracting_a_loan_outcome_queues_nothing(store):
    outcomes_source = common_pb2.DATA_SOURCE_OUTCOMES
    _, queued = await store.store_batch("prod", [version("o", 0, payload=b"", kind="loan_outcome",
                                                         source=outcomes_source)], T0)
    assert queued == 0
    outcomes, queued = await store.store_batch("prod", [version("o", 1, payload=b"gone", retracted=True)], T0)
    assert outcomes == {"o": StoreOutcome.REPLACED} and queued == 0


async def test_rounds_store_later_versions_of_one_batch_after_earlier_ones(store):
    results, queued = await store.store_rounds("prod", [
        [version("a", 0, payload=bill_payload("a", 0, 1)), version("b", 0, payload=b"")],
        [version("a", 1, payload=bill_payload("a", 1, 2))],
        [version("a", 0, payload=bill_payload("a", 0, 5))],
    ], T0)
    assert results == [{"a": StoreOutcome.INSERTED, "b": StoreOutcome.INSERTED}, {"a": StoreOutcome.REPLACED},
                       {"a": StoreOutcome.STALE_REVISION}]
    assert queued == 2  # a and b, each once in the batch's outbox row
    assert [e.record_ids for e in await store.peek_outbox()] == [("a", "b")]
