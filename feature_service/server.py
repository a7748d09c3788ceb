"""Builds the feature service's server from its settings (no environment, no globals)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

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
    ServiceBuilder,
    server_auth,
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
    clock: Callable[[], datetime] | None = None,
) -> ServerHandle:
    """The FeatureService on ``settings.server`` over ``settings.database_url``
    (migrated to this build's schema, or checked, per ``settings.auto_migrate``);
    not started.

    Subjects' materialized scores come from the scoring service at
    ``settings.scoring_service_addr`` (with this service's own tokens, from the
    consent service, when auth is required; ``settings.channel`` for retries and
    keepalive), or from ``scorer`` when one is given (then no channel is made);
    the revocation list from the consent service, or from ``revocations`` (tests).
    ``clock`` (tests and benchmarks; None: the system's UTC clock) is "now" for
    vectors and for when materialized scores expire.
    Starting the server starts the score refresher; stopping it stops the
    refresher, waits for the writes in flight, closes the channels and disposes
    of the engine."""
    auth = server_auth(settings.auth, AUDIENCE_INTERNAL, POLICY, service="feature_service")
    async with ServiceBuilder(
        settings.server, tls=settings.tls, tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as build:
        engine = await build.database(settings.database_url, MIGRATIONS, auto_migrate=settings.auto_migrate)
        store = FeatureStore(engine)
        build.callback(store.close)
        # Channels to what is not handed in: the consent service (revocations), the scoring service.
        addrs = ([settings.consent_service_addr] if revocations is None else []) + (
            [settings.scoring_service_addr] if scorer is None else [])
        made: list[grpc.aio.Channel] = []
        if addrs:
            made, _ = build.channels(settings.auth, settings.consent_service_addr, addrs, settings.channel)
        watched: RevocationFetch | grpc.aio.Channel = revocations if revocations is not None else made.pop(0)
        if scorer is None:
            scorer = GrpcScorer(scoring_pb2_grpc.ScoringServiceStub(made[0]))
        book = FeatureBook(
            store,
            **({} if clock is None else {"clock": clock}),
            clock_skew=timedelta(seconds=settings.clock_skew_seconds),
            scorer=scorer,
            score_timeout_seconds=settings.score_timeout_seconds,
        )
        # After the server has drained and before the channels close: writes in
        # flight may still be scoring.
        build.callback(book.drain)
        refresher = ScoreRefresher(
            book,
            refresh_seconds=settings.score_refresh_seconds,
            model_refresh_seconds=settings.model_refresh_seconds,
        )
        build.worker(refresher.start, refresher.stop)
        handle = build.server(
            [RegisteredService(_SERVICE, feature_pb2_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(book))],
            domain=DOMAIN,
            auth=auth,
        )
        build.keep_tokens_current(auth, settings.auth, watched)
    return handle
