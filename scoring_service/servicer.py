"""The ScoringService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.runtime import to_timestamp
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .scorecard import Band, Scorecard, ScoreState
from .scoring import Scorer
from .store import ScoreRecord

__all__ = ["ScoringServicer", "score_to_proto"]

_STATE = {
    ScoreState.SCORED: common_pb2.SCORE_STATE_SCORED,
    ScoreState.INSUFFICIENT_DATA: common_pb2.SCORE_STATE_INSUFFICIENT_DATA,
}
_BAND = {band: common_pb2.ScoreBand.Value(f"SCORE_BAND_{band.value}") for band in Band}


def score_to_proto(record: ScoreRecord) -> scoring_pb2.Score:
    return scoring_pb2.Score(
        subject_id=record.subject_id,
        state=_STATE[record.state],
        score=record.score or 0,
        band=_BAND[record.band],
        probability_of_bad=record.probability_of_bad or 0.0,
        reasons=[
            common_pb2.Reason(code=r.code, text=r.text, points_lost=r.points_lost, feature=r.feature)
            for r in record.reasons
        ],
        model_version=record.model_version,
        coverage=record.coverage,
        score_time=to_timestamp(record.score_time),
    )


def _model_to_proto(card: Scorecard, active: bool) -> scoring_pb2.ModelInfo:
    return scoring_pb2.ModelInfo(
        version=card.version,
        active=active,
        description=card.description,
        train_time=to_timestamp(card.train_time),
        auc=float(card.metrics["auc"]),
        ks=float(card.metrics["ks"]),
        gini=float(card.metrics["gini"]),
        features=list(card.features),
    )


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    async def ScoreFeatures(
        self, request: scoring_pb2.ScoreFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreFeaturesResponse:
        features = [(f.name, f.value if f.HasField("value") else None) for f in request.features]
        record = await self._scorer.score(request.subject_id, features)
        return scoring_pb2.ScoreFeaturesResponse(score=score_to_proto(record))

    async def ListModels(
        self, request: scoring_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ListModelsResponse:
        cards, next_token = self._scorer.list_models(request.page_size, request.page_token)
        return scoring_pb2.ListModelsResponse(
            models=[_model_to_proto(c, self._scorer.is_active(c)) for c in cards],
            next_page_token=next_token,
        )
