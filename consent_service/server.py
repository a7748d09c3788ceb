"""Builds the consent server from its settings: engine, store, servicer, server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    RegisteredService,
    ServerHandle,
    create_server,
    make_engine,
    prepare_schema,
    utcnow,
)

from .config import Settings
from .migrations import MIGRATIONS
from .servicer import ConsentServicer
from .store import ConsentStore

__all__ = ["DOMAIN", "build_server"]

DOMAIN = "consent.creditscore"


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ServerHandle:
    """A built, not yet started, consent server. Reads no environment. The engine
    is disposed when the handle stops. ``clock`` (tests) is the time used for
    grants, withdrawals and expiry."""
    engine = make_engine(settings.database_url)
    try:
        await prepare_schema(engine, MIGRATIONS, auto_migrate=settings.auto_migrate)
        store = ConsentStore(engine)
        handle = create_server(
            [
                RegisteredService(
                    consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                    consent_pb2_grpc.add_ConsentServiceServicer_to_server,
                    ConsentServicer(store, clock=clock),
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
