"""FeatureService on a real in-process server (scoring through a fake of its
port): what crosses the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import SubjectState, apply_record, vector_valid_until
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import CallError, ServerSettings, create_channel, make_engine, to_timestamp
from feature_service.config import Settings
from feature_service.features import FeatureBook
from feature_service.server import build_server
from feature_service.store import FeatureStore
from feature_service.validation import MAX_SUBJECTS_PER_BATCH
from tests.authkit import NO_AUTH
from tests.fake_scorer import FakeScorer

AS_OF = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
async def stub(database_url: str, scorer: FakeScorer) -> AsyncIterator[feature_pb2_grpc.FeatureServiceStub]:
    settings = Settings(
        server=ServerSettings(host="127.0.0.1", port=0), database_url=database_url, auth=NO_AUTH,
        score_refresh_seconds=60, model_refresh_seconds=60,
    )
    handle = await build_server(settings, scorer=scorer)
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        yield feature_pb2_grpc.FeatureServiceStub(channel)
    finally:
        await channel.close()
        await handle.stop(0)


def _bill(record_id: str, subject: str, month: int, *, paid: bool = True) -> feature_pb2.RecordEnvelope:
    due = datetime(2025, month, 10, tzinfo=UTC)
    record = R.Record(record_id=record_id, subject_id=subject)
    record.bill.category = R.BILL_CATEGORY_TELECOM
    record.bill.amount_due.currency_code = "USD"
    record.bill.amount_due.minor_units = 4_000
    record.bill.due_time.CopyFrom(to_timestamp(due))
    if paid:
        record.bill.amount_paid.minor_units = 4_000
        record.bill.paid_time.CopyFrom(to_timestamp(due - timedelta(days=1)))
        record.event_time.CopyFrom(to_timestamp(due - timedelta(days=1)))
    else:
        record.event_time.CopyFrom(to_timestamp(due + timedelta(days=30)))
    return feature_pb2.RecordEnvelope(producer_id="wallet", record=record)


def _apply(request_id: str, *envelopes: feature_pb2.RecordEnvelope) -> feature_pb2.ApplyRecordsRequest:
    return feature_pb2.ApplyRecordsRequest(request_id=request_id, records=envelopes)


async def _vector(stub, subject: str, as_of: datetime = AS_OF) -> feature_pb2.FeatureVector:
    reply = await stub.GetFeatureVector(
        feature_pb2.GetFeatureVectorRequest(subject_id=subject, as_of_time=to_timestamp(as_of)), timeout=5
    )
    return reply.feature_vector


def _values(vector: feature_pb2.FeatureVector) -> dict[str, float | None]:
    return {f.name: (f.value if f.HasField("value") else None) for f in vector.features}


async def _invalid(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    err = CallError.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.reason, err.domain) == ("INVALID_ARGUMENT", "feature.creditscore")
    return err


async def test_apply_then_get(stub):
    reply = await stub.ApplyRecords(
        _apply("req-1", _bill("b1", "s1", 11), _bill("b2", "s1", 12, paid=False), _bill("b3", "s2", 12)),
        timeout=5,
    )
    assert (reply.applied_count, reply.duplicate_count) == (3, 0)
    vector = await _vector(stub, "s1")
    assert vector.subject_id == "s1" and vector.record_count == 2
    assert vector.as_of_time == to_timestamp(AS_OF)
    assert [f.name for f in vector.features] == list(FEATURE_NAMES)
    values = _values(vector)
    assert values["pay_bills_paid_count"] == 1.0
    assert values["pay_ontime_ratio_12m"] == 0.5
    assert values["pay_unpaid_past_due_amount"] == 40.0
    assert values["pay_worst_days_late_12m"] == 53.0  # due 2025-12-10, as of 2026-02-01
    assert values["pay_utility_telecom_months_12m"] == 1.0
    assert values["buyer_order_count_12m"] is None and values["identity_verified"] is None


async def test_the_same_records_applied_twice_count_once(stub):
    request = _apply("req-1", _bill("b1", "s1", 10), _bill("b2", "s1", 11))
    first = await stub.ApplyRecords(request, timeout=5)
    again = await stub.ApplyRecords(request, timeout=5)
    overlap = await stub.ApplyRecords(_apply("req-2", _bill("b2", "s1", 11), _bill("b3", "s1", 12)), timeout=5)
    assert (first.applied_count, first.duplicate_count) == (2, 0)
    assert (again.applied_count, again.duplicate_count) == (0, 2)
    assert (overlap.applied_count, overlap.duplicate_count) == (1, 1)
    vector = await _vector(stub, "s1")
    assert vector.record_count == 3
    assert _values(vector)["pay_bills_paid_count"] == 3.0


async def test_a_bad_batch_is_refused_whole_with_every_violation(stub):
    good = _bill("b1", "s1", 11)
    no_subject = _bill("b2", "", 11)
    no_body = feature_pb2.RecordEnvelope(producer_id="wallet", record=R.Record(record_id="b3", subject_id="s1"))
    no_body.record.event_time.CopyFrom(to_timestamp(AS_OF))
    no_producer = _bill("b4", "s1", 11)
    no_producer.producer_id = ""
    bad_stars = feature_pb2.RecordEnvelope(producer_id="marketplace", record=R.Record(subject_id="s1"))
    bad_stars.record.event_time.CopyFrom(to_timestamp(AS_OF))
    bad_stars.record.rating.rated_role = R.PARTY_ROLE_SELLER
    bad_stars.record.rating.stars = 7
    future = _bill("b6", "s1", 11)
    future.record.event_time.CopyFrom(to_timestamp(datetime.now(UTC) + timedelta(days=1)))
    err = await _invalid(stub.ApplyRecords(
        _apply("", good, no_subject, no_body, no_producer, bad_stars, future), timeout=5))
    assert [(v.field, v.description) for v in err.violations] == [
        ("request_id", "must be set"),
        ("records[1].record.subject_id", "must be set"),
        ("records[2].record.body", "must be set: one of order, rating, bill, identity, external, loan_outcome"),
        ("records[3].producer_id", "must be set"),
        ("records[4].record.record_id", "must be set"),
        ("records[4].record.rating.stars", "must be 1 to 5"),
        ("records[5].record.event_time", "must not be in the future"),
    ]
    # Nothing of the batch was applied, not even the good record.
    assert (await _vector(stub, "s1")).record_count == 0


async def test_batch_size_limits(stub):
    err = await _invalid(stub.ApplyRecords(_apply("req-1"), timeout=5))
    assert [v.field for v in err.violations] == ["records"]
    many = [_bill(f"b{i}", "s1", 1 + i % 12) for i in range(1001)]
    err = await _invalid(stub.ApplyRecords(_apply("req-2", *many), timeout=10))
    assert [(v.field, v.description) for v in err.violations] == [("records", "must hold 1 to 1000 records")]
    reply = await stub.ApplyRecords(_apply("req-3", *many[:1000]), timeout=10)
    assert reply.applied_count == 1000


async def test_as_of_in_the_future_is_refused(stub):
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    err = await _invalid(stub.GetFeatureVector(
        feature_pb2.GetFeatureVectorRequest(subject_id="s1", as_of_time=to_timestamp(tomorrow)), timeout=5))
    assert [(v.field, v.description) for v in err.violations] == [("as_of_time", "must not be in the future")]
    err = await _invalid(stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(), timeout=5))
    assert [(v.field, v.description) for v in err.violations] == [("subject_id", "must be set")]


async def test_unknown_subject_gets_an_all_missing_vector(stub):
    before = datetime.now(UTC)
    reply = await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id="nobody"), timeout=5)
    vector = reply.feature_vector
    assert vector.subject_id == "nobody" and vector.record_count == 0
    assert [f.name for f in vector.features] == list(FEATURE_NAMES)
    assert not any(f.HasField("value") for f in vector.features)
    # as_of_time defaults to the server's "now"
    assert vector.as_of_time.ToDatetime(tzinfo=UTC) >= before - timedelta(seconds=1)


async def test_as_of_moves_windows_and_unpaid_days(stub):
    await stub.ApplyRecords(_apply("req-1", _bill("b1", "s1", 6, paid=False)), timeout=5)
    early = _values(await _vector(stub, "s1", datetime(2025, 7, 10, tzinfo=UTC)))
    later = _values(await _vector(stub, "s1", datetime(2025, 8, 10, tzinfo=UTC)))
    assert (early["pay_worst_days_late_12m"], later["pay_worst_days_late_12m"]) == (30.0, 61.0)
    gone = _values(await _vector(stub, "s1", datetime(2026, 7, 1, tzinfo=UTC)))
    assert gone["pay_worst_days_late_12m"] is None and gone["pay_unpaid_past_due_amount"] == 40.0


async def test_corrections_and_retractions_over_the_wire(stub):
    unpaid = _bill("b1", "s1", 11, paid=False)
    await stub.ApplyRecords(_apply("req-1", unpaid, _bill("b2", "s1", 12)), timeout=5)
    assert _values(await _vector(stub, "s1"))["pay_unpaid_past_due_amount"] == 40.0
    paid = _bill("b1", "s1", 11)
    paid.record.revision = 1
    reply = await stub.ApplyRecords(_apply("req-2", paid), timeout=5)
    assert (reply.applied_count, reply.duplicate_count) == (1, 0)
    vector = await _vector(stub, "s1")
    assert vector.record_count == 2 and _values(vector)["pay_unpaid_past_due_amount"] == 0.0
    retract = feature_pb2.RecordEnvelope(producer_id="wallet", record=R.Record(
        record_id="b2", subject_id="s1", revision=1, retracted=True, event_time=to_timestamp(AS_OF)))
    reply = await stub.ApplyRecords(_apply("req-3", retract, paid), timeout=5)
    assert (reply.applied_count, reply.duplicate_count) == (1, 1)
    assert (await _vector(stub, "s1")).record_count == 1


async def test_a_malformed_retraction_is_refused(stub):
    with_body = _bill("b1", "s1", 11)
    with_body.record.retracted = True
    with_body.record.revision = 1
    no_revision = feature_pb2.RecordEnvelope(producer_id="wallet", record=R.Record(
        record_id="b2", subject_id="s1", retracted=True, event_time=to_timestamp(AS_OF)))
    negative = _bill("b3", "s1", 11)
    negative.record.revision = -2
    err = await _invalid(stub.ApplyRecords(_apply("req-1", with_body, no_revision, negative), timeout=5))
    assert [v.field for v in err.violations] == [
        "records[0].record.bill", "records[1].record.revision", "records[2].record.revision"]


async def test_a_vector_says_until_when_it_stays_the_same(stub):
    envelopes = [_bill("b1", "s1", 11), _bill("b2", "s1", 12, paid=False)]
    await stub.ApplyRecords(_apply("req-1", *envelopes), timeout=5)
    state = SubjectState()
    for envelope in envelopes:
        apply_record(state, envelope.record)

    def expected(as_of: datetime) -> datetime:
        return datetime.fromtimestamp(vector_valid_until(state, int(as_of.timestamp())), UTC)

    # As of 2026-02-01 00:00 the unpaid bill is exactly 53 days late: 54 a second later.
    vector = await _vector(stub, "s1")
    assert vector.HasField("valid_until_time")
    assert vector.valid_until_time.ToDatetime(tzinfo=UTC) == expected(AS_OF) == AS_OF + timedelta(seconds=1)
    # Before it came due (2025-12-10), and after the first record's one-month tenure
    # (2025-12-09, a month after 2025-11-09): when it comes due.
    early = datetime(2025, 12, 9, 8, tzinfo=UTC)
    vector = await _vector(stub, "s1", early)
    assert vector.valid_until_time.ToDatetime(tzinfo=UTC) == expected(early) == datetime(2025, 12, 10, tzinfo=UTC)
    # GetFeatureVectors (as of now) carries it too; nobody's is the next month start.
    reply = await stub.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(subject_ids=["s1", "nobody"]), timeout=5)
    known, nobody = reply.feature_vectors
    now = known.as_of_time.ToDatetime(tzinfo=UTC)
    assert known.valid_until_time.ToDatetime(tzinfo=UTC) == expected(now)
    next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    assert nobody.valid_until_time.ToDatetime(tzinfo=UTC) == next_month


def _current(*subject_ids: str) -> feature_pb2.GetCurrentScoresRequest:
    return feature_pb2.GetCurrentScoresRequest(subject_ids=subject_ids)


async def test_current_scores_in_request_order_with_repeats(stub, scorer):
    await stub.ApplyRecords(_apply("req-1", _bill("b1", "s1", 11), _bill("b2", "s2", 12, paid=False)), timeout=5)
    reply = await stub.GetCurrentScores(_current("s2", "nobody", "s1", "s2"), timeout=5)
    answers = list(reply.current_scores)
    assert [a.subject_id for a in answers] == ["s2", "nobody", "s1", "s2"]
    assert [a.score.subject_id for a in answers] == ["s2", "nobody", "s1", "s2"]
    # Known subjects: the score materialized when their records were applied.
    assert answers[0].score == scorer.given["s2"] == answers[3].score
    assert answers[2].score == scorer.given["s1"] and answers[2].score.score_id > 0
    assert list(answers[0].sources_used) == list(answers[2].sources_used) == [common_pb2.DATA_SOURCE_PAYMENTS]
    # No data: the model's score of an empty vector.
    nobody = answers[1]
    assert nobody.score.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA
    assert (nobody.score.score_id, nobody.score.model_version, list(nobody.sources_used)) == (0, "v1", [])


async def test_current_scores_requests_are_validated(stub):
    for request in (_current(), _current(*["s"] * (MAX_SUBJECTS_PER_BATCH + 1))):
        err = await _invalid(stub.GetCurrentScores(request, timeout=5))
        assert [(v.field, v.description) for v in err.violations] == [
            ("subject_ids", f"must hold 1 to {MAX_SUBJECTS_PER_BATCH} subject ids")
        ]
    err = await _invalid(stub.GetCurrentScores(_current("ok", "", "not ok!"), timeout=5))
    assert [v.field for v in err.violations] == ["subject_ids[1]", "subject_ids[2]"]
    assert "GetCurrentScores" in err.message


async def test_a_stale_row_without_scoring_is_unavailable(stub, scorer, database_url):
    await stub.GetCurrentScores(_current("nobody"), timeout=5)  # the model and the no-data score known
    scorer.down = True
    # A row with no score (as written before scores were materialized).
    engine = make_engine(database_url)
    try:
        await FeatureBook(FeatureStore(engine)).apply([("wallet", _bill("b1", "s1", 11).record)])
    finally:
        await engine.dispose()
    reply = await stub.GetCurrentScores(_current("nobody"), timeout=5)
    assert reply.current_scores[0].score.subject_id == "nobody"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetCurrentScores(_current("nobody", "s1"), timeout=5)
    err = CallError.from_rpc_error(info.value)
    assert (err.code, err.reason, err.domain) == (
        grpc.StatusCode.UNAVAILABLE, "SCORING_UNAVAILABLE", "feature.creditscore")
    # An apply cannot commit without its scores either.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ApplyRecords(_apply("req-2", _bill("b2", "s2", 11)), timeout=5)
    assert CallError.from_rpc_error(info.value).reason == "SCORING_UNAVAILABLE"
    scorer.down = False
    reply = await stub.GetCurrentScores(_current("nobody", "s1"), timeout=5)
    assert reply.current_scores[1].score == scorer.given["s1"]
    assert list(reply.current_scores[1].sources_used) == [common_pb2.DATA_SOURCE_PAYMENTS]
