"""The refresher's pages, on SQLite and PostgreSQL: a pass after a model change and
a catch-up after a month boundary score every stale row exactly once, in pages
in key order (expired rows in (valid_until, subject) order), and leave none
stale; a page's scores are written back only to rows whose aggregates did not
change since the page was read, so an apply or a purge in between wins."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

from creditscore.features.engine import epoch_seconds, next_month_start
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import Transactions, make_engine
from creditscore.scoring.v1 import scoring_pb2
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.scores import MAX_REFRESH_PAGE, ScoreRefresher
from feature_service.store import FeatureStore
from tests.fake_scorer import FakeScorer
from tests.unit.feature_service.test_feature_scores import Clock, assert_materialized, feeding_subjects

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
PAGE = 7


@pytest.fixture(scope="module")
def population():
    return simulate(40, seed=5, as_of=NOW - timedelta(days=1))


@pytest.fixture
def envelopes(population) -> list[tuple[str, R.Record]]:
    return [(producer_of(r), r) for r in population.records]


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def book(store: FeatureStore, scorer: FakeScorer, clock: Clock) -> FeatureBook:
    return FeatureBook(store, clock=clock, scorer=scorer)


async def until_a_transaction_waits_for_a_lock(store: FeatureStore) -> None:
    """Polls PostgreSQL until a transaction of this database waits for a row lock."""
    async with asyncio.timeout(10):
        while True:
            async with store._engine.connect() as conn:
                waiting = (await conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"))).scalar_one()
            if waiting:
                return
            await asyncio.sleep(0.01)


def assert_each_once(scorer: FakeScorer, subjects) -> None:
    counts = Counter(scorer.scored())
    assert sorted(counts) == sorted(subjects)
    assert set(counts.values()) == {1}, {s: n for s, n in counts.items() if n > 1}
    assert all(1 <= len(call) <= PAGE for call in scorer.calls)


async def test_a_model_change_pass_scores_every_row_once_in_pages_and_leaves_none_stale(
    book, store, scorer, envelopes
):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    assert len(subjects) > 3 * PAGE
    refresher = ScoreRefresher(book, refresh_seconds=60, model_refresh_seconds=60, batch_size=PAGE)
    assert await refresher.run_once() == 0  # all fresh
    scorer.model = "v2"
    await book.poll_active_model()
    scorer.calls.clear()
    assert await refresher.run_once() == len(subjects)
    assert_each_once(scorer, subjects)
    # In key order, page after page.
    assert scorer.scored() == subjects
    await assert_materialized(book, store, scorer, subjects, model="v2")
    scorer.calls.clear()
    assert await refresher.run_once() == 0 and scorer.calls == []


async def test_a_month_boundary_catch_up_scores_every_row_once_and_leaves_none_stale(
    book, store, scorer, clock, envelopes
):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    refresher = ScoreRefresher(book, refresh_seconds=60, model_refresh_seconds=60, batch_size=PAGE)
    await refresher.run_once()  # the first pass (nothing stale)
    clock.now = datetime.fromtimestamp(next_month_start(epoch_seconds(NOW)), UTC) + timedelta(seconds=1)
    stored = await store.scores_of(subjects)
    assert all(row is not None and row.valid_until <= clock.now for row in stored.values())
    scorer.calls.clear()
    assert await refresher.run_once() == len(subjects)
    assert_each_once(scorer, subjects)
    # The earliest valid_until first (then by subject).
    order = sorted(subjects, key=lambda s: (stored[s].valid_until, s))  # type: ignore[union-attr]
    assert scorer.scored() == order
    await assert_materialized(book, store, scorer, subjects)
    scorer.calls.clear()
    assert await refresher.run_once() == 0 and scorer.calls == []


async def test_expired_pages_follow_one_another_without_repeats(book, store, clock, envelopes):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    clock.now = NOW + timedelta(days=60)
    seen: list[str] = []
    after = None
    while True:
        page = await book.prepare_expired(after, PAGE)
        await book.release_page(page)  # PostgreSQL: the page's claim rolled back
        seen += [row.subject_id for row, _ in page.rows]
        assert len(page.rows) <= PAGE
        if page.after is None:
            break
        after = page.after
    assert sorted(seen) == subjects and len(seen) == len(set(seen))


async def test_a_row_an_apply_changed_after_the_page_was_read_keeps_the_applys_score(
    book, store, scorer, envelopes
):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    scorer.model = "v2"
    await book.poll_active_model()
    page = await book.prepare_stale("", PAGE)
    assert [row.subject_id for row, _ in page.rows] == subjects[:PAGE]
    changed = subjects[1]
    bill = R.Record(record_id="late-bill", subject_id=changed)
    bill.bill.category = R.BILL_CATEGORY_UTILITY
    bill.bill.amount_due.currency_code = "USD"
    bill.bill.amount_due.minor_units = 9_000
    bill.bill.due_time.FromDatetime(NOW - timedelta(days=40))
    bill.event_time.FromDatetime(NOW - timedelta(days=1))
    apply = asyncio.create_task(book.apply([("wallet", bill)]))
    if book.claims_pages:  # PostgreSQL: the apply waits for the page's claim to end
        await until_a_transaction_waits_for_a_lock(store)
        assert await book.finish_page(page) == PAGE
        await apply
        applied = scorer.given[changed]  # scored after the page's score
    else:
        await apply
        applied = scorer.given[changed]
        assert await book.finish_page(page) == PAGE
    stored = await store.scores_of(subjects[:PAGE])
    row = stored[changed]
    assert row is not None and scoring_pb2.Score.FromString(row.score) == applied
    assert (await book.vector(changed)).valid_until == row.valid_until
    for subject in subjects[:PAGE]:
        assert stored[subject].model_version == "v2"  # type: ignore[union-attr]
    # The page's other rows got the page's scores.
    others = [s for s in subjects[:PAGE] if s != changed]
    await assert_materialized(book, store, scorer, others, model="v2")


async def test_a_row_purged_after_the_page_was_read_stays_forgotten(book, store, scorer, envelopes):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    scorer.model = "v2"
    await book.poll_active_model()
    page = await book.prepare_stale("", PAGE)
    purge = asyncio.create_task(book.purge("purge-1", subjects[0], 0))
    if book.claims_pages:  # PostgreSQL: the purge waits for the page's claim to end
        await until_a_transaction_waits_for_a_lock(store)
        await book.finish_page(page)
        await purge
    else:
        await purge
        await book.finish_page(page)
    stored = await store.scores_of(subjects[:PAGE])
    assert subjects[0] not in stored
    assert (await store.get(subjects[0])) is None


async def test_a_page_is_read_with_one_statement_and_written_with_one(database_url):
    engine = make_engine(database_url)
    statements: list[tuple[str, bool]] = []

    def _count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append((statement.lstrip().split()[0].upper(), executemany))

    try:
        for watched in Transactions.of(engine).engines:
            event.listen(watched, "before_cursor_execute", _count)
        store = FeatureStore(engine)
        await store.create_schema()
        scorer = FakeScorer()
        book = FeatureBook(store, clock=lambda: NOW, scorer=scorer)
        population = simulate(60, seed=9, as_of=NOW - timedelta(days=1))
        await book.apply([(producer_of(r), r) for r in population.records])
        scorer.model = "v2"
        await book.poll_active_model()
        statements.clear()
        page = await book.prepare_stale("", 1000)
        assert len(page.rows) >= 50 and page.after is None
        assert await book.finish_page(page) == len(page.rows)
        data = [(verb, many) for verb, many in statements if verb in ("SELECT", "UPDATE", "INSERT", "DELETE")]
        assert data == [("SELECT", False), ("UPDATE", True)], statements
        await store.close()
    finally:
        await engine.dispose()


def test_the_page_size_is_bounded():
    book = FeatureBook.__new__(FeatureBook)
    with pytest.raises(ValueError):
        ScoreRefresher(book, refresh_seconds=1, model_refresh_seconds=1, batch_size=MAX_REFRESH_PAGE + 1)
    with pytest.raises(ValueError):
        ScoreRefresher(book, refresh_seconds=1, model_refresh_seconds=1, batch_size=0)


class GatedScorer(FakeScorer):
    """A FakeScorer whose calls wait at a gate while ``held`` (counting the calls
    waiting there at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self.gate = asyncio.Event()
        self.waiting = 0
        self.most_waiting = 0

    async def score(self, items, timeout):  # noqa: ANN001, ANN201
        if self.held:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        return await super().score(items, timeout)


async def test_lookups_meeting_stale_rows_score_them_at_once_not_one_after_the_other(store, envelopes):
    scorer = GatedScorer()
    book = FeatureBook(store, clock=lambda: NOW, scorer=scorer)
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    scorer.model = "v2"
    await book.poll_active_model()
    scorer.held = True
    lookups = [asyncio.create_task(book.current_scores([s])) for s in subjects[:3]]
    async with asyncio.timeout(10):
        while scorer.waiting < 3:  # all three in the scoring call at once: no lock between them
            await asyncio.sleep(0.01)
    scorer.gate.set()
    answers = await asyncio.gather(*lookups)
    assert [a[0][0].model_version for a in answers] == ["v2"] * 3
    await assert_materialized(book, store, scorer, subjects[:3], model="v2")


async def test_a_lookup_never_writes_its_score_over_an_apply_made_while_it_scored(store, envelopes):
    scorer = GatedScorer()
    book = FeatureBook(store, clock=lambda: NOW, scorer=scorer)
    await book.apply(envelopes)
    subject = sorted(feeding_subjects(envelopes))[0]
    scorer.model = "v2"
    await book.poll_active_model()
    scorer.held = True
    lookup = asyncio.create_task(book.current_scores([subject]))
    async with asyncio.timeout(10):
        while scorer.waiting < 1:
            await asyncio.sleep(0.01)
    scorer.held = False  # the apply's own scoring goes through
    bill = R.Record(record_id="new-bill", subject_id=subject)
    bill.bill.category = R.BILL_CATEGORY_TELECOM
    bill.bill.amount_due.currency_code = "USD"
    bill.bill.amount_due.minor_units = 3_000
    bill.bill.due_time.FromDatetime(NOW - timedelta(days=20))
    bill.event_time.FromDatetime(NOW - timedelta(days=2))
    await book.apply([("wallet", bill)])
    applied = scorer.given[subject]
    scorer.gate.set()
    [(answered, _)] = await lookup
    assert answered.model_version == "v2"
    row = (await store.scores_of([subject]))[subject]
    assert row is not None and scoring_pb2.Score.FromString(row.score) == applied
    [(now_answered, _)] = await book.current_scores([subject])
    assert now_answered == applied
