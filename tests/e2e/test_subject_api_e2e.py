"""The subject's own API through the real gateway, the whole suite running
(authentication required): tokens at the edge (TokenService relays the consent
service's IssueToken for subjects, partners and producers, never for services),
each kind of token held to its own API, and every SubjectService call — the
score and its history, the access log, consents, authorizations, export,
receipts, a new secret, closing the account — about the token's subject only."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from creditscore.cli.run import Partner, bearer, load_population, register_partner, subject_view, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc, subject_pb2, subject_pb2_grpc
from creditscore.runtime import CallError, create_channel
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
TELECOM = common_pb2.ACCESS_PURPOSE_TELECOM_CONTRACT
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
MODELLING = common_pb2.PURPOSE_MODEL_DEVELOPMENT
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE


@dataclass
class World:
    suite: Any
    ids: list[str]  # subjects with records from the most sources first
    secrets: dict[str, str]  # as their enrollment showed them
    partner: Partner
    subject: subject_pb2_grpc.SubjectServiceStub
    tokens: subject_pb2_grpc.TokenServiceStub
    lookups: gateway_pb2_grpc.CreditScoreServiceStub
    consent: consent_pb2_grpc.ConsentServiceStub  # the operator's

    async def token(self, subject_id: str, secret: str | None = None) -> tuple[tuple[str, str], ...]:
        issued = await self.tokens.IssueToken(subject_pb2.IssueTokenRequest(
            client_id=subject_id, client_secret=secret or self.secrets[subject_id]), timeout=10)
        assert (issued.kind, issued.audience) == ("subject", "gateway")
        return bearer(issued.token)

    async def lookup(self, subject_id: str, txn: str, purpose: int = CREDIT) -> gateway_pb2.GetCreditScoreResponse:
        return await self.lookups.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=subject_id, purpose=purpose, transaction_id=txn),
            metadata=bearer(self.partner.token), timeout=10)


@pytest.fixture
async def world(inprocess_suite):
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 8, seed=29, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in sorted(population.subjects, key=lambda s: -len(s.sources))]
    assert set(report.subject_secrets) == set(ids)  # every enrollment showed its secret
    partner = await register_partner(suite, ids, out=lambda *_: None)
    gateway = create_channel(suite.addr("gateway"))
    consent = await suite.operator_channel("consent_service")
    try:
        yield World(suite, ids, dict(report.subject_secrets), partner,
                    subject_pb2_grpc.SubjectServiceStub(gateway), subject_pb2_grpc.TokenServiceStub(gateway),
                    gateway_pb2_grpc.CreditScoreServiceStub(gateway), consent_pb2_grpc.ConsentServiceStub(consent))
    finally:
        await gateway.close()
        await consent.close()


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def error(exc: grpc.aio.AioRpcError) -> CallError:
    return CallError.from_rpc_error(exc)


async def pages(call, request_type, field: str, page_size: int, **kw) -> tuple[list, int]:
    """Every item of a paginated call, and how many pages it took."""
    items, token, count = [], "", 0
    while True:
        reply = await call(request_type(page_size=page_size, page_token=token), timeout=10, **kw)
        items += getattr(reply, field)
        count += 1
        token = reply.next_page_token
        if not token:
            return items, count


# --- tokens at the edge, and which token opens which API --------------------------------


async def test_tokens_at_the_edge_and_each_kind_held_to_its_own_api(world: World) -> None:
    alice = world.ids[0]
    me = await world.token(alice)
    # A partner and a producer registered by the operator get their tokens through the relay too.
    registered = await world.consent.RegisterPartner(consent_pb2.RegisterPartnerRequest(
        request_id="edge-partner", partner_id="edge-lender", display_name="Edge Lender"), timeout=10)
    partner = await world.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id="edge-lender", client_secret=registered.credentials.client_secret), timeout=10)
    assert (partner.kind, partner.audience) == ("partner", "gateway") and partner.HasField("expire_time")
    producer = await world.consent.RegisterProducer(consent_pb2.RegisterProducerRequest(
        request_id="edge-producer", producer_id="edge-shop", display_name="Edge Shop", sources=[COMMERCE]),
        timeout=10)
    issued = await world.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id="edge-shop", client_secret=producer.credentials.client_secret), timeout=10)
    assert (issued.kind, issued.audience) == ("producer", "ingest")

    # Every wrong credential, and a service's right one, get the same bytes.
    closing = world.ids[-1]
    closing_token = await world.token(closing)
    await world.subject.CloseAccount(subject_pb2.CloseAccountRequest(request_id="close"),
                                     metadata=closing_token, timeout=10)
    cases = {
        "wrong subject secret": (alice, world.secrets[alice] + "x"),
        "another subject's secret": (alice, world.secrets[world.ids[1]]),
        "unknown subject": ("never-enrolled", world.secrets[alice]),
        "closed account": (closing, world.secrets[closing]),
        "wrong partner secret": ("edge-lender", registered.credentials.client_secret + "x"),
        "unknown client": ("nobody", "secret"),
        "a service's own credentials": ("operator", world.suite.auth.secrets["operator"]),
        "the gateway's own credentials": ("gateway", world.suite.auth.secrets["gateway"]),
    }
    errors = {name: await refused(world.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id=client_id, client_secret=secret), timeout=10)) for name, (client_id, secret) in cases.items()}
    wire = {name: (e.code(), e.details(), tuple(e.trailing_metadata())) for name, e in errors.items()}
    assert len(set(wire.values())) == 1, wire
    err = error(errors["a service's own credentials"])
    assert (err.code, err.reason, err.message, err.domain, err.metadata) == (
        grpc.StatusCode.UNAUTHENTICATED, "INVALID_CLIENT", "the client credentials are not valid",
        "gateway.creditscore", {})
    missing = error(await refused(world.tokens.IssueToken(subject_pb2.IssueTokenRequest(), timeout=10)))
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in missing.violations] == ["client_id", "client_secret"]

    # Partners' tokens do not open the subject's API, nor subjects' the partners'.
    as_partner = error(await refused(world.subject.GetMyScore(
        subject_pb2.GetMyScoreRequest(), metadata=bearer(world.partner.token), timeout=10)))
    assert (as_partner.code, as_partner.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
    as_subject = error(await refused(world.lookups.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
        subject_id=alice, purpose=CREDIT, transaction_id="as-subject"), metadata=me, timeout=10)))
    assert (as_subject.code, as_subject.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
    as_subject = error(await refused(world.lookups.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
        subject_id=alice, purpose=RENTAL, threshold=600, transaction_id="as-subject-2"), metadata=me, timeout=10)))
    assert (as_subject.code, as_subject.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
    as_producer = error(await refused(world.subject.ListMyConsents(
        subject_pb2.ListMyConsentsRequest(), metadata=bearer(issued.token), timeout=10)))
    assert (as_producer.code, as_producer.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")
    nobody = error(await refused(world.subject.ListMyConsents(subject_pb2.ListMyConsentsRequest(), timeout=10)))
    assert (nobody.code, nobody.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")

    # A new secret: shown once, the old one retired at once, and with it every
    # token issued before (the one that asked included); a retry shows nothing.
    rotated = await world.subject.RotateMySecret(subject_pb2.RotateMySecretRequest(request_id="rot-1"),
                                                 metadata=me, timeout=10)
    assert rotated.subject_secret.startswith("sbj.") and rotated.subject_secret != world.secrets[alice]
    old = error(await refused(world.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id=alice, client_secret=world.secrets[alice]), timeout=10)))
    assert old.reason == "INVALID_CLIENT"
    stale = error(await refused(world.subject.ListMyConsents(subject_pb2.ListMyConsentsRequest(),
                                                           metadata=me, timeout=10)))
    assert (stale.code, stale.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    fresh = await world.token(alice, rotated.subject_secret)
    again = await world.subject.RotateMySecret(subject_pb2.RotateMySecretRequest(request_id="rot-1"),
                                               metadata=fresh, timeout=10)
    assert again.subject_secret == ""
    await world.token(alice, rotated.subject_secret)


# --- the score, its history, the access log ------------------------------------------------


async def test_the_score_its_history_and_the_access_log_page_by_page(world: World) -> None:
    alice, bob = world.ids[0], world.ids[1]
    me = await world.token(alice)
    # The subject's own look: everything a partner never gets, and no access-log entry.
    mine = (await world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=me, timeout=10)).credit_score
    assert mine.subject_id == alice and mine.state == common_pb2.SCORE_STATE_SCORED
    assert 350 <= mine.score <= 950 and mine.band and mine.reasons and mine.model_version
    assert 0 < mine.probability_of_bad < 1 and 0 < mine.coverage <= 1 and mine.HasField("score_time")
    log, _ = await pages(world.subject.ListMyAccessLog, subject_pb2.ListMyAccessLogRequest, "entries", 10,
                         metadata=me)
    assert log == []
    # A partner's lookup scores the same vector the same way (the same consented sources).
    seen = (await world.lookup(alice, "p-1")).credit_score
    assert (seen.score, seen.band, list(seen.reasons)) == (mine.score, mine.band, list(mine.reasons))
    assert seen.probability_of_bad == 0 and not seen.improvements  # never given to partners

    # The history holds the score each time it changed: here the model behind it
    # changes twice, and the last score is shadowed by a challenger, whose score
    # the subject never sees.
    async with await world.suite.operator_channel("scoring_service") as channel:
        scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
        models = (await scoring.ListModels(scoring_pb2.ListModelsRequest(), timeout=10)).models
        champion_version = next(m.version for m in models if m.active)
        other = next(m.version for m in models if not m.active)
        await scoring.ActivateModel(scoring_pb2.ActivateModelRequest(request_id="act-1", version=other), timeout=10)
        await world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=me, timeout=10)
        await scoring.ActivateModel(scoring_pb2.ActivateModelRequest(request_id="act-2", version=champion_version),
                                    timeout=10)
        await scoring.SetChallenger(scoring_pb2.SetChallengerRequest(request_id="ch-1", version=other), timeout=10)
        latest = (await world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=me,
                                                 timeout=10)).credit_score
        for i in range(2):
            await world.lookup(alice, f"p-{i + 2}")  # the same score: nothing new in the history
        stored = (await scoring.ListScores(scoring_pb2.ListScoresRequest(subject_id=alice, page_size=100),
                                           timeout=10)).scores
    champion = [s.score for s in stored if s.role != scoring_pb2.MODEL_ROLE_CHALLENGER]
    # Newest first: the champion again, the other model, the score the subject saw
    # first; before that, the scores as the subject's records were applied (the
    # feature service has each change scored), one per change.
    assert [s.model_version for s in champion[:3]] == [champion_version, other, champion_version]
    assert all(s.model_version == champion_version for s in champion[2:])
    assert (champion[2].score, champion[2].score_time) == (mine.score, mine.score_time)
    assert [s.score.model_version for s in stored if s.role == scoring_pb2.MODEL_ROLE_CHALLENGER] == [other]

    history, count = await pages(world.subject.ListMyScoreHistory, subject_pb2.ListMyScoreHistoryRequest,
                                 "scores", 2, metadata=me)
    assert count >= 2
    # Newest first, the champion's only (the challenger's shadow of the latest is left out).
    assert [(s.score_time, s.model_version, s.score) for s in history] == [
        (s.score_time, s.model_version, s.score) for s in champion]
    assert (history[0].score_time, history[0].score) == (latest.score_time, latest.score)
    assert history[2].score == mine.score and history[2].score_time == mine.score_time
    assert all(s.subject_id == alice for s in history) and history[0].reasons

    # Who looked alice up: the partner's three lookups, newest first, two pages.
    log, count = await pages(world.subject.ListMyAccessLog, subject_pb2.ListMyAccessLogRequest, "entries", 2,
                             metadata=me)
    assert count == 2
    assert [e.transaction_id for e in log] == ["p-3", "p-2", "p-1"]
    assert {(e.partner_id, e.purpose, e.subject_id) for e in log} == {(world.partner.partner_id, CREDIT, alice)}
    assert all(e.answer.WhichOneof("answer") == "score" and not e.response for e in log)

    # Another subject sees only their own, and cannot use alice's page tokens.
    them = await world.token(bob)
    assert (await world.subject.ListMyAccessLog(subject_pb2.ListMyAccessLogRequest(), metadata=them,
                                                timeout=10)).entries == []
    first = await world.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(page_size=2),
                                                   metadata=me, timeout=10)
    stolen = error(await refused(world.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(
        page_token=first.next_page_token), metadata=them, timeout=10)))
    assert (stolen.code, stolen.reason, stolen.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", "gateway.creditscore")
    assert [v.field for v in stolen.violations] == ["page_token"]
    negative = error(await refused(world.subject.ListMyScoreHistory(
        subject_pb2.ListMyScoreHistoryRequest(page_size=-1), metadata=me, timeout=10)))
    assert negative.code == grpc.StatusCode.INVALID_ARGUMENT

    # The demo's view of a subject runs on the same calls.
    seen_by_demo = await subject_view(world.suite.addr("gateway"), bob, world.secrets[bob], out=lambda *_: None)
    assert seen_by_demo.credit_score.subject_id == bob


# --- consents, authorizations, export, receipts, the account ---------------------------------


async def test_consents_authorizations_export_receipts_and_closing(world: World) -> None:
    alice, bob, carol = world.ids[0], world.ids[1], world.ids[2]
    me, them = await world.token(alice), await world.token(bob)

    consents, count = await pages(world.subject.ListMyConsents, subject_pb2.ListMyConsentsRequest, "consents", 4,
                                  metadata=me)
    assert count >= 2 and {c.subject_id for c in consents} == {alice}
    assert (PAYMENTS, MODELLING, consent_pb2.CONSENT_STATE_GRANTED) in {(c.source, c.purpose, c.state)
                                                                        for c in consents}

    # Withdrawing model development for a scored source purges nothing; granting it again.
    withdrawn = await world.subject.WithdrawConsent(subject_pb2.WithdrawConsentRequest(
        request_id="w-1", source=PAYMENTS, purpose=MODELLING), metadata=me, timeout=10)
    assert withdrawn.consent.state == consent_pb2.CONSENT_STATE_WITHDRAWN and not withdrawn.receipt_id
    grant = subject_pb2.GrantConsentRequest(request_id="g-1", source=PAYMENTS, purpose=MODELLING)
    granted = await world.subject.GrantConsent(grant, metadata=me, timeout=10)
    assert (granted.consent.subject_id, granted.consent.state) == (alice, consent_pb2.CONSENT_STATE_GRANTED)
    assert await world.subject.GrantConsent(grant, metadata=me, timeout=10) == granted  # a retry
    reused = error(await refused(world.subject.GrantConsent(subject_pb2.GrantConsentRequest(
        request_id="g-1", source=COMMERCE, purpose=MODELLING), metadata=me, timeout=10)))
    assert (reused.code, reused.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    # Request ids are each subject's own: bob's "w-1" is his.
    theirs = await world.subject.WithdrawConsent(subject_pb2.WithdrawConsentRequest(
        request_id="w-1", source=PAYMENTS, purpose=MODELLING), metadata=them, timeout=10)
    assert theirs.consent.subject_id == bob
    bad = error(await refused(world.subject.GrantConsent(subject_pb2.GrantConsentRequest(
        source=PAYMENTS), metadata=me, timeout=10)))
    assert (bad.code, [v.field for v in bad.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, ["request_id"])
    bad = error(await refused(world.subject.GrantConsent(subject_pb2.GrantConsentRequest(
        request_id="g-2", source=PAYMENTS), metadata=me, timeout=10)))
    assert [v.field for v in bad.violations] == ["purpose"] and bad.domain == "gateway.creditscore"

    # Withdrawing the consent a source is collected under purges it: a receipt, alice's only.
    purged = await world.subject.WithdrawConsent(subject_pb2.WithdrawConsentRequest(
        request_id="w-2", source=COMMERCE, purpose=SCORING), metadata=me, timeout=10)
    assert purged.receipt_id
    receipt = (await world.subject.GetDeletionReceipt(subject_pb2.GetDeletionReceiptRequest(
        receipt_id=purged.receipt_id), metadata=me, timeout=10)).receipt
    assert (receipt.subject_id, receipt.source) == (alice, COMMERCE)
    not_theirs = error(await refused(world.subject.GetDeletionReceipt(subject_pb2.GetDeletionReceiptRequest(
        receipt_id=purged.receipt_id), metadata=them, timeout=10)))
    assert (not_theirs.code, not_theirs.reason) == (grpc.StatusCode.NOT_FOUND, "RECEIPT_NOT_FOUND")

    # Authorizations: the demo partner's two, then one more granted and revoked.
    grants, _ = await pages(world.subject.ListMyAuthorizations, subject_pb2.ListMyAuthorizationsRequest,
                            "authorizations", 1, metadata=them)
    assert {(a.partner_id, a.purpose, a.scope) for a in grants} == {
        (world.partner.partner_id, CREDIT, FULL), (world.partner.partner_id, RENTAL,
                                                   common_pb2.AUTHORIZATION_SCOPE_THRESHOLD)}
    before = error(await refused(world.lookup(bob, "tel-0", TELECOM)))
    assert before.reason == "NOT_AUTHORIZED"
    authorized = await world.subject.GrantAuthorization(subject_pb2.GrantAuthorizationRequest(
        request_id="a-1", partner_id=world.partner.partner_id, purpose=TELECOM, scope=FULL),
        metadata=them, timeout=10)
    assert authorized.authorization.state == consent_pb2.AUTHORIZATION_STATE_LIVE
    assert authorized.authorization.subject_id == bob
    assert (await world.lookup(bob, "tel-1", TELECOM)).credit_score.subject_id == bob
    revoked = await world.subject.RevokeAuthorization(subject_pb2.RevokeAuthorizationRequest(
        request_id="r-1", partner_id=world.partner.partner_id, purpose=TELECOM), metadata=them, timeout=10)
    assert revoked.authorization.state == consent_pb2.AUTHORIZATION_STATE_REVOKED
    after = await refused(world.lookup(bob, "tel-2", TELECOM))
    assert (after.code(), error(after).reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")
    unknown = error(await refused(world.subject.GrantAuthorization(subject_pb2.GrantAuthorizationRequest(
        request_id="a-2", partner_id="no-such-partner", purpose=TELECOM), metadata=them, timeout=10)))
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "PARTNER_NOT_FOUND")

    # The export: every part, bob's own, never a secret.
    exported = await world.subject.ExportMyData(subject_pb2.ExportMyDataRequest(), metadata=them, timeout=30)
    document = json.loads(exported.document)
    assert document["subject"]["subject_id"] == bob and exported.HasField("export_time")
    assert {"consents", "authorizations", "access_log", "records", "features", "scores"} <= set(document)
    assert [e["transaction_id"] for e in document["access_log"]] == ["tel-1"]
    assert world.secrets[bob] not in exported.document and "scrypt$" not in exported.document

    # Withdrawing everything: nothing left to score, and the subject can still sign in.
    wd = await world.subject.WithdrawAllConsents(subject_pb2.WithdrawAllConsentsRequest(request_id="all"),
                                                 metadata=them, timeout=10)
    assert wd.receipt.scope == consent_pb2.DELETION_SCOPE_ALL_DATA and wd.receipt.subject_id == bob
    unscored = error(await refused(world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=them,
                                                            timeout=10)))
    assert (unscored.code, unscored.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUIRED")
    await world.token(bob)

    # Closing the account: no new token, and the one held ends with it (at once
    # wherever the consent service is asked; everywhere within the revocation
    # bound). The receipt in the reply is the subject's to keep; the purge runs on.
    held = await world.token(carol)
    closed = await world.subject.CloseAccount(subject_pb2.CloseAccountRequest(request_id="close"),
                                              metadata=held, timeout=10)
    assert closed.receipt.scope == consent_pb2.DELETION_SCOPE_ACCOUNT
    gone = error(await refused(world.tokens.IssueToken(subject_pb2.IssueTokenRequest(
        client_id=carol, client_secret=world.secrets[carol]), timeout=10)))
    assert gone.reason == "INVALID_CLIENT"
    for call in (
        world.subject.GetDeletionReceipt(subject_pb2.GetDeletionReceiptRequest(
            receipt_id=closed.receipt.receipt_id), metadata=held, timeout=10),
        world.subject.ListMyConsents(subject_pb2.ListMyConsentsRequest(), metadata=held, timeout=10),
        world.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(), metadata=held, timeout=10),
        world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=held, timeout=10),
    ):
        ended = error(await refused(call))
        assert (ended.code, ended.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    deadline = time.monotonic() + 30
    while True:
        followed = (await world.consent.GetDeletionReceipt(consent_pb2.GetDeletionReceiptRequest(
            receipt_id=closed.receipt.receipt_id, subject_id=carol), timeout=10)).receipt
        if followed.complete or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert followed.complete
