"""Tokens that end when trust ends, through the whole suite (authentication
required, every service checking tokens), on SQLite and PostgreSQL:

- a token of a closed enrollment never acts for the next enrollment of the same id;
- every kind of revocation (one token, every token of a client or a subject, a
  whole client, a closed account) is refused by every service that checks tokens
  within the stated bound: ``REVOCATION_POLL_SECONDS`` plus one poll, under 2 s
  with the default 1 s;
- the signing key rotates under steady lookups without one failed call;
- the relay's rate limits and lockout, and the partners' lookup limit;
- refusals of a partner's lookup are identical, in bytes and (within 1.5x) in time,
  for a subject never enrolled, one who never authorized it, one who revoked the
  authorization and one who closed the account.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from creditscore.cli.run import Partner, bearer, load_population, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc, subject_pb2, subject_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import CallError, TokenSource, create_channel, key_id
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from tests.authkit import TokenKeys

CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
#: The stated bound, with the default REVOCATION_POLL_SECONDS (1 s): one poll
#: interval plus the poll itself.
BOUND_SECONDS = 2.0


@dataclass
class World:
    suite: Any
    running: Any
    ids: list[str]
    secrets: dict[str, str]
    partner: Partner
    partner_secret: str
    gateway: grpc.aio.Channel
    consent: consent_pb2_grpc.ConsentServiceStub  # the operator's

    @property
    def subject(self) -> subject_pb2_grpc.SubjectServiceStub:
        return subject_pb2_grpc.SubjectServiceStub(self.gateway)

    @property
    def tokens(self) -> subject_pb2_grpc.TokenServiceStub:
        return subject_pb2_grpc.TokenServiceStub(self.gateway)

    @property
    def lookups(self) -> gateway_pb2_grpc.CreditScoreServiceStub:
        return gateway_pb2_grpc.CreditScoreServiceStub(self.gateway)

    async def issue(self, client_id: str, secret: str) -> subject_pb2.IssueTokenResponse:
        return await self.tokens.IssueToken(
            subject_pb2.IssueTokenRequest(client_id=client_id, client_secret=secret), timeout=10)

    async def token(self, subject_id: str, secret: str | None = None) -> tuple[tuple[str, str], ...]:
        return bearer((await self.issue(subject_id, secret or self.secrets[subject_id])).token)

    def lookup(self, subject_id: str, token: str, txn: str) -> Any:
        return self.lookups.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=subject_id, purpose=CREDIT, transaction_id=txn), metadata=bearer(token), timeout=10)


async def _world(running: Any, n: int = 6) -> World:
    suite = running.suite
    population, report = await load_population(suite, n, seed=31, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in sorted(population.subjects, key=lambda s: -len(s.sources))]
    consent = await suite.operator_channel("consent_service")
    stub = consent_pb2_grpc.ConsentServiceStub(consent)
    registered = await stub.RegisterPartner(consent_pb2.RegisterPartnerRequest(
        request_id="rev-partner", partner_id="rev-lender", display_name="Revocation Lender"), timeout=10)
    for sid in ids:
        await stub.GrantAuthorization(consent_pb2.GrantAuthorizationRequest(
            request_id=f"rev-auth-{sid}", subject_id=sid, partner_id="rev-lender", purpose=CREDIT, scope=FULL),
            timeout=10)
    gateway = create_channel(suite.addr("gateway"))
    issued = await subject_pb2_grpc.TokenServiceStub(gateway).IssueToken(subject_pb2.IssueTokenRequest(
        client_id="rev-lender", client_secret=registered.credentials.client_secret), timeout=10)
    return World(suite, running, ids, dict(report.subject_secrets), Partner("rev-lender", issued.token),
                 registered.credentials.client_secret, gateway, stub)


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def error(exc: grpc.aio.AioRpcError) -> CallError:
    return CallError.from_rpc_error(exc)


async def time_to_refusal(call: Callable[[], Awaitable[Any]], reason: str = "TOKEN_REVOKED",
                          limit: float = 10.0) -> float:
    """Seconds from now until ``call`` is refused with ``reason`` (called every 20 ms)."""
    start = time.monotonic()
    while True:
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            err = error(exc)
            if err.reason == reason:
                return time.monotonic() - start
            if err.code == grpc.StatusCode.UNAUTHENTICATED:
                raise AssertionError(f"refused for another reason: {err}") from None
        if time.monotonic() - start > limit:
            raise AssertionError(f"still accepted after {limit}s")
        await asyncio.sleep(0.02)


async def answered(call: Awaitable[Any]) -> None:
    """The call got past authentication (whatever it then answered)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        assert exc.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), error(exc)


# --- the hole: an old enrollment's token and the next one -------------------------------


async def test_a_token_of_a_closed_enrollment_never_acts_for_the_next_one(suite_factory) -> None:
    """With the revocation list never refreshed after start (a poll an hour
    apart), the consent service's own check alone refuses the old token at once."""
    running = await suite_factory(REVOCATION_POLL_SECONDS="3600", REVOCATION_MAX_STALENESS_SECONDS="7200")
    world = await _world(running, n=3)
    try:
        alice = world.ids[0]
        held, kept = await world.token(alice), await world.token(alice)
        closed = await world.subject.CloseAccount(subject_pb2.CloseAccountRequest(request_id="bye"),
                                                  metadata=held, timeout=10)
        deadline = time.monotonic() + 30
        while not (await world.consent.GetDeletionReceipt(consent_pb2.GetDeletionReceiptRequest(
                receipt_id=closed.receipt.receipt_id, subject_id=alice), timeout=10)).receipt.complete:
            assert time.monotonic() < deadline, "the purge did not complete"
            await asyncio.sleep(0.1)
        # Someone else signs up under the same id and consents.
        again = await world.consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
            request_id="re-enroll", subject_id=alice), timeout=10)
        assert again.created and again.subject_secret
        new_owner = await world.token(alice, again.subject_secret)
        await world.subject.GrantConsent(subject_pb2.GrantConsentRequest(
            request_id="g1", source=COMMERCE, purpose=SCORING), metadata=new_owner, timeout=10)
        # The previous owner's token, still within its lifetime, acts for nobody.
        calls = [
            world.subject.ListMyConsents(subject_pb2.ListMyConsentsRequest(), metadata=kept, timeout=10),
            world.subject.GrantAuthorization(subject_pb2.GrantAuthorizationRequest(
                request_id="steal", partner_id="rev-lender", purpose=CREDIT, scope=FULL), metadata=kept, timeout=10),
            world.subject.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=kept, timeout=10),
            world.subject.ListMyScoreHistory(subject_pb2.ListMyScoreHistoryRequest(), metadata=kept, timeout=10),
            world.subject.ListMyAccessLog(subject_pb2.ListMyAccessLogRequest(), metadata=kept, timeout=10),
            world.subject.ExportMyData(subject_pb2.ExportMyDataRequest(), metadata=kept, timeout=10),
        ]
        for call in calls:
            err = error(await refused(call))
            assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
        # Nothing was granted on the new owner's behalf: the partner is not answered.
        err = error(await refused(world.lookup(alice, world.partner.token, "after-steal")))
        assert err.reason == "NOT_AUTHORIZED"
        mine = await world.subject.ListMyAuthorizations(subject_pb2.ListMyAuthorizationsRequest(),
                                                        metadata=new_owner, timeout=10)
        assert list(mine.authorizations) == []
    finally:
        await world.gateway.close()


# --- every kind of revocation, at every service, within the bound ---------------------------


async def test_every_revocation_is_refused_at_every_service_within_the_bound(suite_factory) -> None:
    running = await suite_factory()
    world = await _world(running)
    suite = world.suite
    operator = await suite.operator_token()
    channels = {p: create_channel(suite.addr(p)) for p in
                ("consent_service", "ingest_service", "feature_service", "scoring_service")}
    waits: dict[str, float] = {}
    try:
        as_service: dict[str, Callable[[str], Awaitable[Any]]] = {
            "consent": lambda t: consent_pb2_grpc.ConsentServiceStub(channels["consent_service"]).GetSubject(
                consent_pb2.GetSubjectRequest(subject_id=world.ids[0]), metadata=bearer(t), timeout=5),
            "ingest": lambda t: ingest_pb2_grpc.IngestServiceStub(channels["ingest_service"]).ListRecords(
                ingest_pb2.ListRecordsRequest(subject_id=world.ids[0]), metadata=bearer(t), timeout=5),
            "feature": lambda t: feature_pb2_grpc.FeatureServiceStub(channels["feature_service"]).GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=world.ids[0]), metadata=bearer(t), timeout=5),
            "scoring": lambda t: scoring_pb2_grpc.ScoringServiceStub(channels["scoring_service"]).ListModels(
                scoring_pb2.ListModelsRequest(), metadata=bearer(t), timeout=5),
        }
        for call in as_service.values():
            await answered(call(operator))

        # One token, by its id: that one refused, another of the same partner not.
        other = await world.issue("rev-lender", world.partner_secret)
        token_id = jwt.decode(world.partner.token, options={"verify_signature": False})["jti"]
        await world.consent.RevokeToken(consent_pb2.RevokeTokenRequest(
            request_id="r-token", token_id=token_id, note="leaked in a log"), timeout=10)
        waits["token at gateway"] = await time_to_refusal(lambda: world.lookup(world.ids[0], world.partner.token,
                                                                               f"t-{time.monotonic()}"))
        await world.lookup(world.ids[0], other.token, "other-token")

        # Every token of a producer (at ingest).
        producer_token = suite.producer_token("wallet")
        ingest = ingest_pb2_grpc.IngestServiceStub(channels["ingest_service"])

        def produce(token: str) -> Any:
            return ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
                request_id=f"p-{time.monotonic()}", producer_id="wallet", records=[]),
                metadata=bearer(token), timeout=5)

        await answered(produce(producer_token))
        await world.consent.RevokeTokens(consent_pb2.RevokeTokensRequest(
            request_id="r-producer", client_id="wallet"), timeout=10)
        waits["producer at ingest"] = await time_to_refusal(lambda: produce(producer_token))

        # Every token of a service: refused by each of the four services that take service tokens.
        await world.consent.RevokeTokens(consent_pb2.RevokeTokensRequest(
            request_id="r-operator", client_id="operator", note="rotation drill"), timeout=10)
        for name, call in as_service.items():
            waits[f"service at {name}"] = await time_to_refusal(lambda call=call: call(operator))
        suite.auth._tokens.pop("operator")  # a fresh one works
        fresh = await suite.operator_token()
        for call in as_service.values():
            await answered(call(fresh))
        channels["operator"] = await suite.operator_channel("consent_service")
        world.consent = consent_pb2_grpc.ConsentServiceStub(channels["operator"])
        # One service token by its id, at each of the four: the operator's other tokens stay good.
        spare = (await consent_pb2_grpc.ConsentServiceStub(channels["consent_service"]).IssueToken(
            consent_pb2.IssueTokenRequest(client_id="operator", client_secret=suite.auth.secrets["operator"]),
            timeout=10))
        await world.consent.RevokeToken(consent_pb2.RevokeTokenRequest(
            request_id="r-one-service-token", token_id=spare.token_id), timeout=10)
        for name, call in as_service.items():
            waits[f"one service token at {name}"] = await time_to_refusal(lambda call=call: call(spare.token))
            await answered(call(fresh))

        # Every token of a subject (the gateway's own list; the consent service at once).
        subject_token = await world.token(world.ids[1])
        await world.consent.RevokeTokens(consent_pb2.RevokeTokensRequest(
            request_id="r-subject", subject_id=world.ids[1]), timeout=10)
        waits["subject at gateway"] = await time_to_refusal(lambda: world.subject.ListMyConsents(
            subject_pb2.ListMyConsentsRequest(), metadata=subject_token, timeout=5))
        await world.subject.ListMyConsents(subject_pb2.ListMyConsentsRequest(),
                                           metadata=await world.token(world.ids[1]), timeout=5)

        # A whole partner: its tokens and its sign-ins, everywhere.
        await world.lookup(world.ids[0], other.token, "before-end")
        ended = await world.consent.RevokeClient(consent_pb2.RevokeClientRequest(
            request_id="r-client", client_id="rev-lender", note="contract ended"), timeout=10)
        assert ended.kind == "partner" and ended.revoke_time.seconds
        waits["partner at gateway"] = await time_to_refusal(lambda: world.lookup(world.ids[0], other.token,
                                                                                 f"e-{time.monotonic()}"))
        login = error(await refused(world.issue("rev-lender", world.partner_secret)))
        assert login.reason == "INVALID_CLIENT"
        services_refuse = error(await refused(world.consent.RevokeClient(consent_pb2.RevokeClientRequest(
            request_id="r-svc", client_id="gateway"), timeout=10)))
        assert services_refuse.reason == "CLIENT_IS_SERVICE"
    finally:
        for channel in channels.values():
            await channel.close()
        await world.gateway.close()
    print("\nrefused after (s): " + ", ".join(f"{k} {v:.2f}" for k, v in waits.items()))
    assert max(waits.values()) < BOUND_SECONDS, waits


async def test_a_service_that_cannot_refresh_its_list_refuses_every_token(suite_factory, request) -> None:
    if "postgres" in request.node.name:
        pytest.skip("the same on both databases: it is about the consent service being gone")
    running = await suite_factory(REVOCATION_POLL_SECONDS="0.2", REVOCATION_MAX_STALENESS_SECONDS="1.0")
    suite = running.suite
    operator = await suite.operator_token()
    async with create_channel(suite.addr("scoring_service")) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        await stub.ListModels(scoring_pb2.ListModelsRequest(), metadata=bearer(operator), timeout=5)
        await running.handles["consent_service"].stop(0)
        wait = await time_to_refusal(lambda: stub.ListModels(scoring_pb2.ListModelsRequest(),
                                                             metadata=bearer(operator), timeout=5),
                                     reason="REVOCATIONS_STALE")
        assert wait < 1.0 + 0.5


# --- signing-key rotation under steady lookups ----------------------------------------------


def _replace(path: Path, data: bytes) -> None:
    """A new version of a key file, moved in at once (as a Secret volume is updated)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def _until(check: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_signing_key_rotates_under_steady_lookups_without_a_failed_call(suite_factory) -> None:
    ttl = 3
    running = await suite_factory(TOKEN_TTL_SECONDS=str(ttl), SUBJECT_TOKEN_TTL_SECONDS=str(ttl),
                                  TOKEN_LEEWAY_SECONDS="1", REVOCATION_POLL_SECONDS="0.2")
    world = await _world(running, n=4)
    suite, handles = world.suite, running.handles
    ring_file, signing_file = suite.auth.public_key_file, suite.auth.signing_key_file
    old_private = serialization.load_pem_private_key(signing_file.read_bytes(), password=None)
    assert isinstance(old_private, Ed25519PrivateKey)
    old_kid = key_id(old_private)
    new_private = Ed25519PrivateKey.generate()
    new_kid = key_id(new_private)
    new_keys = TokenKeys(new_private)

    async def partner_token() -> str:
        return (await world.issue("rev-lender", world.partner_secret)).token

    source = TokenSource(partner_token)
    outcomes = {"ok": 0, "failed": []}
    stop = asyncio.Event()

    async def steady(worker: int) -> None:
        async with create_channel(suite.addr("gateway"), tokens=source) as channel:
            stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                        subject_id=world.ids[i % len(world.ids)], purpose=CREDIT,
                        transaction_id=f"rot-{worker}-{i}"), timeout=5)
                    outcomes["ok"] += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes["failed"].append(str(error(exc)))
                await asyncio.sleep(0.01)

    def kids(package: str) -> set[str]:
        return set(handles[package].verifier.keys)

    workers = [asyncio.create_task(steady(w)) for w in range(4)]
    try:
        await asyncio.sleep(1.0)
        # 1. Introduce: every service learns the new public key beside the old one.
        _replace(ring_file, ring_file.read_bytes() + new_keys.public_pem)
        await _until(lambda: all(new_kid in kids(p) for p in handles))
        await asyncio.sleep(1.0)
        # 2. Switch: the consent service signs with the new key from now on.
        _replace(signing_file, new_private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        deadline = time.monotonic() + 10
        while jwt.get_unverified_header(await partner_token())["kid"] != new_kid:
            assert time.monotonic() < deadline, "the consent service did not switch keys"
            await asyncio.sleep(0.1)
        old_token = TokenKeys(old_private).partner("rev-lender", ttl=60, headers={"kid": old_kid})
        await world.lookup(world.ids[0], old_token, "old-key-still-valid")
        # 3. Retire the old key once every token it signed has expired (lifetime + leeway).
        await asyncio.sleep(ttl + 1 + 0.5)
        _replace(ring_file, new_keys.public_pem)
        await _until(lambda: all(kids(p) == {new_kid} for p in handles))
        await asyncio.sleep(ttl + 1.0)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await world.gateway.close()
    assert outcomes["failed"] == [] and outcomes["ok"] > 100, outcomes
    # A token signed with the retired key is refused everywhere now.
    async with create_channel(suite.addr("gateway")) as channel:
        err = error(await refused(gateway_pb2_grpc.CreditScoreServiceStub(channel).GetCreditScore(
            gateway_pb2.GetCreditScoreRequest(subject_id=world.ids[0], purpose=CREDIT, transaction_id="old-key"),
            metadata=bearer(TokenKeys(old_private).partner("rev-lender", ttl=60, headers={"kid": old_kid})),
            timeout=5)))
    assert err.reason == "TOKEN_INVALID"


# --- limits at the edge ---------------------------------------------------------------------


async def test_the_relay_limits_and_locks_out_alike_for_real_and_invented_ids(suite_factory, request) -> None:
    if "postgres" in request.node.name:
        pytest.skip("in the gateway's memory: the database does not take part")
    running = await suite_factory(
        LOGIN_FREE_FAILURES="3", LOGIN_LOCK_BASE_SECONDS="0.5", TOKEN_RATE_PER_CLIENT="100",
        TOKEN_BURST_PER_CLIENT="100", TOKEN_RATE_PER_PEER="2", TOKEN_BURST_PER_PEER="30",
        PARTNER_LOOKUP_RATE="2", PARTNER_LOOKUP_BURST="4")
    world = await _world(running, n=3)
    try:
        # Wrong secrets: the same answers, in the same order, for a real id and an invented one.
        def attempts(client_id: str, secret: str) -> list[Any]:
            return [world.issue(client_id, secret) for _ in range(5)]

        seen: dict[str, list[tuple[Any, ...]]] = {}
        for client_id in ("rev-lender", "invented-lender"):
            seen[client_id] = []
            for call in attempts(client_id, "wrong-secret"):
                exc = await refused(call)
                err = error(exc)
                seen[client_id].append((err.code, err.reason, exc.details(), err.domain, err.retry_after is None))
        assert seen["rev-lender"] == seen["invented-lender"]
        reasons = [s[1] for s in seen["rev-lender"]]
        assert reasons == ["INVALID_CLIENT"] * 4 + ["LOGIN_LOCKED"], reasons
        # Locked means locked: the right secret too, with how long to wait.
        locked = error(await refused(world.issue("rev-lender", world.partner_secret)))
        assert (locked.code, locked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_LOCKED")
        assert locked.retry_after is not None and 0 < locked.retry_after <= 0.5
        await asyncio.sleep(locked.retry_after + 0.05)
        await world.issue("rev-lender", world.partner_secret)  # and the count starts over
        assert [error(await refused(c)).reason for c in attempts("rev-lender", "wrong")][:3] == ["INVALID_CLIENT"] * 3
        await asyncio.sleep(1.1)

        # Per peer address: the burst, then TOKEN_RATE_LIMITED with RetryInfo.
        limited = None
        for i in range(60):
            try:
                await world.issue(f"spray-{i}", "x")
            except grpc.aio.AioRpcError as exc:
                if error(exc).reason == "TOKEN_RATE_LIMITED":
                    limited = error(exc)
                    break
        assert limited is not None and limited.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert limited.retry_after is not None and limited.retry_after > 0

        # A partner's lookups: the burst, then LOOKUP_RATE_LIMITED; a batch counts each check.
        token = world.partner.token
        results = []
        for i in range(6):
            try:
                await world.lookup(world.ids[0], token, f"lim-{i}")
                results.append("ok")
            except grpc.aio.AioRpcError as exc:
                results.append(error(exc).reason)
        assert results[:4] == ["ok"] * 4 and "LOOKUP_RATE_LIMITED" in results[4:]
        await asyncio.sleep(3.0)  # the bucket refills at 2 a second
        big = error(await refused(world.lookups.BatchCheckCreditThreshold(
            gateway_pb2.BatchCheckCreditThresholdRequest(checks=[gateway_pb2.CheckCreditThresholdRequest(
                subject_id=world.ids[0], purpose=CREDIT, threshold=600, transaction_id=f"b-{i}")
                for i in range(5)]), metadata=bearer(token), timeout=10)))
        assert big.reason == "LOOKUP_RATE_LIMITED" and big.retry_after is not None
    finally:
        await world.gateway.close()


# --- refusals that tell nothing ----------------------------------------------------------------


async def test_refusals_are_identical_in_bytes_and_in_time(suite_factory) -> None:
    running = await suite_factory()
    world = await _world(running, n=6)
    try:
        revoked, closed = world.ids[1], world.ids[2]
        await world.consent.RevokeAuthorization(consent_pb2.RevokeAuthorizationRequest(
            request_id="rv", subject_id=revoked, partner_id="rev-lender", purpose=CREDIT), timeout=10)
        await world.subject.CloseAccount(subject_pb2.CloseAccountRequest(request_id="c"),
                                         metadata=await world.token(closed), timeout=10)
        cases = {
            "never enrolled": ("never-enrolled-1", CREDIT),
            # Enrolled and consented, never authorized this partner for this purpose.
            "never authorized": (world.ids[3], common_pb2.ACCESS_PURPOSE_TELECOM_CONTRACT),
            "revoked": (revoked, CREDIT),
            "closed": (closed, CREDIT),
        }
        wire: dict[str, set[tuple[Any, ...]]] = {name: set() for name in cases}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(3):  # warm up every path
            for name, (sid, purpose) in cases.items():
                await refused(world.lookups.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=sid, purpose=purpose, transaction_id=f"w-{name}-{i}"),
                    metadata=bearer(world.partner.token), timeout=10))
        for i in range(20):
            for name, (sid, purpose) in cases.items():
                t0 = time.perf_counter()
                exc = await refused(world.lookups.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=sid, purpose=purpose, transaction_id=f"x-{name}-{i}"),
                    metadata=bearer(world.partner.token), timeout=10))
                times[name].append(time.perf_counter() - t0)
                wire[name].add((exc.code(), exc.details(), tuple(exc.trailing_metadata())))
    finally:
        await world.gateway.close()
    answers = set().union(*wire.values())
    assert len(answers) == 1, wire
    assert error_reason(answers) == "NOT_AUTHORIZED"
    medians = {name: statistics.median(t) for name, t in times.items()}
    print("\nmedian refusal (ms): " + ", ".join(f"{k} {v * 1000:.2f}" for k, v in medians.items()))
    assert max(medians.values()) <= 1.5 * min(medians.values()), medians


def error_reason(answers: set[tuple[Any, ...]]) -> str:
    from google.rpc import error_details_pb2, status_pb2

    (code, _, trailing), = answers
    for k, v in trailing:
        if k == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(v).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""
