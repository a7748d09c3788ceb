"""The refresher's claims: rows whose score is to be refreshed are chosen and locked
in one statement (``StoreBatch.claim_expired``, ``claim_stale``), so that two
replicas refreshing on one PostgreSQL split the rows and score none twice; and two
replicas applying the same delivery at once apply each record once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.runtime import make_engine
from creditscore.scoring.v1 import scoring_pb2
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.scores import ScoreRefresher
from feature_service.store import FeatureStore
from tests.fake_scorer import FakeScorer

NOW = datetime(2026, 11, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=400)  # every vector scored at NOW has expired by then


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def applied_book(url: str, clock: Clock) -> tuple[FeatureBook, FeatureStore, list[str]]:
    """A book over a fresh schema with a small population applied at NOW; its subjects."""
    store = FeatureStore(make_engine(url))
    await store.create_schema()
    book = FeatureBook(store, clock=clock, scorer=FakeScorer())
    population = simulate(12, seed=5, as_of=NOW - timedelta(days=1))
    await book.apply([(producer_of(r), r) for r in population.records])
    subjects = sorted({r.subject_id for r in population.records})
    return book, store, subjects


async def close(store: FeatureStore) -> None:
    await store.close()
    await store._engine.dispose()


async def test_claims_take_expired_rows_earliest_first_and_stale_rows_in_key_order(database_url):
    clock = Clock(NOW)
    _, store, subjects = await applied_book(database_url, clock)
    try:
        async with store.batch() as batch:
            assert await batch.claim_expired(NOW, 100) == []  # scored at NOW: none expired yet
            expired = await batch.claim_expired(LATER, 5)
        until = [score.valid_until for _, score in expired if score is not None]
        assert len(until) == 5 and until == sorted(until)
        async with store.batch() as batch:
            # Another model is active: every row is stale, the pass goes in key order.
            first = await batch.claim_stale("v2", NOW, "", 5)
            rest = await batch.claim_stale("v2", NOW, first[-1][0].subject_id, 100)
            assert await batch.claim_stale("v1", NOW, "", 100) == []
        assert [s.subject_id for s, _ in first + rest] == subjects
    finally:
        await close(store)


async def test_a_claim_skips_the_rows_another_transaction_holds(postgres_url):
    clock = Clock(NOW)
    _, store, subjects = await applied_book(postgres_url, clock)
    other = FeatureStore(make_engine(postgres_url))
    try:
        async with store.batch() as first:
            held = await first.claim_expired(LATER, 4)
            async with other.batch() as second:
                # Bounded: a claim that waited for the held rows would wait forever.
                rest = await asyncio.wait_for(second.claim_expired(LATER, 100), 10)
        held_ids = {s.subject_id for s, _ in held}
        rest_ids = {s.subject_id for s, _ in rest}
        assert len(held_ids) == 4 and not held_ids & rest_ids
        assert held_ids | rest_ids == set(subjects)
    finally:
        await close(other)
        await close(store)


class MeetingScorer(FakeScorer):
    """Holds its first call until the other replica's scorer has been called too:
    both replicas then have a claim open at once."""

    def __init__(self, met: asyncio.Event, arrived: list[str], name: str) -> None:
        super().__init__()
        self._met, self._arrived, self._name = met, arrived, name

    async def score(
        self, items: Sequence[tuple[str, Sequence[common_pb2.FeatureValue]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        if self._name not in self._arrived:
            self._arrived.append(self._name)
            if len(self._arrived) == 2:
                self._met.set()
            await asyncio.wait_for(self._met.wait(), 20)
        return await super().score(items, timeout)


async def test_two_replicas_refreshing_at_once_split_the_rows_and_score_none_twice(postgres_url):
    clock = Clock(NOW)
    first_book, first_store, subjects = await applied_book(postgres_url, clock)
    clock.now = LATER
    second_store = FeatureStore(make_engine(postgres_url))
    met, arrived = asyncio.Event(), []
    scorers = [MeetingScorer(met, arrived, "a"), MeetingScorer(met, arrived, "b")]
    books = [FeatureBook(first_store, clock=clock, scorer=scorers[0]),
             FeatureBook(second_store, clock=clock, scorer=scorers[1])]
    try:
        refreshers = [ScoreRefresher(b, refresh_seconds=60, model_refresh_seconds=60, batch_size=3) for b in books]
        counts = await asyncio.gather(*(r.run_once() for r in refreshers))
        scored = [[subject for call in s.calls for subject, _ in call] for s in scorers]
        assert all(scored), scored  # each replica scored some
        assert not set(scored[0]) & set(scored[1])
        assert sorted(scored[0] + scored[1]) == subjects  # each once
        assert sum(counts) == len(subjects)
        # Every row now holds the score of its vector as of LATER.
        rows = await first_store.scores_of(subjects)
        assert all(row is not None and row.valid_until > LATER for row in rows.values())
        assert await asyncio.gather(*(r.run_once() for r in refreshers)) == [0, 0]
    finally:
        await close(second_store)
        await close(first_store)


@pytest.mark.parametrize("model", ["v1", "v2"])
async def test_a_replica_refreshes_alone_what_the_other_left_scored(database_url, model):
    """After one replica's pass, another replica's pass finds nothing to score."""
    clock = Clock(NOW)
    book, store, subjects = await applied_book(database_url, clock)
    clock.now = LATER
    try:
        scorers = [FakeScorer(model), FakeScorer(model)]
        books = [FeatureBook(store, clock=clock, scorer=s) for s in scorers]
        first = ScoreRefresher(books[0], refresh_seconds=60, model_refresh_seconds=60, batch_size=5)
        assert await first.run_once() == len(subjects)
        second = ScoreRefresher(books[1], refresh_seconds=60, model_refresh_seconds=60, batch_size=5)
        assert await second.run_once() == 0 and scorers[1].calls == []
    finally:
        await close(store)


async def test_two_replicas_applying_the_same_delivery_at_once_apply_each_record_once(postgres_url):
    """A delivery redelivered to another replica while the first is still applying
    it (a lease that ended mid-apply): the second waits for the first's keys and
    finds every record applied."""
    clock = Clock(NOW)
    stores = [FeatureStore(make_engine(postgres_url)) for _ in range(2)]
    await stores[0].create_schema()
    books = [FeatureBook(s, clock=clock, scorer=FakeScorer()) for s in stores]
    population = simulate(12, seed=5, as_of=NOW - timedelta(days=1))
    envelopes = [(producer_of(r), r) for r in population.records]
    try:
        results = await asyncio.gather(*(b.apply(envelopes) for b in books))
        assert sorted((r.applied, r.duplicates) for r in results) == [(0, len(envelopes)), (len(envelopes), 0)]
        subjects = sorted({r.subject_id for _, r in envelopes})
        states = await stores[1].get_many(subjects)
        assert sum(s.record_count for s in states.values()) == len(envelopes)
    finally:
        for store in stores:
            await close(store)
