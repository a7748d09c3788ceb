"""IngestService on a real in-process server (port 0), with fake consent and
feature services on their own in-process servers; asserts on what crosses the wire."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import (
    CallError,
    ChannelSettings,
    RegisteredService,
    ServerHandle,
    ServerSettings,
    create_channel,
    create_server,
    to_timestamp,
    utcnow,
)
from ingest_service.config import Settings
from ingest_service.server import IngestApp, build_ingest
from tests.authkit import NO_AUTH

SCORING, DEVELOPMENT = common_pb2.PURPOSE_CREDIT_SCORING, common_pb2.PURPOSE_MODEL_DEVELOPMENT
ACCEPTED, DUPLICATE, REJECTED = (
    ingest_pb2.RECORD_STATUS_ACCEPTED, ingest_pb2.RECORD_STATUS_DUPLICATE, ingest_pb2.RECORD_STATUS_REJECTED)
LOCAL = ServerSettings(host="127.0.0.1", port=0)


class FakeConsent(consent_pb2_grpc.ConsentServiceServicer):
    """Grants every (purpose, subject) in ``granted``, for any source."""

    def __init__(self) -> None:
        self.granted = {(SCORING, "alice"), (DEVELOPMENT, "alice"), (SCORING, "bob")}
        self.requests: list[consent_pb2.CheckConsentsRequest] = []
        self.time_remaining: list[float | None] = []

    async def CheckConsents(self, request, context):
        self.requests.append(request)
        self.time_remaining.append(context.time_remaining())
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source,
                                        granted=(request.purpose, c.subject_id) in self.granted)
            for c in request.checks])


class FakeFeature(feature_pb2_grpc.FeatureServiceServicer):
    """Collects applied records; answers UNAVAILABLE to the first ``failures`` calls."""

    def __init__(self) -> None:
        self.failures = 0
        self.request_ids: list[str] = []
        self.applied: dict[tuple[str, str], r.Record] = {}

    async def ApplyRecords(self, request, context):
        self.request_ids.append(request.request_id)
        if self.failures > 0:
            self.failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        for envelope in request.records:
            self.applied[(envelope.producer_id, envelope.record.record_id)] = envelope.record
        return feature_pb2.ApplyRecordsResponse(applied_count=len(request.records))


async def serve_fake(servicer, pb2, name: str, add) -> ServerHandle:
    handle = create_server([RegisteredService(pb2.DESCRIPTOR.services_by_name[name], add, servicer)],
                           LOCAL, domain="fake.creditscore")
    await handle.start()
    return handle


@dataclass
class Suite:
    app: IngestApp
    stub: ingest_pb2_grpc.IngestServiceStub
    consent: FakeConsent
    feature: FakeFeature


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeConsent, FakeFeature, int, int]]:
    consent, feature = FakeConsent(), FakeFeature()
    c = await serve_fake(consent, consent_pb2, "ConsentService", consent_pb2_grpc.add_ConsentServiceServicer_to_server)
    f = await serve_fake(feature, feature_pb2, "FeatureService", feature_pb2_grpc.add_FeatureServiceServicer_to_server)
    try:
        yield consent, feature, c.port, f.port
    finally:
        await c.stop(0)
        await f.stop(0)


async def start_ingest(database_url: str, consent_port: int, feature_port: int) -> tuple[IngestApp, grpc.aio.Channel]:
    settings = Settings(
        server=LOCAL, database_url=database_url,
        consent_service_addr=f"127.0.0.1:{consent_port}", feature_service_addr=f"127.0.0.1:{feature_port}",
        outbox_poll_seconds=0.05, outbox_delivery_timeout_seconds=2.0, auth=NO_AUTH)
    # Two attempts per call, so that a failing fake shows the dispatcher's own retries.
    app = await build_ingest(dataclasses.replace(settings, channel=ChannelSettings(retry_max_attempts=2)))
    await app.handle.start()
    return app, create_channel(f"127.0.0.1:{app.handle.port}")


@pytest.fixture
async def suite(database_url, fakes) -> AsyncIterator[Suite]:
    consent, feature, consent_port, feature_port = fakes
    app, channel = await start_ingest(database_url, consent_port, feature_port)
    try:
        yield Suite(app, ingest_pb2_grpc.IngestServiceStub(channel), consent, feature)
    finally:
        await channel.close()
        await app.handle.stop(0)


def days_ago(n: float) -> datetime:
    return utcnow() - timedelta(days=n)


def bill(record_id: str, subject: str = "alice", units: int = 4200, age_days: float = 1) -> r.Record:
    return r.Record(
        record_id=record_id, subject_id=subject, event_time=to_timestamp(days_ago(age_days)),
        bill=r.Bill(category=r.BILL_CATEGORY_UTILITY, amount_due=r.Money(currency_code="USD", minor_units=units),
                    issue_time=to_timestamp(days_ago(age_days + 30)), due_time=to_timestamp(days_ago(age_days + 5)),
                    amount_paid=r.Money(currency_code="USD", minor_units=units),
                    paid_time=to_timestamp(days_ago(age_days))))


def order(record_id: str, subject: str = "alice") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, event_time=to_timestamp(days_ago(2)),
                    order=r.Order(role=r.PARTY_ROLE_BUYER, placed_time=to_timestamp(days_ago(3)),
                                  outcome=r.ORDER_OUTCOME_COMPLETED))


def outcome(record_id: str, subject: str = "alice") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, event_time=to_timestamp(days_ago(3)),
                    loan_outcome=r.LoanOutcome(application_time=to_timestamp(days_ago(200)),
                                               label=r.LOAN_OUTCOME_LABEL_GOOD))


def ingest(stub, *records: r.Record, producer: str = "market", request_id: str = "req-1"):
    return stub.IngestRecords(
        ingest_pb2.IngestRecordsRequest(request_id=request_id, producer_id=producer, records=records), timeout=5)


def statuses(reply) -> list[tuple[int, str, int, str]]:
    return [(x.index, x.record_id, x.status, x.reason) for x in reply.results]


async def listed(stub, subject: str) -> list[ingest_pb2.StoredRecord]:
    reply = await stub.ListRecords(ingest_pb2.ListRecordsRequest(subject_id=subject, page_size=500), timeout=5)
    return list(reply.records)


async def test_a_record_without_consent_is_rejected_with_consent_required(suite):
    reply = await ingest(suite.stub, bill("b1"), bill("c1", subject="carol"))
    assert statuses(reply) == [(0, "b1", ACCEPTED, ""), (1, "c1", REJECTED, "CONSENT_REQUIRED")]
    assert (reply.accepted_count, reply.duplicate_count, reply.rejected_count) == (1, 0, 1)
    [request] = suite.consent.requests
    assert request.purpose == SCORING
    assert [(c.subject_id, c.source) for c in request.checks] == [
        ("alice", common_pb2.DATA_SOURCE_PAYMENTS), ("carol", common_pb2.DATA_SOURCE_PAYMENTS)]
    assert await listed(suite.stub, "carol") == []


async def test_the_consent_check_runs_within_the_callers_deadline(suite):
    await suite.stub.IngestRecords(ingest_pb2.IngestRecordsRequest(
        request_id="r", producer_id="market", records=[bill("b1")]), timeout=1.5)
    [remaining] = suite.consent.time_remaining
    assert remaining is not None and remaining < 1.5


async def test_the_same_batch_twice_is_stored_once(suite):
    batch = [bill("b1"), order("o1")]
    first = await ingest(suite.stub, *batch)
    second = await ingest(suite.stub, *batch, request_id="req-2")
    assert [x.status for x in first.results] == [ACCEPTED, ACCEPTED]
    assert statuses(second) == [(0, "b1", DUPLICATE, ""), (1, "o1", DUPLICATE, "")]
    assert (second.accepted_count, second.duplicate_count, second.rejected_count) == (0, 2, 0)
    stored = await listed(suite.stub, "alice")
    assert sorted(s.record.record_id for s in stored) == ["b1", "o1"]
    assert {s.producer_id for s in stored} == {"market"}


async def test_a_changed_record_under_a_stored_id_is_a_conflicting_duplicate(suite):
    await ingest(suite.stub, bill("b1", units=100))
    reply = await ingest(suite.stub, bill("b1", units=999), request_id="req-2")
    assert statuses(reply) == [(0, "b1", REJECTED, "CONFLICTING_DUPLICATE")]
    assert [v.field for v in reply.results[0].field_violations] == ["record_id"]
    [stored] = await listed(suite.stub, "alice")
    assert stored.record.bill.amount_due.minor_units == 100


async def test_one_invalid_record_is_reported_by_index_and_field_and_the_rest_accepted(suite):
    bad = bill("b2")
    bad.bill.amount_due.currency_code = "dollars"
    reply = await ingest(suite.stub, bill("b1"), bad, order("o1"))
    assert statuses(reply) == [(0, "b1", ACCEPTED, ""), (1, "b2", REJECTED, "INVALID_RECORD"),
                               (2, "o1", ACCEPTED, "")]
    assert [(v.field, "upper-case" in v.description) for v in reply.results[1].field_violations] == [
        ("bill.amount_due.currency_code", True)]
    assert sorted(s.record.record_id for s in await listed(suite.stub, "alice")) == ["b1", "o1"]


@pytest.mark.parametrize(("producer", "records", "fields"), [
    ("market", [], ["records"]),
    ("", [bill("b1")], ["producer_id"]),
    ("no spaces allowed", [], ["producer_id", "records"]),
])
async def test_a_malformed_batch_is_invalid_argument_with_bad_request(suite, producer, records, fields):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ingest(suite.stub, *records, producer=producer)
    error = CallError.from_rpc_error(info.value)
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ingest.creditscore")
    assert [v.field for v in error.violations] == fields
    assert suite.consent.requests == []


async def test_consent_service_down_is_unavailable_and_stores_nothing(database_url, fakes):
    _, feature, _, feature_port = fakes
    app, channel = await start_ingest(database_url, free_port(), feature_port)
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ingest(stub, bill("b1"), outcome("x1"))
        error = CallError.from_rpc_error(info.value)
        assert (error.code, error.reason, error.domain) == (
            grpc.StatusCode.UNAVAILABLE, "CONSENT_SERVICE_UNAVAILABLE", "ingest.creditscore")
        assert await listed(stub, "alice") == []
        assert await app.store.outbox_backlog() == 0
    finally:
        await channel.close()
        await app.handle.stop(0)


async def test_accepted_records_reach_the_feature_service_but_outcomes_do_not(suite):
    reply = await ingest(suite.stub, bill("b1"), order("o1"), outcome("x1"), bill("b2", subject="bob"))
    assert [x.status for x in reply.results] == [ACCEPTED] * 4
    assert sorted(req.purpose for req in suite.consent.requests) == [SCORING, DEVELOPMENT]
    await suite.app.dispatcher.drain(5)
    assert sorted(suite.feature.applied) == [("market", "b1"), ("market", "b2"), ("market", "o1")]
    stored = {s.record.record_id: s.record for s in await listed(suite.stub, "alice")}
    assert suite.feature.applied[("market", "o1")] == stored["o1"]
    assert suite.feature.applied[("market", "b1")] == stored["b1"]
    assert all(rid.startswith("outbox-") for rid in suite.feature.request_ids)
    # The outcome is stored (a training label) though never delivered.
    assert "x1" in stored


async def test_deliveries_are_retried_until_the_feature_service_takes_them(suite):
    suite.feature.failures = 3  # the channel tries twice per round: two rounds fail
    await ingest(suite.stub, *[bill(f"b{i}", age_days=i + 1) for i in range(5)])
    await suite.app.dispatcher.drain(5)
    assert sorted(suite.feature.applied) == [("market", f"b{i}") for i in range(5)]
    assert len(suite.feature.request_ids) == 4 and len(set(suite.feature.request_ids)) == 1
    assert await suite.app.store.outbox_backlog() == 0


async def test_list_records_pages_newest_first(suite):
    await ingest(suite.stub, *[bill(f"b{i}", age_days=i + 1) for i in range(7)], bill("x", subject="bob"))
    pages, token = [], ""
    while True:
        reply = await suite.stub.ListRecords(
            ingest_pb2.ListRecordsRequest(subject_id="alice", page_size=3, page_token=token), timeout=5)
        pages.append([s.record.record_id for s in reply.records])
        assert all(s.producer_id == "market" and s.HasField("ingest_time") for s in reply.records)
        token = reply.next_page_token
        if not token:
            break
    assert pages == [["b0", "b1", "b2"], ["b3", "b4", "b5"], ["b6"]]
    default = await suite.stub.ListRecords(ingest_pb2.ListRecordsRequest(subject_id="alice"), timeout=5)
    assert len(default.records) == 7 and default.next_page_token == ""


@pytest.mark.parametrize(("list_request", "reason", "fields"), [
    (ingest_pb2.ListRecordsRequest(subject_id="alice", page_size=-1), "INVALID_ARGUMENT", ["page_size"]),
    (ingest_pb2.ListRecordsRequest(subject_id=""), "INVALID_ARGUMENT", ["subject_id"]),
    (ingest_pb2.ListRecordsRequest(subject_id="alice", page_token="!!"), "INVALID_PAGE_TOKEN", ["page_token"]),
], ids=["negative-page-size", "no-subject", "bad-token"])
async def test_list_records_rejects_bad_input(suite, list_request, reason, fields):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await suite.stub.ListRecords(list_request, timeout=5)
    error = CallError.from_rpc_error(info.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert [v.field for v in error.violations] == fields


async def _export(stub, chunk_size: int = 0) -> list[ingest_pb2.ExportTrainingRecordsResponse]:
    call = stub.ExportTrainingRecords(ingest_pb2.ExportTrainingRecordsRequest(chunk_size=chunk_size), timeout=10)
    return [reply async for reply in call]


async def test_the_training_export_streams_only_records_consented_for_model_development(suite):
    # alice consented to model development (any source here), bob only to scoring.
    await ingest(suite.stub, bill("b1"), order("o1"), outcome("l1"), bill("b2", subject="bob"),
                 order("o2", subject="bob"))
    await ingest(suite.stub, bill("b3"), producer="wallet", request_id="req-2")
    asked_before = len(suite.consent.requests)
    chunks = await _export(suite.stub, chunk_size=2)
    exported = [(s.producer_id, s.record.record_id) for c in chunks for s in c.records]
    # By subject, then producer and record id; bob's b2 and o2 left out.
    assert exported == [("market", "b1"), ("market", "l1"), ("market", "o1"), ("wallet", "b3")]
    assert [len(c.records) for c in chunks] == [4]  # chunk size 2 is served as 100
    assert sum(c.skipped_without_consent for c in chunks) == 2  # bob's two records
    assert {s.record.WhichOneof("body") for c in chunks for s in c.records} == {"bill", "order", "loan_outcome"}
    # One consent call for the one page the store was read in, for model development.
    asked = suite.consent.requests[asked_before:]
    assert len(asked) == 1 and {r.purpose for r in asked} == {DEVELOPMENT}
    assert sorted((c.subject_id, c.source) for c in asked[0].checks) == sorted([
        ("alice", common_pb2.DATA_SOURCE_COMMERCE), ("alice", common_pb2.DATA_SOURCE_OUTCOMES),
        ("alice", common_pb2.DATA_SOURCE_PAYMENTS), ("bob", common_pb2.DATA_SOURCE_COMMERCE),
        ("bob", common_pb2.DATA_SOURCE_PAYMENTS)])


async def _store_many(suite: Suite, total: int = 2500) -> list[tuple[str, str]]:
    """``total`` bills from two producers, every tenth bob's (no model-development
    consent), the rest dealt to alice, carol and erin (consented); answers the
    keys the export must stream, in its order: by subject, then producer and
    record id."""
    suite.consent.granted |= {(purpose, s) for purpose in (SCORING, DEVELOPMENT) for s in ("carol", "erin")}
    subjects = ("alice", "carol", "erin")
    records = [(("market", "wallet")[i % 2], bill(f"b{i:05d}", subject="bob" if i % 10 == 3 else subjects[i % 3]))
               for i in range(total)]
    for producer in ("market", "wallet"):
        mine = [r for p, r in records if p == producer]
        for i in range(0, len(mine), 1000):
            reply = await ingest(suite.stub, *mine[i:i + 1000], producer=producer, request_id=f"{producer}-{i}")
            assert {x.status for x in reply.results} == {ACCEPTED}
    return [(p, r.record_id) for p, r in sorted(records, key=lambda pr: (pr[1].subject_id, pr[0], pr[1].record_id))
            if r.subject_id != "bob"]


async def test_every_chunk_size_streams_the_same_records_in_the_same_order(suite):
    expected = await _store_many(suite)
    assert len(expected) == 2250
    # Below 100 records a message, 100 (a message costs about as much as 100 records).
    for chunk_size, per_message in ((1, 100), (7, 100), (99, 100), (100, 100), (0, 500), (1000, 1000)):
        chunks = await _export(suite.stub, chunk_size=chunk_size)
        assert [(s.producer_id, s.record.record_id) for c in chunks for s in c.records] == expected
        sizes = [len(c.records) for c in chunks]
        # Every message full but the last (which may carry only the count left out).
        assert all(n == per_message for n in sizes[:-1]) and 0 <= sizes[-1] <= per_message, chunk_size
        assert sum(c.skipped_without_consent for c in chunks) == 250


async def test_the_exports_queries_and_consent_calls_do_not_grow_as_the_chunk_size_shrinks(suite, monkeypatch):
    await _store_many(suite)
    pages: list[int] = []
    read = suite.app.store.export_after

    async def counted(after, limit):
        rows = await read(after, limit)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(suite.app.store, "export_after", counted)
    work = {}
    for chunk_size in (1, 7, 0, 1000):
        pages.clear()
        asked_before = len(suite.consent.requests)
        messages = len(await _export(suite.stub, chunk_size=chunk_size))
        work[chunk_size] = (list(pages), len(suite.consent.requests) - asked_before)
        assert messages == -(-2250 // max(chunk_size or 500, 100))  # 2,250 records kept, cut by the chunk size
    # 2,500 rows: two full pages and a last one, one consent call per page read,
    # whether the caller asked for 1 record a message or 1000.
    assert work[1] == work[7] == work[0] == work[1000] == ([1000, 1000, 500], 3)


async def test_each_message_counts_the_records_left_out_up_to_its_last_one(suite):
    # Export order: alice's 100, bob's 2, carol's 150, dave's 3; bob and dave have
    # no model-development consent.
    suite.consent.granted |= {(SCORING, "carol"), (DEVELOPMENT, "carol"), (SCORING, "dave")}
    await ingest(suite.stub, *(bill(f"a{i:03d}") for i in range(100)), bill("m0", subject="bob"),
                 bill("m1", subject="bob"), *(bill(f"c{i:03d}", subject="carol") for i in range(150)),
                 *(bill(f"z{i}", subject="dave") for i in range(3)))
    chunks = await _export(suite.stub, chunk_size=100)
    assert [(c.records[0].record.record_id, len(c.records), c.skipped_without_consent) for c in chunks] == [
        ("a000", 100, 0), ("c000", 100, 2), ("c100", 50, 3)]


async def test_records_left_out_after_the_last_full_page_come_in_a_message_of_their_own(suite):
    await ingest(suite.stub, *(bill(f"a{i:04d}") for i in range(1000)))
    await ingest(suite.stub, *(bill(f"z{i}", subject="bob") for i in range(5)), request_id="req-2")
    chunks = await _export(suite.stub, chunk_size=1000)
    assert [(len(c.records), c.skipped_without_consent) for c in chunks] == [(1000, 0), (0, 5)]


async def test_the_training_export_refuses_a_bad_chunk_size(suite):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _export(suite.stub, chunk_size=5000)
    err = CallError.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["chunk_size"]


async def test_the_training_export_of_an_empty_store_is_empty(suite):
    assert await _export(suite.stub) == []
