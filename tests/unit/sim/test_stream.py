"""The streaming simulator: subject by subject, the same records whatever the chunking."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import DEFAULT_AS_OF, Population, applicants, simulate, stream


def _by_subject(population: Population) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for record in (*population.records, *population.outcomes):
        out[record.subject_id].append(record.SerializeToString(deterministic=True))
    return {s: sorted(v) for s, v in out.items()}


def _merged(chunks: list[Population]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for chunk in chunks:
        part = _by_subject(chunk)
        assert not set(part) & set(out)  # a subject lives in one chunk only
        out.update(part)
    return out


def test_a_subject_has_the_same_records_whatever_the_chunking():
    whole = simulate(90, seed=5)
    expected = _by_subject(whole)
    for chunk_size in (1, 7, 64, 90, 1000):
        chunks = list(stream(90, seed=5, chunk_size=chunk_size))
        assert len(chunks) == -(-90 // chunk_size)
        assert [s for c in chunks for s in c.subjects] == list(whole.subjects)
        assert _merged(chunks) == expected
    # A later start and a larger population leave subject i as it was.
    tail = list(stream(40, seed=5, start=50, chunk_size=13))
    assert [s.subject_id for c in tail for s in c.subjects] == [f"sim-{i:06d}" for i in range(50, 90)]
    assert _merged(tail) == {s: v for s, v in expected.items() if int(s.split("-")[1]) >= 50}
    bigger = _by_subject(simulate(130, seed=5))
    assert {s: bigger[s] for s in expected} == expected


def test_another_seed_gives_other_subjects():
    a, b = _by_subject(simulate(30, seed=5)), _by_subject(simulate(30, seed=6))
    assert all(a[s] != b.get(s) for s in a)


def test_chunks_are_sorted_by_event_time_and_simulate_is_the_stream_collected():
    for chunk in stream(50, seed=3, chunk_size=20):
        times = [r.event_time.seconds for r in chunk.records]
        assert times == sorted(times)
        observed = [r.event_time.seconds for r in chunk.outcomes]
        assert observed == sorted(observed)
    (one,) = list(stream(50, seed=3, chunk_size=50))
    assert one == simulate(50, seed=3)


def test_applicants_have_exactly_the_records_known_at_their_application():
    as_of = DEFAULT_AS_OF - timedelta(days=40)
    population = simulate(120, seed=11, as_of=as_of)
    outcomes = {o.subject_id: o for o in population.outcomes}
    found = list(applicants(120, seed=11, as_of=as_of))
    assert [a.subject_id for a in found] == sorted(outcomes)  # subject order, applicants only
    assert found and len(found) < 120
    left_out = 0
    history: dict[str, list[R.Record]] = defaultdict(list)
    for record in population.records:
        history[record.subject_id].append(record)
    for applicant in found:
        outcome = outcomes[applicant.subject_id]
        assert applicant.outcome == outcome
        assert applicant.index == int(applicant.subject_id.split("-")[1])
        applied = outcome.loan_outcome.application_time.seconds
        known = sorted(r.SerializeToString(deterministic=True)
                       for r in history[applicant.subject_id] if r.event_time.seconds <= applied)
        assert sorted(r.SerializeToString(deterministic=True) for r in applicant.records) == known
        left_out += sum(1 for r in history[applicant.subject_id] if r.event_time.seconds > applied)
    assert left_out  # there were later records to leave out


def test_stream_arguments_are_checked():
    with pytest.raises(ValueError):
        list(stream(10, seed=1, chunk_size=0))
    with pytest.raises(ValueError):
        list(stream(-1, seed=1))
    with pytest.raises(ValueError):
        list(applicants(-1, seed=1))
    assert list(stream(0, seed=1)) == []
