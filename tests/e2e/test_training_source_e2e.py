"""Training data from the running suite, chunk by chunk: the ingest service's
export spooled by subject and replayed a partition at a time gives the matrix the
all-in-memory path gives, row for row, in the same order."""

from __future__ import annotations

import pytest

from creditscore.cli.run import load_population
from creditscore.cli.training_source import fetch_training_matrix, fetch_training_records
from creditscore.features.engine import point_in_time_matrix
from creditscore.runtime import CallError


async def test_the_chunked_matrix_from_the_suite_is_the_all_in_memory_one(inprocess_suite, tmp_path):
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 50, seed=31, out=lambda *_: None)
    token = await suite.operator_token()
    everything = await fetch_training_records(suite.addr("ingest_service"), token=token)
    expected = point_in_time_matrix(everything.records, everything.outcomes)
    assert len(expected) == len(population.outcomes) > 10

    spool = tmp_path / "spool"
    spool.mkdir()
    seen: list[int] = []
    got = await fetch_training_matrix(suite.addr("ingest_service"), token=token, partitions=5,
                                      spool_dir=spool, progress=seen.append)
    assert got.records == len(everything.records) == report.accepted_for_features
    assert got.skipped_without_consent == everything.skipped_without_consent
    assert seen[-1] == len(everything.records) + len(everything.outcomes)
    m = got.matrix
    assert m.subject_ids == expected.subject_ids  # the export's order
    assert m.X.tobytes() == expected.X.tobytes()
    assert m.y.tolist() == expected.y.tolist()
    assert m.application_times == expected.application_times
    assert list(spool.iterdir()) == []  # the spool is cleaned up


async def test_a_caller_without_a_service_token_is_refused_and_nothing_is_left(inprocess_suite, tmp_path):
    suite = inprocess_suite.suite
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(CallError) as refused:
        await fetch_training_matrix(suite.addr("ingest_service"), token="not-a-token", spool_dir=spool)
    assert refused.value.code.name == "UNAUTHENTICATED"
    assert list(spool.iterdir()) == []
