"""Builds the gateway server: channels to consent, feature and scoring, the servicer."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import RegisteredService, ServerHandle, create_channel, create_server
from creditscore.scoring.v1 import scoring_pb2_grpc

from .clients import GrpcConsent, GrpcFeatures, GrpcScoring
from .config import Settings
from .servicer import CreditScoreServicer

__all__ = ["build_server"]


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ServerHandle:
    channels = [
        create_channel(addr, settings.channel, tracer_provider=tracer_provider)
        for addr in (
            settings.consent_service_addr,
            settings.feature_service_addr,
            settings.scoring_service_addr,
        )
    ]
    consent_ch, feature_ch, scoring_ch = channels
    servicer = CreditScoreServicer(
        settings,
        consent=GrpcConsent(consent_pb2_grpc.ConsentServiceStub(consent_ch)),
        features=GrpcFeatures(feature_pb2_grpc.FeatureServiceStub(feature_ch)),
        scoring=GrpcScoring(scoring_pb2_grpc.ScoringServiceStub(scoring_ch)),
    )
    handle = create_server(
        [
            RegisteredService(
                gateway_pb2.DESCRIPTOR.services_by_name["CreditScoreService"],
                gateway_pb2_grpc.add_CreditScoreServiceServicer_to_server,
                servicer,
            )
        ],
        settings.server,
        domain="gateway.creditscore",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    for channel in channels:
        handle.on_stop.append(channel.close)
    return handle
