"""The outbox dispatcher without gRPC: a fake feature sink, a real store."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.runtime import make_engine
from ingest_service.dispatcher import Dispatcher
from ingest_service.store import NewRecord, OutboxItem, RecordStore

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class FakeSink:
    """Records deliveries; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, list[tuple[str, str]], float]] = []
        self.delivered: list[tuple[str, str]] = []

    async def apply(self, request_id: str, items: Sequence[OutboxItem], timeout: float) -> None:
        self.calls.append((request_id, [(i.producer_id, i.record_id) for i in items], timeout))
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("feature service down")
        self.delivered += [(i.producer_id, i.record_id) for i in items]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(database_url):
    engine = make_engine(database_url)
    store = RecordStore(engine)
    await store.create_schema()
    try:
        yield store
    finally:
        await engine.dispose()


async def put(store: RecordStore, *ids: str, at: datetime = T0) -> None:
    """Each record its own ingested batch: one outbox row each."""
    for i in ids:
        await store.store_batch("prod", [
            NewRecord(i, "s1", common_pb2.DATA_SOURCE_PAYMENTS, T0, i.encode(), hashlib.sha256(i.encode()).digest(),
                      True)], at)


async def test_rounds_deliver_due_rows_in_id_order_in_batches(store):
    sink, clock = FakeSink(), Clock()
    dispatcher = Dispatcher(store, sink, batch_size=2, delivery_timeout=3.0, clock=clock)
    await put(store, "a", "b", "c", "d", "e")
    first_id = (await store.peek_outbox())[0].id
    results = [await dispatcher.run_once() for _ in range(4)]
    assert [(x.claimed, x.delivered, x.error) for x in results] == [(2, 2, None), (2, 2, None), (1, 1, None),
                                                                    (0, 0, None)]
    assert [c[0] for c in sink.calls] == [
        f"outbox-{first_id}-{first_id + 1}", f"outbox-{first_id + 2}-{first_id + 3}",
        f"outbox-{first_id + 4}-{first_id + 4}"]
    assert sink.delivered == [("prod", x) for x in "abcde"]
    assert {c[2] for c in sink.calls} == {3.0}
    assert await store.outbox_backlog() == 0


async def test_a_failed_round_backs_off_exponentially_and_keeps_the_error(store):
    sink, clock = FakeSink(failures=2), Clock()
    dispatcher = Dispatcher(store, sink, clock=clock)
    await put(store, "a", "b")

    result = await dispatcher.run_once()
    assert (result.claimed, result.delivered) == (2, 0) and "feature service down" in result.error
    entries = await store.peek_outbox()
    assert [(e.attempts, e.next_attempt_time) for e in entries] == [(1, T0 + timedelta(seconds=0.1))] * 2
    assert all("ConnectionError: feature service down" == e.last_error for e in entries)
    assert (await dispatcher.run_once()).claimed == 0  # not due yet

    clock.now = T0 + timedelta(seconds=0.1)
    assert (await dispatcher.run_once()).error is not None
    entries = await store.peek_outbox()
    assert [(e.attempts, e.next_attempt_time) for e in entries] == [(2, clock.now + timedelta(seconds=0.2))] * 2

    clock.now += timedelta(seconds=0.2)
    assert (await dispatcher.run_once()).delivered == 2
    assert sink.delivered == [("prod", "a"), ("prod", "b")] and await store.outbox_backlog() == 0


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_thirty(store):
    dispatcher = Dispatcher(store, FakeSink())
    assert [dispatcher.backoff(n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert dispatcher.backoff(9) == pytest.approx(30.0) and dispatcher.backoff(10_000) == 30.0


def test_batch_size_is_bounded_by_apply_records(store):
    with pytest.raises(ValueError):
        Dispatcher(store, FakeSink(), batch_size=1001)
    with pytest.raises(ValueError):
        Dispatcher(store, FakeSink(), batch_size=0)


async def test_the_loop_wakes_on_notify_retries_and_drains(store):
    sink = FakeSink(failures=2)
    # A poll far longer than the test: only notify and backoff can make progress.
    dispatcher = Dispatcher(store, sink, poll_seconds=60)
    await dispatcher.start()
    try:
        await dispatcher.drain(1)  # empty outbox: returns at once
        # One batch, one transaction: the loop's first round sees all three or none.
        await store.store_batch("prod", [
            NewRecord(i, "s1", common_pb2.DATA_SOURCE_PAYMENTS, T0, i.encode(), hashlib.sha256(i.encode()).digest(),
                      True) for i in "abc"], datetime.now(UTC))
        dispatcher.notify()
        await dispatcher.drain(5)
    finally:
        await dispatcher.stop()
    assert len(sink.calls) == 3
    assert sorted(sink.delivered) == [("prod", "a"), ("prod", "b"), ("prod", "c")]


async def test_drain_gives_up_after_its_timeout(store):
    dispatcher = Dispatcher(store, FakeSink(failures=10**6), poll_seconds=0.05, backoff_max=0.05)
    await put(store, "a", at=datetime.now(UTC))
    await dispatcher.start()
    try:
        with pytest.raises(TimeoutError, match="1 rows"):
            await dispatcher.drain(0.3)
    finally:
        await dispatcher.stop()
    assert (await store.peek_outbox())[0].attempts >= 1


async def test_stop_is_safe_before_start_and_twice(store):
    dispatcher = Dispatcher(store, FakeSink())
    await dispatcher.stop()
    await dispatcher.start()
    await asyncio.sleep(0)
    await dispatcher.stop()
    await dispatcher.stop()
