"""Builds the gateway server: channels to consent, feature and scoring (carrying the
gateway's own service token), the partner-only policy, the servicer."""

from __future__ import annotations

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_GATEWAY,
    KIND_PARTNER,
    RegisteredService,
    ServerHandle,
    create_channel,
    create_server,
    server_auth,
    service_tokens,
)
from creditscore.scoring.v1 import scoring_pb2_grpc

from .clients import GrpcConsent, GrpcFeatures, GrpcScoring
from .config import Settings
from .servicer import CreditScoreServicer

__all__ = ["POLICY", "build_server"]

_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["CreditScoreService"]

#: Who may call what: partners only, every method.
POLICY = {f"/{_SERVICE.full_name}/{m.name}": {KIND_PARTNER} for m in _SERVICE.methods}


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
    channels: list[grpc.aio.Channel] = []
    try:
        tokens, token_channel = service_tokens(
            settings.auth, settings.consent_service_addr, settings.channel, tls=settings.tls
        )
        if token_channel is not None:
            channels.append(token_channel)
        for addr in (
            settings.consent_service_addr,
            settings.feature_service_addr,
            settings.scoring_service_addr,
        ):
            channels.append(create_channel(
                addr, settings.channel, tracer_provider=tracer_provider, tokens=tokens, tls=settings.tls
            ))
        consent_ch, feature_ch, scoring_ch = channels[-3:]
        servicer = CreditScoreServicer(
            settings,
            consent=GrpcConsent(consent_pb2_grpc.ConsentServiceStub(consent_ch)),
            features=GrpcFeatures(feature_pb2_grpc.FeatureServiceStub(feature_ch)),
            scoring=GrpcScoring(scoring_pb2_grpc.ScoringServiceStub(scoring_ch)),
        )
        handle = create_server(
            [RegisteredService(_SERVICE, gateway_pb2_grpc.add_CreditScoreServiceServicer_to_server, servicer)],
            settings.server,
            domain="gateway.creditscore",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            auth=auth,
            tls=settings.tls,
        )
    except BaseException:
        for channel in channels:
            await channel.close()
        raise
    for channel in channels:
        handle.on_stop.append(channel.close)
    return handle
