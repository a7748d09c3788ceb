"""The ScoringService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.runtime import from_timestamp, to_timestamp
from creditscore.scorecard.drift import DriftStatus
from creditscore.scorecard.model import Band, Scorecard, ScoreState
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lifecycle import ModelAction, points_table
from .scoring import Scorer
from .store import ModelEventRecord, ScoreRecord, ScoreRole

__all__ = ["ScoringServicer", "score_to_proto"]

_Context = grpc.aio.ServicerContext

_STATE = {
    ScoreState.SCORED: common_pb2.SCORE_STATE_SCORED,
    ScoreState.INSUFFICIENT_DATA: common_pb2.SCORE_STATE_INSUFFICIENT_DATA,
}
_BAND = {band: common_pb2.ScoreBand.Value(f"SCORE_BAND_{band.value}") for band in Band}
_ROLE = {role: scoring_pb2.ModelRole.Value(f"MODEL_ROLE_{role.value}") for role in ScoreRole}
_ACTION = {a: scoring_pb2.ModelEventAction.Value(f"MODEL_EVENT_ACTION_{a.value}") for a in ModelAction}
_DRIFT = {s: scoring_pb2.DriftStatus.Value(f"DRIFT_STATUS_{s.value}") for s in DriftStatus}


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
        improvements=[
            common_pb2.Improvement(
                feature=i.feature,
                code=i.code,
                text=i.text,
                current_value=i.current_value,
                target_value=i.target_value,
                points_gain=i.points_gain,
            )
            for i in record.improvements
        ],
        score_id=record.id or 0,
    )


def _features(request: scoring_pb2.ScoreFeaturesRequest) -> list[tuple[str, float | None]]:
    return [(f.name, f.value if f.HasField("value") else None) for f in request.features]


def _stored_to_proto(record: ScoreRecord) -> scoring_pb2.StoredScore:
    return scoring_pb2.StoredScore(
        score=score_to_proto(record),
        role=_ROLE[record.role],
        features=[common_pb2.FeatureValue(name=name, value=value) for name, value in record.features.items()],
        shadow_of_score_id=record.shadow_of or 0,
    )


def _event_to_proto(event: ModelEventRecord) -> scoring_pb2.ModelEvent:
    return scoring_pb2.ModelEvent(
        sequence=event.sequence,
        action=_ACTION[ModelAction(event.action)],
        version=event.version,
        previous_version=event.previous_version,
        note=event.note,
        event_time=to_timestamp(event.event_time),
        active_version=event.active_version,
        challenger_version=event.challenger_version,
        request_id=event.request_id or "",
    )


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._lifecycle = scorer.lifecycle

    def _model(self, card: Scorecard) -> scoring_pb2.ModelInfo:
        return scoring_pb2.ModelInfo(
            version=card.version,
            active=self._scorer.is_active(card),
            description=card.description,
            train_time=to_timestamp(card.train_time),
            auc=float(card.metrics["auc"]),
            ks=float(card.metrics["ks"]),
            gini=float(card.metrics["gini"]),
            features=list(card.features),
            challenger=self._scorer.is_challenger(card),
            activate_time=to_timestamp(self._scorer.activate_time(card.version)),
            format=card.format,
        )

    async def ScoreFeatures(
        self,
        request: scoring_pb2.ScoreFeaturesRequest,
        context: _Context[scoring_pb2.ScoreFeaturesRequest, scoring_pb2.ScoreFeaturesResponse],
    ) -> scoring_pb2.ScoreFeaturesResponse:
        record = await self._scorer.score(request.subject_id, _features(request))
        return scoring_pb2.ScoreFeaturesResponse(score=score_to_proto(record))

    async def ScoreBatch(
        self,
        request: scoring_pb2.ScoreBatchRequest,
        context: _Context[scoring_pb2.ScoreBatchRequest, scoring_pb2.ScoreBatchResponse],
    ) -> scoring_pb2.ScoreBatchResponse:
        records = await self._scorer.score_batch([(item.subject_id, _features(item)) for item in request.items])
        return scoring_pb2.ScoreBatchResponse(scores=[score_to_proto(r) for r in records])

    async def ListModels(
        self,
        request: scoring_pb2.ListModelsRequest,
        context: _Context[scoring_pb2.ListModelsRequest, scoring_pb2.ListModelsResponse],
    ) -> scoring_pb2.ListModelsResponse:
        cards, next_token = self._scorer.list_models(request.page_size, request.page_token)
        return scoring_pb2.ListModelsResponse(
            models=[self._model(c) for c in cards], next_page_token=next_token
        )

    async def GetModel(
        self,
        request: scoring_pb2.GetModelRequest,
        context: _Context[scoring_pb2.GetModelRequest, scoring_pb2.GetModelResponse],
    ) -> scoring_pb2.GetModelResponse:
        card = self._lifecycle.model(request.version)
        return scoring_pb2.GetModelResponse(
            model=self._model(card),
            points=[
                scoring_pb2.PointsRow(
                    feature=row.feature, bin_label=row.label, points=row.points, lo=row.lo, hi=row.hi,
                    missing=row.missing, special=row.special, categories=row.categories, other=row.other,
                )
                for row in points_table(card)
            ],
            intercept_points=card.intercept_points,
            pdo=card.scaling.pdo,
            offset=card.scaling.offset,
            min_coverage=card.min_coverage,
        )

    async def ActivateModel(
        self,
        request: scoring_pb2.ActivateModelRequest,
        context: _Context[scoring_pb2.ActivateModelRequest, scoring_pb2.ActivateModelResponse],
    ) -> scoring_pb2.ActivateModelResponse:
        event = await self._lifecycle.activate(request.request_id, request.version, request.note)
        return scoring_pb2.ActivateModelResponse(
            event=_event_to_proto(event), model=self._model(self._lifecycle.registry.get(event.active_version))
        )

    async def RollbackModel(
        self,
        request: scoring_pb2.RollbackModelRequest,
        context: _Context[scoring_pb2.RollbackModelRequest, scoring_pb2.RollbackModelResponse],
    ) -> scoring_pb2.RollbackModelResponse:
        event = await self._lifecycle.rollback(request.request_id, request.note)
        return scoring_pb2.RollbackModelResponse(
            event=_event_to_proto(event), model=self._model(self._lifecycle.registry.get(event.active_version))
        )

    async def SetChallenger(
        self,
        request: scoring_pb2.SetChallengerRequest,
        context: _Context[scoring_pb2.SetChallengerRequest, scoring_pb2.SetChallengerResponse],
    ) -> scoring_pb2.SetChallengerResponse:
        event = await self._lifecycle.set_challenger(request.request_id, request.version, request.note)
        reply = scoring_pb2.SetChallengerResponse(event=_event_to_proto(event))
        if event.challenger_version in self._lifecycle.registry:
            reply.challenger.CopyFrom(self._model(self._lifecycle.registry.get(event.challenger_version)))
        return reply

    async def ListModelEvents(
        self,
        request: scoring_pb2.ListModelEventsRequest,
        context: _Context[scoring_pb2.ListModelEventsRequest, scoring_pb2.ListModelEventsResponse],
    ) -> scoring_pb2.ListModelEventsResponse:
        events, token = await self._lifecycle.list_events(request.page_size, request.page_token)
        return scoring_pb2.ListModelEventsResponse(
            events=[_event_to_proto(e) for e in events], next_page_token=token
        )

    async def GetDrift(
        self,
        request: scoring_pb2.GetDriftRequest,
        context: _Context[scoring_pb2.GetDriftRequest, scoring_pb2.GetDriftResponse],
    ) -> scoring_pb2.GetDriftResponse:
        result = await self._scorer.drift(
            request.version,
            from_timestamp(request, "since_time"),
            from_timestamp(request, "until_time"),
            request.min_scores,
        )
        report = result.report
        return scoring_pb2.GetDriftResponse(
            version=report.version,
            status=_DRIFT[report.status],
            score_psi=report.score_psi,
            features=[
                scoring_pb2.FeatureDrift(feature=f.feature, psi=f.psi, status=_DRIFT[f.status])
                for f in report.features
            ],
            scores_used=report.scores_used,
            insufficient_data_share=report.insufficient_share,
            training_insufficient_data_share=report.training_insufficient_share,
            since_time=to_timestamp(result.since),
            until_time=to_timestamp(result.until),
            sampled=result.sampled,
            scores_in_window=result.in_window,
        )

    async def ListScores(
        self,
        request: scoring_pb2.ListScoresRequest,
        context: _Context[scoring_pb2.ListScoresRequest, scoring_pb2.ListScoresResponse],
    ) -> scoring_pb2.ListScoresResponse:
        records, token = await self._scorer.list_scores(request.subject_id, request.page_size, request.page_token)
        return scoring_pb2.ListScoresResponse(
            scores=[_stored_to_proto(r) for r in records], next_page_token=token
        )

    async def PurgeSubject(
        self,
        request: scoring_pb2.PurgeSubjectRequest,
        context: _Context[scoring_pb2.PurgeSubjectRequest, scoring_pb2.PurgeSubjectResponse],
    ) -> scoring_pb2.PurgeSubjectResponse:
        tables = await self._scorer.purge(request.request_id, request.subject_id, request.source)
        return scoring_pb2.PurgeSubjectResponse(
            tables=[
                common_pb2.PurgedTable(table=t.table, deleted_rows=t.deleted, rewritten_rows=t.rewritten)
                for t in tables
            ]
        )

    async def ExportSubject(
        self,
        request: scoring_pb2.ExportSubjectRequest,
        context: _Context[scoring_pb2.ExportSubjectRequest, scoring_pb2.ExportSubjectResponse],
    ) -> scoring_pb2.ExportSubjectResponse:
        # The score history, every role, as ListScores pages it (reasons, improvements, vectors).
        records, token = await self._scorer.list_scores(request.subject_id, request.page_size, request.page_token)
        return scoring_pb2.ExportSubjectResponse(
            scores=[_stored_to_proto(r) for r in records], next_page_token=token
        )

    async def RecomputeScore(
        self,
        request: scoring_pb2.RecomputeScoreRequest,
        context: _Context[scoring_pb2.RecomputeScoreRequest, scoring_pb2.RecomputeScoreResponse],
    ) -> scoring_pb2.RecomputeScoreResponse:
        result = await self._scorer.recompute_score(request.score_id)
        return scoring_pb2.RecomputeScoreResponse(
            stored=_stored_to_proto(result.stored),
            recomputed=score_to_proto(result.recomputed),
            identical=result.identical,
        )
