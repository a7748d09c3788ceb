"""FeatureService.GetFeatureVectors on a real in-process server (port 0), over
SQLite and PostgreSQL: what crosses the wire, bad requests, and who may call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import AuthSettings, CallError, ServerSettings, create_channel, to_timestamp
from feature_service.config import Settings
from feature_service.server import build_server
from tests.authkit import NO_AUTH, TokenKeys, bearer, no_revocations
from tests.fake_scorer import FakeScorer


async def _serve(
    database_url: str, auth: AuthSettings
) -> tuple[Callable[[], Awaitable[None]], feature_pb2_grpc.FeatureServiceStub]:
    handle = await build_server(
        Settings(server=ServerSettings(host="127.0.0.1", port=0), database_url=database_url, auth=auth),
        scorer=FakeScorer(),
        revocations=no_revocations,
    )
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")

    async def stop() -> None:
        await channel.close()
        await handle.stop(0)

    return stop, feature_pb2_grpc.FeatureServiceStub(channel)


@pytest.fixture
async def stub(database_url: str) -> AsyncIterator[feature_pb2_grpc.FeatureServiceStub]:
    stop, stub = await _serve(database_url, NO_AUTH)
    try:
        yield stub
    finally:
        await stop()


def _bill(record_id: str, subject: str, month: int, *, paid: bool) -> feature_pb2.RecordEnvelope:
    due = datetime(2026, month, 10, tzinfo=UTC)
    record = R.Record(record_id=record_id, subject_id=subject)
    record.bill.category = R.BILL_CATEGORY_UTILITY
    record.bill.amount_due.currency_code = "USD"
    record.bill.amount_due.minor_units = 5_000
    record.bill.due_time.CopyFrom(to_timestamp(due))
    if paid:
        record.bill.amount_paid.minor_units = 5_000
        record.bill.paid_time.CopyFrom(to_timestamp(due - timedelta(days=2)))
    record.event_time.CopyFrom(to_timestamp(due + (timedelta(days=-2) if paid else timedelta(days=20))))
    return feature_pb2.RecordEnvelope(producer_id="wallet", record=record)


async def _refused(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def test_one_vector_per_id_in_request_order_equal_to_the_single_reads(stub):
    records = [_bill(f"b{i}", f"s{i % 3}", 1 + i % 9, paid=i % 4 != 0) for i in range(12)]
    await stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="r1", records=records), timeout=5)
    asked = ["s2", "nobody", "s0", "s1", "s2"]
    before = datetime.now(UTC)
    reply = await stub.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(subject_ids=asked), timeout=5)
    vectors = list(reply.feature_vectors)
    assert [v.subject_id for v in vectors] == asked
    # One instant for the whole batch, the server's now.
    assert len({v.as_of_time.ToDatetime(tzinfo=UTC) for v in vectors}) == 1
    assert vectors[0].as_of_time.ToDatetime(tzinfo=UTC) >= before - timedelta(seconds=1)
    for vector in vectors:
        single = (await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(
            subject_id=vector.subject_id, as_of_time=vector.as_of_time), timeout=5)).feature_vector
        assert vector == single
    assert [v.record_count for v in vectors] == [4, 0, 4, 4, 4]
    assert vectors[0] == vectors[-1]
    assert not any(f.HasField("value") for f in vectors[1].features)
    assert len({tuple((f.name, f.value) for f in v.features) for v in vectors}) == 4  # the subjects differ


async def test_bad_requests_name_the_list_or_each_bad_id(stub):
    for ids in ([], ["s"] * 257):
        err = await _refused(stub.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(subject_ids=ids), timeout=5))
        assert (err.code, err.reason, err.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "feature.creditscore")
        assert [(v.field, v.description) for v in err.violations] == [("subject_ids", "must hold 1 to 256 subject ids")]
    err = await _refused(stub.GetFeatureVectors(
        feature_pb2.GetFeatureVectorsRequest(subject_ids=["ok", "", "bad id"]), timeout=5))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["subject_ids[1]", "subject_ids[2]"]
    reply = await stub.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(subject_ids=["s"] * 256), timeout=5)
    assert len(reply.feature_vectors) == 256


async def test_services_may_call_it_as_they_may_get_one_vector_nobody_else(database_url, tmp_path):
    keys = TokenKeys.generate()
    stop, stub = await _serve(database_url, keys.settings(tmp_path))
    try:
        calls = {
            "GetFeatureVectors": lambda md: stub.GetFeatureVectors(
                feature_pb2.GetFeatureVectorsRequest(subject_ids=["s1", "s2"]), metadata=md, timeout=5),
            "GetFeatureVector": lambda md: stub.GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id="s1"), metadata=md, timeout=5),
        }
        for name, call in calls.items():
            await call(bearer(keys.service("gateway")))  # a service: answered
            refusals = {
                "nobody": ((), (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")),
                "partner": (bearer(keys.partner("p1")), (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")),
                "producer": (bearer(keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"])),
                             (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")),
            }
            for who, (metadata, expected) in refusals.items():
                err = await _refused(call(metadata))
                assert (err.code, err.reason) == expected, (name, who)
    finally:
        await stop()
