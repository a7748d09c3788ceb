"""Refresher replicas on one PostgreSQL: a page of stale rows is claimed
(``SELECT ... FOR UPDATE SKIP LOCKED`` in a transaction open until the page's
write commits), so two replicas' refreshers split the table and score each row
once, and a replica whose connection dies mid-page leaves its rows to the other.
PostgreSQL only (SQLite has one writer and one process: its pages are read
without a lock, ``test_feature_refresh_pages``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from creditscore.runtime import make_engine
from creditscore.scoring.v1 import scoring_pb2
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.scores import ScoreRefresher
from feature_service.store import FeatureStore
from tests.fake_scorer import FakeScorer
from tests.unit.feature_service.test_feature_scores import assert_materialized, feeding_subjects

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
PAGE = 5


class HookedScorer(FakeScorer):
    """A FakeScorer that awaits ``hook`` before its first scoring call."""

    def __init__(self, hook: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.hook = hook

    async def score(
        self, items: Sequence[tuple[str, Mapping[str, float | None]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook()
        return await super().score(items, timeout)


class Replica:
    """One feature replica: its own engine, store, scorer and book."""

    def __init__(self, url: str, scorer: HookedScorer) -> None:
        self.engine = make_engine(url)
        self.store = FeatureStore(self.engine)
        self.scorer = scorer
        self.book = FeatureBook(self.store, clock=lambda: NOW, scorer=scorer)

    def refresher(self) -> ScoreRefresher:
        return ScoreRefresher(self.book, refresh_seconds=60, model_refresh_seconds=60, batch_size=PAGE)

    async def close(self) -> None:
        await self.book.drain()
        await self.store.close()
        await self.engine.dispose()


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[Replica, Replica, list[str]]]:
    """Two replicas over one database whose rows were all scored by v1, the
    scoring service now serving v2 (every row stale); and the subjects."""
    first, second = Replica(postgres_url, HookedScorer()), Replica(postgres_url, HookedScorer())
    try:
        await first.store.create_schema()
        population = simulate(40, seed=5, as_of=NOW - timedelta(days=1))
        envelopes = [(producer_of(r), r) for r in population.records]
        await first.book.apply(envelopes)
        for replica in (first, second):
            await replica.book.active_model()  # v1
            replica.scorer.model = "v2"
            await replica.book.poll_active_model()
            replica.scorer.calls.clear()
        yield first, second, sorted(feeding_subjects(envelopes))
    finally:
        await second.close()
        await first.close()


def scored(replica: Replica) -> list[str]:
    return replica.scorer.scored()


async def claim_holders(store: FeatureStore) -> list[int]:
    """The backends holding a claim on ``subject_features`` (their row locks take a
    RowShareLock on the table)."""
    async with store._engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT pid FROM pg_locks WHERE relation = 'subject_features'::regclass"
            " AND mode = 'RowShareLock' AND pid <> pg_backend_pid()"))
        return sorted(int(pid) for (pid,) in rows)


async def test_two_replicas_split_a_model_change_pass_and_score_each_row_once(replicas):
    first, second, subjects = replicas
    assert len(subjects) > 4 * PAGE
    both_in = asyncio.Event()
    arrived: list[str] = []

    def meet(name: str) -> Callable[[], Awaitable[None]]:
        async def hook() -> None:  # each replica's first call waits for the other's: both hold a page at once
            arrived.append(name)
            if len(arrived) == 2:
                both_in.set()
            async with asyncio.timeout(20):
                await both_in.wait()
        return hook

    first.scorer.hook, second.scorer.hook = meet("first"), meet("second")
    counts = await asyncio.gather(first.refresher().run_once(), second.refresher().run_once())
    mine, theirs = scored(first), scored(second)
    assert mine and theirs, (mine, theirs)  # both did some of the work
    assert not set(mine) & set(theirs)
    together = Counter(mine + theirs)
    assert sorted(together) == subjects and set(together.values()) == {1}
    assert sum(counts) == len(subjects)
    await assert_materialized(first.book, first.store, first.scorer, mine, model="v2")
    await assert_materialized(second.book, second.store, second.scorer, theirs, model="v2")
    # Nothing left: a further round of either scores nothing.
    first.scorer.calls.clear()
    second.scorer.calls.clear()
    assert await first.refresher().run_once() == 0 and await second.refresher().run_once() == 0
    assert first.scorer.calls == [] and second.scorer.calls == []
    assert await claim_holders(first.store) == []  # every claim committed


async def test_a_claim_skips_the_rows_another_transaction_holds(replicas):
    first, second, subjects = replicas
    held = await first.store.claim_stale_page("v2", NOW, "", 4)
    later = NOW + timedelta(days=400)  # every score has expired by then
    try:
        async with asyncio.timeout(10):  # a claim that waited for the held rows would never end
            rest = await second.store.claim_stale_page("v2", NOW, "", 1000)
        try:
            assert [row.subject_id for row in held.rows] == subjects[:4]
            assert [row.subject_id for row in rest.rows] == subjects[4:]
            async with asyncio.timeout(10):  # every row held by one claim or the other
                none = await second.store.claim_expired_page(later, None, 1000)
            await none.release()
            assert none.rows == []
        finally:
            await rest.release()
        # The expired rows are claimed the same way: all but the held ones.
        async with asyncio.timeout(10):
            expired = await second.store.claim_expired_page(later, None, 1000)
        assert sorted(row.subject_id for row in expired.rows) == subjects[4:]
        await expired.release()
    finally:
        await held.release()
    # Released: the rows are free again, unwritten.
    again = await second.store.claim_stale_page("v2", NOW, "", 1000)
    assert [row.subject_id for row in again.rows] == subjects
    await again.release()
    assert await claim_holders(first.store) == []


async def test_a_replica_whose_connection_dies_mid_page_leaves_its_rows_to_the_other(replicas):
    first, second, subjects = replicas
    page = await first.book.prepare_stale("", PAGE)  # claimed; about to be scored
    lost = [row.subject_id for row, _ in page.rows]
    assert lost == subjects[:PAGE]
    [holder] = await claim_holders(first.store)

    async def kill_the_first_replica() -> None:
        # While the second replica scores its first page (having skipped the first
        # replica's rows), the first one's connection dies (a pod killed): the
        # database rolls its claim back.
        async with second.engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})).scalar_one()
        async with asyncio.timeout(10):
            while holder in await claim_holders(second.store):
                await asyncio.sleep(0.01)

    second.scorer.hook = kill_the_first_replica
    assert await second.refresher().run_once() == len(subjects)
    assert sorted(scored(second)) == subjects  # the dead replica's rows included, each once
    assert set(scored(second)[-PAGE:]) == set(lost)  # found by the pass after the one that skipped them
    await assert_materialized(second.book, second.store, second.scorer, subjects, model="v2")
    # The first replica's page cannot be written any more, and writes nothing.
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for a terminated connection
        await first.book.finish_page(page)
    await assert_materialized(second.book, second.store, second.scorer, subjects, model="v2")
    assert await claim_holders(second.store) == []


async def started_with_two_pages_claimed(replica: Replica, gate: asyncio.Event) -> ScoreRefresher:
    """A refresher started on ``replica`` whose scoring waits at ``gate``, once
    its first page is being scored and the next one claimed meanwhile."""

    async def hold() -> None:
        await gate.wait()

    replica.scorer.hook = hold
    refresher = replica.refresher()
    await refresher.start()
    async with asyncio.timeout(10):
        while len(await claim_holders(replica.store)) < 2:
            await asyncio.sleep(0.01)
    return refresher


async def test_a_refresher_stopped_mid_pass_finishes_its_pages_and_leaves_no_claim(replicas):
    first, _, subjects = replicas
    gate = asyncio.Event()
    refresher = await started_with_two_pages_claimed(first, gate)
    stopping = asyncio.create_task(refresher.stop(grace=30))
    gate.set()
    await stopping
    await first.book.drain()
    assert await claim_holders(first.store) == []
    # The page being scored and the one already prepared were written; no more.
    assert scored(first) == subjects[:2 * PAGE]
    await assert_materialized(first.book, first.store, first.scorer, subjects[:2 * PAGE], model="v2")
    rows = await first.store.scores_of(subjects)
    assert all(rows[s].model_version == "v1" for s in subjects[2 * PAGE:])  # type: ignore[union-attr]


async def test_a_refresher_cancelled_mid_page_rolls_its_claims_back(replicas):
    first, second, subjects = replicas
    gate = asyncio.Event()  # never opened: the scoring call hangs until the stop's grace ends
    refresher = await started_with_two_pages_claimed(first, gate)
    await refresher.stop(grace=0.2)
    await first.book.drain()
    assert await claim_holders(first.store) == []
    rows = await first.store.scores_of(subjects)
    assert all(rows[s].model_version == "v1" for s in subjects)  # type: ignore[union-attr]
    # Nothing lost: the other replica scores every row.
    assert await second.refresher().run_once() == len(subjects)
    await assert_materialized(second.book, second.store, second.scorer, subjects, model="v2")


async def test_a_lookup_meeting_a_row_another_replica_claimed_answers_without_waiting(replicas):
    first, second, subjects = replicas
    page = await first.book.prepare_stale("", PAGE)  # claimed, not scored yet
    try:
        subject = subjects[0]
        async with asyncio.timeout(10):  # its write skips the claimed row instead of waiting for it
            [(answered, _)] = await second.book.current_scores([subject])
        assert answered == second.scorer.given[subject] and answered.model_version == "v2"
        row = (await second.store.scores_of([subject]))[subject]
        assert row is not None and row.model_version == "v1"  # left to the page
    finally:
        assert await first.book.finish_page(page) == PAGE
    await assert_materialized(first.book, first.store, first.scorer, subjects[:PAGE], model="v2")
    # Once the page is written, a lookup answers from the row.
    second.scorer.calls.clear()
    [(answered, _)] = await second.book.current_scores([subjects[0]])
    assert second.scorer.calls == [] and answered == first.scorer.given[subjects[0]]
