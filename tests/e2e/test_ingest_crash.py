"""Exactly-once effect across a crash: a real ``python -m ingest_service`` process
is killed (SIGKILL) while the feature service has applied a delivery it never
acknowledged, then restarted; every record, correction and retraction ends up
counted exactly once in the real feature service, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from creditscore.cli.run import _free_port
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.features.engine import SubjectState, advance_horizon, apply_record
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2 as R
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
from feature_service.store import FeatureStore, applied_records
from ingest_service.store import RecordStore
from tests.authkit import NO_AUTH
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

LOCAL = ServerSettings(host="127.0.0.1", port=0)


class GrantAll(consent_pb2_grpc.ConsentServiceServicer):
    async def CheckConsents(self, request, context):
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source, granted=True)
            for c in request.checks])


class AppliesThenHangs(FeatureServicer):
    """The real feature servicer, except that its first ApplyRecords commits and
    then never answers: the ingest service dies waiting for the acknowledgement."""

    def __init__(self, book: FeatureBook) -> None:
        super().__init__(book)
        self.calls = 0
        self.hanging = asyncio.Event()

    async def ApplyRecords(self, request, context):
        self.calls += 1
        first = self.calls == 1  # deliveries may be in flight together (OUTBOX_CONCURRENCY > 1)
        reply = await super().ApplyRecords(request, context)
        if first:
            self.hanging.set()
            await asyncio.Event().wait()
        return reply


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def two_databases(request, tmp_path) -> AsyncIterator[tuple[str, str]]:
    """(ingest, feature) database URLs: two SQLite files or two PostgreSQL databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ingest.db", f"sqlite:///{tmp_path}/feature.db"
        return
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    urls = (await create_pg_database(), await create_pg_database())
    try:
        yield urls
    finally:
        for url in urls:
            await drop_pg_database(url)


async def start_ingest(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest_service", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError("ingest_service exited:\n" + b"".join(lines).decode(errors="replace"))
                lines.append(line)
                if line.startswith(b"READY"):
                    break
    except BaseException:
        # Never leave it running behind a failed start (it would go on polling).
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    # Keep draining its output so that it never blocks on a full pipe.
    asyncio.get_running_loop().create_task(proc.stdout.read())
    return proc


def versions_to_send(seed: int) -> list[tuple[str, R.Record]]:
    """A simulated population's records, then corrections (a later revision with
    changed facts) of some and retractions of others."""
    population = simulate(10, seed=seed)
    originals = [(producer_of(r), r) for r in (*population.records, *population.outcomes)]
    rng = random.Random(seed)
    later: list[tuple[str, R.Record]] = []
    for producer, record in rng.sample(originals, 40):
        version = R.Record()
        if rng.random() < 0.3:
            version = R.Record(record_id=record.record_id, subject_id=record.subject_id, revision=1,
                               retracted=True, event_time=record.event_time)
        else:
            version.CopyFrom(record)
            version.revision = 1
            version.event_time.seconds -= 86_400
        later.append((producer, version))
    return originals + later


async def send(stub, versions: list[tuple[str, R.Record]]) -> None:
    """One stream per producer and pass, in chunks of 100; every record accepted."""
    by_producer: dict[str, list[R.Record]] = {}
    for producer, record in versions:
        by_producer.setdefault(producer, []).append(record)
    for producer, records in by_producer.items():
        async def chunks(records=records, producer=producer):
            for i in range(0, len(records), 100):
                yield ingest_pb2.IngestRecordStreamRequest(
                    request_id=f"{producer}-{i}", producer_id=producer, records=records[i:i + 100])

        reply = await stub.IngestRecordStream(chunks(), timeout=30)
        assert reply.accepted_count == len(records), [x for x in reply.results if x.status != 1][:3]


async def test_the_dispatcher_killed_mid_delivery_loses_nothing_and_counts_nothing_twice(two_databases):
    ingest_url, feature_url = two_databases
    feature_engine = make_engine(feature_url)
    await upgrade_schema(feature_engine, FEATURE_MIGRATIONS)
    feature_store = FeatureStore(feature_engine)
    feature = AppliesThenHangs(FeatureBook(feature_store))
    servers = [
        create_server([RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                                         consent_pb2_grpc.add_ConsentServiceServicer_to_server, GrantAll())],
                      LOCAL, domain="consent.creditscore"),
        create_server([RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                                         feature_pb2_grpc.add_FeatureServiceServicer_to_server, feature)],
                      LOCAL, domain="feature.creditscore"),
    ]
    for server in servers:
        await server.start()
    port = _free_port()
    env = {
        **os.environ, "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(port), "DATABASE_URL": ingest_url,
        "CONSENT_SERVICE_ADDR": f"127.0.0.1:{servers[0].port}",
        "FEATURE_SERVICE_ADDR": f"127.0.0.1:{servers[1].port}",
        "OUTBOX_BATCH": "50", "OUTBOX_POLL_SECONDS": "0.05",
        # The crash is the subject here, not authentication (the fakes take no tokens).
        "AUTH_MODE": "disabled",
        # Long enough for the hung delivery to be in flight when the process dies;
        # its rows come due again 3.2 s after they were claimed.
        "OUTBOX_DELIVERY_TIMEOUT_SECONDS": "3", "OUTBOX_LEASE_MARGIN_SECONDS": "0.2",
    }
    versions = versions_to_send(seed=17)
    proc = await start_ingest(env)
    channel = create_channel(f"127.0.0.1:{port}")
    ingest_engine = make_engine(ingest_url)
    try:
        await send(ingest_pb2_grpc.IngestServiceStub(channel), versions)
        await asyncio.wait_for(feature.hanging.wait(), 10)
        # The first delivery (the first outbox row: one chunk of at most 100) is
        # applied and committed, unacknowledged (the replica's other dispatch loop,
        # OUTBOX_CONCURRENCY, may have delivered more meanwhile). Kill the ingest
        # service now: the hung delivery's rows stay leased, then come due again.
        assert await count_applied(feature_engine) > 0
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        await channel.close()

        proc = await start_ingest(env)
        ingest_store = RecordStore(ingest_engine)
        async with asyncio.timeout(30):
            while await ingest_store.outbox_backlog():
                await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
        await ingest_engine.dispose()
        for server in servers:
            await server.stop(0)

    # What stands: the highest revision sent of every record.
    standing: dict[tuple[str, str], R.Record] = {}
    for producer, record in versions:
        key = (producer, record.record_id)
        if key not in standing or record.revision > standing[key].revision:
            standing[key] = record
    expected: dict[str, SubjectState] = {}
    for _, record in sorted(standing.items()):
        apply_record(expected.setdefault(record.subject_id, SubjectState()), record)
    try:
        delivered = {k for k, r in standing.items() if r.WhichOneof("body") != "loan_outcome"}
        assert await count_applied(feature_engine) == len(delivered)
        for subject, state in expected.items():
            stored = await feature_store.get(subject)
            if state.record_count == 0 and stored is None:
                continue
            assert stored is not None, subject
            advance_horizon(state, stored.state.last_month)
            assert stored.state == state, subject
            assert stored.record_count == state.record_count
        assert feature.calls > 1  # the redelivery happened, and was answered
    finally:
        await feature_engine.dispose()


async def count_applied(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(applied_records))).scalar_one())


async def test_a_stream_cut_off_half_way_then_resumed_counts_each_record_once(two_databases):
    """The producer's connection drops after half its stream was committed; it
    sends the whole stream again. The feature service ends with every record once."""
    from ingest_service.config import Settings
    from ingest_service.server import build_ingest

    ingest_url, feature_url = two_databases
    feature_engine = make_engine(feature_url)
    await upgrade_schema(feature_engine, FEATURE_MIGRATIONS)
    feature_store = FeatureStore(feature_engine)
    servers = [
        create_server([RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                                         consent_pb2_grpc.add_ConsentServiceServicer_to_server, GrantAll())],
                      LOCAL, domain="consent.creditscore"),
        create_server([RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                                         feature_pb2_grpc.add_FeatureServiceServicer_to_server,
                                         FeatureServicer(FeatureBook(feature_store)))],
                      LOCAL, domain="feature.creditscore"),
    ]
    for server in servers:
        await server.start()
    app = await build_ingest(Settings(
        server=LOCAL, database_url=ingest_url, consent_service_addr=f"127.0.0.1:{servers[0].port}",
        feature_service_addr=f"127.0.0.1:{servers[1].port}", outbox_batch=100, outbox_poll_seconds=0.05,
        auth=NO_AUTH))
    await app.handle.start()
    channel = create_channel(f"127.0.0.1:{app.handle.port}")
    population = simulate(10, seed=23)
    records = [r for r in population.records if producer_of(r) == "wallet"]
    chunks = [ingest_pb2.IngestRecordStreamRequest(request_id=f"c{i}", producer_id="wallet",
                                                   records=records[i:i + 50])
              for i in range(0, len(records), 50)]
    half = len(chunks) // 2
    assert half >= 2
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        stalled = asyncio.Event()

        async def cut_off():
            for message in chunks[:half]:
                yield message
            stalled.set()
            await asyncio.Event().wait()

        call = stub.IngestRecordStream(cut_off(), timeout=30)
        await stalled.wait()
        async with asyncio.timeout(10):
            while len(await app.store.export_after(None, 100_000)) < half * 50:
                await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        async def everything():
            for message in chunks:
                yield message

        reply = await stub.IngestRecordStream(everything(), timeout=30)
        assert (reply.duplicate_count, reply.accepted_count) == (half * 50, len(records) - half * 50)
        await app.dispatcher.drain(20)
    finally:
        await channel.close()
        await app.handle.stop(0)
        for server in servers:
            await server.stop(0)
    try:
        assert await count_applied(feature_engine) == len(records)
        expected: dict[str, SubjectState] = {}
        for record in records:
            apply_record(expected.setdefault(record.subject_id, SubjectState()), record)
        for subject, state in expected.items():
            stored = await feature_store.get(subject)
            assert stored is not None and stored.record_count == state.record_count
            advance_horizon(state, stored.state.last_month)
            assert stored.state == state
    finally:
        await feature_engine.dispose()
