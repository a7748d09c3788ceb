"""Authentication in the shared runtime: token verification, the server interceptor's
policy, the principal seen by the servicer, and the client's token source."""

from __future__ import annotations

import asyncio
import time

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import (
    PUBLIC,
    AuthInterceptor,
    AuthSettings,
    CallError,
    RegisteredService,
    ServerSettings,
    SettingsError,
    TokenSource,
    TokenVerifier,
    Unauthenticated,
    Unavailable,
    create_channel,
    create_server,
    current_principal,
    server_auth,
)
from tests.authkit import TokenKeys, bearer

APPLY = "/creditscore.feature.v1.FeatureService/ApplyRecords"
VECTOR = "/creditscore.feature.v1.FeatureService/GetFeatureVector"


@pytest.fixture(scope="module")
def keys() -> TokenKeys:
    return TokenKeys.generate()


def _reason(token: str, verifier: TokenVerifier) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    return info.value.reason


def test_a_verifier_may_take_several_audiences(keys):
    verifier = TokenVerifier(keys.public_pem, ("ingest", "internal"))
    assert verifier.verify(keys.service("gateway")).kind == "service"
    assert verifier.verify(keys.producer("wallet", [])).kind == "producer"
    assert _reason(keys.partner("p1"), verifier) == "TOKEN_WRONG_AUDIENCE"


def test_a_valid_token_names_its_caller(keys):
    verifier = TokenVerifier(keys.public_pem, "ingest")
    token = keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"])
    p = verifier.verify(token)
    assert (p.kind, p.id, p.sources) == ("producer", "wallet", frozenset({"DATA_SOURCE_PAYMENTS"}))
    assert p.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert verifier.verify(token) == p  # remembered, same answer


def test_expired_wrong_audience_tampered_foreign_key_are_refused(keys):
    verifier = TokenVerifier(keys.public_pem, "gateway")
    assert _reason(keys.partner("p1", ttl=-60), verifier) == "TOKEN_EXPIRED"
    assert _reason(keys.mint("p1", "partner", "ingest"), verifier) == "TOKEN_WRONG_AUDIENCE"
    assert _reason(keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"]), verifier) == "TOKEN_WRONG_AUDIENCE"
    assert _reason(keys.service("gateway"), verifier) == "TOKEN_WRONG_AUDIENCE"
    # Tampered: the claims changed after signing (a partner making itself a service).
    header, payload, signature = keys.partner("p1").split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"partner"', b'"service"')).decode()
    assert _reason(f"{header}.{forged}.{signature}", verifier) == "TOKEN_INVALID"
    # Signed by another key, even with every claim right (and a wrong audience:
    # the signature is checked first, so nothing about the claims is told).
    other = TokenKeys.generate()
    assert _reason(other.partner("p1"), verifier) == "TOKEN_INVALID"
    assert _reason(other.mint("p1", "partner", "ingest"), verifier) == "TOKEN_INVALID"
    # Unsigned, or signed with a shared secret: only EdDSA is accepted.
    claims = jwt.decode(keys.partner("p1"), options={"verify_signature": False})
    assert _reason(jwt.encode(claims, None, algorithm="none"), verifier) == "TOKEN_INVALID"
    assert _reason(jwt.encode(claims, "secret-secret-secret-secret-1234", algorithm="HS256"),
                   verifier) == "TOKEN_INVALID"
    assert _reason("", verifier) == "TOKEN_INVALID"
    assert _reason("not.a.jwt", verifier) == "TOKEN_INVALID"


def test_claims_must_be_complete_and_well_formed(keys):
    verifier = TokenVerifier(keys.public_pem, "gateway")
    # Each kind has its audience: a service token for the gateway was never issued.
    assert _reason(keys.mint("gateway", "service", "gateway"), verifier) == "TOKEN_INVALID"
    assert _reason(keys.partner("p1", jti=None), verifier) == "TOKEN_INVALID"
    assert _reason(keys.partner("p1", iss="someone-else"), verifier) == "TOKEN_INVALID"
    assert _reason(keys.mint("p1", "admin", "gateway"), verifier) == "TOKEN_INVALID"
    assert _reason(keys.mint("", "partner", "gateway"), verifier) == "TOKEN_INVALID"
    assert _reason(keys.partner("p1", iat=time.time() + 3600), verifier) == "TOKEN_INVALID"
    ingest = TokenVerifier(keys.public_pem, "ingest")
    assert _reason(keys.mint("w", "producer", "ingest", sources="DATA_SOURCE_PAYMENTS"), ingest) == "TOKEN_INVALID"


def test_a_remembered_token_still_expires(keys):
    now = [time.time()]
    verifier = TokenVerifier(keys.public_pem, "gateway", leeway=0, clock=lambda: now[0])
    token = keys.partner("p1", ttl=30)
    verifier.verify(token)
    now[0] += 31
    assert _reason(token, verifier) == "TOKEN_EXPIRED"


def test_verifier_wants_an_ed25519_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError):
        TokenVerifier(pem, "gateway")
    with pytest.raises(ValueError):
        TokenVerifier(TokenKeys.generate().public_pem, "everyone")


def test_policy_names_full_methods_and_known_kinds(keys):
    verifier = TokenVerifier(keys.public_pem, "internal")
    with pytest.raises(ValueError):
        AuthInterceptor(verifier, {"ApplyRecords": {"service"}})
    with pytest.raises(ValueError):
        AuthInterceptor(verifier, {APPLY: {"admin"}})


def test_server_auth_settings(keys, tmp_path, caplog):
    with pytest.raises(SettingsError, match="TOKEN_PUBLIC_KEY_FILE"):
        server_auth(AuthSettings(), "internal", {}, service="feature_service")
    with pytest.raises(SettingsError, match="no such file"):
        server_auth(AuthSettings(public_key_file=str(tmp_path / "nope.pem")), "internal", {},
                    service="feature_service")
    with pytest.raises(SettingsError, match="AUTH_MODE"):
        server_auth(AuthSettings(mode="optional"), "internal", {}, service="feature_service")
    assert server_auth(keys.settings(tmp_path), "internal", {APPLY: {"service"}},
                       service="feature_service") is not None
    with caplog.at_level("WARNING"):
        assert server_auth(AuthSettings(mode="disabled"), "internal", {}, service="feature_service") is None
    assert "AUTH_MODE=disabled" in caplog.text and "feature_service" in caplog.text


class _Features(feature_pb2_grpc.FeatureServiceServicer):
    """Answers with who called: the principal's kind and id."""

    async def GetFeatureVector(self, request, context):
        p = current_principal()
        return feature_pb2.GetFeatureVectorResponse(
            feature_vector=feature_pb2.FeatureVector(subject_id=f"{p.kind}:{p.id}" if p else "nobody"))

    async def ApplyRecords(self, request, context):
        p = current_principal()
        return feature_pb2.ApplyRecordsResponse(applied_count=1 if p and p.kind == "service" else 0)


def _serve(keys: TokenKeys, policy, *, tls=None):
    return create_server(
        [RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, _Features())],
        ServerSettings(host="127.0.0.1", port=0),
        domain="test.creditscore",
        # Every audience, so that the policy is what refuses a kind.
        auth=AuthInterceptor(TokenVerifier(keys.public_pem, ("internal", "gateway", "ingest")), policy),
        tls=tls,
    )


@pytest.fixture
async def guarded(keys):
    handle = _serve(keys, {VECTOR: {"service", "partner"}, APPLY: {"service"}})
    await handle.start()
    target = f"127.0.0.1:{handle.port}"
    channel = create_channel(target)
    try:
        yield feature_pb2_grpc.FeatureServiceStub(channel), target
    finally:
        await channel.close()
        await handle.stop(0)


async def _refused(call) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def test_the_servicer_sees_the_caller(guarded, keys):
    stub, _ = guarded
    reply = await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id="s"),
                                        metadata=bearer(keys.partner("p9")), timeout=2)
    assert reply.feature_vector.subject_id == "partner:p9"
    reply = await stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="r"),
                                    metadata=bearer(keys.service("ingest_service")), timeout=2)
    assert reply.applied_count == 1


async def test_every_bad_token_is_unauthenticated_and_nothing_runs(guarded, keys):
    stub, _ = guarded
    request = feature_pb2.ApplyRecordsRequest(request_id="r")
    other = TokenKeys.generate()
    cases = {
        "TOKEN_MISSING": (),
        "TOKEN_INVALID": bearer(other.service("ingest_service")),
        "TOKEN_EXPIRED": bearer(keys.service("ingest_service", ttl=-120)),
        # A kind's token for another audience than its own was never issued.
        "TOKEN_INVALID ": bearer(keys.mint("ingest_service", "service", "gateway")),
    }
    for reason, metadata in cases.items():
        err = await _refused(stub.ApplyRecords(request, metadata=metadata, timeout=2))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason.strip()), reason
        assert err.domain == "test.creditscore"
    for metadata in ((("authorization", "Basic abc"),), (("authorization", "Bearer"),),
                     (("authorization", "Bearer x"), ("authorization", "Bearer y"))):
        err = await _refused(stub.ApplyRecords(request, metadata=metadata, timeout=2))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_internal_methods_refuse_partners_and_producers(guarded, keys):
    stub, _ = guarded
    for token in (keys.partner("p1"), keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"])):
        err = await _refused(stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="r"),
                                               metadata=bearer(token), timeout=2))
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")


async def test_methods_outside_the_policy_are_closed_health_stays_open(keys):
    handle = _serve(keys, {VECTOR: {"service"}})  # ApplyRecords forgotten: closed
    await handle.start()
    try:
        async with create_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = feature_pb2_grpc.FeatureServiceStub(channel)
            err = await _refused(stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="r"),
                                                   metadata=bearer(keys.service("ingest_service")), timeout=2))
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await handle.stop(0)


async def test_public_methods_need_no_token(keys):
    handle = _serve(keys, {VECTOR: PUBLIC, APPLY: {"service"}})
    await handle.start()
    try:
        async with create_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = feature_pb2_grpc.FeatureServiceStub(channel)
            reply = await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id="s"), timeout=2)
            assert reply.feature_vector.subject_id == "nobody"
    finally:
        await handle.stop(0)


async def test_a_channel_with_a_token_source_authenticates_every_call(guarded, keys):
    _, target = guarded
    fetched = []

    async def fetch() -> str:
        fetched.append(1)
        return keys.service("gateway")

    source = TokenSource(fetch)
    async with create_channel(target, tokens=source) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        replies = await asyncio.gather(*(
            stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id=f"r{i}"), timeout=2) for i in range(8)))
    assert [r.applied_count for r in replies] == [1] * 8
    assert len(fetched) == 1  # cached, fetched by one caller


async def test_token_source_refreshes_before_expiry_and_survives_a_failed_refresh(keys):
    now = [1_000_000.0]
    tokens = iter([keys.service("gateway", iat=now[0], ttl=900),
                   RuntimeError("consent down"),
                   keys.service("gateway", iat=now[0] + 880, ttl=900)])

    async def fetch() -> str:
        item = next(tokens)
        if isinstance(item, Exception):
            raise item
        return item

    source = TokenSource(fetch, refresh_margin=60, clock=lambda: now[0])
    first = await source.token()
    now[0] += 800
    assert await source.token() == first  # 100 s left: no fetch yet
    now[0] += 50                           # 50 s left: refresh fails, the cached one still serves
    assert await source.token() == first
    now[0] += 30
    second = await source.token()
    assert second != first
    # Nothing valid and the fetch fails: UNAVAILABLE, not a call without a token.

    async def down() -> str:
        raise OSError("unreachable")

    with pytest.raises(Unavailable) as info:
        await TokenSource(down).token()
    assert info.value.reason == "TOKEN_UNAVAILABLE"


async def test_a_refused_token_is_fetched_again(keys, guarded):
    _, target = guarded
    issued = [keys.service("gateway", ttl=-120), keys.service("gateway")]

    async def fetch() -> str:
        return issued.pop(0)

    async with create_channel(target, tokens=TokenSource(fetch)) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        err = await _refused(stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="a"), timeout=2))
        assert err.reason == "TOKEN_EXPIRED"
        for _ in range(5):  # the refusal is noticed in a done-callback's task
            await asyncio.sleep(0)
        reply = await stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(request_id="b"), timeout=2)
        assert reply.applied_count == 1


async def test_streaming_calls_carry_the_token_and_see_the_caller(keys):
    from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc

    class Ingest(ingest_pb2_grpc.IngestServiceServicer):
        async def IngestRecordStream(self, request_iterator, context):
            chunks = [c async for c in request_iterator]
            return ingest_pb2.IngestRecordStreamResponse(chunk_count=len(chunks) if current_principal() else -1)

        async def ExportTrainingRecords(self, request, context):
            for _ in range(2):
                yield ingest_pb2.ExportTrainingRecordsResponse(
                    skipped_without_consent=1 if current_principal().kind == "service" else 0)

    method = "/creditscore.ingest.v1.IngestService/"
    handle = create_server(
        [RegisteredService(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                           ingest_pb2_grpc.add_IngestServiceServicer_to_server, Ingest())],
        ServerSettings(host="127.0.0.1", port=0), domain="test.creditscore",
        auth=AuthInterceptor(TokenVerifier(keys.public_pem, ("ingest", "internal")), {
            method + "IngestRecordStream": {"producer"}, method + "ExportTrainingRecords": {"service"}}))
    await handle.start()
    try:
        target = f"127.0.0.1:{handle.port}"
        async with create_channel(target, tokens=TokenSource.static(keys.service("trainer"))) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            chunks = [c async for c in stub.ExportTrainingRecords(ingest_pb2.ExportTrainingRecordsRequest(),
                                                                  timeout=2)]
            assert [c.skipped_without_consent for c in chunks] == [1, 1]
            # A token given with the call wins over the channel's.
            producer = bearer(keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"]))
            reply = await stub.IngestRecordStream(
                iter([ingest_pb2.IngestRecordStreamRequest(request_id="c0")] * 3), metadata=producer, timeout=2)
            assert reply.chunk_count == 3
            # And the channel's service token is refused where producers only may call.
            err = await _refused(stub.IngestRecordStream(
                iter([ingest_pb2.IngestRecordStreamRequest(request_id="c0")]), timeout=2))
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
        async with create_channel(target) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stub.ExportTrainingRecords(ingest_pb2.ExportTrainingRecordsRequest(), timeout=2):
                    pass
            assert CallError.from_rpc_error(info.value).reason == "TOKEN_MISSING"
    finally:
        await handle.stop(0)


def test_expiry_is_read_against_the_verifiers_clock(keys):
    now = [time.time()]
    verifier = TokenVerifier(keys.public_pem, "gateway", leeway=5, clock=lambda: now[0])
    token = keys.partner("p1", ttl=60)
    now[0] += 64  # within the leeway
    assert verifier.verify(token).id == "p1"
    assert _reason(keys.partner("p2", ttl=60), TokenVerifier(
        keys.public_pem, "gateway", leeway=5, clock=lambda: time.time() + 66)) == "TOKEN_EXPIRED"
