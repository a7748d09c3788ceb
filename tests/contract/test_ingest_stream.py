"""IngestRecordStream, corrections and every rejection reason on a real
in-process ingest server (fake consent and feature services), on SQLite and
PostgreSQL: what crosses the wire, and what is stored."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import CallError, ChannelSettings, create_channel, to_timestamp
from ingest_service import ingestion
from ingest_service.config import Settings
from ingest_service.server import build_ingest
from tests.authkit import NO_AUTH
from tests.contract.test_ingest_servicer import (  # noqa: F401 - fixtures
    ACCEPTED,
    DUPLICATE,
    LOCAL,
    REJECTED,
    Suite,
    bill,
    days_ago,
    fakes,
    ingest,
    listed,
    order,
    outcome,
    statuses,
    suite,
)


def chunk(request_id: str, *records: r.Record, producer: str = "") -> ingest_pb2.IngestRecordStreamRequest:
    return ingest_pb2.IngestRecordStreamRequest(request_id=request_id, producer_id=producer, records=records)


async def stream(stub, chunks: Sequence[ingest_pb2.IngestRecordStreamRequest], timeout: float = 10):
    async def requests() -> AsyncIterator[ingest_pb2.IngestRecordStreamRequest]:
        for message in chunks:
            yield message

    return await stub.IngestRecordStream(requests(), timeout=timeout)


async def failed(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


def bills(prefix: str, n: int) -> list[r.Record]:
    return [bill(f"{prefix}{i}", age_days=1 + i % 20) for i in range(n)]


def corrected(record: r.Record, revision: int, **bill_changes) -> r.Record:
    version = r.Record()
    version.CopyFrom(record)
    version.revision = revision
    for name, value in bill_changes.items():
        setattr(version.bill, name, value)
    return version


def retraction(record_id: str, revision: int, subject: str = "alice") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, revision=revision, retracted=True,
                    event_time=to_timestamp(days_ago(0.01)))


# -- streaming -----------------------------------------------------------------------------


async def test_a_stream_is_answered_per_record_indexed_from_its_start(suite: Suite):
    first = bills("a", 3)
    reply = await stream(suite.stub, [
        chunk("c0", *first, producer="market"),
        chunk("c1", first[1], bill("x", subject="carol"), producer="market"),  # a repeat, no consent
        chunk("c2", order("o1")),
    ])
    assert statuses(reply) == [
        (0, "a0", ACCEPTED, ""), (1, "a1", ACCEPTED, ""), (2, "a2", ACCEPTED, ""),
        (3, "a1", DUPLICATE, ""), (4, "x", REJECTED, "CONSENT_REQUIRED"), (5, "o1", ACCEPTED, "")]
    assert (reply.accepted_count, reply.duplicate_count, reply.rejected_count, reply.chunk_count) == (4, 1, 1, 3)
    await suite.app.dispatcher.drain(5)
    assert sorted(suite.feature.applied) == [("market", k) for k in ("a0", "a1", "a2", "o1")]
    # One consent call per chunk (with records to ask about).
    assert len(suite.consent.requests) == 3


async def test_a_stream_cut_off_half_way_keeps_its_committed_chunks_and_resumes(suite: Suite):
    chunks = [chunk(f"c{i}", *bills(f"c{i}-", 50), producer="market") for i in range(4)]
    sent_two = asyncio.Event()
    release = asyncio.Event()

    async def cut_off() -> AsyncIterator[ingest_pb2.IngestRecordStreamRequest]:
        yield chunks[0]
        yield chunks[1]
        sent_two.set()
        await release.wait()  # the producer stalls; then its connection drops
        yield chunks[2]

    call = suite.stub.IngestRecordStream(cut_off(), timeout=10)
    await sent_two.wait()
    for _ in range(200):  # until both chunks are committed
        if len(await listed(suite.stub, "alice")) == 100:
            break
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    stored = {s.record.record_id for s in await listed(suite.stub, "alice")}
    assert stored == {rec.record_id for c in chunks[:2] for rec in c.records}

    reply = await stream(suite.stub, chunks)  # the producer sends the whole stream again
    assert [x.status for x in reply.results] == [DUPLICATE] * 100 + [ACCEPTED] * 100
    assert [x.index for x in reply.results] == list(range(200))
    await suite.app.dispatcher.drain(5)
    assert len(suite.feature.applied) == 200 and len(await listed(suite.stub, "alice")) == 200


async def test_an_empty_stream_is_invalid(suite: Suite):
    error = await failed(stream(suite.stub, []))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [v.field for v in error.violations] == ["chunks"]


@pytest.mark.parametrize(("second", "fields"), [
    (chunk("c1", producer="market"), ["chunks[1].records"]),
    (chunk("c1", bill("z1"), producer="wallet"), ["chunks[1].producer_id"]),
    (chunk("", bill("z1")), ["chunks[1].request_id"]),
    (chunk("c1", *bills("z", 1001)), ["chunks[1].records"]),
], ids=["empty-chunk", "other-producer", "no-request-id", "chunk-too-large"])
async def test_a_malformed_chunk_ends_the_stream_and_keeps_what_came_before(suite: Suite, second, fields):
    first = chunk("c0", *bills("a", 3), producer="market")
    error = await failed(stream(suite.stub, [first, second, chunk("c2", bill("never"))]))
    assert (error.code, error.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "ingest.creditscore")
    assert [v.field for v in error.violations] == fields
    assert (error.metadata["records_committed"], error.metadata["chunks_committed"]) == ("3", "1")
    assert sorted(s.record.record_id for s in await listed(suite.stub, "alice")) == ["a0", "a1", "a2"]


async def test_a_stream_past_its_record_limit_is_resource_exhausted(suite: Suite, monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_STREAM_RECORDS", 5)
    error = await failed(stream(suite.stub, [chunk("c0", *bills("a", 3), producer="market"),
                                             chunk("c1", *bills("b", 3))]))
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_TOO_LARGE")
    assert error.metadata["max_stream_records"] == "5" and error.metadata["records_committed"] == "3"
    assert len(await listed(suite.stub, "alice")) == 3


async def test_a_stream_whose_reply_would_outgrow_a_message_stops_before_the_chunk(database_url, fakes):
    _, _, consent_port, feature_port = fakes
    # Room for the worst case of one chunk of 50 and a little: the first chunk's
    # real results (about 30 bytes each) leave too little for the second's worst case.
    small = dataclasses.replace(LOCAL, max_message_bytes=64 * 1024 + 50 * ingestion.MAX_RESULT_BYTES + 500)
    app = await build_ingest(Settings(
        server=small, database_url=database_url, consent_service_addr=f"127.0.0.1:{consent_port}",
        feature_service_addr=f"127.0.0.1:{feature_port}", auth=NO_AUTH))
    await app.handle.start()
    channel = create_channel(f"127.0.0.1:{app.handle.port}")
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        error = await failed(stream(stub, [chunk(f"c{i}", *bills(f"c{i}-", 50), producer="market")
                                           for i in range(4)]))
        assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "REPLY_TOO_LARGE")
        assert error.metadata["records_committed"] == "50"
        assert len(await listed(stub, "alice")) == 50
    finally:
        await channel.close()
        await app.handle.stop(0)


async def test_a_message_over_the_size_limit_is_resource_exhausted_and_nothing_breaks(database_url, fakes):
    _, _, consent_port, feature_port = fakes
    app = await build_ingest(Settings(
        server=dataclasses.replace(LOCAL, max_message_bytes=256 * 1024), database_url=database_url,
        consent_service_addr=f"127.0.0.1:{consent_port}", feature_service_addr=f"127.0.0.1:{feature_port}",
        auth=NO_AUTH))
    await app.handle.start()
    channel = create_channel(f"127.0.0.1:{app.handle.port}", ChannelSettings(max_message_bytes=4 * 1024 * 1024))
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        huge = bill("huge")
        huge.record_id = "x" * 300_000
        error = await failed(ingest(stub, huge))
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in error.message
        error = await failed(stream(stub, [chunk("c0", bill("b1"), producer="market"), chunk("c1", huge)]))
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await ingest(stub, bill("b2"))
        assert reply.accepted_count == 1
        assert sorted(s.record.record_id for s in await listed(stub, "alice")) == ["b1", "b2"]
    finally:
        await channel.close()
        await app.handle.stop(0)


# -- corrections and every rejection reason -------------------------------------------------


async def test_a_bill_later_marked_paid_replaces_the_stored_one_and_reaches_features(suite: Suite):
    unpaid = bill("b1")
    unpaid.bill.ClearField("paid_time")
    unpaid.bill.amount_paid.minor_units = 0
    assert statuses(await ingest(suite.stub, unpaid)) == [(0, "b1", ACCEPTED, "")]
    await suite.app.dispatcher.drain(5)
    assert not suite.feature.applied[("market", "b1")].bill.HasField("paid_time")

    paid = corrected(bill("b1"), 1)
    reply = await ingest(suite.stub, paid, request_id="req-2")
    assert statuses(reply) == [(0, "b1", ACCEPTED, "")]
    [stored] = await listed(suite.stub, "alice")
    assert stored.record == paid
    await suite.app.dispatcher.drain(5)
    assert suite.feature.applied[("market", "b1")] == paid

    again = await ingest(suite.stub, paid, request_id="req-3")
    assert statuses(again) == [(0, "b1", DUPLICATE, "")]


async def test_a_retraction_needs_no_consent_hides_the_record_and_is_delivered(suite: Suite):
    await ingest(suite.stub, bill("b1"), bill("b2"))
    suite.consent.granted.clear()  # consent withdrawn since: retracting is still allowed
    reply = await ingest(suite.stub, retraction("b1", 1), request_id="req-2")
    assert statuses(reply) == [(0, "b1", ACCEPTED, "")]
    assert [s.record.record_id for s in await listed(suite.stub, "alice")] == ["b2"]
    await suite.app.dispatcher.drain(5)
    delivered = suite.feature.applied[("market", "b1")]
    assert delivered.retracted and delivered.revision == 1 and delivered.WhichOneof("body") is None


async def test_several_versions_in_one_batch_are_stored_in_order(suite: Suite):
    first = bill("b1", units=100)
    second = corrected(bill("b1", units=200), 1)
    reply = await ingest(suite.stub, first, second, corrected(bill("b1", units=300), 2), retraction("b1", 1))
    assert statuses(reply) == [(0, "b1", ACCEPTED, ""), (1, "b1", ACCEPTED, ""), (2, "b1", ACCEPTED, ""),
                               (3, "b1", REJECTED, "CONFLICTING_DUPLICATE")]
    [stored] = await listed(suite.stub, "alice")
    assert stored.record.revision == 2 and stored.record.bill.amount_due.minor_units == 300


def _wrong_subject() -> r.Record:
    version = corrected(bill("b2"), 1)
    version.subject_id = "bob"
    return version


def _wrong_kind() -> r.Record:
    version = order("b3")
    version.revision = 1
    return version


def _invalid() -> r.Record:
    version = bill("b9")
    version.bill.amount_due.currency_code = "usd"
    return version


# (a record sent after b1, b2 and b3 were stored, the reason, the field reported)
REJECTIONS = [
    (_invalid, "INVALID_RECORD", "bill.amount_due.currency_code"),
    (lambda: bill("c1", subject="carol"), "CONSENT_REQUIRED", None),
    (lambda: bill("b1", units=1), "CONFLICTING_DUPLICATE", "record_id"),
    (lambda: corrected(bill("b3"), -1), "INVALID_RECORD", "revision"),
    (lambda: retraction("b3", 0), "INVALID_RECORD", "revision"),
    (_wrong_subject, "INVALID_CORRECTION", "subject_id"),
    (_wrong_kind, "INVALID_CORRECTION", "body"),
]


@pytest.mark.parametrize("via_stream", [False, True], ids=["unary", "stream"])
async def test_every_rejection_reason_is_reported_by_index_and_field(suite: Suite, via_stream):
    originals = [bill("b1"), bill("b2", age_days=2), bill("b3", age_days=3)]
    await ingest(suite.stub, *originals)
    bad = [make() for make, _, _ in REJECTIONS]
    if via_stream:
        reply = await stream(suite.stub, [chunk("c0", bill("ok1"), producer="market"), chunk("c1", *bad)])
    else:
        reply = await ingest(suite.stub, bill("ok1"), *bad, request_id="req-2")
    assert (reply.results[0].index, reply.results[0].status) == (0, ACCEPTED)
    got = [(x.index, x.status, x.reason, [v.field for v in x.field_violations]) for x in reply.results[1:]]
    assert got == [(i + 1, REJECTED, reason, [field] if field else [])
                   for i, (_, reason, field) in enumerate(REJECTIONS)]
    assert (reply.accepted_count, reply.rejected_count) == (1, len(REJECTIONS))
    # The rejected records changed nothing that was stored.
    stored = {s.record.record_id: s.record for s in await listed(suite.stub, "alice")}
    assert [stored[x.record_id] for x in originals] == originals
    assert set(stored) == {"b1", "b2", "b3", "ok1"}


async def test_a_lower_revision_than_the_stored_one_is_stale(suite: Suite):
    await ingest(suite.stub, corrected(bill("b1"), 3))
    reply = await ingest(suite.stub, bill("b1"), corrected(bill("b1"), 2), request_id="req-2")
    assert statuses(reply) == [(0, "b1", REJECTED, "STALE_REVISION"), (1, "b1", REJECTED, "STALE_REVISION")]
    assert [v.field for v in reply.results[0].field_violations] == ["revision"]
    # A retraction stored before the record it retracts keeps the record out.
    await ingest(suite.stub, retraction("late", 1), request_id="req-3")
    reply = await ingest(suite.stub, bill("late"), request_id="req-4")
    assert statuses(reply) == [(0, "late", REJECTED, "STALE_REVISION")]
    assert "late" not in {s.record.record_id for s in await listed(suite.stub, "alice")}


async def test_a_correction_of_a_loan_outcome_is_stored_but_never_delivered(suite: Suite):
    await ingest(suite.stub, outcome("x1"))
    changed = outcome("x1")
    changed.revision = 1
    changed.loan_outcome.label = r.LOAN_OUTCOME_LABEL_BAD
    assert statuses(await ingest(suite.stub, changed, request_id="r2")) == [(0, "x1", ACCEPTED, "")]
    assert statuses(await ingest(suite.stub, retraction("x1", 2), request_id="r3")) == [(0, "x1", ACCEPTED, "")]
    assert await suite.app.store.outbox_backlog() == 0 and suite.feature.applied == {}


async def test_a_replica_without_its_dispatcher_only_takes_records(database_url, fakes):
    _, feature, consent_port, feature_port = fakes
    app = await build_ingest(Settings(
        server=LOCAL, database_url=database_url, consent_service_addr=f"127.0.0.1:{consent_port}",
        feature_service_addr=f"127.0.0.1:{feature_port}", outbox_dispatch=False, outbox_poll_seconds=0.01,
        auth=NO_AUTH))
    await app.handle.start()
    channel = create_channel(f"127.0.0.1:{app.handle.port}")
    try:
        await ingest(ingest_pb2_grpc.IngestServiceStub(channel), bill("b1"))
        await asyncio.sleep(0.2)  # many poll intervals: a running dispatcher would have delivered
        assert feature.applied == {} and await app.store.outbox_backlog() == 1
        await app.dispatcher.run_once()  # another replica's dispatcher would deliver it
        assert list(feature.applied) == [("market", "b1")]
    finally:
        await channel.close()
        await app.handle.stop(0)
