"""GrpcScorer, the feature service's port to the scoring service, against a fake
ScoringService on a real in-process server (port 0): what crosses the wire, and the
domain errors its failures become."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from creditscore.cli.run import _free_port
from creditscore.runtime import (
    AuthInterceptor,
    ChannelSettings,
    DomainError,
    InvalidArgument,
    RegisteredService,
    ServerHandle,
    ServerSettings,
    TokenSource,
    TokenVerifier,
    Unavailable,
    create_channel,
    create_server,
    current_principal,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from feature_service.clients import GrpcScorer
from feature_service.scores import MAX_SCORE_BATCH
from scoring_service.server import POLICY as SCORING_POLICY
from tests.authkit import TokenKeys

LOCAL = ServerSettings(host="127.0.0.1", port=0)
FEW_RETRIES = ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01)
_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"]


def vector(value: float) -> dict[str, float | None]:
    return {"pay_ontime_ratio_12m": value, "identity_verified": None}


class FakeScoring(scoring_pb2_grpc.ScoringServiceServicer):
    """Scores a vector as 400 plus 100 times its first value; lists ``models`` in
    pages of ``page`` (page tokens: the index of the next model)."""

    def __init__(self) -> None:
        self.batches: list[scoring_pb2.ScoreBatchRequest] = []
        self.list_requests: list[scoring_pb2.ListModelsRequest] = []
        self.callers: list[str] = []
        self.models = [
            scoring_pb2.ModelInfo(version="1.0.0"), scoring_pb2.ModelInfo(version="1.1.0", active=True)]
        self.page = 100
        self.refuse: DomainError | None = None
        self.delay = 0.0
        self.drop_last = False

    def _caller(self) -> None:
        principal = current_principal()
        if principal is not None:
            self.callers.append(f"{principal.kind}:{principal.id}")

    async def ScoreBatch(self, request, context):
        self._caller()
        self.batches.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse is not None:
            raise self.refuse
        scores = [
            scoring_pb2.Score(subject_id=item.subject_id, score=int(400 + 100 * item.features[0].value),
                              model_version="1.1.0")
            for item in request.items
        ]
        return scoring_pb2.ScoreBatchResponse(scores=scores[:-1] if self.drop_last else scores)

    async def ListModels(self, request, context):
        self._caller()
        self.list_requests.append(request)
        start = int(request.page_token or 0)
        end = start + self.page
        return scoring_pb2.ListModelsResponse(
            models=self.models[start:end], next_page_token=str(end) if end < len(self.models) else "")


@dataclass
class Scoring:
    fake: FakeScoring
    scorer: GrpcScorer


async def _serve(fake: FakeScoring, auth: AuthInterceptor | None = None) -> ServerHandle:
    handle = create_server(
        [RegisteredService(_SERVICE, scoring_pb2_grpc.add_ScoringServiceServicer_to_server, fake)],
        LOCAL, domain="scoring.creditscore", auth=auth,
    )
    await handle.start()
    return handle


@pytest.fixture
async def scoring() -> AsyncIterator[Scoring]:
    fake = FakeScoring()
    handle = await _serve(fake)
    channel = create_channel(f"127.0.0.1:{handle.port}", FEW_RETRIES)
    try:
        yield Scoring(fake, GrpcScorer(scoring_pb2_grpc.ScoringServiceStub(channel)))
    finally:
        await channel.close()
        await handle.stop(0)


async def test_scores_come_back_in_request_order(scoring):
    items = [("s1", vector(0.5)), ("s2", vector(0.25)), ("s3", vector(0.75))]
    scores = await scoring.scorer.score(items, timeout=5)
    assert [(s.subject_id, s.score) for s in scores] == [("s1", 450), ("s2", 425), ("s3", 475)]
    [request] = scoring.fake.batches
    # Every feature in the vector's order, the value unset where there is no data.
    sent = [
        (i.subject_id, {f.name: (f.value if f.HasField("value") else None) for f in i.features})
        for i in request.items
    ]
    assert sent == items
    assert [[f.name for f in i.features] for i in request.items] == [list(v) for _, v in items]


async def test_more_vectors_than_one_batch_takes_are_sent_in_batches_in_order(scoring):
    items = [(f"s{i}", vector(i / 1000)) for i in range(MAX_SCORE_BATCH + 10)]
    scores = await scoring.scorer.score(items, timeout=5)
    assert [s.subject_id for s in scores] == [subject_id for subject_id, _ in items]
    assert [len(b.items) for b in scoring.fake.batches] == [MAX_SCORE_BATCH, 10]
    assert await scoring.scorer.score([], timeout=5) == []
    assert len(scoring.fake.batches) == 2  # no call for nothing to score


async def test_a_reply_with_fewer_scores_than_vectors_is_refused(scoring):
    scoring.fake.drop_last = True
    with pytest.raises(DomainError) as caught:
        await scoring.scorer.score([("s1", vector(0.5)), ("s2", vector(0.5))], timeout=5)
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert caught.value.reason == "SCORING_REPLY_MISMATCH"


async def test_active_model_is_the_version_marked_active(scoring):
    assert await scoring.scorer.active_model(timeout=5) == "1.1.0"


async def test_active_model_reads_every_page_until_it_finds_it(scoring):
    scoring.fake.models = [scoring_pb2.ModelInfo(version=f"0.{i}.0") for i in range(5)]
    scoring.fake.models.append(scoring_pb2.ModelInfo(version="2.0.0", active=True))
    scoring.fake.page = 2
    assert await scoring.scorer.active_model(timeout=5) == "2.0.0"
    assert [r.page_token for r in scoring.fake.list_requests] == ["", "2", "4"]


async def test_no_active_model_listed_is_an_internal_error(scoring):
    scoring.fake.models = [scoring_pb2.ModelInfo(version="1.0.0")]
    with pytest.raises(DomainError) as caught:
        await scoring.scorer.active_model(timeout=5)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.INTERNAL, "SCORING_NO_ACTIVE_MODEL")


async def test_an_unreachable_scoring_service_is_scoring_unavailable():
    channel = create_channel(f"127.0.0.1:{_free_port()}", FEW_RETRIES)
    scorer = GrpcScorer(scoring_pb2_grpc.ScoringServiceStub(channel))
    try:
        for call in (scorer.score([("s1", vector(0.5))], timeout=5), scorer.active_model(timeout=5)):
            with pytest.raises(Unavailable) as caught:
                await call
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
            assert caught.value.reason == "SCORING_UNAVAILABLE"
            assert caught.value.metadata["service"] == "scoring_service"
            assert caught.value.metadata["code"] == "UNAVAILABLE"
    finally:
        await channel.close()


async def test_a_scoring_service_too_slow_for_the_deadline_is_scoring_unavailable(scoring):
    scoring.fake.delay = 5.0
    with pytest.raises(Unavailable) as caught:
        await scoring.scorer.score([("s1", vector(0.5))], timeout=0.2)
    assert caught.value.reason == "SCORING_UNAVAILABLE"
    assert caught.value.metadata["code"] == "DEADLINE_EXCEEDED"


async def test_a_refusal_by_the_scoring_service_is_an_internal_error_naming_its_reason(scoring):
    scoring.fake.refuse = InvalidArgument("no such feature", reason="FEATURE_UNKNOWN")
    with pytest.raises(DomainError) as caught:
        await scoring.scorer.score([("s1", vector(0.5))], timeout=5)
    error = caught.value
    assert not isinstance(error, Unavailable)
    assert error.code == grpc.StatusCode.INTERNAL
    assert error.metadata == {
        "service": "scoring_service", "code": "INVALID_ARGUMENT", "downstream_reason": "FEATURE_UNKNOWN"}


async def test_the_scoring_policy_lets_the_feature_service_score_and_list_models():
    """The scoring service's own policy, on the fake: the feature service's service
    token may call ScoreBatch and ListModels."""
    keys = TokenKeys.generate()
    fake = FakeScoring()
    handle = await _serve(fake, AuthInterceptor(TokenVerifier(keys.public_pem, "internal"), SCORING_POLICY))
    channel = create_channel(f"127.0.0.1:{handle.port}", FEW_RETRIES,
                             tokens=TokenSource.static(keys.service("feature")))
    try:
        scorer = GrpcScorer(scoring_pb2_grpc.ScoringServiceStub(channel))
        assert [s.score for s in await scorer.score([("s1", vector(0.5))], timeout=5)] == [450]
        assert await scorer.active_model(timeout=5) == "1.1.0"
        assert fake.callers == ["service:feature", "service:feature"]
    finally:
        await channel.close()
        await handle.stop(0)


async def test_a_scoring_service_failing_itself_is_scoring_unavailable(scoring):
    """INTERNAL from the scoring service is its failure, not the feature service's:
    the call being served answers UNAVAILABLE, and its caller tries again later."""
    scoring.fake.refuse = DomainError("the scoring service broke")
    with pytest.raises(Unavailable) as caught:
        await scoring.scorer.score([("s1", vector(0.5))], timeout=5)
    assert caught.value.reason == "SCORING_UNAVAILABLE"
    assert caught.value.metadata["code"] == "INTERNAL"
