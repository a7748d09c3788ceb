"""The gRPC side of the lookup's ports: one small adapter per downstream service,
each making one batched call for a batch of lookups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import CallError, DomainError, Outgoing, Unavailable, downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import Access, AccessOutcome, Recorded

__all__ = ["GrpcConsent", "GrpcFeatures", "GrpcScoring"]

_SERVICE = "consent_service"


async def _call(outgoing: Outgoing | None, rpc: Any, request: Any, timeout: float) -> Any:
    """``rpc(request)`` with what ``outgoing`` adds (on a ``direct_channel``)."""
    if outgoing is None:
        return await rpc(request, timeout=timeout)
    try:
        return await rpc(request, timeout=timeout, metadata=await outgoing.metadata())
    except grpc.aio.AioRpcError as exc:
        outgoing.refused(exc)
        raise


class GrpcConsent:
    """The consent service: the lookups' one question (``RecordAccesses``)."""

    def __init__(
        self, stub: consent_pb2_grpc.ConsentServiceStub, *, outgoing: Outgoing | None = None
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing

    async def record(self, accesses: Sequence[Access], timeout: float) -> list[Recorded]:
        """Any failure of the call is ``Unavailable`` (ACCESS_LOG_UNAVAILABLE): no
        answer without its entry."""
        request = consent_pb2.RecordAccessesRequest(accesses=[
            consent_pb2.AccessToRecord(
                subject_id=a.subject_id, partner_id=a.partner_id, purpose=a.purpose,  # type: ignore[arg-type]
                transaction_id=a.transaction_id, answer=a.answer, response=a.response,
                sources_used=sorted(a.sources_used),  # type: ignore[arg-type]
            )
            for a in accesses
        ])
        try:
            reply = await _call(self._outgoing, self._stub.RecordAccesses, request, timeout)
        except grpc.aio.AioRpcError as exc:
            err = CallError.from_rpc_error(exc)
            meta = {"service": _SERVICE, "code": err.code.name}
            if err.reason:
                meta["downstream_reason"] = err.reason
            raise Unavailable(
                "the access could not be written to the access log; nothing was answered",
                reason="ACCESS_LOG_UNAVAILABLE",
                metadata=meta,
            ) from None
        return [
            Recorded(
                outcome=AccessOutcome(o.kind),
                answer=o.entry.answer if o.HasField("entry") else None,
                response=o.entry.response,
                granted_sources=frozenset(o.granted_sources),
            )
            for o in reply.outcomes
        ]


class GrpcFeatures:
    """The feature service: a batch's current scores in one ``GetCurrentScores``;
    vectors (``GetFeatureVectors``) for the lookups whose sources changed."""

    def __init__(
        self, stub: feature_pb2_grpc.FeatureServiceStub, *, outgoing: Outgoing | None = None
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing

    async def current_scores(
        self, subject_ids: Sequence[str], timeout: float
    ) -> list[tuple[scoring_pb2.Score, frozenset[int]]]:
        with downstream_errors("feature_service"):
            reply = await _call(
                self._outgoing, self._stub.GetCurrentScores,
                feature_pb2.GetCurrentScoresRequest(subject_ids=subject_ids), timeout,
            )
        if len(reply.current_scores) != len(subject_ids):
            raise DomainError(
                f"feature_service answered {len(reply.current_scores)} scores for {len(subject_ids)} subjects",
                reason="DOWNSTREAM_ERROR", metadata={"service": "feature_service"},
            )
        return [(c.score, frozenset(c.sources_used)) for c in reply.current_scores]

    async def feature_vectors(
        self, subject_ids: Sequence[str], timeout: float
    ) -> list[Sequence[common_pb2.FeatureValue]]:
        with downstream_errors("feature_service"):
            reply = await _call(
                self._outgoing, self._stub.GetFeatureVectors,
                feature_pb2.GetFeatureVectorsRequest(subject_ids=subject_ids), timeout,
            )
        return [v.features for v in reply.feature_vectors]


class GrpcScoring:
    """The scoring service: a batch's scores in one ``ScoreBatch``."""

    def __init__(
        self, stub: scoring_pb2_grpc.ScoringServiceStub, *, outgoing: Outgoing | None = None
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing

    async def scores(
        self, items: Sequence[tuple[str, Sequence[common_pb2.FeatureValue]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        request = scoring_pb2.ScoreBatchRequest(items=[
            scoring_pb2.ScoreFeaturesRequest(subject_id=subject_id, features=features)
            for subject_id, features in items
        ])
        with downstream_errors("scoring_service"):
            reply = await _call(self._outgoing, self._stub.ScoreBatch, request, timeout)
        return list(reply.scores)
