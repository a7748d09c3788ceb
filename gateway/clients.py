"""The gRPC side of the lookup's ports: one small adapter per downstream service."""

from __future__ import annotations

from collections.abc import Sequence

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import SCORED_SOURCES

__all__ = ["GrpcConsent", "GrpcFeatures", "GrpcScoring"]


class GrpcConsent:
    def __init__(self, stub: consent_pb2_grpc.ConsentServiceStub) -> None:
        self._stub = stub

    async def granted_sources(self, subject_id: str, timeout: float) -> frozenset[int]:
        request = consent_pb2.CheckConsentsRequest(
            purpose=common_pb2.PURPOSE_CREDIT_SCORING,
            checks=[consent_pb2.ConsentCheck(subject_id=subject_id, source=s) for s in SCORED_SOURCES],
        )
        with downstream_errors("consent_service"):
            reply = await self._stub.CheckConsents(request, timeout=timeout)
        return frozenset(d.source for d in reply.decisions if d.granted)


class GrpcFeatures:
    def __init__(self, stub: feature_pb2_grpc.FeatureServiceStub) -> None:
        self._stub = stub

    async def feature_vector(
        self, subject_id: str, timeout: float
    ) -> Sequence[common_pb2.FeatureValue]:
        with downstream_errors("feature_service"):
            reply = await self._stub.GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=subject_id), timeout=timeout
            )
        return reply.feature_vector.features


class GrpcScoring:
    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceStub) -> None:
        self._stub = stub

    async def score(
        self, subject_id: str, features: Sequence[common_pb2.FeatureValue], timeout: float
    ) -> scoring_pb2.Score:
        with downstream_errors("scoring_service"):
            reply = await self._stub.ScoreFeatures(
                scoring_pb2.ScoreFeaturesRequest(subject_id=subject_id, features=features),
                timeout=timeout,
            )
        return reply.score
