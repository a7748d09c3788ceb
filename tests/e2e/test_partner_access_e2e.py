"""Partners, producers and services through the whole suite, authentication
required: every unauthorized path answers the same bytes, revocation takes effect
on the next lookup, a transaction id is answered once and logged once, the access
log is complete under concurrent lookups, producers send only their own sources,
and the internal RPCs refuse anyone but services."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from creditscore.cli.run import bearer, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, create_channel, to_timestamp, utcnow
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

LOAN = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
TELECOM = common_pb2.ACCESS_PURPOSE_TELECOM_CONTRACT
REVIEW = common_pb2.ACCESS_PURPOSE_ACCOUNT_REVIEW
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE


@pytest.fixture
async def world(inprocess_suite):
    """A small population loaded and featured, the demo partner authorized by all."""
    suite = inprocess_suite.suite
    population, report = await load_population(suite, 12, seed=29, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in population.subjects]
    partner = await register_partner(suite, ids, out=lambda *_: None)
    gateway = create_channel(suite.addr("gateway"))
    consent = await suite.operator_channel("consent_service")
    try:
        yield suite, ids, partner, gateway_pb2_grpc.CreditScoreServiceStub(gateway), \
            consent_pb2_grpc.ConsentServiceStub(consent)
    finally:
        await gateway.close()
        await consent.close()


def _score(subject, txn, purpose=LOAN):
    return gateway_pb2.GetCreditScoreRequest(subject_id=subject, purpose=purpose, transaction_id=txn)


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def _log(consent, subject) -> list[consent_pb2.AccessEntry]:
    entries, token = [], ""
    while True:
        page = await consent.ListAccessLog(consent_pb2.ListAccessLogRequest(
            subject_id=subject, page_size=100, page_token=token), timeout=5)
        entries += page.entries
        token = page.next_page_token
        if not token:
            return entries


async def test_every_unauthorized_path_answers_the_same_bytes(world):
    suite, ids, partner, gateway, consent = world
    me = bearer(partner.token)
    allowed, revoked, expiring, withdrawn = ids[0], ids[1], ids[2], ids[3]
    # Authorized: an answer, as a baseline.
    assert (await gateway.GetCreditScore(_score(allowed, "base"), metadata=me, timeout=5)).credit_score.model_version
    # Expiring in a second: granted for telecom contracts with a short expiry.
    await consent.GrantAuthorization(consent_pb2.GrantAuthorizationRequest(
        request_id="exp-1", subject_id=expiring, partner_id=partner.partner_id, purpose=TELECOM, scope=FULL,
        expire_time=to_timestamp(utcnow() + timedelta(seconds=1))), timeout=5)
    assert (await gateway.GetCreditScore(_score(expiring, "exp-ok", TELECOM), metadata=me, timeout=5)).credit_score
    # Revoked: answered just before, refused on the very next lookup.
    await gateway.GetCreditScore(_score(revoked, "rev-ok"), metadata=me, timeout=5)
    await consent.RevokeAuthorization(consent_pb2.RevokeAuthorizationRequest(
        request_id="rev-1", subject_id=revoked, partner_id=partner.partner_id, purpose=LOAN), timeout=5)
    # Withdrawn: the subject withdrew every consent (and so every use of the data).
    await consent.WithdrawAllConsents(consent_pb2.WithdrawAllConsentsRequest(
        request_id="wd-1", subject_id=withdrawn), timeout=5)
    await asyncio.sleep(1.2)  # the expiring authorization is past its expiry now

    paths = {
        "unknown subject": _score("never-enrolled-42", "t-unknown"),
        "no authorization for the purpose": _score(allowed, "t-none", REVIEW),
        "expired authorization": _score(expiring, "t-expired", TELECOM),
        "revoked authorization": _score(revoked, "t-revoked"),
        "threshold scope asking the full score": _score(allowed, "t-scope", RENTAL),
        "consent withdrawn": _score(withdrawn, "t-withdrawn"),
    }
    errors = {name: await _refused(gateway.GetCreditScore(request, metadata=me, timeout=5))
              for name, request in paths.items()}
    errors["threshold, unknown subject"] = await _refused(gateway.CheckCreditThreshold(
        gateway_pb2.CheckCreditThresholdRequest(subject_id="never-enrolled-42", purpose=RENTAL, threshold=600,
                                                transaction_id="t-thr"), metadata=me, timeout=5))
    wire = {name: (e.code(), e.details(), tuple(e.trailing_metadata())) for name, e in errors.items()}
    assert len(set(wire.values())) == 1, wire
    err = CallError.from_rpc_error(errors["unknown subject"])
    assert (err.code, err.reason, err.metadata) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED", {})
    # Nothing refused was written to the access log.
    assert [e.transaction_id for e in await _log(consent, revoked)] == ["rev-ok"]
    assert [e.transaction_id for e in await _log(consent, expiring)] == ["exp-ok"]
    assert [e.transaction_id for e in await _log(consent, allowed)] == ["base"]


async def test_a_transaction_id_is_answered_and_logged_once_and_the_log_is_complete(world):
    suite, ids, partner, gateway, consent = world
    me = bearer(partner.token)
    subject = ids[4]
    first = await gateway.GetCreditScore(_score(subject, "once"), metadata=me, timeout=5)
    again = await gateway.GetCreditScore(_score(subject, "once"), metadata=me, timeout=5)
    assert again.SerializeToString() == first.SerializeToString()
    # The same id at once from eight callers: one answer, one entry.
    same = await asyncio.gather(*(gateway.GetCreditScore(_score(subject, "burst"), metadata=me, timeout=10)
                                  for _ in range(8)))
    assert len({r.SerializeToString() for r in same}) == 1
    # Twenty lookups at once, each its own transaction: twenty entries.
    answers = await asyncio.gather(*(
        gateway.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
            subject_id=subject, purpose=RENTAL, threshold=600, transaction_id=f"c-{i}"), metadata=me, timeout=10)
        for i in range(20)))
    assert len({a.decision for a in answers}) == 1
    log = await _log(consent, subject)
    assert sorted(e.transaction_id for e in log) == sorted(["once", "burst", *(f"c-{i}" for i in range(20))])
    entry = next(e for e in log if e.transaction_id == "once")
    assert (entry.partner_id, entry.purpose, entry.scope) == (partner.partner_id, LOAN, FULL)
    assert entry.answer.score.score == first.credit_score.score
    # Reused for another question: refused, nothing logged.
    err = CallError.from_rpc_error(await _refused(gateway.CheckCreditThreshold(
        gateway_pb2.CheckCreditThresholdRequest(subject_id=subject, purpose=RENTAL, threshold=600,
                                                transaction_id="once"), metadata=me, timeout=5)))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TRANSACTION_ID_REUSED")
    assert len(await _log(consent, subject)) == len(log)


async def test_a_batch_of_checks_mixes_answers_and_the_one_refusal_each_as_alone(world):
    suite, ids, partner, gateway, consent = world
    me = bearer(partner.token)
    a, b, revoked = ids[5], ids[6], ids[7]
    await consent.RevokeAuthorization(consent_pb2.RevokeAuthorizationRequest(
        request_id="rev-batch", subject_id=revoked, partner_id=partner.partner_id, purpose=RENTAL), timeout=5)

    def check(subject, txn, threshold=600):
        return gateway_pb2.CheckCreditThresholdRequest(
            subject_id=subject, purpose=RENTAL, threshold=threshold, transaction_id=txn)

    alone = await gateway.CheckCreditThreshold(check(a, "alone-a"), metadata=me, timeout=5)
    reply = await gateway.BatchCheckCreditThreshold(gateway_pb2.BatchCheckCreditThresholdRequest(checks=[
        check(a, "b-a"), check("never-enrolled-7", "b-unknown"), check(b, "b-b", 950),
        check(revoked, "b-revoked"), check(a, "alone-a"),
    ]), metadata=me, timeout=10)
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["response", "error", "response", "error", "response"]
    assert reply.results[0].response.decision == alone.decision
    assert reply.results[2].response.decision in (
        common_pb2.THRESHOLD_DECISION_BELOW, common_pb2.THRESHOLD_DECISION_INSUFFICIENT_DATA)
    # The replayed check is the first answer, byte for byte.
    assert reply.results[4].response.SerializeToString(deterministic=True) == alone.SerializeToString(
        deterministic=True)
    # Unknown and revoked: the same refusal as a single call gets.
    single = CallError.from_rpc_error(await _refused(gateway.CheckCreditThreshold(
        check("never-enrolled-7", "single"), metadata=me, timeout=5)))
    for error in (reply.results[1].error, reply.results[3].error):
        assert (error.code, error.reason, error.message, dict(error.metadata)) == (
            single.code.value[0], "NOT_AUTHORIZED", single.message, {})
    # Logged: exactly the answered checks.
    assert sorted(e.transaction_id for e in await _log(consent, a)) == ["alone-a", "b-a"]
    assert [e.transaction_id for e in await _log(consent, b)] == ["b-b"]
    assert [e.transaction_id for e in await _log(consent, revoked)] == []


async def test_a_withdrawn_source_never_reaches_the_answer_even_before_its_purge(world):
    """The subject withdraws one source's consent; the very next lookup's score is
    the score of the vector without that source, whether or not the purge of
    its features has run yet (the consent service names the sources still
    granted, and the gateway scores again without the others)."""
    suite, ids, partner, gateway, consent = world
    me = bearer(partner.token)
    subject = ids[8]
    await consent.WithdrawConsent(consent_pb2.WithdrawConsentRequest(
        request_id="wd-pay", subject_id=subject, source=common_pb2.DATA_SOURCE_PAYMENTS,
        purpose=common_pb2.PURPOSE_CREDIT_SCORING), timeout=5)
    answered = await gateway.GetCreditScore(_score(subject, "after-withdrawal"), metadata=me, timeout=10)
    features_ch = await suite.operator_channel("feature_service")
    scoring_ch = await suite.operator_channel("scoring_service")
    try:
        vector = (await feature_pb2_grpc.FeatureServiceStub(features_ch).GetFeatureVector(
            feature_pb2.GetFeatureVectorRequest(subject_id=subject), timeout=5)).feature_vector.features
        from creditscore.features.catalog import by_name
        without = [f if by_name(f.name).source != common_pb2.DATA_SOURCE_PAYMENTS
                   else common_pb2.FeatureValue(name=f.name) for f in vector]
        expected = (await scoring_pb2_grpc.ScoringServiceStub(scoring_ch).ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(subject_id=subject, features=without), timeout=5)).score
    finally:
        await features_ch.close()
        await scoring_ch.close()
    assert (answered.credit_score.state, answered.credit_score.score) == (expected.state, expected.score)
    (entry,) = await _log(consent, subject)
    assert entry.answer.score.score == answered.credit_score.score


async def test_producers_send_only_their_own_sources(world):
    suite, ids, *_ = world
    wallet = bearer(suite.producer_token("wallet"))
    async with create_channel(suite.addr("ingest_service")) as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        bill = records_pb2.Record(
            record_id="w-1", subject_id=ids[0], event_time=to_timestamp(utcnow() - timedelta(days=1)),
            bill=records_pb2.Bill(
                category=records_pb2.BILL_CATEGORY_UTILITY,
                amount_due=records_pb2.Money(currency_code="USD", minor_units=1000),
                issue_time=to_timestamp(utcnow() - timedelta(days=20)),
                due_time=to_timestamp(utcnow() - timedelta(days=2))))
        rating = records_pb2.Record(
            record_id="w-2", subject_id=ids[0], event_time=to_timestamp(utcnow() - timedelta(days=1)),
            rating=records_pb2.Rating(rated_role=records_pb2.PARTY_ROLE_SELLER, stars=1))
        # Under another producer's id: the whole batch refused, nothing stored.
        err = CallError.from_rpc_error(await _refused(ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="p-1", producer_id="marketplace", records=[bill]), metadata=wallet, timeout=5)))
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PRODUCER_MISMATCH")
        # Its own id: the bill goes in, the rating (commerce) is not the wallet's to send.
        reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="p-2", producer_id="wallet", records=[bill, rating]), metadata=wallet, timeout=5)
        assert [(r.status, r.reason) for r in reply.results] == [
            (ingest_pb2.RECORD_STATUS_ACCEPTED, ""), (ingest_pb2.RECORD_STATUS_REJECTED, "SOURCE_NOT_ALLOWED")]


async def test_internal_rpcs_refuse_everyone_but_services(world):
    suite, ids, partner, *_ = world
    as_partner = bearer(partner.token)
    as_producer = bearer(suite.producer_token("wallet"))
    channels = {p: create_channel(suite.addr(p)) for p in
                ("consent_service", "ingest_service", "feature_service", "scoring_service", "gateway")}
    try:
        consent = consent_pb2_grpc.ConsentServiceStub(channels["consent_service"])
        ingest = ingest_pb2_grpc.IngestServiceStub(channels["ingest_service"])
        feature = feature_pb2_grpc.FeatureServiceStub(channels["feature_service"])
        scoring = scoring_pb2_grpc.ScoringServiceStub(channels["scoring_service"])
        gateway = gateway_pb2_grpc.CreditScoreServiceStub(channels["gateway"])
        purge = {"request_id": "evil-purge", "subject_id": ids[0]}
        internal = {
            "consent CheckAuthorization": lambda md: consent.CheckAuthorization(consent_pb2.CheckAuthorizationRequest(
                subject_id=ids[0], partner_id=partner.partner_id, purpose=LOAN), metadata=md, timeout=5),
            "consent RecordAccess": lambda md: consent.RecordAccess(consent_pb2.RecordAccessRequest(
                subject_id=ids[0], partner_id=partner.partner_id, purpose=LOAN, transaction_id="x"),
                metadata=md, timeout=5),
            "consent CheckConsents": lambda md: consent.CheckConsents(consent_pb2.CheckConsentsRequest(
                purpose=common_pb2.PURPOSE_CREDIT_SCORING,
                checks=[consent_pb2.ConsentCheck(subject_id=ids[0], source=common_pb2.DATA_SOURCE_PAYMENTS)]),
                metadata=md, timeout=5),
            "consent ListAccessLog": lambda md: consent.ListAccessLog(
                consent_pb2.ListAccessLogRequest(subject_id=ids[0]), metadata=md, timeout=5),
            "ingest PurgeSubject": lambda md: ingest.PurgeSubject(
                ingest_pb2.PurgeSubjectRequest(**purge), metadata=md, timeout=5),
            "ingest ListRecords": lambda md: ingest.ListRecords(
                ingest_pb2.ListRecordsRequest(subject_id=ids[0]), metadata=md, timeout=5),
            "feature ApplyRecords": lambda md: feature.ApplyRecords(
                feature_pb2.ApplyRecordsRequest(request_id="evil"), metadata=md, timeout=5),
            "feature GetFeatureVector": lambda md: feature.GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=ids[0]), metadata=md, timeout=5),
            "feature PurgeSubject": lambda md: feature.PurgeSubject(
                feature_pb2.PurgeSubjectRequest(**purge), metadata=md, timeout=5),
            "scoring ScoreFeatures": lambda md: scoring.ScoreFeatures(
                scoring_pb2.ScoreFeaturesRequest(subject_id=ids[0]), metadata=md, timeout=5),
            "scoring ActivateModel": lambda md: scoring.ActivateModel(
                scoring_pb2.ActivateModelRequest(request_id="evil", version="1.0.0"), metadata=md, timeout=5),
            "scoring PurgeSubject": lambda md: scoring.PurgeSubject(
                scoring_pb2.PurgeSubjectRequest(**purge), metadata=md, timeout=5),
        }
        for name, call in internal.items():
            for who, metadata in (("partner", as_partner), ("producer", as_producer), ("nobody", ())):
                err = CallError.from_rpc_error(await _refused(call(metadata)))
                assert err.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (name, who)
                assert err.reason in ("TOKEN_WRONG_AUDIENCE", "METHOD_NOT_ALLOWED", "TOKEN_MISSING"), (name, who)
        # A service's token is not a partner's: the gateway refuses it too.
        err = CallError.from_rpc_error(await _refused(gateway.GetCreditScore(
            _score(ids[0], "svc"), metadata=bearer(await suite.operator_token()), timeout=5)))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")
        # And a producer may not ingest with a partner's token.
        err = CallError.from_rpc_error(await _refused(ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="r", producer_id="wallet"), metadata=as_partner, timeout=5)))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")
    finally:
        for channel in channels.values():
            await channel.close()


async def test_the_lookup_and_token_commands(world, capsys):
    from creditscore.cli import main

    suite, ids, partner, *_ = world
    gateway = suite.addr("gateway")
    assert await asyncio.to_thread(main, ["lookup", ids[5], "--gateway", gateway, "--token", partner.token]) == 0
    out = capsys.readouterr().out
    assert " score " in out or "INSUFFICIENT_DATA" in out, out
    assert await asyncio.to_thread(main, ["lookup", ids[5], "--gateway", gateway, "--token", partner.token,
                                          "--purpose", "rental", "--threshold", "600"]) == 0
    assert "threshold 600: " in capsys.readouterr().out
    # Rentals are authorized as a threshold only: the full score is refused.
    assert await asyncio.to_thread(main, ["lookup", ids[5], "--gateway", gateway, "--token", partner.token,
                                          "--purpose", "RENTAL"]) == 1
    assert "PERMISSION_DENIED [NOT_AUTHORIZED]" in capsys.readouterr().out
    # creditscore token: the operator's credentials for a service token; wrong ones refused.
    secret = suite.auth.secrets["operator"]
    consent = suite.addr("consent_service")
    assert await asyncio.to_thread(main, ["token", "--client-id", "operator", "--client-secret", secret,
                                          "--consent", consent]) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    assert await asyncio.to_thread(main, ["token", "--client-id", "operator", "--client-secret", "nope",
                                          "--consent", consent]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
