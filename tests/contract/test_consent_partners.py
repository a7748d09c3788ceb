"""The consent service as the backbone of who may do what, on a real in-process
server (authentication required) over SQLite and PostgreSQL: registering partners
and producers, their tokens, service identities, partner authorizations, the
access log and its transaction ids. Each refusal is checked as it crosses the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest

from consent_service.config import Settings
from consent_service.server import ConsentApp, build_consent
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2 as pb
from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    AUDIENCE_INGEST,
    AUDIENCE_INTERNAL,
    KIND_SERVICE,
    CallError,
    ServerSettings,
    TokenSource,
    TokenVerifier,
    create_channel,
    from_timestamp,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
GATEWAY_SECRET = "gateway-secret-from-a-file"


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


class NothingHeld:
    async def purge(self, request_id: str, subject_id: str, source: int, timeout: float) -> list:
        return []

    async def export(self, subject_id: str, timeout: float) -> list:
        return []


NOTHING = {name: NothingHeld() for name in ("ingest_service", "feature_service", "scoring_service")}


@dataclass
class Served:
    app: ConsentApp
    address: str
    stub: consent_pb2_grpc.ConsentServiceStub  # calls as the gateway (a service token)
    bare: consent_pb2_grpc.ConsentServiceStub  # calls without any token
    clock: Clock
    public_key: bytes
    database_url: str


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    credentials = tmp_path / "service-credentials"
    credentials.write_text(f"# internal callers\n\ngateway {GATEWAY_SECRET}\n")
    clock = Clock()
    app = await build_consent(
        Settings(
            server=ServerSettings(host="127.0.0.1", port=0),
            database_url=database_url,
            signing_key_file=str(tmp_path / "keys" / "signing.pem"),
            service_credentials_file=str(credentials),
            purge_worker=False,
        ),
        clock=clock,
        purgers_override=NOTHING,
        held_override=NOTHING,
    )
    await app.handle.start()
    address = f"127.0.0.1:{app.handle.port}"
    service = TokenSource.static(app.issuer.issue(KIND_SERVICE, "gateway").token)
    channel = create_channel(address, tokens=service)
    bare = create_channel(address)
    public = (tmp_path / "keys" / "signing.pub.pem").read_bytes()
    try:
        yield Served(app, address, consent_pb2_grpc.ConsentServiceStub(channel),
                     consent_pb2_grpc.ConsentServiceStub(bare), clock, public, database_url)
    finally:
        await channel.close()
        await bare.close()
        await app.handle.stop(0)


async def fails(call: Awaitable[Any]) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def enroll(s: Served, subject_id: str) -> None:
    await s.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id=f"e-{subject_id}", subject_id=subject_id), timeout=5)


async def partner(s: Served, partner_id: str, name: str = "Acme Lending") -> pb.RegisterPartnerResponse:
    return await s.stub.RegisterPartner(
        pb.RegisterPartnerRequest(request_id=f"p-{partner_id}", partner_id=partner_id, display_name=name), timeout=5
    )


async def authorize(s: Served, subject_id: str, partner_id: str, purpose: int = CREDIT, scope: int = 0,
                    expire_time: datetime | None = None, request_id: str | None = None) -> pb.Authorization:
    reply = await s.stub.GrantAuthorization(
        pb.GrantAuthorizationRequest(
            request_id=request_id or f"a-{subject_id}-{partner_id}-{purpose}-{scope}-{expire_time}",
            subject_id=subject_id, partner_id=partner_id, purpose=purpose, scope=scope, expire_time=expire_time,
        ),
        timeout=5,
    )
    return reply.authorization


async def check(s: Served, subject_id: str, partner_id: str, purpose: int = CREDIT) -> pb.CheckAuthorizationResponse:
    return await s.stub.CheckAuthorization(
        pb.CheckAuthorizationRequest(subject_id=subject_id, partner_id=partner_id, purpose=purpose), timeout=5
    )


def threshold_answer(decision: int = common_pb2.THRESHOLD_DECISION_MEETS) -> pb.AccessAnswer:
    return pb.AccessAnswer(threshold=pb.ThresholdAnswer(threshold=620, decision=decision))


def score_answer() -> pb.AccessAnswer:
    return pb.AccessAnswer(score=pb.ScoreAnswer(
        state=common_pb2.SCORE_STATE_SCORED, score=702, band=common_pb2.SCORE_BAND_EXCELLENT,
        reason_codes=["PAY_ONTIME_RATIO_12M"], model_version="2.0.0"))


async def record(s: Served, subject_id: str, partner_id: str, transaction_id: str, *, purpose: int = CREDIT,
                 answer: pb.AccessAnswer | None = None, response: bytes = b"answer") -> pb.RecordAccessResponse:
    return await s.stub.RecordAccess(
        pb.RecordAccessRequest(subject_id=subject_id, partner_id=partner_id, purpose=purpose,
                               transaction_id=transaction_id, answer=answer or threshold_answer(),
                               response=response),
        timeout=10,
    )


async def access_log(s: Served, subject_id: str, page_size: int = 0) -> list[pb.AccessEntry]:
    entries: list[pb.AccessEntry] = []
    token = ""
    while True:
        reply = await s.stub.ListAccessLog(
            pb.ListAccessLogRequest(subject_id=subject_id, page_size=page_size, page_token=token), timeout=10
        )
        entries += reply.entries
        token = reply.next_page_token
        if not token:
            return entries


# --- registry and tokens ---------------------------------------------------------------


async def test_a_registered_producer_gets_a_token_for_ingest_naming_its_sources(served: Served) -> None:
    reply = await served.stub.RegisterProducer(
        pb.RegisterProducerRequest(request_id="r-1", producer_id="wallet", display_name="The Wallet",
                                   sources=[PAYMENTS, COMMERCE]), timeout=5)
    assert reply.producer.producer_id == "wallet" and list(reply.producer.sources) == [COMMERCE, PAYMENTS]
    assert reply.credentials.client_id == "wallet" and len(reply.credentials.client_secret) >= 40

    # IssueToken needs no token of its own.
    issued = await served.bare.IssueToken(pb.IssueTokenRequest(
        client_id="wallet", client_secret=reply.credentials.client_secret), timeout=10)
    assert (issued.audience, issued.kind) == (AUDIENCE_INGEST, "producer")
    principal = TokenVerifier(served.public_key, AUDIENCE_INGEST).verify(issued.token)
    assert (principal.kind, principal.id) == ("producer", "wallet")
    assert principal.sources == {"DATA_SOURCE_COMMERCE", "DATA_SOURCE_PAYMENTS"}
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["iss"] == "creditscore-consent" and claims["exp"] - claims["iat"] == 900
    assert abs(from_timestamp(issued, "expire_time").timestamp() - claims["exp"]) < 1

    # The secret is shown once: a retry of the registration does not show it again.
    again = await served.stub.RegisterProducer(
        pb.RegisterProducerRequest(request_id="r-1", producer_id="wallet", display_name="The Wallet",
                                   sources=[PAYMENTS, COMMERCE]), timeout=5)
    assert again.credentials.client_id == "wallet" and not again.credentials.client_secret
    taken = await fails(served.stub.RegisterProducer(
        pb.RegisterProducerRequest(request_id="r-2", producer_id="wallet", display_name="x", sources=[PAYMENTS]),
        timeout=5))
    assert (taken.code, taken.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CLIENT_EXISTS")


async def test_a_partner_gets_a_token_for_the_gateway_only(served: Served) -> None:
    reply = await served.stub.RegisterPartner(
        pb.RegisterPartnerRequest(request_id="r-1", display_name="Rent-a-Flat"), timeout=5)
    partner_id = reply.partner.partner_id
    assert partner_id.startswith("ptn_") and reply.credentials.client_id == partner_id
    issued = await served.bare.IssueToken(pb.IssueTokenRequest(
        client_id=partner_id, client_secret=reply.credentials.client_secret), timeout=10)
    assert (issued.audience, issued.kind) == (AUDIENCE_GATEWAY, "partner")
    assert TokenVerifier(served.public_key, AUDIENCE_GATEWAY).verify(issued.token).id == partner_id
    # A partner's token is for the gateway: the consent service itself refuses it.
    refused = await fails(served.bare.ListAccessLog(
        pb.ListAccessLogRequest(subject_id="s-1"), metadata=bearer(issued.token), timeout=5))
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")


async def test_a_wrong_secret_and_an_unknown_client_look_the_same(served: Served) -> None:
    reply = await partner(served, "acme")
    refusals = []
    for client_id, secret in (
        ("acme", reply.credentials.client_secret + "x"),  # wrong secret
        ("acme", "s"),  # short
        ("nobody", reply.credentials.client_secret),  # unknown client
        ("no such client!", "secret"),  # not even a valid id
        ("gateway", "not-the-gateway-secret"),  # a service with a wrong secret
    ):
        refusals.append(await fails(served.bare.IssueToken(
            pb.IssueTokenRequest(client_id=client_id, client_secret=secret), timeout=10)))
    assert {(e.code, e.message, e.reason, tuple(e.metadata.items())) for e in refusals} == {
        (grpc.StatusCode.UNAUTHENTICATED, "the client credentials are not valid", "INVALID_CLIENT", ())
    }
    missing = await fails(served.bare.IssueToken(pb.IssueTokenRequest(client_id="acme"), timeout=10))
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in missing.violations] == ["client_secret"]


async def test_a_service_identity_from_the_credentials_file_gets_internal_tokens(served: Served) -> None:
    issued = await served.bare.IssueToken(
        pb.IssueTokenRequest(client_id="gateway", client_secret=GATEWAY_SECRET), timeout=10)
    assert (issued.audience, issued.kind) == (AUDIENCE_INTERNAL, "service")
    # Its token opens the consent service's internal RPCs.
    reply = await served.bare.CheckAuthorization(
        pb.CheckAuthorizationRequest(subject_id="s-1", partner_id="p-1", purpose=CREDIT),
        metadata=bearer(issued.token), timeout=5)
    assert not reply.authorized
    # Nobody can register under a service's id.
    taken = await fails(served.stub.RegisterPartner(
        pb.RegisterPartnerRequest(request_id="r-1", partner_id="gateway", display_name="Evil"), timeout=5))
    assert (taken.code, taken.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CLIENT_EXISTS")


async def test_calls_without_a_valid_service_token_are_refused(served: Served) -> None:
    request = pb.CheckAuthorizationRequest(subject_id="s-1", partner_id="p-1", purpose=CREDIT)
    service = served.app.issuer.issue(KIND_SERVICE, "gateway").token
    head, payload, signature = service.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"gateway"', b'"ingestx"')).decode()
    cases = {
        "no token": ((), "TOKEN_MISSING"),
        "not bearer": ((("authorization", f"Basic {service}"),), "TOKEN_INVALID"),
        "tampered claims": (bearer(f"{head}.{forged_payload}.{signature}"), "TOKEN_INVALID"),
        "tampered signature": (bearer(f"{head}.{payload}.{signature[:-4]}AAAA"), "TOKEN_INVALID"),
        "another key": (bearer(_foreign_token()), "TOKEN_INVALID"),
        "expired": (bearer(_expired(served)), "TOKEN_EXPIRED"),
    }
    for name, (metadata, reason) in cases.items():
        error = await fails(served.bare.CheckAuthorization(request, metadata=metadata, timeout=5))
        assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason), name
    # A producer's token (audience ingest) is refused here too; a producer's kind
    # would not be allowed anyway.
    producer = await served.stub.RegisterProducer(
        pb.RegisterProducerRequest(request_id="r-1", producer_id="wallet", display_name="W", sources=[PAYMENTS]),
        timeout=5)
    token = (await served.bare.IssueToken(pb.IssueTokenRequest(
        client_id="wallet", client_secret=producer.credentials.client_secret), timeout=10)).token
    error = await fails(served.bare.CheckAuthorization(request, metadata=bearer(token), timeout=5))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")


def _foreign_token() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from consent_service.tokens import TokenIssuer

    return TokenIssuer(Ed25519PrivateKey.generate()).issue(KIND_SERVICE, "gateway").token


def _expired(served: Served) -> str:
    from consent_service.tokens import TokenIssuer

    past = datetime.now(UTC) - timedelta(hours=2)
    return TokenIssuer(served.app.issuer._key, clock=lambda: past).issue(KIND_SERVICE, "gateway").token


# --- authorizations ----------------------------------------------------------------------


async def test_an_authorization_is_threshold_by_default_for_30_days(served: Served) -> None:
    await enroll(served, "s-1")
    await partner(served, "acme")
    made = await authorize(served, "s-1", "acme")
    assert (made.scope, made.state, made.partner_name) == (THRESHOLD, pb.AUTHORIZATION_STATE_LIVE, "Acme Lending")
    assert from_timestamp(made, "expire_time") == T0 + 30 * DAY
    reply = await check(served, "s-1", "acme")
    assert (reply.authorized, reply.scope) == (True, THRESHOLD)
    # Only for that purpose.
    assert not (await check(served, "s-1", "acme", RENTAL)).authorized
    # The full score needs its own, explicit scope.
    full = await authorize(served, "s-1", "acme", scope=FULL, expire_time=T0 + 2 * DAY)
    assert full.scope == FULL and from_timestamp(full, "grant_time") == T0
    assert (await check(served, "s-1", "acme")).scope == FULL


async def test_unknown_unauthorized_expired_and_revoked_get_the_same_answer(served: Served) -> None:
    for sid in ("s-none", "s-expired", "s-revoked", "s-live"):
        await enroll(served, sid)
    await partner(served, "acme")
    await partner(served, "other")
    await authorize(served, "s-expired", "acme", expire_time=T0 + DAY)
    await authorize(served, "s-revoked", "acme")
    await authorize(served, "s-live", "other")
    await served.stub.RevokeAuthorization(pb.RevokeAuthorizationRequest(
        request_id="rv-1", subject_id="s-revoked", partner_id="acme", purpose=CREDIT), timeout=5)
    served.clock.now = T0 + 2 * DAY
    answers = [
        await check(served, "never-enrolled", "acme"),
        await check(served, "s-none", "acme"),
        await check(served, "s-expired", "acme"),
        await check(served, "s-revoked", "acme"),
        await check(served, "s-live", "acme"),  # authorized another partner
        await check(served, "s-live", "no-such-partner"),
    ]
    assert {a.SerializeToString(deterministic=True) for a in answers} == {
        pb.CheckAuthorizationResponse(authorized=False).SerializeToString(deterministic=True)
    }
    assert (await check(served, "s-live", "other")).authorized


async def test_an_authorization_expires_and_is_revoked_at_once(served: Served) -> None:
    await enroll(served, "s-1")
    await partner(served, "acme")
    await authorize(served, "s-1", "acme", expire_time=T0 + DAY)
    served.clock.now = T0 + DAY - timedelta(seconds=1)
    assert (await check(served, "s-1", "acme")).authorized
    served.clock.now = T0 + DAY
    assert not (await check(served, "s-1", "acme")).authorized
    listed = await served.stub.ListAuthorizations(pb.ListAuthorizationsRequest(subject_id="s-1"), timeout=5)
    assert [a.state for a in listed.authorizations] == [pb.AUTHORIZATION_STATE_EXPIRED]
    # Granted again, then revoked: as easy as granting, and at once.
    await authorize(served, "s-1", "acme", request_id="again")
    assert (await check(served, "s-1", "acme")).authorized
    revoked = await served.stub.RevokeAuthorization(pb.RevokeAuthorizationRequest(
        request_id="rv-1", subject_id="s-1", partner_id="acme", purpose=CREDIT), timeout=5)
    assert revoked.authorization.state == pb.AUTHORIZATION_STATE_REVOKED
    assert not (await check(served, "s-1", "acme")).authorized


async def test_bad_authorization_requests(served: Served) -> None:
    await enroll(served, "s-1")
    error = await fails(served.stub.GrantAuthorization(pb.GrantAuthorizationRequest(
        request_id="x", subject_id="s-1", partner_id="acme", purpose=CREDIT), timeout=5))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "PARTNER_NOT_FOUND")
    await partner(served, "acme")
    error = await fails(served.stub.GrantAuthorization(pb.GrantAuthorizationRequest(
        request_id="y", subject_id="ghost", partner_id="acme", purpose=CREDIT), timeout=5))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND")
    error = await fails(served.stub.GrantAuthorization(pb.GrantAuthorizationRequest(
        request_id="", subject_id="s 1", partner_id="", purpose=0, scope=9,
        expire_time=T0 + 400 * DAY), timeout=5))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [
        "request_id", "subject_id", "partner_id", "purpose", "scope", "expire_time"]
    error = await fails(served.stub.RevokeAuthorization(pb.RevokeAuthorizationRequest(
        request_id="z", subject_id="s-1", partner_id="acme", purpose=RENTAL), timeout=5))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "AUTHORIZATION_NOT_FOUND")


# --- the access log ---------------------------------------------------------------------------


async def test_an_access_is_logged_once_per_transaction_id_for_24_hours(served: Served) -> None:
    await enroll(served, "s-1")
    await partner(served, "acme")
    await authorize(served, "s-1", "acme", scope=FULL)
    first = await record(served, "s-1", "acme", "tx-1", answer=score_answer(), response=b"the answer")
    assert first.created and first.entry.response == b"the answer"
    assert first.entry.scope == FULL and first.entry.partner_name == "Acme Lending"

    # The same transaction id: the first entry and its answer, nothing written.
    served.clock.now = T0 + timedelta(hours=23)
    again = await record(served, "s-1", "acme", "tx-1", answer=threshold_answer(), response=b"another")
    assert not again.created and again.entry == first.entry
    found = await served.stub.GetAccessByTransaction(pb.GetAccessByTransactionRequest(
        partner_id="acme", transaction_id="tx-1", subject_id="s-1", purpose=CREDIT), timeout=5)
    assert found.found and found.entry == first.entry
    assert len(await access_log(served, "s-1")) == 1

    # Never another subject's (or purpose's) answer under a reused id.
    await enroll(served, "s-2")
    await authorize(served, "s-2", "acme")
    reused = await fails(record(served, "s-2", "acme", "tx-1"))
    assert (reused.code, reused.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TRANSACTION_ID_REUSED")
    reused = await fails(served.stub.GetAccessByTransaction(pb.GetAccessByTransactionRequest(
        partner_id="acme", transaction_id="tx-1", subject_id="s-2", purpose=CREDIT), timeout=5))
    assert reused.reason == "TRANSACTION_ID_REUSED"
    # Another partner's transaction ids are its own.
    await partner(served, "other")
    await authorize(served, "s-1", "other")
    other = await record(served, "s-1", "other", "tx-1")
    assert other.created

    # After 24 hours the id names a new lookup.
    served.clock.now = T0 + timedelta(hours=24)
    gone = await served.stub.GetAccessByTransaction(pb.GetAccessByTransactionRequest(
        partner_id="acme", transaction_id="tx-1", subject_id="s-1", purpose=CREDIT), timeout=5)
    assert not gone.found
    later = await record(served, "s-1", "acme", "tx-1")
    assert later.created and later.entry.access_id != first.entry.access_id
    # Newest first, one page at a time; the stored answers stay with the gateway's calls.
    log = await access_log(served, "s-1", page_size=1)
    assert [e.access_id for e in log] == [later.entry.access_id, other.entry.access_id, first.entry.access_id]
    assert not any(e.response for e in log)


async def test_an_access_needs_a_live_authorization_that_covers_the_answer(served: Served) -> None:
    await enroll(served, "s-1")
    await partner(served, "acme")
    refused = await fails(record(served, "s-1", "acme", "tx-0"))
    assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")
    await authorize(served, "s-1", "acme")  # threshold
    assert (await record(served, "s-1", "acme", "tx-1")).created
    # A score under a threshold authorization is never logged (nor answered).
    refused = await fails(record(served, "s-1", "acme", "tx-2", answer=score_answer()))
    assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHORIZED")
    await served.stub.RevokeAuthorization(pb.RevokeAuthorizationRequest(
        request_id="rv", subject_id="s-1", partner_id="acme", purpose=CREDIT), timeout=5)
    refused = await fails(record(served, "s-1", "acme", "tx-3"))
    assert refused.reason == "NOT_AUTHORIZED"
    # Unknown subject: the same refusal, nothing logged.
    refused = await fails(record(served, "ghost", "acme", "tx-4"))
    assert (refused.code, refused.message, refused.reason) == (
        grpc.StatusCode.PERMISSION_DENIED, "no live authorization covers this lookup", "NOT_AUTHORIZED")
    assert [e.transaction_id for e in await access_log(served, "s-1")] == ["tx-1"]
    bad = await fails(served.stub.RecordAccess(pb.RecordAccessRequest(
        subject_id="s-1", partner_id="acme", purpose=CREDIT, transaction_id="tx\n5",
        answer=pb.AccessAnswer(threshold=pb.ThresholdAnswer(threshold=100)), response=b"x" * 70000), timeout=5))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad.violations] == [
        "transaction_id", "answer.threshold.threshold", "answer.threshold.decision", "response"]


async def test_the_access_log_is_complete_under_concurrent_lookups(served: Served) -> None:
    await enroll(served, "s-1")
    await partner(served, "acme")
    await authorize(served, "s-1", "acme", scope=FULL)
    # 60 lookups at once, and each of 10 transaction ids sent 4 times at once.
    distinct = [record(served, "s-1", "acme", f"tx-{i}") for i in range(60)]
    repeated = [record(served, "s-1", "acme", f"dup-{i % 10}", response=f"{i % 10}".encode()) for i in range(40)]
    replies = await asyncio.gather(*distinct, *repeated)
    assert all(r.created for r in replies[:60])
    dups = replies[60:]
    assert sum(r.created for r in dups) == 10
    for i in range(10):
        ids = {r.entry.access_id for r in dups if r.entry.transaction_id == f"dup-{i}"}
        assert len(ids) == 1
    log = await access_log(served, "s-1", page_size=7)
    assert len(log) == 70 and len({e.access_id for e in log}) == 70
    assert sorted(e.transaction_id for e in log) == sorted([f"tx-{i}" for i in range(60)] +
                                                           [f"dup-{i}" for i in range(10)])


async def test_closing_an_account_while_its_lookups_are_logged_leaves_nothing(served: Served) -> None:
    """Lookups being logged and the account being closed at once: each lookup is
    logged before the purge (and deleted by it) or refused after it; nothing of the
    subject is left but the receipt."""
    from consent_service.store import metadata
    from creditscore.runtime import make_engine
    from tests.holdings import rows_naming

    await enroll(served, "s-1")
    await partner(served, "acme")
    await authorize(served, "s-1", "acme", scope=FULL)

    async def lookup(i: int) -> str:
        try:
            await record(served, "s-1", "acme", f"tx-{i}")
        except grpc.aio.AioRpcError as exc:
            return CallError.from_rpc_error(exc).reason
        return "logged"

    lookups = [asyncio.create_task(lookup(i)) for i in range(30)]
    await asyncio.sleep(0)
    closed = await served.stub.CloseAccount(pb.CloseAccountRequest(request_id="c-1", subject_id="s-1"), timeout=10)
    outcomes = await asyncio.gather(*lookups)
    assert set(outcomes) <= {"logged", "NOT_AUTHORIZED"}
    engine = make_engine(served.database_url)
    try:
        left = await rows_naming(engine, metadata, "s-1", skip={"purge_jobs", "purge_steps", "revocations"})
    finally:
        await engine.dispose()
    assert set(left.values()) == {0}, left
    step = closed.receipt.steps[0]
    assert step.service == "consent_service" and step.done
    logged = {t.table: t.deleted_rows for t in step.tables}["access_log"]
    assert logged == outcomes.count("logged")
