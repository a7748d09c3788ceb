"""CreditScoreService: protobuf in, the partner's lookup, protobuf out."""

from __future__ import annotations

import grpc

from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import KIND_PARTNER, Deadline, Unauthenticated, current_principal

from .config import Settings
from .lookup import (
    ConsentPort,
    FeaturePort,
    ScoreQuestion,
    ScoringPort,
    ThresholdQuestion,
    answer_score,
    answer_threshold,
)

__all__ = ["CreditScoreServicer"]


def _partner_id() -> str:
    """The partner calling (from its token). Without one (``AUTH_MODE=disabled``)
    the gateway has no partner to check an authorization for, so it answers nothing."""
    principal = current_principal()
    if principal is None or principal.kind != KIND_PARTNER:
        raise Unauthenticated(
            "the gateway answers partners only: send a partner's token", reason="TOKEN_MISSING"
        )
    return principal.id


class CreditScoreServicer(gateway_pb2_grpc.CreditScoreServiceServicer):
    def __init__(
        self,
        settings: Settings,
        *,
        consent: ConsentPort,
        features: FeaturePort,
        scoring: ScoringPort,
    ) -> None:
        self._settings = settings
        self._ports = {"consent": consent, "features": features, "scoring": scoring}

    def _deadline(self, context: grpc.aio.ServicerContext) -> Deadline:
        return Deadline.from_context(
            context,
            self._settings.lookup_timeout_seconds,
            cap=self._settings.lookup_timeout_cap_seconds,
        )

    async def GetCreditScore(
        self, request: gateway_pb2.GetCreditScoreRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GetCreditScoreResponse:
        question = ScoreQuestion(request.subject_id, request.purpose, request.transaction_id)
        return await answer_score(
            question, _partner_id(), deadline=self._deadline(context), **self._ports  # type: ignore[arg-type]
        )

    async def CheckCreditThreshold(
        self, request: gateway_pb2.CheckCreditThresholdRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.CheckCreditThresholdResponse:
        question = ThresholdQuestion(
            request.subject_id, request.purpose, request.transaction_id, request.threshold
        )
        return await answer_threshold(
            question, _partner_id(), deadline=self._deadline(context), **self._ports  # type: ignore[arg-type]
        )
