"""Forgetting a subject's records, on SQLite and PostgreSQL: one source or all,
out of the outbox too (a row shared with another subject's records is rewritten,
not lost), idempotent on the request id; and the export of what is held."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import InvalidArgument, PurgedTable, make_engine, to_timestamp
from ingest_service.ingestion import Ingestor
from ingest_service.store import RecordStore
from ingest_service.subjects import SubjectData

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class GrantAll:
    async def check(self, purpose: int, pairs: Sequence[tuple[str, int]], timeout: float) -> list[bool]:
        return [True] * len(pairs)


def bill(record_id: str, subject: str) -> r.Record:
    return r.Record(
        record_id=record_id, subject_id=subject, event_time=to_timestamp(NOW - timedelta(days=1)),
        bill=r.Bill(category=r.BILL_CATEGORY_TELECOM, amount_due=r.Money(currency_code="USD", minor_units=100),
                    issue_time=to_timestamp(NOW - timedelta(days=30)), due_time=to_timestamp(NOW - timedelta(days=5))))


def rating(record_id: str, subject: str) -> r.Record:
    return r.Record(record_id=record_id, subject_id=subject, event_time=to_timestamp(NOW - timedelta(hours=1)),
                    rating=r.Rating(rated_role=r.PARTY_ROLE_SELLER, stars=4))


@pytest.fixture
async def store(database_url):
    engine = make_engine(database_url)
    store = RecordStore(engine)
    await store.create_schema()
    try:
        yield store
    finally:
        await engine.dispose()


async def test_a_source_purge_takes_only_that_source_and_rewrites_shared_outbox_rows(store):
    ingest = Ingestor(store, GrantAll(), clock=lambda: NOW)
    await ingest.ingest("b1", "wallet", [bill("w-1", "s1"), bill("w-2", "s2"), bill("w-3", "s1")], consent_timeout=5)
    await ingest.ingest("b2", "market", [rating("m-1", "s1")], consent_timeout=5)
    await ingest.ingest("b3", "wallet", [bill("w-4", "s1")], consent_timeout=5)
    subjects = SubjectData(store, clock=lambda: NOW)

    tables = await subjects.purge("p-1", "s1", common_pb2.DATA_SOURCE_PAYMENTS)
    # 3 bills of s1; the first outbox row keeps s2's bill, the third is left empty.
    assert tables == [PurgedTable("records", 3), PurgedTable("outbox", 1, 1)]
    assert [(e.producer_id, e.record_ids) for e in await store.peek_outbox()] == [
        ("wallet", ("w-2",)), ("market", ("m-1",))]
    assert [x.record.record_id for x in (await subjects.export("s1", 0, "")).records] == ["m-1"]
    assert [x.record.record_id for x in (await subjects.export("s2", 0, "")).records] == ["w-2"]
    # The outbox delivers only what is left.
    claimed = await store.claim_due(100, NOW, NOW + timedelta(seconds=10))
    assert sorted(i.record_id for i in claimed) == ["m-1", "w-2"]

    # A retry answers the same; a new request deletes nothing more; then all of s1.
    assert await subjects.purge("p-1", "s1", common_pb2.DATA_SOURCE_PAYMENTS) == tables
    assert await subjects.purge("p-2", "s1", common_pb2.DATA_SOURCE_PAYMENTS) == [
        PurgedTable("records", 0), PurgedTable("outbox", 0, 0)]
    assert await subjects.purge("p-3", "s1", 0) == [PurgedTable("records", 1), PurgedTable("outbox", 1, 0)]
    assert (await subjects.export("s1", 0, "")).records == ()


async def test_the_export_pages_every_record_tombstones_included(store):
    ingest = Ingestor(store, GrantAll(), clock=lambda: NOW)
    await ingest.ingest("b1", "wallet", [bill(f"w-{i}", "s1") for i in range(5)], consent_timeout=5)
    retraction = r.Record(record_id="w-0", subject_id="s1", event_time=to_timestamp(NOW), revision=1, retracted=True)
    await ingest.ingest("b2", "wallet", [retraction], consent_timeout=5)
    subjects = SubjectData(store, clock=lambda: NOW)
    seen, token = [], ""
    while True:
        page = await subjects.export("s1", 2, token)
        seen += [(x.record.record_id, x.record.retracted) for x in page.records]
        token = page.next_page_token
        if not token:
            break
    assert seen == [("w-0", True)] + [(f"w-{i}", False) for i in range(1, 5)]
    with pytest.raises(InvalidArgument) as info:
        await subjects.export("s2", 2, (await subjects.export("s1", 2, "")).next_page_token)
    assert info.value.reason == "INVALID_PAGE_TOKEN"
