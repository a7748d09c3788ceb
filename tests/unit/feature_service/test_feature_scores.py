"""Materialized scores, on SQLite and PostgreSQL: an apply or a source purge scores
the changed subjects before it commits (and a scoring failure rolls it back); a
lookup answers fresh rows from the row alone with one statement, scores stale rows
again within the call, and gives subjects without data the model's score of an
empty vector; the refresher scores stale rows again in the background."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import FEATURE_NAMES, sources_used
from creditscore.records.v1 import records_pb2 as R
from creditscore.runtime import (
    Deadline,
    DeadlineExceeded,
    FailedPrecondition,
    Transactions,
    Unavailable,
    make_engine,
)
from creditscore.scoring.v1 import scoring_pb2
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.scores import SCORING_NOT_CONFIGURED, SCORING_UNAVAILABLE, ScoreRefresher
from feature_service.store import FeatureStore
from tests.fake_scorer import FakeScorer

NOW = datetime(2026, 11, 1, tzinfo=UTC)
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def population():
    return simulate(12, seed=21, as_of=NOW - timedelta(days=1))


@pytest.fixture
def envelopes(population) -> list[tuple[str, R.Record]]:
    return [(producer_of(r), r) for r in (*population.records, *population.outcomes)]


def feeding_subjects(envelopes) -> set[str]:
    return {r.subject_id for _, r in envelopes if r.WhichOneof("body") not in (None, "loan_outcome")}


def split(envelopes) -> tuple[list, list, set[str]]:
    """The envelopes of half the subjects, of the others, and the first half's subjects."""
    first = set(sorted(feeding_subjects(envelopes))[::2])
    return (
        [e for e in envelopes if e[1].subject_id in first],
        [e for e in envelopes if e[1].subject_id not in first],
        first,
    )


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def book(store: FeatureStore, scorer: FakeScorer, clock: Clock) -> FeatureBook:
    return FeatureBook(store, clock=clock, scorer=scorer)


async def assert_materialized(book: FeatureBook, store: FeatureStore, scorer: FakeScorer, subjects, model="v1"):
    """Each subject's row holds the score the scorer gave last for it, of its vector now."""
    stored = await store.scores_of(subjects)
    for subject in subjects:
        row = stored[subject]
        vector = await book.vector(subject)
        assert row is not None
        assert scoring_pb2.Score.FromString(row.score) == scorer.given[subject]
        assert row.model_version == model == scorer.given[subject].model_version
        assert row.sources_used == sources_used(vector.values.items())
        assert row.valid_until == vector.valid_until > vector.as_of


async def test_an_apply_scores_exactly_its_changed_subjects_before_it_commits(book, store, scorer, envelopes):
    first, second = envelopes[:300], envelopes[300:]
    await book.apply(first)
    # One call, each changed subject once, with its vector as of now.
    assert len(scorer.calls) == 1
    assert sorted(scorer.scored()) == sorted(feeding_subjects(first))
    for subject, values in scorer.calls[0]:
        assert values == (await book.vector(subject)).values
    await assert_materialized(book, store, scorer, feeding_subjects(first))
    # Nothing new: no call. The rest: one call, for the subjects it changes.
    scorer.calls.clear()
    await book.apply(first)
    assert scorer.calls == []
    await book.apply(second)
    assert len(scorer.calls) == 1 and sorted(scorer.scored()) == sorted(feeding_subjects(second))
    await assert_materialized(book, store, scorer, feeding_subjects(envelopes))
    assert any(row.sources_used for row in (await store.scores_of(feeding_subjects(envelopes))).values())


async def test_a_scoring_failure_rolls_the_whole_apply_back(book, store, scorer, envelopes):
    scorer.down = True
    with pytest.raises(Unavailable) as info:
        await book.apply(envelopes)
    assert info.value.reason == SCORING_UNAVAILABLE
    subjects = feeding_subjects(envelopes)
    assert await store.get_many(subjects) == {}
    assert [await store.applied_of(s) for s in sorted(subjects)] == [[]] * len(subjects)
    scorer.down = False
    result = await book.apply(envelopes)
    assert (result.applied, result.duplicates) == (len(envelopes), 0)
    await assert_materialized(book, store, scorer, subjects)


async def test_fresh_rows_are_answered_from_the_row_with_no_scoring_call(book, store, scorer, envelopes):
    await book.apply(envelopes)
    scorer.calls.clear()
    subjects = sorted(feeding_subjects(envelopes))
    asked = [*reversed(subjects), subjects[2], subjects[2]]
    answers = await book.current_scores(asked)
    assert scorer.calls == [] and scorer.model_calls == 0  # the model is known from ScoreBatch's answers
    assert [score.subject_id for score, _ in answers] == asked
    for subject, (score, sources) in zip(asked, answers, strict=True):
        assert score == scorer.given[subject]
        assert sources == sources_used((await book.vector(subject)).values.items())


async def test_subjects_without_data_get_the_empty_vector_score_once_per_model(book, scorer, clock):
    answers = await book.current_scores(["nobody-1", "nobody-2", "nobody-1"])
    assert scorer.model_calls == 1  # the active model was not known: asked first
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 1
    [(_, values)] = scorer.calls[0]
    assert list(values) == list(FEATURE_NAMES) and set(values.values()) == {None}
    assert [score.subject_id for score, _ in answers] == ["nobody-1", "nobody-2", "nobody-1"]
    for score, sources in answers:
        assert sources == frozenset()
        assert score.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA
        assert (score.score_id, score.model_version) == (0, "v1")
        assert score.score_time.ToDatetime(tzinfo=UTC) == NOW
    # Cached: the same answer, now, for anyone else without data.
    clock.now = NOW + timedelta(hours=1)
    [(score, _)] = await book.current_scores(["nobody-3"])
    assert len(scorer.calls) == 1
    assert score.subject_id == "nobody-3" and score.score_time.ToDatetime(tzinfo=UTC) == clock.now
    assert score.model_version == "v1"
    # A new active model: scored once more.
    scorer.model = "v2"
    await book.poll_active_model()
    answers = await book.current_scores(["nobody-1", "nobody-4"])
    assert len(scorer.calls) == 2
    assert [(s.subject_id, s.model_version) for s, _ in answers] == [("nobody-1", "v2"), ("nobody-4", "v2")]


async def test_an_expired_row_is_scored_again_within_the_call(book, store, scorer, clock, envelopes):
    await book.apply(envelopes)
    stored = await store.scores_of(feeding_subjects(envelopes))
    expiring = min(stored, key=lambda s: stored[s].valid_until)
    clock.now = stored[expiring].valid_until
    still = sorted(s for s, row in stored.items() if row.valid_until > clock.now)[0]
    scorer.calls.clear()
    before = scorer.given[still]
    answers = await book.current_scores([still, expiring, still])
    # Only the expired row, with its vector as of now.
    assert scorer.scored() == [expiring]
    assert scorer.calls[0][0][1] == (await book.vector(expiring)).values
    assert [score for score, _ in answers] == [before, scorer.given[expiring], before]
    await assert_materialized(book, store, scorer, [expiring])
    scorer.calls.clear()
    await book.current_scores([expiring])
    assert scorer.calls == []


async def test_rows_of_another_model_or_without_a_score_are_scored_again_within_the_call(
    book, store, scorer, clock, envelopes
):
    before, after, unscored = split(envelopes)
    await FeatureBook(store, clock=clock).apply(before)  # no scorer: rows without a score
    assert set((await store.scores_of(unscored)).values()) == {None}
    await book.apply(after)
    subjects = sorted(feeding_subjects(envelopes))
    scorer.calls.clear()
    await book.current_scores(subjects)
    assert len(scorer.calls) == 1 and set(scorer.scored()) == unscored
    # A new active model: every row is stale, scored again in one call.
    scorer.model = "v2"
    await book.poll_active_model()
    scorer.calls.clear()
    answers = await book.current_scores(subjects)
    assert len(scorer.calls) == 1 and sorted(scorer.scored()) == subjects
    assert {score.model_version for score, _ in answers} == {"v2"}
    await assert_materialized(book, store, scorer, subjects, model="v2")
    scorer.calls.clear()
    assert await book.current_scores(subjects) == answers
    assert scorer.calls == []


async def test_a_stale_row_fails_the_call_when_scoring_is_down(book, store, scorer, clock, envelopes):
    await book.apply(envelopes)
    subjects = sorted(feeding_subjects(envelopes))
    await book.current_scores(["nobody"])  # the no-data score is cached
    before = await store.scores_of(subjects)
    scorer.down = True
    fresh = await book.current_scores([*subjects, "nobody"])  # fresh rows and no data: no call
    assert [s.subject_id for s, _ in fresh] == [*subjects, "nobody"]
    clock.now = max(row.valid_until for row in before.values())
    with pytest.raises(Unavailable) as info:
        await book.current_scores(subjects)
    assert info.value.reason == SCORING_UNAVAILABLE
    assert await store.scores_of(subjects) == before


async def test_a_source_purge_scores_the_rebuilt_vector_and_a_whole_purge_answers_no_data(
    book, store, scorer, envelopes, population
):
    await book.apply(envelopes)
    subject = max(population.subjects, key=lambda s: len(s.sources)).subject_id
    assert PAYMENTS in (await store.scores_of([subject]))[subject].sources_used
    scorer.calls.clear()
    scorer.down = True
    with pytest.raises(Unavailable):
        await book.purge("purge-1", subject, PAYMENTS)
    assert PAYMENTS in (await store.scores_of([subject]))[subject].sources_used  # rolled back
    scorer.down = False
    await book.purge("purge-1", subject, PAYMENTS)
    assert len(scorer.calls) == 1 and scorer.scored() == [subject]
    assert scorer.calls[0][0][1] == (await book.vector(subject)).values
    await assert_materialized(book, store, scorer, [subject])
    row = (await store.scores_of([subject]))[subject]
    assert PAYMENTS not in row.sources_used and row.sources_used
    # Forgotten whole: no row, so the no-data answer.
    scorer.calls.clear()
    await book.purge("purge-2", subject, 0)
    assert scorer.calls == [] and await store.scores_of([subject]) == {}
    [(score, sources)] = await book.current_scores([subject])
    assert (score.subject_id, score.score_id, sources) == (subject, 0, frozenset())
    assert score.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA
    assert set(scorer.calls[0][0][1].values()) == {None}


async def test_without_a_scorer_rows_have_no_score_and_scores_are_refused(store, envelopes):
    book = FeatureBook(store, clock=lambda: NOW)
    await book.apply(envelopes)
    subjects = feeding_subjects(envelopes)
    assert set((await store.scores_of(subjects)).values()) == {None}
    with pytest.raises(FailedPrecondition) as info:
        await book.current_scores(sorted(subjects))
    assert info.value.reason == SCORING_NOT_CONFIGURED


async def test_the_lookup_reads_with_one_statement_whatever_its_size(database_url):
    engine = make_engine(database_url)
    statements: list[str] = []

    def _count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement != "BEGIN":  # transaction control (SQLite's explicit begin), not a read
            statements.append(statement)

    try:
        for watched in Transactions.of(engine).engines:
            event.listen(watched, "before_cursor_execute", _count)
        store = FeatureStore(engine)
        await store.create_schema()
        scorer = FakeScorer()
        book = FeatureBook(store, clock=lambda: NOW, scorer=scorer)
        population = simulate(50, seed=8, as_of=NOW - timedelta(days=1))
        await book.apply([(producer_of(r), r) for r in population.records])
        subjects = [s.subject_id for s in population.subjects]
        await book.current_scores(subjects[:1])  # a warm connection
        scorer.calls.clear()
        counts = []
        for size in (1, 50):
            statements.clear()
            assert len(await book.current_scores(subjects[:size])) == size
            counts.append(len(statements))
        assert counts == [1, 1], counts
        assert statements[0].lstrip().upper().startswith("SELECT") and " state" not in statements[0].lower()
        assert scorer.calls == []
        await store.close()
    finally:
        await engine.dispose()


async def test_the_refresher_scores_again_expired_rows_and_rows_of_an_old_model_and_leaves_fresh_ones(
    book, store, scorer, clock, envelopes
):
    before, after, unscored = split(envelopes)
    await FeatureBook(store, clock=clock).apply(before)  # rows from before scores
    await book.apply(after)
    subjects = sorted(feeding_subjects(envelopes))
    assert len(unscored) > 3
    refresher = ScoreRefresher(book, refresh_seconds=60, model_refresh_seconds=60, batch_size=3)
    scorer.calls.clear()
    # At start: a pass over every stale row (here: those without a score), in batches.
    assert await refresher.run_once() == len(unscored)
    assert sorted(scorer.scored()) == sorted(unscored) and all(len(call) <= 3 for call in scorer.calls)
    await assert_materialized(book, store, scorer, subjects)
    # Nothing stale: nothing scored.
    scorer.calls.clear()
    assert await refresher.run_once() == 0 and scorer.calls == []
    # Time moves: exactly the rows whose vector may have changed.
    stored = await store.scores_of(subjects)
    clock.now = sorted(row.valid_until for row in stored.values())[len(subjects) // 2]
    expired = {s for s, row in stored.items() if row.valid_until <= clock.now}
    assert 0 < len(expired) < len(subjects)
    assert await refresher.run_once() == len(expired)
    assert sorted(scorer.scored()) == sorted(expired)
    await assert_materialized(book, store, scorer, subjects)
    # A new active model (seen by the poll): every row.
    scorer.model = "v2"
    await book.poll_active_model()
    scorer.calls.clear()
    assert await refresher.run_once() == len(subjects)
    assert sorted(scorer.scored()) == subjects
    await assert_materialized(book, store, scorer, subjects, model="v2")
    scorer.calls.clear()
    assert await refresher.run_once() == 0 and scorer.calls == []


async def test_the_refresher_loop_outlives_failures(book, store, scorer, clock, envelopes):
    await FeatureBook(store, clock=clock).apply(envelopes)  # rows without a score
    subjects = feeding_subjects(envelopes)
    scorer.down = True
    refresher = ScoreRefresher(book, refresh_seconds=0.01, model_refresh_seconds=0.01)
    await refresher.start()
    try:
        await asyncio.sleep(0.05)  # a few failed rounds
        assert set((await store.scores_of(subjects)).values()) == {None}
        scorer.down = False
        async with asyncio.timeout(10):
            while None in (await store.scores_of(subjects)).values():
                await asyncio.sleep(0.01)
    finally:
        await refresher.stop()
    assert scorer.model_calls >= 1
    await assert_materialized(book, store, scorer, subjects)


def test_sources_used_are_the_scored_sources_with_a_value():
    values = dict.fromkeys(FEATURE_NAMES)
    assert sources_used(values.items()) == frozenset()
    values.update(pay_bills_paid_count=0.0, history_months=30.0, ext_open_loans=None)
    assert sources_used(values.items()) == frozenset({PAYMENTS})  # history_months has no source
    values.update(seller_avg_rating_24m=4.5, ext_open_loans=1.0, unknown_feature=1.0)
    assert sources_used(values.items()) == frozenset(
        {PAYMENTS, common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_EXTERNAL})


def hold(scorer: FakeScorer) -> tuple[asyncio.Event, asyncio.Event]:
    """Makes ``scorer``'s score calls wait: the first event is set when one comes
    in, and it goes on once the second is set."""
    entered, release = asyncio.Event(), asyncio.Event()
    score = scorer.score

    async def held(items, timeout):
        entered.set()
        await release.wait()
        return await score(items, timeout)

    scorer.score = held  # type: ignore[method-assign]
    return entered, release


async def test_stopping_the_refresher_lets_its_batch_finish(book, store, scorer, clock, envelopes):
    """A stop in the middle of a batch waits for it: a transaction cut off by a
    cancellation would leave its database connection behind."""
    await FeatureBook(store, clock=clock).apply(envelopes)  # rows without a score
    subjects = feeding_subjects(envelopes)
    entered, release = hold(scorer)
    refresher = ScoreRefresher(book, refresh_seconds=0.01, model_refresh_seconds=60)
    await refresher.start()
    async with asyncio.timeout(10):
        await entered.wait()
    stopping = asyncio.create_task(refresher.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waiting for the batch, not cancelling it
    release.set()
    async with asyncio.timeout(10):
        await stopping
    scored = await store.scores_of(subjects)
    assert any(row is not None for row in scored.values())


async def test_an_apply_whose_caller_goes_away_while_scoring_still_commits(book, store, scorer, envelopes):
    """The caller's cancellation (a client that gave up, a server stopping) does not
    cut the transaction off in the middle of the scoring call: the apply ends on
    its own, and ``drain`` waits for it."""
    entered, release = hold(scorer)
    call = asyncio.create_task(book.apply(envelopes))
    async with asyncio.timeout(10):
        await entered.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    release.set()
    async with asyncio.timeout(10):
        await book.drain()
    await assert_materialized(book, store, scorer, feeding_subjects(envelopes))


async def test_the_callers_deadline_bounds_every_scoring_call_and_work_left_for_a_caller_gone(
    book, store, scorer, envelopes
):
    """A scoring service that hangs fails an apply or a lookup before its caller
    gives up, not SCORE_TIMEOUT_SECONDS later (the apply's write, and the book's
    lock, were held that long after the caller had gone)."""
    first, second = split(envelopes)[:2]
    await book.apply(first, Deadline(0.5))
    assert scorer.timeouts and all(0 < t <= 0.5 for t in scorer.timeouts)
    # Without a deadline: the book's own SCORE_TIMEOUT_SECONDS, as before.
    scorer.timeouts.clear()
    await book.current_scores(["nobody-yet"])
    assert scorer.timeouts and all(t == 5.0 for t in scorer.timeouts)
    # No time left when the lock is had: nothing scored, nothing written.
    calls = len(scorer.calls)
    with pytest.raises(DeadlineExceeded):
        await book.apply(second, Deadline(0.001))
    assert len(scorer.calls) == calls
    assert (await book.apply(second)).applied > 0
    # A lookup meeting a row to score again: the same bound.
    scorer.model = "v2"  # a new active model: every row is stale
    await book.poll_active_model()
    scorer.timeouts.clear()
    await book.current_scores(sorted(feeding_subjects(first))[:2], Deadline(0.4))
    assert scorer.timeouts and all(0 < t <= 0.4 for t in scorer.timeouts)
