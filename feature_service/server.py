"""Builds the feature service's server from its settings (no environment, no globals)."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_INTERNAL,
    KIND_SERVICE,
    RegisteredService,
    ServerHandle,
    create_server,
    make_engine,
    prepare_schema,
    server_auth,
)

from .config import Settings
from .features import FeatureBook
from .migrations import MIGRATIONS
from .servicer import FeatureServicer
from .store import FeatureStore

__all__ = ["DOMAIN", "POLICY", "build_server"]

DOMAIN = "feature.creditscore"

_SERVICE = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"]
#: Who may call what: services only (ingest applies records; the gateway reads
#: vectors, one subject or a batch of them at a time; the consent service purges
#: and exports).
POLICY = {f"/{_SERVICE.full_name}/{m.name}": {KIND_SERVICE} for m in _SERVICE.methods}


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ServerHandle:
    """The FeatureService on ``settings.server`` over ``settings.database_url``
    (migrated to this build's schema, or checked, per ``settings.auto_migrate``);
    not started. Stopping it disposes the engine."""
    auth = server_auth(settings.auth, AUDIENCE_INTERNAL, POLICY, service="feature_service")
    engine = make_engine(settings.database_url)
    try:
        store = FeatureStore(engine)
        await prepare_schema(engine, MIGRATIONS, auto_migrate=settings.auto_migrate)
        book = FeatureBook(store, clock_skew=timedelta(seconds=settings.clock_skew_seconds))
        handle = create_server(
            [
                RegisteredService(
                    _SERVICE,
                    feature_pb2_grpc.add_FeatureServiceServicer_to_server,
                    FeatureServicer(book),
                )
            ],
            settings.server,
            domain=DOMAIN,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            auth=auth,
            tls=settings.tls,
        )
    except BaseException:
        await engine.dispose()
        raise
    handle.on_stop.append(engine.dispose)
    handle.on_stop.append(store.close)
    return handle
