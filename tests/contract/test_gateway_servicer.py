"""The gateway on a real in-process server with real authentication, its downstreams
real gRPC servers with fake servicers that themselves require the gateway's service
token: what crosses the wire."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from creditscore.catalog import FEATURE_NAMES
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import (
    PUBLIC,
    AuthInterceptor,
    CallError,
    ChannelSettings,
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
from tests.authkit import TokenKeys, bearer

LOCAL = ServerSettings(host="127.0.0.1", port=0)
LOAN = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD


class FakeConsent(consent_pb2_grpc.ConsentServiceServicer):
    """Answers as the consent service would, from plain dicts; issues the gateway's
    service token; can be told to fail writing the access log."""

    def __init__(self, keys: TokenKeys):
        self.keys = keys
        self.scopes: dict[tuple[str, str, int], int] = {}
        self.consented: set[str] = set()
        self.log: dict[tuple[str, str], consent_pb2.AccessEntry] = {}
        self.record_error: grpc.StatusCode | None = None
        self.callers: set[str] = set()
        self.issued = 0

    async def IssueToken(self, request, context):
        if (request.client_id, request.client_secret) != ("gateway", "gateway-secret"):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid client")
        self.issued += 1
        return consent_pb2.IssueTokenResponse(token=self.keys.service("gateway"), audience="internal",
                                              kind="service")

    def _seen(self):
        self.callers.add(current_principal().id)

    async def CheckAuthorization(self, request, context):
        self._seen()
        scope = self.scopes.get((request.subject_id, request.partner_id, request.purpose))
        return consent_pb2.CheckAuthorizationResponse(authorized=scope is not None, scope=scope or 0)

    async def CheckConsents(self, request, context):
        self._seen()
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source,
                                        granted=c.subject_id in self.consented)
            for c in request.checks])

    async def GetAccessByTransaction(self, request, context):
        self._seen()
        entry = self.log.get((request.partner_id, request.transaction_id))
        if entry is None:
            return consent_pb2.GetAccessByTransactionResponse(found=False)
        return consent_pb2.GetAccessByTransactionResponse(found=True, entry=entry)

    async def RecordAccess(self, request, context):
        self._seen()
        if self.record_error is not None:
            await context.abort(self.record_error, "the access log is not writable")
        key = (request.partner_id, request.transaction_id)
        created = key not in self.log
        if created:
            self.log[key] = consent_pb2.AccessEntry(
                access_id=f"a{len(self.log)}", subject_id=request.subject_id, partner_id=request.partner_id,
                purpose=request.purpose, transaction_id=request.transaction_id, answer=request.answer,
                response=request.response, access_time=to_timestamp(utcnow()))
        return consent_pb2.RecordAccessResponse(entry=self.log[key], created=created)


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
    def __init__(self):
        self.calls = 0

    async def ScoreFeatures(self, request, context):
        self.calls += 1
        return scoring_pb2.ScoreFeaturesResponse(score=scoring_pb2.Score(
            subject_id=request.subject_id, state=common_pb2.SCORE_STATE_SCORED, score=712,
            band=common_pb2.SCORE_BAND_EXCELLENT, probability_of_bad=0.04, model_version="t",
            score_time=to_timestamp(utcnow()),
            reasons=[common_pb2.Reason(code="X", text="x", points_lost=3.0, feature="f")]))


def _server(pb2, name, add, servicer, keys, public=()):
    service = pb2.DESCRIPTOR.services_by_name[name]
    policy = {f"/{service.full_name}/{m.name}": PUBLIC if m.name in public else {"service"}
              for m in service.methods}
    return create_server([RegisteredService(service, add, servicer)], LOCAL, domain="fake.creditscore",
                         auth=AuthInterceptor(TokenVerifier(keys.public_pem, "internal"), policy))


@dataclasses.dataclass
class Gw:
    stub: gateway_pb2_grpc.CreditScoreServiceStub
    keys: TokenKeys
    consent: FakeConsent
    features: FakeFeatures
    scoring: FakeScoring
    downstream: dict

    def partner(self, partner_id="p1", **kw):
        return bearer(self.keys.partner(partner_id, **kw))


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
    )
    gateway = await build_server(settings)
    await gateway.start()
    channel = create_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield Gw(gateway_pb2_grpc.CreditScoreServiceStub(channel), keys, consent, features, scoring, downstream)
    finally:
        await channel.close()
        await gateway.stop(0)
        for handle in downstream.values():
            await handle.stop(0)


def _ask(subject="alice", txn="t-1", purpose=LOAN):
    return gateway_pb2.GetCreditScoreRequest(subject_id=subject, purpose=purpose, transaction_id=txn)


async def _error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def test_a_partner_gets_the_score_within_its_authorization(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    reply = await gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)
    score = reply.credit_score
    assert (score.subject_id, score.score, score.band) == ("alice", 712, common_pb2.SCORE_BAND_EXCELLENT)
    assert [r.code for r in score.reasons] == ["X"] and score.probability_of_bad == 0
    # The gateway called with its own service token, fetched once.
    assert gw.consent.callers == {"gateway"} and gw.consent.issued == 1
    # Written to the access log, with the answer as sent.
    (entry,) = gw.consent.log.values()
    assert entry.response == reply.SerializeToString(deterministic=True)
    threshold = await gw.stub.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
        subject_id="alice", purpose=LOAN, threshold=720, transaction_id="t-2"), metadata=gw.partner(), timeout=3)
    assert threshold.decision == common_pb2.THRESHOLD_DECISION_BELOW


async def test_unauthorized_answers_are_byte_identical(gw):
    gw.consent.scopes[("thresh", "p1", LOAN)] = THRESHOLD
    gw.consent.scopes[("noconsent", "p1", LOAN)] = FULL
    gw.consent.scopes[("other", "p2", LOAN)] = FULL
    gw.consent.consented.update({"thresh", "other"})
    errors = [await _error(gw.stub.GetCreditScore(_ask(subject=s, txn=f"t-{s}"), metadata=gw.partner(), timeout=3))
              for s in ("nobody", "thresh", "noconsent", "other")]
    errors.append(await _error(gw.stub.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
        subject_id="nobody", purpose=LOAN, threshold=600, transaction_id="t-x"), metadata=gw.partner(), timeout=3)))
    shapes = {(e.code(), e.details(), tuple(e.trailing_metadata())) for e in errors}
    assert len(shapes) == 1
    err = CallError.from_rpc_error(errors[0])
    assert (err.code, err.reason, err.metadata) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED", {})
    assert gw.scoring.calls == 0 and not gw.consent.log


async def test_partner_tokens_only(gw):
    other = TokenKeys.generate()
    header, payload, signature = gw.keys.partner("p1").split(".")
    cases = [
        ((), "TOKEN_MISSING"),
        (gw.partner(ttl=-60), "TOKEN_EXPIRED"),
        (bearer(gw.keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"])), "TOKEN_WRONG_AUDIENCE"),
        (bearer(gw.keys.service("ingest_service")), "TOKEN_WRONG_AUDIENCE"),
        (bearer(other.partner("p1")), "TOKEN_INVALID"),
        (bearer(f"{header}.{payload}x.{signature}"), "TOKEN_INVALID"),
    ]
    for metadata, reason in cases:
        err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=metadata, timeout=3)))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason), reason
    assert not gw.consent.callers


async def test_a_failing_access_log_means_no_answer(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
        gw.consent.record_error = code
        err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "ACCESS_LOG_UNAVAILABLE")
    gw.consent.record_error = grpc.StatusCode.PERMISSION_DENIED  # revoked meanwhile
    err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")


async def test_a_transaction_id_replays_the_first_answer(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    first = await gw.stub.GetCreditScore(_ask(txn="same"), metadata=gw.partner(), timeout=3)
    await asyncio.sleep(0.01)
    again = await gw.stub.GetCreditScore(_ask(txn="same"), metadata=gw.partner(), timeout=3)
    assert again.SerializeToString() == first.SerializeToString()
    assert len(gw.consent.log) == 1 and gw.scoring.calls == 1


async def test_downstream_sees_the_shortened_deadline(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    await gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=1.0)
    # Without propagation the feature service would see the gateway's own 3 s budget.
    # grpc-timeout travels rounded up to a coarser unit, hence the small allowance.
    assert 0 < gw.features.remaining[-1] <= 1.0 + 0.02


async def test_bad_requests_are_invalid_argument_with_bad_request(gw):
    err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(
        gateway_pb2.GetCreditScoreRequest(subject_id="no spaces"), metadata=gw.partner(), timeout=2)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.domain == "gateway.creditscore"
    assert [v.field for v in err.violations] == ["subject_id", "purpose", "transaction_id"]
    err = CallError.from_rpc_error(await _error(gw.stub.CheckCreditThreshold(
        gateway_pb2.CheckCreditThresholdRequest(subject_id="alice", purpose=LOAN, transaction_id="t", threshold=100),
        metadata=gw.partner(), timeout=2)))
    assert [v.field for v in err.violations] == ["threshold"]


async def test_downstream_down_is_unavailable_with_details(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    await gw.downstream["scoring"].stop(0)
    err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=2)))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE")
    assert err.metadata["service"] == "scoring_service"
    assert not gw.consent.log


async def test_slow_downstream_is_deadline_exceeded_not_a_hang(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    gw.features.delay = 1.0
    err = await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=0.3))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_gateway_needs_its_own_credentials(gw, tmp_path):
    from creditscore.runtime import SettingsError

    settings = Settings(server=LOCAL, auth=gw.keys.settings(tmp_path))
    with pytest.raises(SettingsError, match="SERVICE_CLIENT_ID"):
        await build_server(settings)
    # Credentials the consent service refuses: no call goes out without a token.
    bad = dataclasses.replace(gw.keys.settings(tmp_path), client_id="gateway", client_secret="wrong")
    handle = await build_server(Settings(
        server=LOCAL, auth=bad, channel=ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01),
        consent_service_addr=f"127.0.0.1:{gw.downstream['consent'].port}",
        feature_service_addr=f"127.0.0.1:{gw.downstream['feature'].port}",
        scoring_service_addr=f"127.0.0.1:{gw.downstream['scoring'].port}"))
    await handle.start()
    try:
        async with create_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
            err = CallError.from_rpc_error(await _error(stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
            assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "TOKEN_UNAVAILABLE")
    finally:
        await handle.stop(0)
    assert not gw.consent.callers
