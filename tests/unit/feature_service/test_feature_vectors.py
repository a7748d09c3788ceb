"""Many subjects' vectors at once (``FeatureBook.vectors``), on SQLite and
PostgreSQL: each equal to the one-subject read, in request order, with a constant
number of statements; and the request's validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from creditscore.feature.v1 import feature_pb2
from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import epoch_seconds, next_month_start, vector_valid_until
from creditscore.runtime import SUBJECT_ID_RULE, InvalidArgument, Transactions, make_engine
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.store import FeatureStore
from feature_service.validation import MAX_SUBJECTS_PER_BATCH, validate_get_feature_vectors

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


@pytest.fixture
async def loaded(database_url: str) -> AsyncIterator[tuple[FeatureBook, list[str], list[str]]]:
    """A book over a simulated population: its subjects, and the SQL statements run."""
    engine = make_engine(database_url)
    statements: list[str] = []

    def _count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement != "BEGIN":  # transaction control (SQLite's explicit begin), not a read
            statements.append(statement)

    for watched in Transactions.of(engine).engines:  # the async engine and the store's one-step side
        event.listen(watched, "before_cursor_execute", _count)

    store = FeatureStore(engine)
    await store.create_schema()
    book = FeatureBook(store, clock=lambda: NOW)
    population = simulate(60, seed=8, as_of=AS_OF)
    await book.apply([(producer_of(r), r) for r in (*population.records, *population.outcomes)])
    try:
        yield book, [s.subject_id for s in population.subjects], statements
    finally:
        await engine.dispose()


async def test_the_batch_equals_each_subject_read_alone_in_request_order(loaded):
    book, subjects, _ = loaded
    # Repeats, a subject nobody sent records for, and an order that is not the store's.
    asked = [*reversed(subjects), subjects[3], "never-seen", subjects[3]]
    batch = await book.vectors(asked)
    assert [v.subject_id for v in batch] == asked
    singles = [await book.vector(subject) for subject in asked]
    assert batch == singles
    # Not a trivial equality: every simulated subject has records, and their vectors differ.
    assert all(v.record_count > 0 for v in batch[:len(subjects)])
    assert len({tuple(v.values.items()) for v in batch}) == len(subjects) + 1
    unknown = batch[-2]
    assert unknown.record_count == 0 and list(unknown.values) == list(FEATURE_NAMES)
    assert not any(v is not None for v in unknown.values.values())
    assert {v.as_of for v in batch} == {NOW}


async def test_a_batch_reads_with_one_statement_whatever_its_size(loaded):
    book, subjects, statements = loaded
    await book.vectors(subjects[:1])  # a warm connection: nothing but the reads counted
    counts = []
    for size in (1, 50):
        statements.clear()
        vectors = await book.vectors(subjects[:size])
        assert len(vectors) == size
        counts.append(len(statements))
    assert counts == [1, 1], counts
    assert statements[0].lstrip().upper().startswith("SELECT")


async def test_each_vector_is_valid_until_the_first_instant_its_state_may_change(database_url):
    engine = make_engine(database_url)
    try:
        store = FeatureStore(engine)
        await store.create_schema()
        book = FeatureBook(store, clock=lambda: NOW)
        population = simulate(12, seed=3, as_of=AS_OF)
        await book.apply([(producer_of(r), r) for r in population.records])
        subjects = [s.subject_id for s in population.subjects]
        now = int(NOW.timestamp())
        stored = await store.get_many(subjects)
        expected = [datetime.fromtimestamp(vector_valid_until(stored[s].state, now), UTC) for s in subjects]
        assert [v.valid_until for v in await book.vectors(subjects)] == expected
        assert all(NOW < until <= datetime(2026, 12, 1, tzinfo=UTC) for until in expected)
        assert len(set(expected)) > 1  # not only the month boundary
        # One subject as of an earlier time; a subject never seen: the next month.
        earlier = datetime(2026, 6, 15, 9, 30, 15, 500_000, tzinfo=UTC)
        vector = await book.vector(subjects[0], earlier)
        assert vector.valid_until == datetime.fromtimestamp(
            vector_valid_until(stored[subjects[0]].state, epoch_seconds(earlier)), UTC)
        unknown = await book.vector("never-seen", earlier)
        assert unknown.valid_until == datetime(2026, 7, 1, tzinfo=UTC)
        assert unknown.valid_until == datetime.fromtimestamp(next_month_start(epoch_seconds(earlier)), UTC)
    finally:
        await engine.dispose()


def _request(*subject_ids: str) -> feature_pb2.GetFeatureVectorsRequest:
    return feature_pb2.GetFeatureVectorsRequest(subject_ids=subject_ids)


def test_validation_names_the_list_or_each_bad_id():
    assert validate_get_feature_vectors(_request("a", "b", "a")) == ["a", "b", "a"]
    assert len(validate_get_feature_vectors(_request(*["s"] * MAX_SUBJECTS_PER_BATCH))) == MAX_SUBJECTS_PER_BATCH
    for request in (_request(), _request(*["s"] * (MAX_SUBJECTS_PER_BATCH + 1))):
        with pytest.raises(InvalidArgument) as info:
            validate_get_feature_vectors(request)
        assert [(v.field, v.description) for v in info.value.violations] == [
            ("subject_ids", f"must hold 1 to {MAX_SUBJECTS_PER_BATCH} subject ids")
        ]
    with pytest.raises(InvalidArgument) as info:
        validate_get_feature_vectors(_request("ok-1", "", "not ok!", "x" * 65, "ok-2"))
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("subject_ids[1]", "must be set"),
        ("subject_ids[2]", SUBJECT_ID_RULE),
        ("subject_ids[3]", SUBJECT_ID_RULE),
    ]
