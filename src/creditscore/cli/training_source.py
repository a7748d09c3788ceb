"""Training data from the running suite: the records the ingest service holds for
model development, turned into a point-in-time feature matrix by the feature
service's own engine (``creditscore.features.engine``), so that a scorecard is
trained on exactly the features the service computes.

    records, outcomes = await fetch_training_records("localhost:50052")
    matrix = point_in_time_matrix(records, outcomes)

holds every exported record in memory (about 1.6 KB each); for a population,

    data = await fetch_training_matrix("localhost:50052")

consumes the export chunk by chunk, spools the records to disk by subject
(``SubjectSpool``) and builds the same matrix, row for row in the same order, one
partition of subjects at a time (``PointInTimeMatrixBuilder``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from creditscore.features.engine import PointInTimeMatrix
from creditscore.features.training_matrix import PointInTimeMatrixBuilder, SubjectSpool
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, tool_channel

__all__ = ["TrainingMatrix", "TrainingRecords", "fetch_training_matrix", "fetch_training_records"]

_EXPORT_CHUNK = 1000


class TrainingRecords:
    """What the export gave: scoring-input records, loan outcomes, and how many
    records were left out for want of model-development consent."""

    def __init__(self) -> None:
        self.records: list[records_pb2.Record] = []
        self.outcomes: list[records_pb2.Record] = []
        self.skipped_without_consent = 0


async def fetch_training_records(
    ingest_addr: str,
    *,
    timeout: float = 3600.0,
    progress: Callable[[int], None] | None = None,
    token: str | None = None,
) -> TrainingRecords:
    """Streams ``IngestService.ExportTrainingRecords`` from ``ingest_addr``;
    ``progress`` is told the running count of records received. The export is for
    services only: ``token`` (default ``CREDITSCORE_TOKEN``) is a service's token."""
    out = TrainingRecords()
    async for chunk in _export(ingest_addr, timeout, token):
        out.skipped_without_consent += chunk.skipped_without_consent
        for stored in chunk.records:
            if stored.record.WhichOneof("body") == "loan_outcome":
                out.outcomes.append(stored.record)
            else:
                out.records.append(stored.record)
        if progress is not None:
            progress(len(out.records) + len(out.outcomes))
    return out


@dataclass(frozen=True)
class TrainingMatrix:
    """What ``fetch_training_matrix`` made: the point-in-time matrix (one row per
    exported loan outcome, in the export's order), the records it was made from,
    and how many records were left out for want of model-development consent."""

    matrix: PointInTimeMatrix
    records: int
    skipped_without_consent: int


async def fetch_training_matrix(
    ingest_addr: str,
    *,
    timeout: float = 3600.0,
    progress: Callable[[int], None] | None = None,
    token: str | None = None,
    partitions: int = 256,
    spool_dir: str | Path | None = None,
) -> TrainingMatrix:
    """``point_in_time_matrix`` of what ``fetch_training_records`` would fetch, the
    same rows in the same order, with memory flat in the number of records: each
    chunk of the export is spooled to ``partitions`` temporary files by subject (in
    ``spool_dir``, default the system's), and the matrix is then built one partition
    at a time. ``progress`` is told the running count of records received."""
    skipped = 0
    received = 0
    with SubjectSpool(partitions, spool_dir) as spool:
        async for chunk in _export(ingest_addr, timeout, token):
            skipped += chunk.skipped_without_consent
            for stored in chunk.records:
                spool.add(stored.record, key=received)  # an outcome's row goes where the export had it
                received += 1
            if progress is not None:
                progress(received)
        builder = PointInTimeMatrixBuilder()
        for records, outcomes, keys in spool.chunks():
            builder.add_records(records, outcomes, order=keys)
        return TrainingMatrix(builder.finish(), spool.records, skipped)


async def _export(
    ingest_addr: str, timeout: float, token: str | None
) -> AsyncIterator[ingest_pb2.ExportTrainingRecordsResponse]:
    """The chunks of ``ExportTrainingRecords``; a failed call as a ``CallError``."""
    async with tool_channel(ingest_addr, token) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        call = stub.ExportTrainingRecords(
            ingest_pb2.ExportTrainingRecordsRequest(chunk_size=_EXPORT_CHUNK), timeout=timeout
        )
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise CallError.from_rpc_error(exc) from None
