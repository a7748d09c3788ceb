"""The gateway servicer on a real in-process server, its downstreams real gRPC
servers with fake servicers: what crosses the wire."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from creditscore.catalog import FEATURE_NAMES
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import (
    CallError,
    ChannelSettings,
    RegisteredService,
    ServerSettings,
    create_channel,
    create_server,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from gateway.config import Settings
from gateway.server import build_server

LOCAL = ServerSettings(host="127.0.0.1", port=0)


class FakeConsent(consent_pb2_grpc.ConsentServiceServicer):
    granted: set[str] = {"alice"}

    async def CheckConsents(self, request, context):
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source,
                                        granted=c.subject_id in self.granted)
            for c in request.checks])


class FakeFeatures(feature_pb2_grpc.FeatureServiceServicer):
    def __init__(self):
        self.remaining: list[float] = []
        self.delay = 0.0

    async def GetFeatureVector(self, request, context):
        self.remaining.append(context.time_remaining())
        if self.delay:
            await asyncio.sleep(self.delay)
        return feature_pb2.GetFeatureVectorResponse(feature_vector=feature_pb2.FeatureVector(
            subject_id=request.subject_id,
            features=[common_pb2.FeatureValue(name=n, value=1.0) for n in FEATURE_NAMES]))


class FakeScoring(scoring_pb2_grpc.ScoringServiceServicer):
    async def ScoreFeatures(self, request, context):
        return scoring_pb2.ScoreFeaturesResponse(score=scoring_pb2.Score(
            subject_id=request.subject_id, state=common_pb2.SCORE_STATE_SCORED, score=712,
            band=common_pb2.SCORE_BAND_EXCELLENT, probability_of_bad=0.04, model_version="t",
            reasons=[common_pb2.Reason(code="X", text="x", points_lost=3.0, feature="f")]))


def _server(pb2, name, add, servicer):
    return create_server([RegisteredService(pb2.DESCRIPTOR.services_by_name[name], add, servicer)],
                         LOCAL, domain="fake.creditscore")


@pytest.fixture
async def suite():
    features = FakeFeatures()
    downstream = {
        "consent": _server(consent_pb2, "ConsentService",
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, FakeConsent()),
        "feature": _server(feature_pb2, "FeatureService",
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, features),
        "scoring": _server(scoring_pb2, "ScoringService",
                           scoring_pb2_grpc.add_ScoringServiceServicer_to_server, FakeScoring()),
    }
    for handle in downstream.values():
        await handle.start()
    settings = Settings(
        server=LOCAL,
        channel=ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01),
        consent_service_addr=f"127.0.0.1:{downstream['consent'].port}",
        feature_service_addr=f"127.0.0.1:{downstream['feature'].port}",
        scoring_service_addr=f"127.0.0.1:{downstream['scoring'].port}",
    )
    gateway = await build_server(settings)
    await gateway.start()
    channel = create_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield gateway_pb2_grpc.CreditScoreServiceStub(channel), downstream, features
    finally:
        await channel.close()
        await gateway.stop(0)
        for handle in downstream.values():
            await handle.stop(0)


async def _error(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def test_lookup_composes_consent_features_and_score(suite):
    stub, _, _ = suite
    reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id="alice"), timeout=2)
    score = reply.credit_score
    assert (score.subject_id, score.score, score.band) == ("alice", 712, common_pb2.SCORE_BAND_EXCELLENT)
    assert [r.code for r in score.reasons] == ["X"]


async def test_downstream_sees_the_shortened_deadline(suite):
    stub, _, features = suite
    await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id="alice"), timeout=1.0)
    # Without propagation the feature service would see the gateway's own 3 s budget.
    # grpc-timeout travels rounded up to a coarser unit, hence the small allowance.
    assert 0 < features.remaining[-1] <= 1.0 + 0.02


async def test_bad_subject_id_is_invalid_argument_with_bad_request(suite):
    stub, _, _ = suite
    err = await _error(stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id="no spaces"), timeout=2))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.domain == "gateway.creditscore"
    assert [v.field for v in err.violations] == ["subject_id"]


async def test_unknown_and_unconsented_subjects_look_the_same(suite):
    stub, _, _ = suite
    errors = [await _error(stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id=s), timeout=2))
              for s in ("bob", "nobody-at-all")]
    assert {(e.code, e.reason, e.message) for e in errors} == {
        (grpc.StatusCode.PERMISSION_DENIED, "CONSENT_REQUIRED", "no live consent to score this subject")}


async def test_downstream_down_is_unavailable_with_details(suite):
    stub, downstream, _ = suite
    await downstream["scoring"].stop(0)
    err = await _error(stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id="alice"), timeout=2))
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert err.reason == "DOWNSTREAM_UNAVAILABLE"
    assert err.metadata["service"] == "scoring_service"


async def test_slow_downstream_is_deadline_exceeded_not_a_hang(suite):
    stub, _, features = suite
    features.delay = 1.0
    err = await _error(stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id="alice"), timeout=0.3))
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
