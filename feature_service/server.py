"""Builds the feature service's server from its settings (no environment, no globals)."""

from __future__ import annotations

from datetime import timedelta

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_INTERNAL,
    KIND_SERVICE,
    RegisteredService,
    RevocationFetch,
    ServerHandle,
    create_server,
    keep_tokens_current,
    make_engine,
    prepare_schema,
    server_auth,
    service_channels,
)
from creditscore.scoring.v1 import scoring_pb2_grpc

from .clients import GrpcScorer
from .config import Settings
from .features import FeatureBook
from .migrations import MIGRATIONS
from .scores import Scorer, ScoreRefresher
from .servicer import FeatureServicer
from .store import FeatureStore

__all__ = ["DOMAIN", "POLICY", "build_server"]

DOMAIN = "feature.creditscore"

_SERVICE = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"]
#: Who may call what: services only (ingest applies records; the gateway reads
#: subjects' current scores, and vectors, one subject or a batch of them at a time;
#: the consent service purges and exports).
POLICY = {f"/{_SERVICE.full_name}/{m.name}": {KIND_SERVICE} for m in _SERVICE.methods}


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    scorer: Scorer | None = None,
    revocations: RevocationFetch | None = None,
) -> ServerHandle:
    """The FeatureService on ``settings.server`` over ``settings.database_url``
    (migrated to this build's schema, or checked, per ``settings.auto_migrate``);
    not started.

    Subjects' materialized scores come from the scoring service at
    ``settings.scoring_service_addr`` (with this service's own tokens, from the
    consent service, when auth is required; ``settings.channel`` for retries and
    keepalive), or from ``scorer`` when one is given (then no channel is made).
    Starting the server starts the score refresher; stopping it stops the
    refresher, closes the channels and disposes the engine."""
    auth = server_auth(settings.auth, AUDIENCE_INTERNAL, POLICY, service="feature_service")
    engine = make_engine(settings.database_url)
    channels: list[grpc.aio.Channel] = []
    try:
        store = FeatureStore(engine)
        await prepare_schema(engine, MIGRATIONS, auto_migrate=settings.auto_migrate)
        addrs = ([settings.consent_service_addr] if revocations is None else []) + (
            [settings.scoring_service_addr] if scorer is None else [])
        if addrs:
            made_for, _, made = service_channels(
                settings.auth, settings.consent_service_addr, addrs,
                settings.channel, tls=settings.tls, tracer_provider=tracer_provider,
            )
            channels.extend(made)
            if revocations is None:
                revocations = made_for.pop(0)  # type: ignore[assignment]
            if scorer is None:
                scorer = GrpcScorer(scoring_pb2_grpc.ScoringServiceStub(made_for[0]))
        book = FeatureBook(
            store,
            clock_skew=timedelta(seconds=settings.clock_skew_seconds),
            scorer=scorer,
            score_timeout_seconds=settings.score_timeout_seconds,
        )
        refresher = ScoreRefresher(
            book,
            refresh_seconds=settings.score_refresh_seconds,
            model_refresh_seconds=settings.model_refresh_seconds,
        )
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
        assert revocations is not None
        keep_tokens_current(handle, auth, settings.auth, revocations)
    except BaseException:
        for channel in channels:
            await channel.close()
        await engine.dispose()
        raise
    # on_stop hooks run in reverse: the refresher, the writes in flight, the channels,
    # the store, then the engine.
    handle.on_stop.append(engine.dispose)
    handle.on_stop.append(store.close)
    for channel in channels:
        handle.on_stop.append(channel.close)
    # Before the channels close: writes in flight may still be scoring.
    handle.on_stop.append(book.drain)
    handle.on_start.append(refresher.start)
    handle.on_stop.append(refresher.stop)
    return handle
