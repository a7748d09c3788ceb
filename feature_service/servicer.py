"""The FeatureService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from typing import Any

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import Deadline, to_timestamp

from .features import FeatureBook, SubjectVector, feature_values
from .validation import (
    validate_apply_records,
    validate_get_current_scores,
    validate_get_feature_vector,
    validate_get_feature_vectors,
)

__all__ = ["FeatureServicer"]

#: A servicer method's context (its request and response types are the method's).
Context = grpc.aio.ServicerContext[Any, Any]


class FeatureServicer(feature_pb2_grpc.FeatureServiceServicer):
    """Thin: validation and the work live in ``validation`` and ``FeatureBook``;
    domain errors become statuses in the runtime's interceptor."""

    def __init__(self, book: FeatureBook) -> None:
        self._book = book

    async def ApplyRecords(
        self, request: feature_pb2.ApplyRecordsRequest, context: Context
    ) -> feature_pb2.ApplyRecordsResponse:
        envelopes = validate_apply_records(request, latest_allowed=self._book.latest_allowed_time())
        result = await self._book.apply(envelopes, _deadline(context))
        return feature_pb2.ApplyRecordsResponse(applied_count=result.applied, duplicate_count=result.duplicates)

    async def GetFeatureVector(
        self, request: feature_pb2.GetFeatureVectorRequest, context: Context
    ) -> feature_pb2.GetFeatureVectorResponse:
        query = validate_get_feature_vector(request, latest_allowed=self._book.latest_allowed_time())
        vector = await self._book.vector(query.subject_id, query.as_of)
        return feature_pb2.GetFeatureVectorResponse(feature_vector=_vector(vector))

    async def GetFeatureVectors(
        self, request: feature_pb2.GetFeatureVectorsRequest, context: Context
    ) -> feature_pb2.GetFeatureVectorsResponse:
        vectors = await self._book.vectors(validate_get_feature_vectors(request))
        return feature_pb2.GetFeatureVectorsResponse(feature_vectors=[_vector(v) for v in vectors])

    async def GetCurrentScores(
        self, request: feature_pb2.GetCurrentScoresRequest, context: Context
    ) -> feature_pb2.GetCurrentScoresResponse:
        subject_ids = validate_get_current_scores(request)
        scores = await self._book.current_scores(subject_ids, _deadline(context))
        return feature_pb2.GetCurrentScoresResponse(
            current_scores=[
                feature_pb2.CurrentScore(
                    subject_id=subject_id,
                    score=score,
                    sources_used=sorted(sources),  # type: ignore[arg-type]
                )
                for subject_id, (score, sources) in zip(subject_ids, scores, strict=True)
            ]
        )

    async def PurgeSubject(
        self, request: feature_pb2.PurgeSubjectRequest, context: Context
    ) -> feature_pb2.PurgeSubjectResponse:
        tables = await self._book.purge(
            request.request_id, request.subject_id, request.source, _deadline(context)
        )
        return feature_pb2.PurgeSubjectResponse(
            tables=[
                common_pb2.PurgedTable(table=t.table, deleted_rows=t.deleted, rewritten_rows=t.rewritten)
                for t in tables
            ]
        )

    async def ExportSubject(
        self, request: feature_pb2.ExportSubjectRequest, context: Context
    ) -> feature_pb2.ExportSubjectResponse:
        held = await self._book.holdings(request.subject_id)
        return feature_pb2.ExportSubjectResponse(
            feature_vector=_vector(held.vector),
            applied_records=[
                feature_pb2.AppliedRecord(
                    producer_id=r.producer_id,
                    record_id=r.record_id,
                    revision=r.revision,
                    source=r.source,  # type: ignore[arg-type]
                    feeds_features=r.feeds_features,
                    apply_time=to_timestamp(r.applied_time),
                )
                for r in held.applied
            ],
        )


def _deadline(context: Context) -> Deadline | None:
    """The caller's deadline (less the time our answer takes to reach it), which
    bounds the scoring calls made for this call; None when it set none (each
    scoring call then has ``SCORE_TIMEOUT_SECONDS``)."""
    remaining = context.time_remaining()
    return None if remaining is None else Deadline.from_context(context, remaining)


def _vector(vector: SubjectVector) -> feature_pb2.FeatureVector:
    return feature_pb2.FeatureVector(
        subject_id=vector.subject_id,
        as_of_time=to_timestamp(vector.as_of),
        features=feature_values(vector),
        record_count=vector.record_count,
        valid_until_time=to_timestamp(vector.valid_until),
    )
