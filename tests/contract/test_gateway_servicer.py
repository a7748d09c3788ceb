"""The gateway on a real in-process server with real authentication, its downstreams
real gRPC servers with fake servicers that themselves require the gateway's service
token: what crosses the wire."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.features.catalog import FEATURE_NAMES
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
from gateway.lookup import SCORED_SOURCES
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
        self.batches: list[int] = []

    async def IssueToken(self, request, context):
        if (request.client_id, request.client_secret) != ("gateway", "gateway-secret"):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid client")
        self.issued += 1
        return consent_pb2.IssueTokenResponse(token=self.keys.service("gateway"), audience="internal",
                                              kind="service")

    def _seen(self):
        self.callers.add(current_principal().id)

    async def ListRevocations(self, request, context):
        return consent_pb2.ListRevocationsResponse(last_sequence=request.after_sequence)

    async def RecordAccesses(self, request, context):
        """The lookup's one question, with the consent service's rules over dicts."""
        self._seen()
        self.batches.append(len(request.accesses))
        if self.record_error is not None:
            await context.abort(self.record_error, "the access log is not writable")
        outcomes = []
        for access in request.accesses:
            scope = self.scopes.get((access.subject_id, access.partner_id, access.purpose))
            if (scope is None or access.subject_id not in self.consented
                    or (access.answer.WhichOneof("answer") == "score" and scope != FULL)):
                outcomes.append(consent_pb2.AccessOutcome(kind=consent_pb2.ACCESS_OUTCOME_KIND_NOT_AUTHORIZED))
                continue
            key = (access.partner_id, access.transaction_id)
            if key in self.log:
                outcomes.append(consent_pb2.AccessOutcome(
                    kind=consent_pb2.ACCESS_OUTCOME_KIND_REPLAYED, entry=self.log[key]))
                continue
            self.log[key] = consent_pb2.AccessEntry(
                access_id=f"a{len(self.log)}", subject_id=access.subject_id, partner_id=access.partner_id,
                purpose=access.purpose, transaction_id=access.transaction_id, answer=access.answer,
                response=access.response, access_time=to_timestamp(utcnow()))
            outcomes.append(consent_pb2.AccessOutcome(
                kind=consent_pb2.ACCESS_OUTCOME_KIND_RECORDED, entry=self.log[key]))
        return consent_pb2.RecordAccessesResponse(outcomes=outcomes)


class FakeFeatures(feature_pb2_grpc.FeatureServiceServicer):
    """Current scores as materialized (the score FakeScoring would give, drawing on
    every scored source), and vectors for lookups whose sources changed."""

    def __init__(self):
        self.remaining: list[float] = []
        self.delay = 0.0
        self.calls = 0

    async def GetCurrentScores(self, request, context):
        self.remaining.append(context.time_remaining())
        self.calls += len(request.subject_ids)
        if self.delay:
            await asyncio.sleep(self.delay)
        return feature_pb2.GetCurrentScoresResponse(current_scores=[feature_pb2.CurrentScore(
            subject_id=subject_id, score=_score(subject_id), sources_used=list(SCORED_SOURCES))
            for subject_id in request.subject_ids])

    async def GetFeatureVectors(self, request, context):
        self.remaining.append(context.time_remaining())
        if self.delay:
            await asyncio.sleep(self.delay)
        return feature_pb2.GetFeatureVectorsResponse(feature_vectors=[feature_pb2.FeatureVector(
            subject_id=subject_id,
            features=[common_pb2.FeatureValue(name=n, value=1.0) for n in FEATURE_NAMES])
            for subject_id in request.subject_ids])


class FakeScoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self):
        self.calls = 0

    async def ScoreBatch(self, request, context):
        self.calls += len(request.items)
        return scoring_pb2.ScoreBatchResponse(scores=[_score(item.subject_id) for item in request.items])


def _score(subject_id: str) -> scoring_pb2.Score:
    return scoring_pb2.Score(
        subject_id=subject_id, state=common_pb2.SCORE_STATE_SCORED, score=712,
        band=common_pb2.SCORE_BAND_EXCELLENT, probability_of_bad=0.04, model_version="t",
        score_time=to_timestamp(utcnow()),
        reasons=[common_pb2.Reason(code="X", text="x", points_lost=3.0, feature="f")])


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


_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["CreditScoreService"]


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
    assert not gw.consent.log


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
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.PERMISSION_DENIED):
        gw.consent.record_error = code
        err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "ACCESS_LOG_UNAVAILABLE")
        assert err.metadata["code"] == code.name
    assert not gw.consent.log
    gw.consent.record_error = None
    del gw.consent.scopes[("alice", "p1", LOAN)]  # revoked meanwhile
    err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")


async def test_a_transaction_id_replays_the_first_answer(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    first = await gw.stub.GetCreditScore(_ask(txn="same"), metadata=gw.partner(), timeout=3)
    await asyncio.sleep(0.01)
    again = await gw.stub.GetCreditScore(_ask(txn="same"), metadata=gw.partner(), timeout=3)
    assert again.SerializeToString() == first.SerializeToString()
    assert len(gw.consent.log) == 1


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
    # The scoring service is not on a lookup's path (the feature service holds
    # each subject's current score): lookups go on without it.
    await gw.downstream["scoring"].stop(0)
    reply = await gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=2)
    assert reply.credit_score.score == 712 and gw.scoring.calls == 0
    await gw.downstream["feature"].stop(0)
    err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(
        _ask(txn="t-down"), metadata=gw.partner(), timeout=2)))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE")
    assert err.metadata["service"] == "feature_service"
    assert len(gw.consent.log) == 1


async def test_slow_downstream_is_deadline_exceeded_not_a_hang(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    gw.features.delay = 1.0
    err = await _error(gw.stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=0.3))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_slow_downstream_is_answered_before_the_callers_deadline_with_details(gw):
    """The gateway keeps part of the caller's deadline for its answer: the caller
    reads the gateway's DEADLINE_EXCEEDED and its reason, not its own timeout."""
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    gw.features.delay = 2.0
    for k in range(3):
        err = CallError.from_rpc_error(await _error(gw.stub.GetCreditScore(
            _ask(txn=f"t-slow-{k}"), metadata=gw.partner(), timeout=0.5)))
        assert (err.code, err.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DOWNSTREAM_DEADLINE_EXCEEDED")


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
    handle.ready_wait = 0.5
    await handle.start()
    try:
        async with create_channel(f"127.0.0.1:{handle.port}") as channel:
            # Without a token of its own it cannot fetch the revocation list: it
            # never reports SERVING, and refuses every token rather than trust one
            # it cannot check.
            health = health_pb2_grpc.HealthStub(channel)
            ready = await health.Check(health_pb2.HealthCheckRequest(service=_SERVICE.full_name), timeout=3)
            assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING  # kept out of traffic
            alive = await health.Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert alive.status == health_pb2.HealthCheckResponse.SERVING  # not restarted
            stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
            err = CallError.from_rpc_error(await _error(stub.GetCreditScore(_ask(), metadata=gw.partner(), timeout=3)))
            assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "REVOCATIONS_STALE")
    finally:
        await handle.stop(0)
    assert not gw.consent.callers


async def test_a_downstream_stopped_and_restarted_is_unavailable_then_serves_again(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = FULL
    gw.consent.consented.add("alice")
    await gw.stub.GetCreditScore(_ask(txn="before"), metadata=gw.partner(), timeout=3)
    port = gw.downstream["feature"].port
    await gw.downstream["feature"].stop(0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    call = gw.stub.GetCreditScore(_ask(txn="down"), metadata=gw.partner(), timeout=3)
    err = CallError.from_rpc_error(await _error(call))
    assert (err.code, err.reason, err.metadata["service"]) == (
        grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE", "feature_service")
    assert loop.time() - start < 2.5  # a clear answer, not a hang to the deadline
    # The same service back on the same address: the gateway reconnects by itself.
    gw.downstream["feature"] = _server_on(port, gw)
    await gw.downstream["feature"].start()
    answered = None
    for attempt in range(60):
        try:
            answered = await gw.stub.GetCreditScore(_ask(txn=f"after-{attempt}"), metadata=gw.partner(), timeout=3)
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE  # never anything else meanwhile
            await asyncio.sleep(0.1)
    assert answered is not None and answered.credit_score.score == 712
    assert loop.time() - start < 6


def _server_on(port, gw):
    service = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"]
    policy = {f"/{service.full_name}/{m.name}": {"service"} for m in service.methods}
    return create_server(
        [RegisteredService(service, feature_pb2_grpc.add_FeatureServiceServicer_to_server, gw.features)],
        dataclasses.replace(LOCAL, port=port), domain="fake.creditscore",
        auth=AuthInterceptor(TokenVerifier(gw.keys.public_pem, "internal"), policy))


def _check(subject, txn, threshold=650, purpose=LOAN):
    return gateway_pb2.CheckCreditThresholdRequest(
        subject_id=subject, purpose=purpose, threshold=threshold, transaction_id=txn)


async def test_a_batch_answers_each_check_as_alone_and_refuses_each_unauthorized_one_alone(gw):
    gw.consent.scopes[("alice", "p1", LOAN)] = THRESHOLD
    gw.consent.scopes[("bob", "p1", LOAN)] = FULL
    gw.consent.consented.update({"alice", "bob"})
    first = await gw.stub.CheckCreditThreshold(_check("alice", "seen"), metadata=gw.partner(), timeout=3)
    alone = await _error(gw.stub.CheckCreditThreshold(_check("mallory", "alone"), metadata=gw.partner(), timeout=3))
    reply = await gw.stub.BatchCheckCreditThreshold(gateway_pb2.BatchCheckCreditThresholdRequest(checks=[
        _check("alice", "b-1", threshold=700),   # authorized, scored 712: MEETS
        _check("bob", "b-2", threshold=720),     # authorized (full covers threshold): BELOW
        _check("mallory", "b-3"),                # unknown subject: the one refusal
        _check("carol", "b-4"),                  # not authorized either: the same refusal
        _check("alice", "seen"),                 # a replay: the first answer, byte for byte
        _check("bad id", "b-6"),                 # invalid: INVALID_ARGUMENT for this item only
    ]), metadata=gw.partner(), timeout=5)
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["response", "response", "error", "error", "response", "error"]
    assert reply.results[0].response.decision == common_pb2.THRESHOLD_DECISION_MEETS
    assert reply.results[1].response.decision == common_pb2.THRESHOLD_DECISION_BELOW
    replayed = reply.results[4].response
    assert replayed.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True)
    refused = [reply.results[2].error, reply.results[3].error]
    expected = CallError.from_rpc_error(alone)
    for error in refused:
        assert (error.code, error.reason, error.message, dict(error.metadata)) == (
            grpc.StatusCode.PERMISSION_DENIED.value[0], "NOT_AUTHORIZED", expected.message, {})
    invalid = reply.results[5].error
    assert (invalid.code, invalid.reason) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT")
    assert [v.split(":")[0] for v in invalid.field_violations] == ["subject_id"]
    # Logged: the first check, and the two new answers of the batch; nothing else.
    assert sorted(t for _, t in gw.consent.log) == ["b-1", "b-2", "seen"]


async def test_a_batch_that_is_not_valid_as_a_whole_is_refused_whole(gw):
    cases = [
        ([], "checks"),
        ([_check("alice", f"t{i}") for i in range(101)], "checks"),
        ([_check("alice", "same"), _check("bob", "same")], "checks[1].transaction_id"),
    ]
    for checks, field in cases:
        err = CallError.from_rpc_error(await _error(gw.stub.BatchCheckCreditThreshold(
            gateway_pb2.BatchCheckCreditThresholdRequest(checks=checks), metadata=gw.partner(), timeout=3)))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in err.violations] == [field]
    assert not gw.consent.log and not gw.consent.batches


async def test_concurrent_lookups_share_downstream_calls(gw):
    for i in range(40):
        gw.consent.scopes[(f"s{i}", "p1", LOAN)] = FULL
        gw.consent.consented.add(f"s{i}")
    replies = await asyncio.gather(*(
        gw.stub.GetCreditScore(_ask(subject=f"s{i}", txn=f"c{i}"), metadata=gw.partner(), timeout=5)
        for i in range(40)))
    assert [r.credit_score.subject_id for r in replies] == [f"s{i}" for i in range(40)]
    assert len(gw.consent.log) == 40
    # Forty lookups, fewer access-log calls: concurrent lookups were batched.
    assert sum(gw.consent.batches) == 40 and len(gw.consent.batches) < 40
