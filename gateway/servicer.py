"""CreditScoreService: protobuf in, the composed lookup, protobuf out."""

from __future__ import annotations

import grpc

from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import Deadline, Violations, check_subject_id

from .config import Settings
from .lookup import ConsentPort, FeaturePort, ScoringPort, get_credit_score

__all__ = ["CreditScoreServicer"]


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
        self._consent = consent
        self._features = features
        self._scoring = scoring

    async def GetCreditScore(
        self, request: gateway_pb2.GetCreditScoreRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GetCreditScoreResponse:
        v = Violations()
        check_subject_id(v, request.subject_id)
        v.raise_if_any("the request is not valid")
        deadline = Deadline.from_context(
            context,
            self._settings.lookup_timeout_seconds,
            cap=self._settings.lookup_timeout_cap_seconds,
        )
        score = await get_credit_score(
            request.subject_id,
            consent=self._consent,
            features=self._features,
            scoring=self._scoring,
            deadline=deadline,
        )
        result = gateway_pb2.CreditScore(
            subject_id=score.subject_id,
            state=score.state,
            score=score.score,
            band=score.band,
            probability_of_bad=score.probability_of_bad,
            reasons=score.reasons,
            model_version=score.model_version,
            coverage=score.coverage,
            improvements=score.improvements,
        )
        if score.HasField("score_time"):
            result.score_time.CopyFrom(score.score_time)
        return gateway_pb2.GetCreditScoreResponse(credit_score=result)
