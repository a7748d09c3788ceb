"""Builds the feature service's server from its settings (no environment, no globals)."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import RegisteredService, ServerHandle, create_server, make_engine, prepare_schema

from .config import Settings
from .features import FeatureBook
from .migrations import MIGRATIONS
from .servicer import FeatureServicer
from .store import FeatureStore

__all__ = ["DOMAIN", "build_server"]

DOMAIN = "feature.creditscore"


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ServerHandle:
    """The FeatureService on ``settings.server`` over ``settings.database_url``
    (migrated to this build's schema, or checked, per ``settings.auto_migrate``);
    not started. Stopping it disposes the engine."""
    engine = make_engine(settings.database_url)
    try:
        store = FeatureStore(engine)
        await prepare_schema(engine, MIGRATIONS, auto_migrate=settings.auto_migrate)
        book = FeatureBook(store, clock_skew=timedelta(seconds=settings.clock_skew_seconds))
        handle = create_server(
            [
                RegisteredService(
                    feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                    feature_pb2_grpc.add_FeatureServiceServicer_to_server,
                    FeatureServicer(book),
                )
            ],
            settings.server,
            domain=DOMAIN,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
    except BaseException:
        await engine.dispose()
        raise
    handle.on_stop.append(engine.dispose)
    return handle
