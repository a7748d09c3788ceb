"""Two ingest replicas' dispatchers on one outbox (no gRPC: fake sinks, real
stores): claimed rows are leased, so the replicas split the work and deliver
nothing twice, and a replica that dies mid-delivery leaves its rows to the other
once their lease ends."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from creditscore.common.v1 import common_pb2
from creditscore.runtime import make_engine
from ingest_service.dispatcher import Dispatcher
from ingest_service.store import NewRecord, OutboxItem, RecordStore

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class MeetingSink:
    """Records deliveries; its first call waits until the other replica's sink has
    been called too (so both replicas have a delivery in flight at once), or
    ``hang``: its first call never returns (a replica dying mid-delivery)."""

    def __init__(self, met: asyncio.Event, arrived: list[str], name: str, *, hang: bool = False) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.started: list[tuple[str, str]] = []
        self._met, self._arrived, self._name, self._hang = met, arrived, name, hang

    async def apply(self, request_id: str, items: Sequence[OutboxItem], timeout: float) -> None:
        self.started += [(i.producer_id, i.record_id) for i in items]
        if self._hang:
            await asyncio.Event().wait()
        if self._name not in self._arrived:
            self._arrived.append(self._name)
            if len(self._arrived) == 2:
                self._met.set()
            await asyncio.wait_for(self._met.wait(), 20)
        self.delivered += [(i.producer_id, i.record_id) for i in items]


async def put(store: RecordStore, ids: Sequence[str]) -> None:
    """Each record its own ingested batch: one outbox row each."""
    for i in ids:
        await store.store_batch("prod", [
            NewRecord(i, "s1", common_pb2.DATA_SOURCE_PAYMENTS, T0, i.encode(), hashlib.sha256(i.encode()).digest(),
                      True)], T0)


async def test_two_replicas_split_the_outbox_and_deliver_each_record_once(postgres_url):
    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    stores = [RecordStore(e) for e in engines]
    await stores[0].create_schema()
    ids = [f"r{n:02d}" for n in range(20)]
    await put(stores[0], ids)
    met, arrived = asyncio.Event(), []
    sinks = [MeetingSink(met, arrived, "a"), MeetingSink(met, arrived, "b")]
    clock = Clock()
    dispatchers = [Dispatcher(s, sink, batch_size=2, clock=clock) for s, sink in zip(stores, sinks, strict=True)]
    try:

        async def until_empty(dispatcher: Dispatcher) -> None:
            while (await dispatcher.run_once()).claimed:
                pass

        await asyncio.gather(*(until_empty(d) for d in dispatchers))
        assert all(sink.delivered for sink in sinks)  # each replica delivered some
        assert not set(sinks[0].delivered) & set(sinks[1].delivered)  # none twice
        assert sorted(sinks[0].delivered + sinks[1].delivered) == [("prod", i) for i in ids]
        assert await stores[0].outbox_backlog() == 0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_replica_dying_mid_delivery_leaves_its_rows_to_the_other_after_the_lease(database_url):
    engines = [make_engine(database_url), make_engine(database_url)]
    stores = [RecordStore(e) for e in engines]
    await stores[0].create_schema()
    await put(stores[0], ["a", "b", "c", "d"])
    met, arrived = asyncio.Event(), ["a"]  # the survivor never waits for the other
    dying, survivor = MeetingSink(met, arrived, "x", hang=True), MeetingSink(met, arrived, "a")
    clock = Clock()
    lease = dict(batch_size=2, delivery_timeout=3.0, lease_margin=1.0, clock=clock)
    first = Dispatcher(stores[0], dying, **lease)
    second = Dispatcher(stores[1], survivor, **lease)
    try:
        in_flight = asyncio.create_task(first.run_once())
        async with asyncio.timeout(10):
            while not dying.started:
                await asyncio.sleep(0.01)
        in_flight.cancel()  # the replica is gone: its claim stays leased
        assert dying.started == [("prod", "a"), ("prod", "b")]
        # The lease holds: the other replica takes only what was not claimed.
        assert (await second.run_once()).delivered == 2
        assert (await second.run_once()).claimed == 0
        assert survivor.delivered == [("prod", "c"), ("prod", "d")]
        clock.now = T0 + timedelta(seconds=4)  # the lease (3 s + 1 s) has ended
        assert (await second.run_once()).delivered == 2
        assert sorted(survivor.delivered) == [("prod", x) for x in "abcd"]
        assert await stores[1].outbox_backlog() == 0
    finally:
        for engine in engines:
            await engine.dispose()


class TwoAtOnceSink:
    """Records deliveries; its first two calls wait until both are in flight."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.calls = 0
        self._both = asyncio.Event()

    async def apply(self, request_id: str, items: Sequence[OutboxItem], timeout: float) -> None:
        self.calls += 1
        if self.calls == 2:
            self._both.set()
        await asyncio.wait_for(self._both.wait(), 20)
        self.delivered += [(i.producer_id, i.record_id) for i in items]


async def test_one_replica_with_two_deliveries_in_flight_delivers_each_record_once(database_url):
    engine = make_engine(database_url)
    store = RecordStore(engine)
    await store.create_schema()
    ids = [f"r{n:02d}" for n in range(12)]
    await put(store, ids)
    sink = TwoAtOnceSink()
    dispatcher = Dispatcher(store, sink, batch_size=2, poll_seconds=60, concurrency=2)
    try:
        await dispatcher.start()
        await dispatcher.drain(20)  # the first two deliveries were in flight together
    finally:
        await dispatcher.stop()
        await engine.dispose()
    assert sink.calls == 6 and sorted(sink.delivered) == [("prod", i) for i in ids]
