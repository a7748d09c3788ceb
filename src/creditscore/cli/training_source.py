"""Training data from the running suite: the records the ingest service holds for
model development, turned into a point-in-time feature matrix by the feature
service's own engine (``creditscore.features.engine``), so that a scorecard is
trained on exactly the features the service computes.

    export = SuiteTrainingExport("localhost:50052")
    async for chunk in export.matrix_chunks(rows=10_000):   # one subject's records in memory
        ...
    data = await fetch_training_records("localhost:50052")  # every record in memory
    for chunk in training_matrix_chunks(data.records, data.outcomes, rows=10_000):
        ...
    data = await fetch_training_matrix("localhost:50052")   # any export order

``SuiteTrainingExport`` needs the export ordered by subject (as this ingest service
sends it); ``fetch_training_matrix`` consumes the export chunk by chunk, spools the
records to disk by subject (``SubjectSpool``) and builds the same matrix, row for row
in the same order, one partition of subjects at a time (``PointInTimeMatrixBuilder``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from creditscore.features.engine import PointInTimeMatrix
from creditscore.features.training_matrix import PointInTimeMatrixBuilder, SubjectSpool
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, tool_channel

__all__ = [
    "SuiteTrainingExport",
    "TrainingMatrix",
    "TrainingRecords",
    "fetch_training_matrix",
    "fetch_training_records",
    "training_matrix_chunks",
]

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


def training_matrix_chunks(
    records: Iterable[records_pb2.Record], outcomes: Iterable[records_pb2.Record], *, rows: int
) -> Iterator[PointInTimeMatrix]:
    """The point-in-time training matrix of ``outcomes`` (one row each, in their
    order), in pieces of at most ``rows`` rows: the whole matrix built at once
    (``point_in_time_matrix``), then cut; a streaming builder fits here unchanged
    for its callers (with ``subject_matrix``, the only places the command line
    builds a matrix). Raises ValueError for an outcome without an application
    time or a label."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    from creditscore.features.engine import point_in_time_matrix

    matrix = point_in_time_matrix(records, outcomes)
    for start in range(0, len(matrix), rows):
        yield _cut(matrix, start, start + rows)


class SuiteTrainingExport:
    """The suite's training matrix, built as the export streams: the ingest
    service sends a subject's records together (``ExportTrainingRecords`` orders
    by subject), so memory holds one subject's records, one chunk of rows and
    the ids of the subjects done (none may come back).
    Rows come by subject, each subject's in its outcomes' order. The counts are
    the export's so far."""

    def __init__(self, ingest_addr: str, *, timeout: float = 3600.0, token: str | None = None) -> None:
        self.ingest_addr = ingest_addr
        self.timeout = timeout
        self.token = token
        self.records = 0
        self.outcomes = 0
        self.skipped_without_consent = 0

    async def matrix_chunks(self, *, rows: int) -> AsyncIterator[PointInTimeMatrix]:
        """Chunks of exactly ``rows`` rows (the last: what is left). Raises
        ``CallError`` when the export fails, ValueError when the service does not
        send a subject's records together or an outcome has no application time or
        label."""
        if rows < 1:
            raise ValueError("rows must be at least 1")
        buffer = _RowBuffer()
        done: set[str] = set()
        subject: str | None = None
        history: list[records_pb2.Record] = []
        applications: list[records_pb2.Record] = []
        async with tool_channel(self.ingest_addr, self.token) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            call = stub.ExportTrainingRecords(
                ingest_pb2.ExportTrainingRecordsRequest(chunk_size=_EXPORT_CHUNK), timeout=self.timeout
            )
            try:
                async for chunk in call:
                    self.skipped_without_consent += chunk.skipped_without_consent
                    for stored in chunk.records:
                        record = stored.record
                        if record.subject_id != subject:
                            if subject is not None:
                                done.add(subject)
                                buffer.add(subject_matrix(history, applications))
                            if record.subject_id in done:
                                raise ValueError(
                                    f"the ingest service at {self.ingest_addr} sent subject "
                                    f"{record.subject_id!r}'s records apart (a version that does not "
                                    "order its training export by subject?)"
                                )
                            subject, history, applications = record.subject_id, [], []
                        if record.WhichOneof("body") == "loan_outcome":
                            applications.append(record)
                            self.outcomes += 1
                        else:
                            history.append(record)
                            self.records += 1
                    while len(buffer) >= rows:
                        yield buffer.take(rows)
            except grpc.aio.AioRpcError as exc:
                raise CallError.from_rpc_error(exc) from None
        if subject is not None:
            buffer.add(subject_matrix(history, applications))
        while len(buffer):
            yield buffer.take(rows)


def subject_matrix(
    records: Iterable[records_pb2.Record], outcomes: Iterable[records_pb2.Record]
) -> PointInTimeMatrix:
    """The rows of one subject's outcomes (``point_in_time_matrix`` on its records)."""
    from creditscore.features.engine import point_in_time_matrix

    return point_in_time_matrix(records, outcomes)


class _RowBuffer:
    """Matrix rows gathered from many small matrices, taken out in chunks."""

    def __init__(self) -> None:
        self._parts: list[PointInTimeMatrix] = []
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def add(self, matrix: PointInTimeMatrix) -> None:
        if len(matrix):
            self._parts.append(matrix)
            self._rows += len(matrix)

    def take(self, rows: int) -> PointInTimeMatrix:
        """The first ``rows`` rows (all, when fewer), in the order added."""
        whole = self._parts[0] if len(self._parts) == 1 else PointInTimeMatrix(
            X=np.concatenate([p.X for p in self._parts]),
            y=np.concatenate([p.y for p in self._parts]),
            subject_ids=tuple(s for p in self._parts for s in p.subject_ids),
            application_times=tuple(t for p in self._parts for t in p.application_times),
            feature_names=self._parts[0].feature_names,
        )
        head, rest = _cut(whole, 0, rows), _cut(whole, rows, len(whole))
        self._parts = [rest] if len(rest) else []
        self._rows = len(rest)
        return head


def _cut(matrix: PointInTimeMatrix, start: int, end: int) -> PointInTimeMatrix:
    return PointInTimeMatrix(
        X=matrix.X[start:end],
        y=matrix.y[start:end],
        subject_ids=matrix.subject_ids[start:end],
        application_times=matrix.application_times[start:end],
        feature_names=matrix.feature_names,
    )
