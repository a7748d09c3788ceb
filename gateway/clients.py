"""The gRPC side of the lookup's ports: one small adapter per downstream service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import CallError, DomainError, Unavailable, downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import SCORED_SOURCES, Authorization, Recorded, not_authorized, transaction_reused

__all__ = ["GrpcConsent", "GrpcFeatures", "GrpcScoring"]

_SERVICE = "consent_service"


class GrpcConsent:
    def __init__(self, stub: consent_pb2_grpc.ConsentServiceStub) -> None:
        self._stub = stub

    async def authorization(
        self, subject_id: str, partner_id: str, purpose: int, timeout: float
    ) -> Authorization:
        with downstream_errors(_SERVICE):
            reply = await self._stub.CheckAuthorization(
                consent_pb2.CheckAuthorizationRequest(
                    subject_id=subject_id, partner_id=partner_id, purpose=purpose  # type: ignore[arg-type]
                ),
                timeout=timeout,
            )
        return Authorization(authorized=reply.authorized, scope=reply.scope)

    async def granted_sources(self, subject_id: str, timeout: float) -> frozenset[int]:
        request = consent_pb2.CheckConsentsRequest(
            purpose=common_pb2.PURPOSE_CREDIT_SCORING,
            checks=[consent_pb2.ConsentCheck(subject_id=subject_id, source=s) for s in SCORED_SOURCES],  # type: ignore[arg-type]
        )
        with downstream_errors(_SERVICE):
            reply = await self._stub.CheckConsents(request, timeout=timeout)
        return frozenset(d.source for d in reply.decisions if d.granted)

    async def recorded(
        self, partner_id: str, transaction_id: str, subject_id: str, purpose: int, timeout: float
    ) -> Recorded | None:
        request = consent_pb2.GetAccessByTransactionRequest(
            partner_id=partner_id, transaction_id=transaction_id,
            subject_id=subject_id, purpose=purpose,  # type: ignore[arg-type]
        )
        try:
            with downstream_errors(_SERVICE):
                reply = await self._stub.GetAccessByTransaction(request, timeout=timeout)
        except DomainError as exc:
            if exc.metadata.get("downstream_reason") == "TRANSACTION_ID_REUSED":
                raise transaction_reused() from None
            raise
        if not reply.found:
            return None
        return Recorded(answer=reply.entry.answer, response=reply.entry.response)

    async def record_access(
        self,
        subject_id: str,
        partner_id: str,
        purpose: int,
        transaction_id: str,
        answer: consent_pb2.AccessAnswer,
        response: bytes,
        timeout: float,
    ) -> Recorded:
        """Writes the entry; a refusal of the authorization is the gateway's one
        NOT_AUTHORIZED, a reused transaction id TRANSACTION_ID_REUSED, and any other
        failure ``Unavailable`` (ACCESS_LOG_UNAVAILABLE): no answer without its entry."""
        request = consent_pb2.RecordAccessRequest(
            subject_id=subject_id, partner_id=partner_id, purpose=purpose,  # type: ignore[arg-type]
            transaction_id=transaction_id, answer=answer, response=response,
        )
        try:
            reply = await self._stub.RecordAccess(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            err = CallError.from_rpc_error(exc)
            if err.code == grpc.StatusCode.PERMISSION_DENIED:
                raise not_authorized() from None
            if err.reason == "TRANSACTION_ID_REUSED":
                raise transaction_reused() from None
            meta = {"service": _SERVICE, "code": err.code.name}
            if err.reason:
                meta["downstream_reason"] = err.reason
            raise Unavailable(
                "the access could not be written to the access log; nothing was answered",
                reason="ACCESS_LOG_UNAVAILABLE",
                metadata=meta,
            ) from None
        return Recorded(answer=reply.entry.answer, response=reply.entry.response)


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
