"""The gRPC side of the lookup's ports: one small adapter per downstream service,
each batching concurrent lookups into one downstream call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.metrics import Meter

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import Batcher, CallError, Deadline, Outgoing, Unavailable, downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import SCORED_SOURCES, Access, AccessOutcome, Recorded

__all__ = ["Batching", "GrpcConsent", "GrpcFeatures", "GrpcScoring"]

_SERVICE = "consent_service"


@dataclass(frozen=True)
class Batching:
    """How concurrent lookups share downstream calls (``creditscore.runtime.Batcher``):
    at most ``max_batch`` lookups per call, ``max_in_flight`` calls at once per
    downstream."""

    max_batch: int = 128
    max_in_flight: int = 1
    #: Tracer of the batched calls' spans (None: the global provider's).
    tracer: trace.Tracer | None = None
    #: Meter of the batch sizes (``creditscore.batch.size``; None: not recorded).
    meter: Meter | None = None


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
    """The consent service: the lookup's one question (``RecordAccesses``, batched)."""

    def __init__(
        self, stub: consent_pb2_grpc.ConsentServiceStub, *, batching: Batching = Batching(),
        outgoing: Outgoing | None = None,
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing
        self._records: Batcher[Access, Recorded] = Batcher(
            self._record_batch, name=_SERVICE,
            max_batch=batching.max_batch, max_in_flight=batching.max_in_flight,
            tracer=batching.tracer, meter=batching.meter,
        )

    async def record(self, access: Access, deadline: Deadline) -> Recorded:
        return await self._records.call(access, deadline)

    async def _record_batch(self, accesses: Sequence[Access], timeout: float) -> list[Recorded]:
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
    """The feature service: vectors of concurrent lookups in one ``GetFeatureVectors``."""

    def __init__(
        self, stub: feature_pb2_grpc.FeatureServiceStub, *, batching: Batching = Batching(),
        outgoing: Outgoing | None = None,
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing
        self._vectors: Batcher[str, Sequence[common_pb2.FeatureValue]] = Batcher(
            self._vector_batch, name="feature_service",
            max_batch=batching.max_batch, max_in_flight=batching.max_in_flight,
            tracer=batching.tracer, meter=batching.meter,
        )

    async def feature_vector(
        self, subject_id: str, deadline: Deadline
    ) -> Sequence[common_pb2.FeatureValue]:
        return await self._vectors.call(subject_id, deadline)

    async def _vector_batch(
        self, subject_ids: Sequence[str], timeout: float
    ) -> list[Sequence[common_pb2.FeatureValue]]:
        with downstream_errors("feature_service"):
            reply = await _call(
                self._outgoing, self._stub.GetFeatureVectors,
                feature_pb2.GetFeatureVectorsRequest(subject_ids=subject_ids), timeout,
            )
        return [v.features for v in reply.feature_vectors]


class GrpcScoring:
    """The scoring service: scores of concurrent lookups in one ``ScoreBatch``."""

    def __init__(
        self, stub: scoring_pb2_grpc.ScoringServiceStub, *, batching: Batching = Batching(),
        outgoing: Outgoing | None = None,
    ) -> None:
        self._stub = stub
        self._outgoing = outgoing
        self._scores: Batcher[scoring_pb2.ScoreFeaturesRequest, scoring_pb2.Score] = Batcher(
            self._score_batch, name="scoring_service",
            max_batch=batching.max_batch, max_in_flight=batching.max_in_flight,
            tracer=batching.tracer, meter=batching.meter,
        )

    async def score(
        self, subject_id: str, features: Sequence[common_pb2.FeatureValue], deadline: Deadline
    ) -> scoring_pb2.Score:
        return await self._scores.call(
            scoring_pb2.ScoreFeaturesRequest(subject_id=subject_id, features=features), deadline
        )

    async def _score_batch(
        self, items: Sequence[scoring_pb2.ScoreFeaturesRequest], timeout: float
    ) -> list[scoring_pb2.Score]:
        with downstream_errors("scoring_service"):
            reply = await _call(
                self._outgoing, self._stub.ScoreBatch, scoring_pb2.ScoreBatchRequest(items=items), timeout
            )
        return list(reply.scores)
