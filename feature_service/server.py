"""Builds the feature service's server from its settings (no environment, no globals)."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.sdk.trace import TracerProvider

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import RegisteredService, ServerHandle, create_server, make_engine

from .config import Settings
from .features import FeatureBook
from .servicer import FeatureServicer
from .store import FeatureStore

__all__ = ["DOMAIN", "build_server"]

DOMAIN = "feature.creditscore"


async def build_server(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> ServerHandle:
    """The FeatureService on ``settings.server`` over ``settings.database_url``
    (schema created if missing); not started. Stopping it disposes the engine."""
    engine = make_engine(settings.database_url)
    try:
        store = FeatureStore(engine)
        await store.create_schema()
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
        )
    except BaseException:
        await engine.dispose()
        raise
    handle.on_stop.append(engine.dispose)
    return handle
