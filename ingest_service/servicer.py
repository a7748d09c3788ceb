"""The IngestService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import KIND_PRODUCER, current_principal, derive_timeout, to_timestamp

from .ingestion import AuthorizedProducer, Chunk, Ingestor, RecordOutcome, Status, StoredRecordView
from .subjects import SubjectData

__all__ = ["IngestServicer"]

#: A servicer method's context (its request and response types are the method's).
Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    Status.ACCEPTED: ingest_pb2.RECORD_STATUS_ACCEPTED,
    Status.DUPLICATE: ingest_pb2.RECORD_STATUS_DUPLICATE,
    Status.REJECTED: ingest_pb2.RECORD_STATUS_REJECTED,
}

# Time kept back from the caller's deadline for storing the batch after the consent check.
_STORE_RESERVE_SECONDS = 0.05


def _result(outcome: RecordOutcome) -> ingest_pb2.RecordResult:
    return ingest_pb2.RecordResult(
        index=outcome.index,
        record_id=outcome.record_id,
        status=_STATUS[outcome.status],
        reason=outcome.reason,
        field_violations=[
            ingest_pb2.RecordFieldViolation(field=v.field, description=v.description)
            for v in outcome.violations
        ],
    )


def _producer() -> AuthorizedProducer | None:
    """The producer the call is authenticated as, with the sources its token names
    (names this build does not know are ignored); None when authentication is off.
    The policy lets only producers call the ingesting RPCs."""
    principal = current_principal()
    if principal is None or principal.kind != KIND_PRODUCER:
        return None
    sources = frozenset(
        common_pb2.DataSource.Value(name)
        for name in principal.sources
        if name in common_pb2.DataSource.keys() and name != "DATA_SOURCE_UNSPECIFIED"
    )
    return AuthorizedProducer(principal.id, sources)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Thin: the work is ``Ingestor``'s. ``consent_timeout`` bounds the consent
    check when the caller set no deadline; otherwise the caller's deadline does
    (and for a stream, whose deadline covers every chunk, both).
    ``reply_budget`` is the most bytes a stream's reply may take (the server's
    largest message, less a margin)."""

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        consent_timeout: float,
        reply_budget: int,
        subjects: SubjectData,
    ) -> None:
        self._ingestor = ingestor
        self._consent_timeout = consent_timeout
        self._reply_budget = reply_budget
        self._subjects = subjects

    async def IngestRecords(
        self, request: ingest_pb2.IngestRecordsRequest, context: Context
    ) -> ingest_pb2.IngestRecordsResponse:
        timeout = derive_timeout(context, self._consent_timeout, reserve=_STORE_RESERVE_SECONDS)
        outcome = await self._ingestor.ingest(
            request.request_id, request.producer_id, request.records, consent_timeout=timeout,
            producer=_producer(),
        )
        return ingest_pb2.IngestRecordsResponse(
            results=[_result(r) for r in outcome.results],
            accepted_count=outcome.count(Status.ACCEPTED),
            duplicate_count=outcome.count(Status.DUPLICATE),
            rejected_count=outcome.count(Status.REJECTED),
        )

    async def IngestRecordStream(
        self,
        request_iterator: AsyncIterable[ingest_pb2.IngestRecordStreamRequest],
        context: Context,
    ) -> ingest_pb2.IngestRecordStreamResponse:
        async def chunks() -> AsyncIterator[Chunk]:
            async for request in request_iterator:
                yield Chunk(request.request_id, request.producer_id, request.records)

        def consent_timeout() -> float:
            return derive_timeout(
                context, self._consent_timeout, reserve=_STORE_RESERVE_SECONDS, cap=self._consent_timeout
            )

        outcome = await self._ingestor.ingest_stream(
            chunks(), consent_timeout=consent_timeout, reply_budget=self._reply_budget,
            producer=_producer(),
        )
        return ingest_pb2.IngestRecordStreamResponse(
            results=[_result(r) for r in outcome.results],
            accepted_count=outcome.count(Status.ACCEPTED),
            duplicate_count=outcome.count(Status.DUPLICATE),
            rejected_count=outcome.count(Status.REJECTED),
            chunk_count=outcome.chunks,
        )

    async def ListRecords(
        self, request: ingest_pb2.ListRecordsRequest, context: Context
    ) -> ingest_pb2.ListRecordsResponse:
        page = await self._ingestor.list_records(
            request.subject_id, request.page_size, request.page_token
        )
        return ingest_pb2.ListRecordsResponse(
            records=[_stored(r) for r in page.records], next_page_token=page.next_page_token
        )

    async def ExportTrainingRecords(
        self, request: ingest_pb2.ExportTrainingRecordsRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.ExportTrainingRecordsResponse]:
        # Each chunk's consent check gets the usual bound: an export runs for as
        # long as the store is large, not within one call's deadline.
        async for chunk in self._ingestor.export_training(request.chunk_size, self._consent_timeout):
            yield ingest_pb2.ExportTrainingRecordsResponse(
                records=[_stored(r) for r in chunk.records],
                skipped_without_consent=chunk.skipped_without_consent,
            )


    async def PurgeSubject(
        self, request: ingest_pb2.PurgeSubjectRequest, context: Context
    ) -> ingest_pb2.PurgeSubjectResponse:
        tables = await self._subjects.purge(request.request_id, request.subject_id, request.source)
        return ingest_pb2.PurgeSubjectResponse(
            tables=[
                common_pb2.PurgedTable(table=t.table, deleted_rows=t.deleted, rewritten_rows=t.rewritten)
                for t in tables
            ]
        )

    async def ExportSubject(
        self, request: ingest_pb2.ExportSubjectRequest, context: Context
    ) -> ingest_pb2.ExportSubjectResponse:
        page = await self._subjects.export(request.subject_id, request.page_size, request.page_token)
        return ingest_pb2.ExportSubjectResponse(
            records=[_stored(r) for r in page.records], next_page_token=page.next_page_token
        )


def _stored(view: StoredRecordView) -> ingest_pb2.StoredRecord:
    return ingest_pb2.StoredRecord(
        producer_id=view.producer_id, record=view.record, ingest_time=to_timestamp(view.ingest_time)
    )
