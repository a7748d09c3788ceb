"""Builds the gateway server: channels to consent, feature and scoring (carrying the
gateway's own service token), the policy (partners: CreditScoreService; subjects:
SubjectService; anyone: TokenService), the servicers."""

from __future__ import annotations

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc, subject_pb2, subject_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    KIND_PARTNER,
    KIND_SUBJECT,
    PUBLIC,
    Outgoing,
    RegisteredService,
    ServerHandle,
    ServiceBuilder,
    server_auth,
)
from creditscore.scoring.v1 import scoring_pb2_grpc

from .clients import GrpcConsent, GrpcFeatures, GrpcScoring
from .config import Settings
from .servicer import CreditScoreServicer
from .subject_clients import SubjectConsent, SubjectFeatures, SubjectScoring, TokenRelay
from .subject_servicer import SubjectServicer, TokenServicer

__all__ = ["POLICY", "build_server"]

_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["CreditScoreService"]

_SUBJECT_SERVICE = subject_pb2.DESCRIPTOR.services_by_name["SubjectService"]
_TOKEN_SERVICE = subject_pb2.DESCRIPTOR.services_by_name["TokenService"]

#: Who may call what: the partner API partners only, the subject's API subjects
#: only, and IssueToken anyone (the credentials are the request).
POLICY = {
    **{f"/{_SERVICE.full_name}/{m.name}": {KIND_PARTNER} for m in _SERVICE.methods},
    **{f"/{_SUBJECT_SERVICE.full_name}/{m.name}": {KIND_SUBJECT} for m in _SUBJECT_SERVICE.methods},
    **{f"/{_TOKEN_SERVICE.full_name}/{m.name}": PUBLIC for m in _TOKEN_SERVICE.methods},
}


def _subject_services(
    settings: Settings,
    consent: grpc.aio.Channel,
    feature: grpc.aio.Channel,
    scoring: grpc.aio.Channel,
    relay: grpc.aio.Channel,
) -> list[RegisteredService]:
    """SubjectService on the gateway's channels (its service token), and
    TokenService on ``relay``, a channel to the consent service without one."""
    subject = SubjectServicer(
        settings,
        consent=SubjectConsent(consent_pb2_grpc.ConsentServiceStub(consent)),
        features=SubjectFeatures(feature_pb2_grpc.FeatureServiceStub(feature)),
        scoring=SubjectScoring(scoring_pb2_grpc.ScoringServiceStub(scoring)),
    )
    tokens = TokenServicer(settings, relay=TokenRelay(
        consent_pb2_grpc.ConsentServiceStub(relay), concurrency=settings.token_relay_concurrency,
        limits=settings.relay_limits(),
    ))
    return [
        RegisteredService(_SUBJECT_SERVICE, subject_pb2_grpc.add_SubjectServiceServicer_to_server, subject),
        RegisteredService(_TOKEN_SERVICE, subject_pb2_grpc.add_TokenServiceServicer_to_server, tokens),
    ]


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ServerHandle:
    """The gateway, built and not started. Reads no environment. With
    ``AUTH_MODE=required`` it needs the token public key and its own service
    credentials (``SettingsError`` otherwise)."""
    auth = server_auth(settings.auth, AUDIENCE_GATEWAY, POLICY, service="gateway")
    async with ServiceBuilder(
        settings.server, tls=settings.tls, tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as build:
        downstream = (settings.consent_service_addr, settings.feature_service_addr, settings.scoring_service_addr)
        (consent_ch, feature_ch, scoring_ch), tokens = build.channels(
            settings.auth, settings.consent_service_addr, downstream, settings.channel
        )
        # IssueToken relayed for callers: a channel to the consent service without our token.
        relay_ch = build.channel(settings.consent_service_addr, settings.channel)
        # The lookup's batched calls on channels of their own, without client
        # interceptors: each call carries its token, trace context and timeout.
        lookup_consent, lookup_feature, lookup_scoring = (
            build.direct_channel(addr, settings.channel) for addr in downstream
        )
        outgoing = Outgoing(tokens)
        servicer = CreditScoreServicer(
            settings,
            consent=GrpcConsent(consent_pb2_grpc.ConsentServiceStub(lookup_consent), outgoing=outgoing),
            features=GrpcFeatures(feature_pb2_grpc.FeatureServiceStub(lookup_feature), outgoing=outgoing),
            scoring=GrpcScoring(scoring_pb2_grpc.ScoringServiceStub(lookup_scoring), outgoing=outgoing),
            tracer=tracer_provider.get_tracer("gateway") if tracer_provider is not None else None,
            meter=meter_provider.get_meter("gateway") if meter_provider is not None else None,
        )
        handle = build.server(
            [
                RegisteredService(_SERVICE, gateway_pb2_grpc.add_CreditScoreServiceServicer_to_server, servicer),
                *_subject_services(settings, consent_ch, feature_ch, scoring_ch, relay_ch),
            ],
            domain="gateway.creditscore",
            auth=auth,
        )
        build.keep_tokens_current(auth, settings.auth, consent_ch)
    return handle
