"""The trainer's streaming read of the suite's training export, against a fake
IngestService on a real in-process server: the matrix built one subject at a time
equals the one built from every record at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from creditscore.cli.training_source import SuiteTrainingExport
from creditscore.features.engine import point_in_time_matrix
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, RegisteredService, ServerSettings, create_server
from creditscore.sim import simulate


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Streams ``records`` in messages of ``per_message``, each saying ``skipped``
    were left out; aborts with ``fail`` after them when set."""

    def __init__(self, records: list[records_pb2.Record], per_message: int = 37) -> None:
        self.records = records
        self.per_message = per_message
        self.fail: grpc.StatusCode | None = None

    async def ExportTrainingRecords(self, request, context) -> AsyncIterator[ingest_pb2.ExportTrainingRecordsResponse]:
        for i in range(0, len(self.records), self.per_message):
            yield ingest_pb2.ExportTrainingRecordsResponse(
                records=[ingest_pb2.StoredRecord(producer_id="p", record=r)
                         for r in self.records[i:i + self.per_message]],
                skipped_without_consent=2)
        if self.fail is not None:
            await context.abort(self.fail, "the store went away")


@pytest.fixture
async def serve():
    handles = []

    async def start(servicer: FakeIngest) -> str:
        handle = create_server([RegisteredService(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                                                  ingest_pb2_grpc.add_IngestServiceServicer_to_server, servicer)],
                               ServerSettings(host="127.0.0.1", port=0), domain="fake.creditscore")
        await handle.start()
        handles.append(handle)
        return f"127.0.0.1:{handle.port}"

    yield start
    for handle in handles:
        await handle.stop(0)


def by_subject(population) -> list[records_pb2.Record]:
    """Every record and outcome in the export's order: by subject (then any order)."""
    return sorted([*population.records, *population.outcomes], key=lambda r: r.subject_id)


async def test_the_matrix_built_as_the_export_streams_is_the_whole_matrix(serve):
    population = simulate(80, seed=3)
    records = by_subject(population)
    export = SuiteTrainingExport(await serve(FakeIngest(records)), timeout=30)
    chunks = [chunk async for chunk in export.matrix_chunks(rows=9)]
    assert [len(c) for c in chunks[:-1]] == [9] * (len(chunks) - 1) and 1 <= len(chunks[-1]) <= 9
    outcomes = [r for r in records if r.WhichOneof("body") == "loan_outcome"]
    whole = point_in_time_matrix([r for r in records if r.WhichOneof("body") != "loan_outcome"], outcomes)
    assert [s for c in chunks for s in c.subject_ids] == list(whole.subject_ids)
    assert np.array_equal(np.concatenate([c.X for c in chunks]), whole.X, equal_nan=True)
    assert np.concatenate([c.y for c in chunks]).tolist() == whole.y.tolist()
    assert [t for c in chunks for t in c.application_times] == list(whole.application_times)
    assert (export.records, export.outcomes) == (len(population.records), len(population.outcomes))
    assert export.skipped_without_consent == 2 * -(-len(records) // 37)


async def test_a_subject_whose_records_come_apart_is_refused(serve):
    population = simulate(20, seed=3)
    records = by_subject(population)
    # A record of a subject with several moved to the end: an export not ordered by subject.
    first = next(i for i in range(len(records) - 1) if records[i].subject_id == records[i + 1].subject_id)
    records.append(records.pop(first))
    export = SuiteTrainingExport(await serve(FakeIngest(records)), timeout=30)
    with pytest.raises(ValueError, match="apart"):
        _ = [chunk async for chunk in export.matrix_chunks(rows=100)]


async def test_a_failed_export_is_a_call_error(serve):
    fake = FakeIngest(by_subject(simulate(5, seed=3)))
    fake.fail = grpc.StatusCode.UNAVAILABLE
    export = SuiteTrainingExport(await serve(fake), timeout=30)
    with pytest.raises(CallError) as info:
        _ = [chunk async for chunk in export.matrix_chunks(rows=100)]
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
