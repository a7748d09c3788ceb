"""Point-in-time matrices built chunk by chunk equal the all-at-once one."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import point_in_time_matrix
from creditscore.features.training_matrix import (
    PointInTimeMatrixBuilder,
    SubjectSpool,
    point_in_time_matrix_chunked,
)
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import simulate


def _same(a, b) -> None:
    assert a.X.tobytes() == b.X.tobytes()  # NaN where NaN, every bit of every value
    assert a.y.tolist() == b.y.tolist()
    assert a.subject_ids == b.subject_ids
    assert a.application_times == b.application_times
    assert a.feature_names == b.feature_names


def test_chunks_of_whole_subjects_in_any_order_give_the_same_matrix():
    population = simulate(200, seed=13)
    expected = point_in_time_matrix(population.records, population.outcomes)
    position = {o.subject_id: j for j, o in enumerate(population.outcomes)}
    history: dict[str, list[R.Record]] = defaultdict(list)
    for record in population.records:
        history[record.subject_id].append(record)
    subjects = sorted(position)
    rng = np.random.default_rng(1)
    rng.shuffle(subjects)  # chunks in no particular order, records in no particular order
    chunks = []
    for start in range(0, len(subjects), 23):
        group = subjects[start : start + 23]
        records = [r for s in group for r in history[s]]
        rng.shuffle(records)  # type: ignore[arg-type]
        outcomes = [o for o in population.outcomes if o.subject_id in group]
        chunks.append((records, outcomes, [position[o.subject_id] for o in outcomes]))
    _same(point_in_time_matrix_chunked(chunks), expected)


def test_the_builder_grows_and_sorts_stably():
    builder = PointInTimeMatrixBuilder(capacity=1)
    k = len(FEATURE_NAMES)
    X = np.arange(5 * k, dtype=np.float64).reshape(5, k)
    X[1, 3] = np.nan
    builder.add(X[:2], [0, 1], [10, 20], ["a", "b"], order=[5, 1])
    builder.add(X[2:], [1, 0, 0], [30, 40, 50], ["c", "d", "e"], order=[1, 0, 5])
    assert len(builder) == 5
    m = builder.finish()
    assert m.subject_ids == ("d", "b", "c", "a", "e")  # keys 0, 1, 1, 5, 5: ties as added
    assert m.y.tolist() == [0, 1, 1, 0, 0]
    assert m.X[:, 0].tolist() == [X[3, 0], X[1, 0], X[2, 0], X[0, 0], X[4, 0]]
    assert np.isnan(m.X[1, 3])
    assert [int(t.timestamp()) for t in m.application_times] == [40, 20, 30, 10, 50]
    # Without keys: the order added.
    plain = PointInTimeMatrixBuilder()
    plain.add(X[:2], [0, 1], [10, 20], ["a", "b"])
    plain.add(X[2:3], [1], [30], ["c"])
    assert plain.finish().subject_ids == ("a", "b", "c")


def test_the_builder_refuses_rows_that_do_not_fit():
    builder = PointInTimeMatrixBuilder()
    k = len(FEATURE_NAMES)
    with pytest.raises(ValueError, match="X must be"):
        builder.add(np.zeros((2, k - 1)), [0, 1], [1, 2], ["a", "b"])
    with pytest.raises(ValueError, match="hold 2 values"):
        builder.add(np.zeros((2, k)), [0], [1, 2], ["a", "b"])
    with pytest.raises(ValueError, match="0 \\(good\\) and 1"):
        builder.add(np.zeros((2, k)), [0, 2], [1, 2], ["a", "b"])
    with pytest.raises(ValueError, match="order must hold"):
        builder.add(np.zeros((2, k)), [0, 1], [1, 2], ["a", "b"], order=[1])
    assert len(builder) == 0  # nothing half-added
    assert len(builder.finish()) == 0


@pytest.mark.parametrize("partitions", [1, 7, 256])
def test_a_spool_by_subject_gives_the_matrix_of_the_stream_as_it_came(tmp_path, partitions):
    population = simulate(150, seed=29)
    producer = {"order": "m", "rating": "m", "bill": "w", "identity": "i", "external": "b", "loan_outcome": "l"}
    # The ingest service's export order: by producer, then record id; outcomes among them.
    stream = sorted([*population.records, *population.outcomes],
                    key=lambda r: (producer[r.WhichOneof("body") or ""], r.record_id))
    expected = point_in_time_matrix([r for r in stream if not r.HasField("loan_outcome")],
                                    [r for r in stream if r.HasField("loan_outcome")])
    with SubjectSpool(partitions, tmp_path) as spool:
        for position, record in enumerate(stream):
            spool.add(record, key=position)
        assert (spool.records, spool.outcomes) == (len(population.records), len(population.outcomes))
        chunks = list(spool.chunks())
        assert 1 <= len(chunks) <= partitions and (len(chunks) > 1) == (partitions > 1)
        for records, outcomes, _ in chunks:
            subjects = {o.subject_id for o in outcomes}
            whole = [r for r in population.records if r.subject_id in subjects]
            assert sorted(r.record_id for r in records if r.subject_id in subjects) == sorted(
                r.record_id for r in whole)  # whole subjects per partition
        _same(point_in_time_matrix_chunked(chunks), expected)
    assert list(tmp_path.iterdir()) == []  # the spool's files are gone


def test_a_spool_needs_a_partition():
    with pytest.raises(ValueError):
        SubjectSpool(0)
