"""Applying records exactly once and reading vectors, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import SubjectState, apply_record, feature_vector
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.store import FeatureStore, StoreBatch

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def book(store: FeatureStore) -> FeatureBook:
    return FeatureBook(store, clock=lambda: NOW)


@pytest.fixture(scope="module")
def envelopes() -> list[tuple[str, R.Record]]:
    population = simulate(6, seed=4)
    return [(producer_of(r), r) for r in (*population.records, *population.outcomes)]


def _expected(envelopes: list[tuple[str, R.Record]], subject_id: str) -> SubjectState:
    state = SubjectState()
    for _, record in envelopes:
        if record.subject_id == subject_id:
            apply_record(state, record)
    return state


async def test_applied_records_make_the_vector(book: FeatureBook, store: FeatureStore, envelopes):
    result = await book.apply(envelopes[:700])
    assert (result.applied, result.duplicates) == (700, 0)
    for subject in {r.subject_id for _, r in envelopes[:700] if r.WhichOneof("body") != "loan_outcome"}:
        expected = _expected(envelopes[:700], subject)
        stored = await store.get(subject)
        assert stored is not None and stored.state == expected
        vector = await book.vector(subject, NOW)
        assert vector.values == feature_vector(expected, NOW)
        assert vector.record_count == expected.record_count > 0
        assert list(vector.values) == list(FEATURE_NAMES)


async def test_each_record_counts_once(book: FeatureBook, store: FeatureStore, envelopes):
    first = envelopes[:300]
    assert (await book.apply(first)).applied == 300
    subject = first[0][1].subject_id
    # The same batch again, then overlapping with new records and an in-batch repeat.
    again = await book.apply(first)
    assert (again.applied, again.duplicates) == (0, 300)
    assert (await store.get(subject)).state == _expected(first, subject)
    result = await book.apply([*envelopes[250:400], envelopes[350]])
    assert (result.applied, result.duplicates) == (100, 51)
    assert (await store.get(subject)).state == _expected(envelopes[:400], subject)
    # The same record id from another producer is another record.
    producer, record = first[0]
    assert (await book.apply([(producer + "-other", record)])).applied == 1


async def test_loan_outcomes_are_claimed_but_never_feed_features(book: FeatureBook, store: FeatureStore, envelopes):
    outcomes = [(p, r) for p, r in envelopes if r.WhichOneof("body") == "loan_outcome"]
    assert outcomes
    assert (await book.apply(outcomes)).applied == len(outcomes)
    assert (await book.apply(outcomes)).duplicates == len(outcomes)
    for _, record in outcomes:
        assert await store.get(record.subject_id) is None


async def test_a_failed_batch_leaves_nothing_and_is_redelivered_whole(
    book: FeatureBook, store: FeatureStore, envelopes, monkeypatch: pytest.MonkeyPatch
):
    batch = envelopes[:200]
    real_save = StoreBatch.save_states

    async def crash(self: StoreBatch, states, now, *scores) -> None:
        await real_save(self, states, now, *scores)
        raise RuntimeError("crash after the writes, before the commit")

    monkeypatch.setattr(StoreBatch, "save_states", crash)
    with pytest.raises(RuntimeError):
        await book.apply(batch)
    monkeypatch.setattr(StoreBatch, "save_states", real_save)
    subject = batch[0][1].subject_id
    assert await store.get(subject) is None
    result = await book.apply(batch)
    assert (result.applied, result.duplicates) == (200, 0)
    assert (await store.get(subject)).state == _expected(batch, subject)


async def test_concurrent_overlapping_batches_apply_each_record_once(book: FeatureBook, store: FeatureStore, envelopes):
    chunks = [envelopes[0:400], envelopes[200:600], envelopes[100:500], envelopes[0:600]]
    results = await asyncio.gather(*(book.apply(c) for c in chunks))
    assert sum(r.applied for r in results) == 600
    assert sum(r.duplicates for r in results) == sum(len(c) for c in chunks) - 600
    for subject in {r.subject_id for _, r in envelopes[:600] if r.WhichOneof("body") != "loan_outcome"}:
        assert (await store.get(subject)).state == _expected(envelopes[:600], subject)


async def test_unknown_subject_gets_an_all_missing_vector(book: FeatureBook):
    vector = await book.vector("nobody")
    assert vector.as_of == NOW and vector.record_count == 0
    assert list(vector.values) == list(FEATURE_NAMES)
    assert all(v is None for v in vector.values.values())


async def test_two_replicas_on_one_database_apply_each_record_once(store: FeatureStore, envelopes):
    # Two books share the database but not a process lock: the database alone
    # (row locks on PostgreSQL, the write lock on SQLite) keeps them apart.
    replicas = [FeatureBook(store, clock=lambda: NOW), FeatureBook(store, clock=lambda: NOW)]
    chunks = [envelopes[0:500], envelopes[100:600], envelopes[300:600], envelopes[0:300]]
    results = await asyncio.gather(*(replicas[i % 2].apply(c) for i, c in enumerate(chunks)))
    assert sum(r.applied for r in results) == 600
    for subject in {r.subject_id for _, r in envelopes[:600] if r.WhichOneof("body") != "loan_outcome"}:
        assert (await store.get(subject)).state == _expected(envelopes[:600], subject)
