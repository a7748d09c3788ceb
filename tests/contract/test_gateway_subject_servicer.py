"""The gateway's SubjectService and TokenService on a real in-process server with
real authentication, the downstream services real gRPC servers with fake
servicers that themselves require the gateway's service token: the subject is
the token's, the score sees only consented sources, each downstream call runs in
the caller's deadline, failures come back as the gateway's errors with details,
and the token relay hands out no service token and holds its concurrency."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.features.catalog import CATALOG, FEATURE_NAMES, features_of_source
from creditscore.gateway.v1 import subject_pb2, subject_pb2_grpc
from creditscore.runtime import (
    PUBLIC,
    AuthInterceptor,
    CallError,
    ChannelSettings,
    FieldViolation,
    InvalidArgument,
    RegisteredService,
    ServerSettings,
    TokenVerifier,
    create_channel,
    create_server,
    current_principal,
    to_timestamp,
    utcnow,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from gateway.config import Settings
from gateway.server import build_server
from gateway.subject_servicer import subject_request_id
from tests.authkit import TokenKeys, bearer

LOCAL = ServerSettings(host="127.0.0.1", port=0)
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS


class FakeConsent(consent_pb2_grpc.ConsentServiceServicer):
    def __init__(self, keys: TokenKeys):
        self.keys = keys
        self.granted: set[int] = set()
        self.requests: list = []
        self.token_delay = 0.0

    async def IssueToken(self, request, context):
        if request.client_id == "gateway" and request.client_secret == "gateway-secret":
            return consent_pb2.IssueTokenResponse(token=self.keys.service("gateway"), audience="internal",
                                                  kind="service")
        await asyncio.sleep(self.token_delay)
        kinds = {("p1", "p1-secret"): ("partner", "gateway"), ("alice", "sbj.alice"): ("subject", "gateway"),
                 ("operator", "op-secret"): ("service", "internal")}
        found = kinds.get((request.client_id, request.client_secret))
        if found is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the client credentials are not valid")
        kind, audience = found
        return consent_pb2.IssueTokenResponse(token=f"token-of-{request.client_id}", kind=kind, audience=audience,
                                              expire_time=to_timestamp(utcnow()))

    def _seen(self, request):
        assert current_principal().id == "gateway"
        self.requests.append(request)

    async def ListRevocations(self, request, context):
        return consent_pb2.ListRevocationsResponse(last_sequence=request.after_sequence)

    async def GetSubject(self, request, context):
        self._seen(request)
        return consent_pb2.GetSubjectResponse(subject=consent_pb2.Subject(subject_id=request.subject_id))

    async def CheckConsents(self, request, context):
        self._seen(request)
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source, granted=c.source in self.granted)
            for c in request.checks])

    async def ListConsents(self, request, context):
        self._seen(request)
        return consent_pb2.ListConsentsResponse(consents=[consent_pb2.Consent(subject_id=request.subject_id)])

    async def GrantConsent(self, request, context):
        self._seen(request)
        raise InvalidArgument("the request is not valid", [FieldViolation("expire_time", "must be in the future")])

    async def GetDeletionReceipt(self, request, context):
        self._seen(request)
        from creditscore.runtime import NotFound

        raise NotFound("no deletion receipt of this subject has this id", reason="RECEIPT_NOT_FOUND")


class FakeFeatures(feature_pb2_grpc.FeatureServiceServicer):
    def __init__(self):
        self.remaining: list[float | None] = []
        self.delay = 0.0

    async def GetFeatureVector(self, request, context):
        self.remaining.append(context.time_remaining())
        await asyncio.sleep(self.delay)
        return feature_pb2.GetFeatureVectorResponse(feature_vector=feature_pb2.FeatureVector(
            subject_id=request.subject_id,
            features=[common_pb2.FeatureValue(name=n, value=1.0) for n in FEATURE_NAMES]))


class FakeScoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self):
        self.scored: list[scoring_pb2.ScoreFeaturesRequest] = []
        self.history: list[scoring_pb2.StoredScore] = []

    async def ScoreFeatures(self, request, context):
        self.scored.append(request)
        return scoring_pb2.ScoreFeaturesResponse(score=scoring_pb2.Score(
            subject_id=request.subject_id, state=common_pb2.SCORE_STATE_SCORED, score=640,
            band=common_pb2.SCORE_BAND_GOOD, probability_of_bad=0.12, coverage=0.4, model_version="t",
            score_time=to_timestamp(utcnow()),
            reasons=[common_pb2.Reason(code="R", text="r", points_lost=9, feature="f")],
            improvements=[common_pb2.Improvement(feature="f", code="R", text="pay on time", points_gain=12)]))

    async def ListScores(self, request, context):
        start = int(request.page_token or 0)
        page = self.history[start:start + request.page_size]
        more = start + request.page_size < len(self.history)
        return scoring_pb2.ListScoresResponse(
            scores=page, next_page_token=str(start + request.page_size) if more else "")


def _server(pb2, name, add, servicer, keys, public=()):
    service = pb2.DESCRIPTOR.services_by_name[name]
    policy = {f"/{service.full_name}/{m.name}": PUBLIC if m.name in public else {"service"}
              for m in service.methods}
    return create_server([RegisteredService(service, add, servicer)], LOCAL, domain="fake.creditscore",
                         auth=AuthInterceptor(TokenVerifier(keys.public_pem, "internal"), policy))


@dataclasses.dataclass
class Gw:
    subject: subject_pb2_grpc.SubjectServiceStub
    tokens: subject_pb2_grpc.TokenServiceStub
    bare: subject_pb2_grpc.TokenServiceStub  # a channel that sets no deadline of its own
    bare_subject: subject_pb2_grpc.SubjectServiceStub  # the same channel
    keys: TokenKeys
    consent: FakeConsent
    features: FakeFeatures
    scoring: FakeScoring
    downstream: dict

    def me(self, subject_id: str = "alice"):
        return bearer(self.keys.mint(subject_id, "subject", "gateway"))


@pytest.fixture
async def gw(tmp_path):
    keys = TokenKeys.generate()
    consent, features, scoring = FakeConsent(keys), FakeFeatures(), FakeScoring()
    downstream = {
        "consent": _server(consent_pb2, "ConsentService", consent_pb2_grpc.add_ConsentServiceServicer_to_server,
                           consent, keys, public=("IssueToken",)),
        "feature": _server(feature_pb2, "FeatureService", feature_pb2_grpc.add_FeatureServiceServicer_to_server,
                           features, keys),
        "scoring": _server(scoring_pb2, "ScoringService", scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
                           scoring, keys),
    }
    for handle in downstream.values():
        await handle.start()
    auth = dataclasses.replace(keys.settings(tmp_path), client_id="gateway", client_secret="gateway-secret")
    settings = Settings(
        server=LOCAL,
        channel=ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01),
        auth=auth,
        consent_service_addr=f"127.0.0.1:{downstream['consent'].port}",
        feature_service_addr=f"127.0.0.1:{downstream['feature'].port}",
        scoring_service_addr=f"127.0.0.1:{downstream['scoring'].port}",
        subject_timeout_seconds=0.3,
        token_relay_concurrency=1,
    )
    gateway = await build_server(settings)
    await gateway.start()
    channel = create_channel(f"127.0.0.1:{gateway.port}")
    bare = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield Gw(subject_pb2_grpc.SubjectServiceStub(channel), subject_pb2_grpc.TokenServiceStub(channel),
                 subject_pb2_grpc.TokenServiceStub(bare), subject_pb2_grpc.SubjectServiceStub(bare), keys,
                 consent, features, scoring, downstream)
    finally:
        await channel.close()
        await bare.close()
        await gateway.stop(0)
        for handle in downstream.values():
            await handle.stop(0)


async def _error(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def test_the_score_is_the_tokens_subjects_from_consented_sources_with_the_advice(gw):
    gw.consent.granted = {PAYMENTS}
    reply = await gw.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=gw.me(), timeout=3)
    score = reply.credit_score
    assert (score.subject_id, score.score, score.band) == ("alice", 640, common_pb2.SCORE_BAND_GOOD)
    assert (score.probability_of_bad, score.coverage) == (0.12, 0.4)
    assert [i.text for i in score.improvements] == ["pay on time"] and [r.code for r in score.reasons] == ["R"]
    (scored,) = gw.scoring.scored
    assert scored.subject_id == "alice"
    # Every feature had data; only those of payments (and those of no one source) keep it.
    with_data = {f.name for f in scored.features if f.HasField("value")}
    assert with_data == {f.name for f in CATALOG if f.source in (PAYMENTS, common_pb2.DATA_SOURCE_UNSPECIFIED)}
    assert features_of_source(PAYMENTS) <= with_data
    assert not with_data & features_of_source(common_pb2.DATA_SOURCE_COMMERCE)
    assert len(scored.features) == len(FEATURE_NAMES)  # masked, not dropped
    (check,) = gw.consent.requests
    assert {c.subject_id for c in check.checks} == {"alice"}


async def test_no_live_consent_means_no_score(gw):
    err = await _error(gw.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=gw.me(), timeout=3))
    assert (err.code, err.reason, err.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUIRED", "gateway.creditscore")
    assert not gw.scoring.scored


async def test_each_downstream_call_runs_within_the_callers_deadline(gw):
    gw.consent.granted = {PAYMENTS}
    await gw.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=gw.me(), timeout=0.25)
    # grpc-timeout travels rounded up to a coarser unit, hence the small allowance.
    assert 0 < gw.features.remaining[-1] <= 0.25 + 0.02


async def test_a_slow_downstream_is_deadline_exceeded_with_details(gw):
    gw.consent.granted = {PAYMENTS}
    gw.features.delay = 1.0
    # No deadline from the caller: the gateway's own (SUBJECT_TIMEOUT_SECONDS, 0.3 s here).
    err = await _error(gw.bare_subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=gw.me()))
    assert (err.code, err.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DOWNSTREAM_DEADLINE_EXCEEDED")
    assert err.metadata["service"] == "feature_service"


async def test_a_downstream_down_is_unavailable_with_details(gw):
    gw.consent.granted = {PAYMENTS}
    await gw.downstream["scoring"].stop(0)
    err = await _error(gw.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=gw.me(), timeout=3))
    assert (err.code, err.reason, err.metadata["service"]) == (
        grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE", "scoring_service")
    err = await _error(gw.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(), metadata=gw.me(),
                                                     timeout=3))
    assert (err.code, err.metadata["service"]) == (grpc.StatusCode.UNAVAILABLE, "scoring_service")


async def test_answers_about_the_request_come_through_with_their_details(gw):
    err = await _error(gw.subject.GrantConsent(subject_pb2.GrantConsentRequest(
        request_id="g-1", source=PAYMENTS, purpose=common_pb2.PURPOSE_CREDIT_SCORING), metadata=gw.me(), timeout=3))
    assert (err.code, err.reason, err.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "gateway.creditscore")
    assert [(v.field, v.description) for v in err.violations] == [("expire_time", "must be in the future")]
    # The consent service got the subject's own request id, and the token's subject.
    sent = gw.consent.requests[-1]
    assert (sent.subject_id, sent.request_id) == ("alice", subject_request_id("alice", "g-1"))
    assert subject_request_id("bob", "g-1") != sent.request_id
    err = await _error(gw.subject.GetDeletionReceipt(subject_pb2.GetDeletionReceiptRequest(receipt_id="r"),
                                                     metadata=gw.me(), timeout=3))
    assert (err.code, err.reason, err.message) == (
        grpc.StatusCode.NOT_FOUND, "RECEIPT_NOT_FOUND", "no deletion receipt of this subject has this id")
    # A request id is checked here, before anything is asked.
    before = len(gw.consent.requests)
    err = await _error(gw.subject.CloseAccount(subject_pb2.CloseAccountRequest(request_id="x" * 129),
                                               metadata=gw.me(), timeout=3))
    assert [v.field for v in err.violations] == ["request_id"] and len(gw.consent.requests) == before


async def test_the_history_fills_its_pages_and_leaves_out_challenger_scores(gw):
    champion, challenger = scoring_pb2.MODEL_ROLE_CHAMPION, scoring_pb2.MODEL_ROLE_CHALLENGER
    for i in range(6):
        gw.scoring.history.append(scoring_pb2.StoredScore(
            score=scoring_pb2.Score(subject_id="alice", score=600 + i, model_version="champ"), role=champion))
        gw.scoring.history.append(scoring_pb2.StoredScore(
            score=scoring_pb2.Score(subject_id="alice", score=900, model_version="shadow"), role=challenger))
    seen, token, sizes = [], "", []
    while True:
        page = await gw.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(
            page_size=4, page_token=token), metadata=gw.me(), timeout=3)
        seen += [s.score for s in page.scores]
        sizes.append(len(page.scores))
        token = page.next_page_token
        if not token:
            break
    assert seen == [600, 601, 602, 603, 604, 605] and sizes == [4, 2]


async def test_the_relay_hands_out_edge_tokens_only(gw):
    issued = await gw.tokens.IssueToken(subject_pb2.IssueTokenRequest(client_id="alice", client_secret="sbj.alice"),
                                        timeout=3)
    assert (issued.token, issued.kind, issued.audience) == ("token-of-alice", "subject", "gateway")
    assert (await gw.tokens.IssueToken(subject_pb2.IssueTokenRequest(client_id="p1", client_secret="p1-secret"),
                                       timeout=3)).kind == "partner"
    wrong = await _error(gw.tokens.IssueToken(subject_pb2.IssueTokenRequest(client_id="p1", client_secret="x"),
                                              timeout=3))
    service = await _error(gw.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id="operator", client_secret="op-secret"), timeout=3))
    assert wrong == service
    assert (wrong.code, wrong.reason, wrong.domain) == (
        grpc.StatusCode.UNAUTHENTICATED, "INVALID_CLIENT", "gateway.creditscore")
    # Needs no token, and a subject's token is no use for it either way.
    assert (await gw.tokens.IssueToken(subject_pb2.IssueTokenRequest(client_id="alice", client_secret="sbj.alice"),
                                       metadata=gw.me(), timeout=3)).kind == "subject"


async def test_the_relay_holds_its_concurrency(gw):
    gw.consent.token_delay = 0.6
    request = subject_pb2.IssueTokenRequest(client_id="alice", client_secret="sbj.alice")
    first = asyncio.ensure_future(gw.tokens.IssueToken(request, timeout=3))
    await asyncio.sleep(0.1)
    # One relay in flight (TOKEN_RELAY_CONCURRENCY=1): a caller who cannot wait for
    # it (no deadline of its own: the gateway's 0.3 s) is told to come back.
    busy = await _error(gw.bare.IssueToken(request))
    assert (busy.code, busy.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOKEN_RELAY_BUSY")
    assert (await first).kind == "subject"
    gw.consent.token_delay = 0.0
    assert (await gw.bare.IssueToken(request)).kind == "subject"

