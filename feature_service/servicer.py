"""The FeatureService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import to_timestamp

from .features import FeatureBook
from .validation import validate_apply_records, validate_get_feature_vector

__all__ = ["FeatureServicer"]


class FeatureServicer(feature_pb2_grpc.FeatureServiceServicer):
    """Thin: validation and the work live in ``validation`` and ``FeatureBook``;
    domain errors become statuses in the runtime's interceptor."""

    def __init__(self, book: FeatureBook) -> None:
        self._book = book

    async def ApplyRecords(
        self, request: feature_pb2.ApplyRecordsRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.ApplyRecordsResponse:
        envelopes = validate_apply_records(request, latest_allowed=self._book.latest_allowed_time())
        result = await self._book.apply(envelopes)
        return feature_pb2.ApplyRecordsResponse(applied_count=result.applied, duplicate_count=result.duplicates)

    async def GetFeatureVector(
        self, request: feature_pb2.GetFeatureVectorRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetFeatureVectorResponse:
        query = validate_get_feature_vector(request, latest_allowed=self._book.latest_allowed_time())
        vector = await self._book.vector(query.subject_id, query.as_of)
        return feature_pb2.GetFeatureVectorResponse(
            feature_vector=feature_pb2.FeatureVector(
                subject_id=vector.subject_id,
                as_of_time=to_timestamp(vector.as_of),
                features=[
                    common_pb2.FeatureValue(name=name)
                    if value is None
                    else common_pb2.FeatureValue(name=name, value=value)
                    for name, value in vector.values.items()
                ],
                record_count=vector.record_count,
            )
        )
