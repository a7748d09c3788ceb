"""Builds the scoring service's server from its settings (reads no environment)."""

from __future__ import annotations

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.runtime import (
    AUDIENCE_INTERNAL,
    KIND_SERVICE,
    RegisteredService,
    RevocationFetch,
    ServerHandle,
    ServiceBuilder,
    server_auth,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .config import Settings
from .lifecycle import Lifecycle
from .migrations import MIGRATIONS
from .registry import ModelRegistry
from .scoring import Scorer
from .servicer import ScoringServicer
from .store import ModelEventStore, ScoreStore

__all__ = ["DOMAIN", "POLICY", "build_server"]

DOMAIN = "scoring.creditscore"

_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"]
#: Who may call what: services only (the gateway scores, one vector or a batch;
#: the feature service scores its subjects' current vectors with ScoreBatch and
#: asks ListModels which model is active; operators' tools list, activate and roll
#: back models with a service's credentials; the consent service purges and
#: exports). Partners and producers never reach it. The policy tells callers apart
#: by kind only, not by service id: every service may call every method.
POLICY = {f"/{_SERVICE.full_name}/{m.name}": {KIND_SERVICE} for m in _SERVICE.methods}


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    revocations: RevocationFetch | None = None,
) -> ServerHandle:
    """Loads the scorecards (``ModelLoadError`` when there is none to score with:
    the service refuses to start), brings the database to this build's schema
    (migrated, or only checked, per ``settings.auto_migrate``), reads the
    champion and challenger from the model history (writing the first activation
    on an empty one) and builds the server. Started, the server re-reads the
    model history every ``settings.model_refresh_seconds``, and, with auth, the
    revocation list from the consent service (or from ``revocations``: tests)."""
    if settings.model_refresh_seconds <= 0:
        raise ValueError("MODEL_REFRESH_SECONDS must be positive")
    auth = server_auth(settings.auth, AUDIENCE_INTERNAL, POLICY, service="scoring_service")
    registry = ModelRegistry.load(settings.model_dir, settings.model_version)
    async with ServiceBuilder(
        settings.server, tls=settings.tls, tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as build:
        engine = await build.database(settings.database_url, MIGRATIONS, auto_migrate=settings.auto_migrate)
        store = ScoreStore(engine)
        build.callback(store.close)
        lifecycle = await Lifecycle.open(registry, ModelEventStore(engine))
        scorer = Scorer(lifecycle, store, drift_max_scores=settings.drift_max_scores)
        watched: RevocationFetch | grpc.aio.Channel | None = revocations
        if auth is not None and revocations is None:
            # The revocation list, from the consent service (this service calls no other).
            (watched,), _ = build.channels(
                settings.auth, settings.consent_service_addr, (settings.consent_service_addr,), settings.channel
            )
        build.task(lambda: lifecycle.run_refresher(settings.model_refresh_seconds), name="model-refresher")
        servicer = ScoringServicer(scorer)
        handle = build.server(
            [RegisteredService(_SERVICE, scoring_pb2_grpc.add_ScoringServiceServicer_to_server, servicer)],
            domain=DOMAIN,
            auth=auth,
        )
        if watched is not None:
            build.keep_tokens_current(auth, settings.auth, watched)
    return handle

