"""Two ingest replicas (real ``python -m ingest_service`` processes) and two feature
replicas (real servicers, each on its own engine) on one PostgreSQL database each:
the ingest replicas' dispatchers split the outbox, each record is applied exactly
once, and an ingest replica SIGKILLed with a delivery in flight loses nothing: its
rows' lease ends and the other replica delivers them."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from creditscore.cli.run import _free_port
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import (
    RegisteredService,
    ServerSettings,
    create_channel,
    create_server,
    make_engine,
    upgrade_schema,
)
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.migrations import MIGRATIONS as FEATURE_MIGRATIONS
from feature_service.servicer import FeatureServicer
from feature_service.store import FeatureStore, applied_records, subject_features
from ingest_service.store import RecordStore
from tests.e2e.test_ingest_crash import GrantAll, start_ingest
from tests.fake_scorer import FakeScorer
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres

LOCAL = ServerSettings(host="127.0.0.1", port=0)


class CountingReplica(FeatureServicer):
    """The real servicer, counting what it applied. ``hold`` (an event): each call
    waits for it before applying; ``arrived`` is set at this replica's first call."""

    def __init__(self, book: FeatureBook, hold: asyncio.Event | None = None) -> None:
        super().__init__(book)
        self.hold = hold
        self.arrived = asyncio.Event()
        self.received: list[tuple[str, str]] = []
        self.applied = 0
        self.duplicates = 0

    async def ApplyRecords(self, request, context):
        self.received += [(e.producer_id, e.record.record_id) for e in request.records]
        self.arrived.set()
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), 60)
        reply = await super().ApplyRecords(request, context)
        self.applied += reply.applied_count
        self.duplicates += reply.duplicate_count
        return reply


@dataclass
class Cluster:
    ingest_url: str
    feature_url: str
    consent_port: int


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    urls = (await create_pg_database(), await create_pg_database())
    consent = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, GrantAll())],
        LOCAL, domain="consent.creditscore")
    await consent.start()
    engine = make_engine(urls[1])
    await upgrade_schema(engine, FEATURE_MIGRATIONS)
    await engine.dispose()
    try:
        yield Cluster(urls[0], urls[1], consent.port)
    finally:
        await consent.stop(0)
        for url in urls:
            await drop_pg_database(url)


async def feature_replica(url: str, hold: asyncio.Event | None = None):
    """A feature replica: its own engine and book (and scorer) over the shared database."""
    store = FeatureStore(make_engine(url))
    servicer = CountingReplica(FeatureBook(store, scorer=FakeScorer()), hold)
    server = create_server(
        [RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, servicer)],
        LOCAL, domain="feature.creditscore")
    await server.start()
    return server, servicer, store


def ingest_env(cluster: Cluster, port: int, feature_port: int) -> dict[str, str]:
    return {
        **os.environ, "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(port), "DATABASE_URL": cluster.ingest_url,
        "CONSENT_SERVICE_ADDR": f"127.0.0.1:{cluster.consent_port}",
        "FEATURE_SERVICE_ADDR": f"127.0.0.1:{feature_port}",
        "OUTBOX_BATCH": "50", "OUTBOX_POLL_SECONDS": "0.05", "AUTH_MODE": "disabled",
        # A crashed replica's rows come due again 3.2 s after it claimed them.
        "OUTBOX_DELIVERY_TIMEOUT_SECONDS": "3", "OUTBOX_LEASE_MARGIN_SECONDS": "0.2",
    }


def population_records():
    """Every record that feeds features of a small population, by producer."""
    by_producer: dict[str, list] = {}
    for record in simulate(16, seed=29).records:
        by_producer.setdefault(producer_of(record), []).append(record)
    return by_producer


async def send(port: int, producer: str, records: list) -> None:
    channel = create_channel(f"127.0.0.1:{port}")
    try:
        async def chunks():
            for i in range(0, len(records), 50):
                yield ingest_pb2.IngestRecordStreamRequest(
                    request_id=f"{producer}-{i}", producer_id=producer, records=records[i:i + 50])

        reply = await ingest_pb2_grpc.IngestServiceStub(channel).IngestRecordStream(chunks(), timeout=60)
        assert reply.accepted_count == len(records)
    finally:
        await channel.close()


async def wait_drained(url: str, timeout: float = 40) -> None:
    engine = make_engine(url)
    try:
        async with asyncio.timeout(timeout):
            while await RecordStore(engine).outbox_backlog():
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def applied_rows(url: str) -> tuple[int, int, int]:
    """(applied versions, records counted in the aggregates, subjects with a score)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            applied = (await conn.execute(select(func.count()).select_from(applied_records))).scalar_one()
            counted = (await conn.execute(select(func.sum(subject_features.c.record_count)))).scalar_one()
            scored = (await conn.execute(
                select(func.count()).select_from(subject_features).where(subject_features.c.score.is_not(None))
            )).scalar_one()
    finally:
        await engine.dispose()
    return int(applied), int(counted or 0), int(scored)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def test_two_ingest_and_two_feature_replicas_split_the_work_and_apply_each_record_once(cluster):
    # Each replica's first delivery waits until the other replica has one too.
    both = asyncio.Event()
    replicas = [await feature_replica(cluster.feature_url, both) for _ in range(2)]
    ports = [_free_port(), _free_port()]
    procs = []
    try:
        for port, (server, _, _) in zip(ports, replicas, strict=True):
            procs.append(await start_ingest(ingest_env(cluster, port, server.port)))
        by_producer = population_records()
        total = sum(len(v) for v in by_producer.values())
        producers = sorted(by_producer)
        # Half the producers send to one ingest replica, half to the other.
        sending = asyncio.gather(*(send(ports[n % 2], p, by_producer[p]) for n, p in enumerate(producers)))
        async with asyncio.timeout(30):
            await asyncio.gather(*(servicer.arrived.wait() for _, servicer, _ in replicas))
        both.set()
        await sending
        await wait_drained(cluster.ingest_url)
    finally:
        for proc in procs:
            await stop(proc)
        for server, _, store in replicas:
            await server.stop(0)
            await store.close()
            await store._engine.dispose()
    counts = [servicer.applied for _, servicer, _ in replicas]
    assert all(counts), counts  # each replica applied some
    assert sum(counts) == total and sum(s.duplicates for _, s, _ in replicas) == 0  # none twice
    received = [key for _, servicer, _ in replicas for key in servicer.received]
    assert len(received) == len(set(received)) == total  # no record delivered twice
    applied, counted, scored = await applied_rows(cluster.feature_url)
    subjects = {r.subject_id for records in by_producer.values() for r in records}
    assert (applied, counted, scored) == (total, total, len(subjects))


async def test_an_ingest_replica_killed_mid_delivery_loses_nothing_and_the_other_delivers_its_rows(cluster):
    never = asyncio.Event()  # the doomed replica's feature calls never go through
    doomed_feature = await feature_replica(cluster.feature_url, never)
    # The survivor's deliveries wait until the doomed replica has claimed a batch.
    survivor_feature = await feature_replica(cluster.feature_url, doomed_feature[1].arrived)
    ports = [_free_port(), _free_port()]
    doomed = survivor = None
    try:
        doomed = await start_ingest(ingest_env(cluster, ports[0], doomed_feature[0].port))
        survivor = await start_ingest(ingest_env(cluster, ports[1], survivor_feature[0].port))
        by_producer = population_records()
        total = sum(len(v) for v in by_producer.values())
        await asyncio.gather(*(send(ports[n % 2], p, rs) for n, (p, rs) in enumerate(sorted(by_producer.items()))))
        await asyncio.wait_for(doomed_feature[1].arrived.wait(), 30)
        in_flight = list(doomed_feature[1].received)
        assert in_flight
        doomed.send_signal(signal.SIGKILL)
        assert await doomed.wait() == -signal.SIGKILL
        await wait_drained(cluster.ingest_url)
    finally:
        for proc in (doomed, survivor):
            if proc is not None:
                await stop(proc)
        for server, _, store in (doomed_feature, survivor_feature):
            await server.stop(0)
            await store.close()
            await store._engine.dispose()
    survivor_servicer = survivor_feature[1]
    assert doomed_feature[1].applied == 0
    assert set(in_flight) <= set(survivor_servicer.received)  # its lease ended; the other delivered them
    assert (survivor_servicer.applied, survivor_servicer.duplicates) == (total, 0)
    applied, counted, _ = await applied_rows(cluster.feature_url)
    assert (applied, counted) == (total, total)
