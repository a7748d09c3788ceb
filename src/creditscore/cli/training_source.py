"""Training data from the running suite: the records the ingest service holds for
model development, turned into a point-in-time feature matrix by the feature
service's own engine (``creditscore.features.engine``), so that a scorecard is
trained on exactly the features the service computes.

    data = await fetch_training_records("localhost:50052")
    for chunk in training_matrix_chunks(data.records, data.outcomes, rows=10_000):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from creditscore.features.engine import PointInTimeMatrix
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, tool_channel

__all__ = ["TrainingRecords", "fetch_training_records", "training_matrix_chunks"]


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
    async with tool_channel(ingest_addr, token) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        call = stub.ExportTrainingRecords(
            ingest_pb2.ExportTrainingRecordsRequest(chunk_size=1000), timeout=timeout
        )
        try:
            async for chunk in call:
                out.skipped_without_consent += chunk.skipped_without_consent
                for stored in chunk.records:
                    if stored.record.WhichOneof("body") == "loan_outcome":
                        out.outcomes.append(stored.record)
                    else:
                        out.records.append(stored.record)
                if progress is not None:
                    progress(len(out.records) + len(out.outcomes))
        except grpc.aio.AioRpcError as exc:
            raise CallError.from_rpc_error(exc) from None
    return out


def training_matrix_chunks(
    records: Iterable[records_pb2.Record], outcomes: Iterable[records_pb2.Record], *, rows: int
) -> Iterator[PointInTimeMatrix]:
    """The point-in-time training matrix of ``outcomes`` (one row each, in their
    order), in pieces of at most ``rows`` rows. The one place the command line
    builds a matrix from records: today the whole matrix at once
    (``point_in_time_matrix``), then cut; a streaming builder fits here unchanged
    for its callers. Raises ValueError for an outcome without an application time
    or a label."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    from creditscore.features.engine import point_in_time_matrix

    matrix = point_in_time_matrix(records, outcomes)
    for start in range(0, len(matrix), rows):
        end = start + rows
        yield PointInTimeMatrix(
            X=matrix.X[start:end],
            y=matrix.y[start:end],
            subject_ids=matrix.subject_ids[start:end],
            application_times=matrix.application_times[start:end],
            feature_names=matrix.feature_names,
        )
