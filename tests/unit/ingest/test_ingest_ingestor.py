"""Ingestor domain logic without gRPC: a fake consent checker, a real store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import InvalidArgument, Unavailable, make_engine, to_timestamp
from ingest_service.ingestion import Ingestor, Status
from ingest_service.store import RecordStore

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SCORING, DEVELOPMENT = common_pb2.PURPOSE_CREDIT_SCORING, common_pb2.PURPOSE_MODEL_DEVELOPMENT
PAYMENTS, COMMERCE, OUTCOMES = (
    common_pb2.DATA_SOURCE_PAYMENTS, common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_OUTCOMES)


class FakeConsent:
    """Grants what is in ``granted``; records every call; can be made to fail."""

    def __init__(self, granted: set[tuple[int, str, int]]) -> None:
        self.granted = granted
        self.calls: list[tuple[int, list[tuple[str, int]], float]] = []
        self.error: Exception | None = None

    async def check(self, purpose: int, pairs: Sequence[tuple[str, int]], timeout: float) -> list[bool]:
        self.calls.append((purpose, list(pairs), timeout))
        if self.error is not None:
            raise self.error
        return [(purpose, subject, source) in self.granted for subject, source in pairs]


def bill(record_id: str, subject: str = "s1", units: int = 5000) -> r.Record:
    return r.Record(
        record_id=record_id, subject_id=subject, event_time=to_timestamp(NOW - timedelta(days=1)),
        bill=r.Bill(category=r.BILL_CATEGORY_TELECOM, amount_due=r.Money(currency_code="USD", minor_units=units),
                    issue_time=to_timestamp(NOW - timedelta(days=30)), due_time=to_timestamp(NOW - timedelta(days=5))))


def rating(record_id: str, subject: str = "s1") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, event_time=to_timestamp(NOW - timedelta(hours=1)),
                    rating=r.Rating(rated_role=r.PARTY_ROLE_SELLER, stars=5))


def outcome(record_id: str, subject: str = "s1") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, event_time=to_timestamp(NOW - timedelta(days=2)),
                    loan_outcome=r.LoanOutcome(application_time=to_timestamp(NOW - timedelta(days=300)),
                                               label=r.LOAN_OUTCOME_LABEL_BAD))


@pytest.fixture
async def store(database_url):
    engine = make_engine(database_url)
    store = RecordStore(engine)
    await store.create_schema()
    try:
        yield store
    finally:
        await engine.dispose()


@pytest.fixture
def consent():
    return FakeConsent({(SCORING, "s1", PAYMENTS), (SCORING, "s1", COMMERCE), (SCORING, "s2", PAYMENTS),
                        (DEVELOPMENT, "s1", OUTCOMES)})


@pytest.fixture
def woken():
    return []


@pytest.fixture
def ingestor(store, consent, woken):
    return Ingestor(store, consent, on_enqueued=lambda: woken.append(True), clock=lambda: NOW)


def summary(outcome) -> list[tuple[int, str, Status, str]]:
    return [(x.index, x.record_id, x.status, x.reason) for x in outcome.results]


async def test_one_consent_call_per_purpose_each_pair_asked_once(ingestor, consent, store, woken):
    batch = [bill("b1"), bill("b2"), rating("r1"), bill("b3", subject="s2"), bill("b4", subject="s3")]
    out = await ingestor.ingest("req", "prod", batch, consent_timeout=1.5)
    assert summary(out) == [
        (0, "b1", Status.ACCEPTED, ""), (1, "b2", Status.ACCEPTED, ""), (2, "r1", Status.ACCEPTED, ""),
        (3, "b3", Status.ACCEPTED, ""), (4, "b4", Status.REJECTED, "CONSENT_REQUIRED")]
    assert consent.calls == [(SCORING, [("s1", PAYMENTS), ("s1", COMMERCE), ("s2", PAYMENTS), ("s3", PAYMENTS)], 1.5)]
    assert (out.count(Status.ACCEPTED), out.count(Status.REJECTED)) == (4, 1)
    assert await store.outbox_backlog() == 4 and woken == [True]


async def test_outcomes_need_model_development_consent_and_are_not_queued(ingestor, consent, store, woken):
    out = await ingestor.ingest("req", "prod", [outcome("o1"), outcome("o2", subject="s2")], consent_timeout=1)
    assert summary(out) == [(0, "o1", Status.ACCEPTED, ""), (1, "o2", Status.REJECTED, "CONSENT_REQUIRED")]
    assert [c[:2] for c in consent.calls] == [(DEVELOPMENT, [("s1", OUTCOMES), ("s2", OUTCOMES)])]
    assert await store.outbox_backlog() == 0 and woken == []
    assert [p.record.record_id for p in (await ingestor.list_records("s1", 0, "")).records] == ["o1"]

    consent.calls.clear()
    out = await ingestor.ingest("req2", "prod", [bill("b1"), outcome("o3")], consent_timeout=1)
    assert [x.status for x in out.results] == [Status.ACCEPTED, Status.ACCEPTED]
    assert sorted(c[0] for c in consent.calls) == [SCORING, DEVELOPMENT]
    assert await store.outbox_backlog() == 1


async def test_invalid_records_are_reported_and_never_asked_about(ingestor, consent):
    bad = bill("b2")
    bad.bill.amount_due.currency_code = "usd"
    bad.subject_id = "not valid!"
    out = await ingestor.ingest("req", "prod", [bill("b1"), bad], consent_timeout=1)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, ""), (1, "b2", Status.REJECTED, "INVALID_RECORD")]
    assert [v.field for v in out.results[1].violations] == ["subject_id", "bill.amount_due.currency_code"]
    assert consent.calls[0][1] == [("s1", PAYMENTS)]


async def test_a_batch_of_only_invalid_records_asks_nobody(ingestor, consent, store):
    out = await ingestor.ingest("req", "prod", [r.Record(record_id="x")], consent_timeout=1)
    assert out.results[0].reason == "INVALID_RECORD" and consent.calls == []


async def test_repeats_within_a_batch_are_judged_against_the_first(ingestor, store):
    changed = bill("b1", units=1)
    out = await ingestor.ingest(
        "req", "prod",
        [bill("b1"), bill("b1"), changed, bill("x", subject="s9"), bill("x", subject="s9")],
        consent_timeout=1)
    assert summary(out) == [
        (0, "b1", Status.ACCEPTED, ""), (1, "b1", Status.DUPLICATE, ""),
        (2, "b1", Status.REJECTED, "CONFLICTING_DUPLICATE"),
        (3, "x", Status.REJECTED, "CONSENT_REQUIRED"), (4, "x", Status.REJECTED, "CONSENT_REQUIRED")]
    assert out.results[2].violations[0].field == "record_id"
    assert "index 0" in out.results[2].violations[0].description
    assert await store.outbox_backlog() == 1


async def test_resending_is_a_duplicate_and_changed_content_a_conflict(ingestor, store, woken):
    await ingestor.ingest("req", "prod", [bill("b1"), bill("b2")], consent_timeout=1)
    out = await ingestor.ingest("req-again", "prod", [bill("b1"), bill("b2", units=7), bill("b3")],
                                consent_timeout=1)
    assert summary(out) == [(0, "b1", Status.DUPLICATE, ""), (1, "b2", Status.REJECTED, "CONFLICTING_DUPLICATE"),
                            (2, "b3", Status.ACCEPTED, "")]
    assert (out.count(Status.ACCEPTED), out.count(Status.DUPLICATE), out.count(Status.REJECTED)) == (1, 1, 1)
    assert await store.outbox_backlog() == 3 and len(woken) == 2
    assert [o.results[0].status for o in [
        await ingestor.ingest("r3", "prod", [bill("b1")], consent_timeout=1)]] == [Status.DUPLICATE]
    assert len(woken) == 2  # nothing queued, nobody woken


async def test_consent_failure_fails_the_call_and_stores_nothing(ingestor, consent, store):
    consent.error = Unavailable("down", reason="CONSENT_SERVICE_UNAVAILABLE")
    with pytest.raises(Unavailable):
        await ingestor.ingest("req", "prod", [bill("b1"), outcome("o1")], consent_timeout=1)
    assert await store.outbox_backlog() == 0
    assert (await ingestor.list_records("s1", 0, "")).records == ()


@pytest.mark.parametrize(("request_id", "producer_id", "count", "fields"), [
    ("", "prod", 1, ["request_id"]),
    ("req", "", 1, ["producer_id"]),
    ("req", "prod", 0, ["records"]),
    ("req", "prod", 1001, ["records"]),
])
async def test_a_malformed_batch_is_invalid_argument(ingestor, consent, request_id, producer_id, count, fields):
    with pytest.raises(InvalidArgument) as info:
        await ingestor.ingest(request_id, producer_id, [bill(f"b{i}") for i in range(count)], consent_timeout=1)
    assert [v.field for v in info.value.violations] == fields
    assert consent.calls == []


async def test_list_records_pages_and_checks_its_input(ingestor):
    await ingestor.ingest("req", "prod", [bill(f"b{i}") for i in range(5)] + [bill("z", subject="s2")],
                          consent_timeout=1)
    seen, token, pages = [], "", 0
    while True:
        page = await ingestor.list_records("s1", 2, token)
        seen += [v.record.record_id for v in page.records]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == ["b0", "b1", "b2", "b3", "b4"] and pages == 3
    assert all(v.ingest_time == NOW and v.producer_id == "prod"
               for v in (await ingestor.list_records("s1", 0, "")).records)

    first = await ingestor.list_records("s1", 1, "")
    with pytest.raises(InvalidArgument) as info:
        await ingestor.list_records("s2", 1, first.next_page_token)
    assert info.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as info:
        await ingestor.list_records("", -1, "garbage!!")
    assert [v.field for v in info.value.violations] == ["subject_id", "page_size", "page_token"]


# -- corrections within a batch, and streams ------------------------------------------------

from ingest_service.ingestion import Chunk  # noqa: E402


def retraction(record_id: str, revision: int, subject: str = "s1") -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, revision=revision, retracted=True,
                    event_time=to_timestamp(NOW - timedelta(minutes=1)))


async def test_retractions_are_not_asked_about_and_versions_in_a_batch_apply_in_order(ingestor, consent, store):
    await ingestor.ingest("req", "prod", [bill("b1")], consent_timeout=1)
    consent.calls.clear()
    fixed = bill("b1", units=7000)
    fixed.revision = 1
    out = await ingestor.ingest("req2", "prod", [retraction("b1", 2, subject="s9"), fixed, retraction("b1", 3)],
                                consent_timeout=1)
    # The retraction for another subject is judged first (round 0): refused;
    # then the correction (round 1), then the retraction (round 2).
    assert summary(out) == [(0, "b1", Status.REJECTED, "INVALID_CORRECTION"), (1, "b1", Status.ACCEPTED, ""),
                            (2, "b1", Status.ACCEPTED, "")]
    assert consent.calls == [(SCORING, [("s1", PAYMENTS)], 1)]
    assert (await ingestor.list_records("s1", 0, "")).records == ()


async def chunks_of(*chunks: Chunk):
    for chunk in chunks:
        yield chunk


async def test_a_stream_indexes_results_across_chunks(ingestor, consent, store):
    out = await ingestor.ingest_stream(
        chunks_of(Chunk("c0", "prod", [bill("b1"), bill("b2")]), Chunk("c1", "", [bill("b1"), bill("b3", "s9")])),
        consent_timeout=lambda: 2.0, reply_budget=10**6)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, ""), (1, "b2", Status.ACCEPTED, ""),
                            (2, "b1", Status.DUPLICATE, ""), (3, "b3", Status.REJECTED, "CONSENT_REQUIRED")]
    assert out.chunks == 2 and [c[2] for c in consent.calls] == [2.0, 2.0]


async def test_a_consent_failure_mid_stream_says_what_was_committed(ingestor, consent, store):
    class FailSecond:
        def __init__(self) -> None:
            self.calls = 0

        async def check(self, purpose, pairs, timeout):
            self.calls += 1
            if self.calls > 1:
                raise Unavailable("down", reason="CONSENT_SERVICE_UNAVAILABLE")
            return [True] * len(pairs)

    flaky = Ingestor(store, FailSecond(), clock=lambda: NOW)
    with pytest.raises(Unavailable) as info:
        await flaky.ingest_stream(chunks_of(Chunk("c0", "prod", [bill("b1")]), Chunk("c1", "prod", [bill("b2")])),
                                  consent_timeout=lambda: 1.0, reply_budget=10**6)
    assert info.value.metadata == {"records_committed": "1", "chunks_committed": "1"}
    assert [v.record.record_id for v in (await flaky.list_records("s1", 0, "")).records] == ["b1"]


# --- the authenticated producer -------------------------------------------------

async def test_a_producer_sends_only_under_its_own_id(ingestor, store):
    from creditscore.runtime import PermissionDenied
    from ingest_service.ingestion import AuthorizedProducer

    wallet = AuthorizedProducer("wallet", frozenset({PAYMENTS}))
    with pytest.raises(PermissionDenied) as info:
        await ingestor.ingest("req", "marketplace", [bill("b1")], consent_timeout=1, producer=wallet)
    assert info.value.reason == "PRODUCER_MISMATCH"
    assert await store.list_by_subject("s1", 10, None) == []
    out = await ingestor.ingest("req", "wallet", [bill("b1")], consent_timeout=1, producer=wallet)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, "")]


async def test_a_record_of_a_source_the_producer_may_not_send_is_rejected(ingestor, consent, store):
    from ingest_service.ingestion import AuthorizedProducer

    wallet = AuthorizedProducer("wallet", frozenset({PAYMENTS}))
    out = await ingestor.ingest("req", "wallet", [bill("b1"), rating("r1"), outcome("o1")],
                                consent_timeout=1, producer=wallet)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, ""), (1, "r1", Status.REJECTED, "SOURCE_NOT_ALLOWED"),
                            (2, "o1", Status.REJECTED, "SOURCE_NOT_ALLOWED")]
    assert [v.field for v in out.results[1].violations] == ["body"]
    assert "DATA_SOURCE_COMMERCE" in out.results[1].violations[0].description
    # Consent was asked only about what the producer may send.
    assert [pairs for _, pairs, _ in consent.calls] == [[("s1", PAYMENTS)]]
    assert [row.record_id for row in await store.list_by_subject("s1", 10, None)] == ["b1"]
    # A retraction has no body: it takes back the producer's own record.
    retract = r.Record(record_id="b1", subject_id="s1", event_time=to_timestamp(NOW), revision=1, retracted=True)
    out = await ingestor.ingest("req2", "wallet", [retract], consent_timeout=1, producer=wallet)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, "")]


async def test_a_stream_is_checked_chunk_by_chunk(ingestor):
    from creditscore.runtime import PermissionDenied
    from ingest_service.ingestion import AuthorizedProducer, Chunk

    wallet = AuthorizedProducer("wallet", frozenset({PAYMENTS}))

    async def chunks(*items):
        for item in items:
            yield item

    with pytest.raises(PermissionDenied) as info:
        await ingestor.ingest_stream(chunks(Chunk("c0", "marketplace", [bill("b1")])),
                                     consent_timeout=lambda: 1.0, reply_budget=1 << 20, producer=wallet)
    assert info.value.reason == "PRODUCER_MISMATCH"
    assert info.value.metadata["records_committed"] == "0"
    out = await ingestor.ingest_stream(
        chunks(Chunk("c0", "wallet", [bill("b1")]), Chunk("c1", "", [rating("r1")])),
        consent_timeout=lambda: 1.0, reply_budget=1 << 20, producer=wallet)
    assert summary(out) == [(0, "b1", Status.ACCEPTED, ""), (1, "r1", Status.REJECTED, "SOURCE_NOT_ALLOWED")]
