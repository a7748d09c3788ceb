"""Corrections and retractions through FeatureBook and its store, on SQLite and
PostgreSQL: each (producer, record, revision) counts once, in any delivery order,
and the aggregates equal those of the versions that stand."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from creditscore.features.engine import SubjectState, advance_horizon, apply_record, feature_vector
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import make_engine, to_timestamp
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.store import FeatureStore, applied_records

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str):
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def store(engine) -> AsyncIterator[FeatureStore]:
    store = FeatureStore(engine)
    await store.create_schema()
    return store


@pytest.fixture
def book(store: FeatureStore) -> FeatureBook:
    return FeatureBook(store, clock=lambda: NOW)


def bill(record_id: str, *, revision: int = 0, paid: bool = True, days_late: int = 0,
         subject: str = "s1") -> R.Record:
    due = datetime(2026, 9, 10, tzinfo=UTC)
    record = R.Record(record_id=record_id, subject_id=subject, revision=revision)
    b = record.bill
    b.category = R.BILL_CATEGORY_UTILITY
    b.amount_due.currency_code = "USD"
    b.amount_due.minor_units = 5_000
    b.issue_time.CopyFrom(to_timestamp(due - timedelta(days=20)))
    b.due_time.CopyFrom(to_timestamp(due))
    if paid:
        paid_at = due + timedelta(days=days_late)
        b.amount_paid.currency_code = "USD"
        b.amount_paid.minor_units = 5_000
        b.paid_time.CopyFrom(to_timestamp(paid_at))
        record.event_time.CopyFrom(to_timestamp(paid_at))
    else:
        record.event_time.CopyFrom(to_timestamp(due + timedelta(days=5)))
    return record


def retraction(record_id: str, revision: int, subject: str = "s1") -> R.Record:
    return R.Record(record_id=record_id, subject_id=subject, revision=revision, retracted=True,
                    event_time=to_timestamp(NOW - timedelta(days=1)))


async def revisions(engine) -> dict[str, tuple[int, bool]]:
    """record id -> (revision applied, whether its version is kept as feeding)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(applied_records.c.record_id, applied_records.c.revision,
                                         applied_records.c.payload))
        return {row.record_id: (int(row.revision), row.payload is not None) for row in rows}


async def test_a_bill_corrected_to_paid_changes_the_features_and_counts_once(book, store, engine):
    assert (await book.apply([("wallet", bill("b1", paid=False)), ("wallet", bill("b2"))])).applied == 2
    before = (await book.vector("s1", NOW)).values
    assert before["pay_unpaid_past_due_amount"] == 50.0 and before["pay_bills_paid_count"] == 1.0

    result = await book.apply([("wallet", bill("b1", revision=1, days_late=3))])
    assert (result.applied, result.duplicates) == (1, 0)
    after = await book.vector("s1", NOW)
    assert after.record_count == 2  # replaced, not added
    assert after.values["pay_unpaid_past_due_amount"] == 0.0
    assert after.values["pay_bills_paid_count"] == 2.0
    assert after.values["pay_worst_days_late_12m"] == 3.0
    assert after.values["pay_ontime_ratio_12m"] == 0.5
    assert (await revisions(engine))["b1"] == (1, True)

    # Redelivered, the correction is a duplicate; so is the original.
    again = await book.apply([("wallet", bill("b1", revision=1, days_late=3)), ("wallet", bill("b1", paid=False))])
    assert (again.applied, again.duplicates) == (0, 2)
    assert (await book.vector("s1", NOW)).values == after.values


async def test_a_retraction_takes_the_record_out(book, store, engine):
    await book.apply([("wallet", bill("b1", days_late=12)), ("wallet", bill("b2"))])
    result = await book.apply([("wallet", retraction("b1", 1))])
    assert result.applied == 1
    vector = await book.vector("s1", NOW)
    assert vector.record_count == 1
    assert vector.values["pay_worst_days_late_12m"] == 0.0 and vector.values["pay_bills_paid_count"] == 1.0
    assert (await revisions(engine))["b1"] == (1, False)
    stored = await store.get("s1")
    expected = SubjectState()
    apply_record(expected, bill("b2"))
    advance_horizon(expected, stored.state.last_month)
    assert stored.state == expected
    # Retracting the last record leaves no data at all, not zeros.
    await book.apply([("wallet", retraction("b2", 4))])
    vector = await book.vector("s1", NOW)
    assert vector.record_count == 0 and all(v is None for v in vector.values.values())


async def test_versions_delivered_out_of_order_end_at_the_highest(book, store, engine):
    assert (await book.apply([("wallet", bill("b1", revision=2, days_late=9))])).applied == 1
    late = await book.apply([("wallet", bill("b1", revision=1, days_late=4)), ("wallet", bill("b1", paid=False))])
    assert (late.applied, late.duplicates) == (0, 2)
    assert (await book.vector("s1", NOW)).values["pay_worst_days_late_12m"] == 9.0
    # A retraction that arrives before the record it retracts leaves a tombstone:
    # the record, delivered late, does not count.
    assert (await book.apply([("wallet", retraction("b9", 1))])).applied == 1
    assert (await book.apply([("wallet", bill("b9", days_late=30))])).duplicates == 1
    vector = await book.vector("s1", NOW)
    assert vector.record_count == 1 and vector.values["pay_worst_days_late_12m"] == 9.0


async def test_within_one_request_the_highest_revision_counts(book, engine):
    result = await book.apply([
        ("wallet", bill("b1", paid=False)), ("wallet", bill("b1", revision=3, days_late=2)),
        ("wallet", bill("b1", revision=1, days_late=7)),
    ])
    assert (result.applied, result.duplicates) == (1, 2)
    vector = await book.vector("s1", NOW)
    assert vector.record_count == 1 and vector.values["pay_worst_days_late_12m"] == 2.0
    assert (await revisions(engine))["b1"] == (3, True)


async def test_random_corrections_in_any_order_equal_the_versions_that_stand(book, store):
    """A simulated population, then corrections and retractions of random records,
    delivered shuffled and partly twice: every subject ends exactly as if only the
    highest version of each record had ever been applied."""
    population = simulate(8, seed=21)
    records = [r for r in population.records]
    originals = [(producer_of(r), r) for r in records]
    for start in range(0, len(originals), 400):
        await book.apply(originals[start:start + 400])
    anchors = {s: (await store.get(s)).state.last_month for s in {r.subject_id for r in records}}

    rng = random.Random(5)
    latest: dict[tuple[str, str], R.Record] = {(p, r.record_id): r for p, r in originals}
    deliveries: list[tuple[str, R.Record]] = []
    for producer, record in rng.sample(originals, 120):
        for revision in range(1, rng.randrange(2, 4)):
            if rng.random() < 0.3:
                version = R.Record(record_id=record.record_id, subject_id=record.subject_id, revision=revision,
                                   retracted=True, event_time=record.event_time)
            else:
                version = R.Record()
                version.CopyFrom(record)
                version.revision = revision
                version.event_time.seconds -= rng.randrange(0, 40) * 86_400  # a changed fact
                if version.WhichOneof("body") == "bill" and version.bill.HasField("paid_time"):
                    version.bill.paid_time.seconds += rng.randrange(0, 20) * 86_400
            deliveries.append((producer, version))
            latest[(producer, record.record_id)] = version
    deliveries += rng.sample(deliveries, len(deliveries) // 3)  # redeliveries
    rng.shuffle(deliveries)
    for start in range(0, len(deliveries), 50):
        await book.apply(deliveries[start:start + 50])

    standing: dict[str, SubjectState] = {}
    for (_, _), record in sorted(latest.items()):
        apply_record(standing.setdefault(record.subject_id, SubjectState()), record)
    for subject, anchor in anchors.items():
        stored = await store.get(subject)
        expected = standing.get(subject, SubjectState())
        advance_horizon(expected, max(anchor, stored.state.last_month))
        assert stored.state == expected, subject
        assert stored.record_count == expected.record_count
        assert feature_vector(stored.state, NOW) == feature_vector(expected, NOW)


async def test_two_replicas_correcting_the_same_record_at_once_keep_the_highest(store):
    replicas = [FeatureBook(store, clock=lambda: NOW), FeatureBook(store, clock=lambda: NOW)]
    await replicas[0].apply([("wallet", bill("b1", paid=False))])
    versions = [bill("b1", revision=n, days_late=n) for n in range(1, 9)]
    await asyncio.gather(*(replicas[i % 2].apply([("wallet", v)]) for i, v in enumerate(versions)))
    stored = await store.get("s1")
    assert stored.record_count == 1
    assert feature_vector(stored.state, NOW)["pay_worst_days_late_12m"] == 8.0
