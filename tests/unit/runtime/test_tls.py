"""Mutual TLS from certificate files, with certificates made in the test: a client
with a certificate of the CA is accepted; one without a certificate, or with one
of another CA, is refused; a service token is accepted on a service-only method
only from a service's certificate."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import (
    AuthInterceptor,
    CallError,
    ChannelSettings,
    RegisteredService,
    ServerSettings,
    SettingsError,
    TlsSettings,
    TokenVerifier,
    create_channel,
    create_server,
    current_principal,
    from_env,
)
from tests.authkit import Ca, TokenKeys, bearer

APPLY = "/creditscore.feature.v1.FeatureService/ApplyRecords"
VECTOR = "/creditscore.feature.v1.FeatureService/GetFeatureVector"
NO_RETRY = ChannelSettings(retry_max_attempts=2, retry_initial_backoff_seconds=0.01)


class _Features(feature_pb2_grpc.FeatureServiceServicer):
    async def GetFeatureVector(self, request, context):
        p = current_principal()
        return feature_pb2.GetFeatureVectorResponse(
            feature_vector=feature_pb2.FeatureVector(subject_id=p.id if p else "anyone"))

    async def ApplyRecords(self, request, context):
        return feature_pb2.ApplyRecordsResponse(applied_count=1)


def _serve(tls: TlsSettings, auth: AuthInterceptor | None = None):
    return create_server(
        [RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, _Features())],
        ServerSettings(host="127.0.0.1", port=0), domain="test.creditscore", auth=auth, tls=tls)


@pytest.fixture
def pki(tmp_path):
    return Ca(tmp_path / "ca"), Ca(tmp_path / "other", name="other-ca")


async def _health(target: str, tls: TlsSettings | None) -> CallError | None:
    async with create_channel(target, NO_RETRY, tls=tls) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError as exc:
            return CallError.from_rpc_error(exc)
    return None


async def test_mutual_tls_accepts_the_cas_clients_and_refuses_others(pki):
    ca, other = pki
    handle = _serve(ca.issue("feature_service"))
    await handle.start()
    target = f"127.0.0.1:{handle.port}"
    try:
        assert await _health(target, ca.issue("gateway")) is None
        # A client certificate that is not a service's, but of the same CA: TLS accepts it.
        assert await _health(target, ca.issue("partner-1", service=False)) is None
        # No certificate at all: plaintext, and TLS without a client certificate.
        assert (await _health(target, None)).code == grpc.StatusCode.UNAVAILABLE
        no_cert = TlsSettings(ca_file=str(ca.ca_file))
        async with grpc.aio.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=ca.ca_file.read_bytes())) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not no_cert.cert_file
        # A certificate of another CA (that trusts ours, so only the server refuses).
        foreign = other.issue("gateway", ca_file=ca.ca_file)
        assert (await _health(target, foreign)).code == grpc.StatusCode.UNAVAILABLE
    finally:
        await handle.stop(0)


async def test_the_client_refuses_a_server_of_another_ca(pki):
    ca, other = pki
    handle = _serve(other.issue("feature_service", ca_file=ca.ca_file))
    await handle.start()
    try:
        err = await _health(f"127.0.0.1:{handle.port}", ca.issue("gateway"))
        assert err is not None and err.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await handle.stop(0)


async def test_server_tls_without_client_certificates_when_asked(pki):
    ca, _ = pki
    handle = _serve(ca.issue("gateway", require_client_auth=False))
    await handle.start()
    try:
        async with grpc.aio.secure_channel(
                f"127.0.0.1:{handle.port}",
                grpc.ssl_channel_credentials(root_certificates=ca.ca_file.read_bytes())) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await handle.stop(0)


async def test_service_tokens_need_a_service_certificate_under_mutual_tls(pki):
    ca, _ = pki
    keys = TokenKeys.generate()
    auth = AuthInterceptor(TokenVerifier(keys.public_pem, ("internal", "gateway")),
                           {APPLY: {"service"}, VECTOR: {"service", "partner"}})
    handle = _serve(ca.issue("feature_service"), auth)
    await handle.start()
    target = f"127.0.0.1:{handle.port}"
    service_token = bearer(keys.service("ingest_service"))
    request = feature_pb2.ApplyRecordsRequest(request_id="r")
    try:
        async with create_channel(target, NO_RETRY, tls=ca.issue("ingest_service")) as channel:
            reply = await feature_pb2_grpc.FeatureServiceStub(channel).ApplyRecords(
                request, metadata=service_token, timeout=3)
            assert reply.applied_count == 1
        # The same (stolen) service token from a holder of a non-service certificate.
        async with create_channel(target, NO_RETRY, tls=ca.issue("partner-1", service=False)) as channel:
            stub = feature_pb2_grpc.FeatureServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ApplyRecords(request, metadata=service_token, timeout=3)
            err = CallError.from_rpc_error(info.value)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SERVICE_CERTIFICATE_REQUIRED")
            # A partner's own calls from its certificate go through as usual.
            reply = await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id="s"),
                                                metadata=bearer(keys.partner("partner-1")), timeout=3)
            assert reply.feature_vector.subject_id == "partner-1"
    finally:
        await handle.stop(0)


def test_tls_settings_from_the_environment_and_half_settings(pki, tmp_path):
    ca, _ = pki
    full = ca.issue("gateway")
    env = {"TLS_CERT_FILE": full.cert_file, "TLS_KEY_FILE": full.key_file, "TLS_CA_FILE": full.ca_file,
           "TLS_REQUIRE_CLIENT_AUTH": "false", "TLS_SERVER_NAME": "consent.internal"}
    settings = from_env(TlsSettings, env)
    assert settings.enabled and not settings.require_client_auth
    assert settings.channel_options() == [("grpc.ssl_target_name_override", "consent.internal")]
    assert not from_env(TlsSettings, {}).enabled and from_env(TlsSettings, {}).require_client_auth
    half = dataclasses.replace(full, ca_file="")
    with pytest.raises(SettingsError, match="TLS_CA_FILE"):
        half.check()
    with pytest.raises(SettingsError, match="TLS_CA_FILE"):
        _serve(half)  # refused before anything listens: never a silent plaintext port
    with pytest.raises(SettingsError, match="no such file"):
        dataclasses.replace(full, key_file=str(tmp_path / "missing.key")).check()
