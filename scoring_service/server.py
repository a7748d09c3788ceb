"""Builds the scoring service's server from its settings (reads no environment)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from creditscore.runtime import RegisteredService, ServerHandle, create_server, make_engine
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .config import Settings
from .registry import ModelRegistry
from .scoring import Scorer
from .servicer import ScoringServicer
from .store import ScoreStore

__all__ = ["DOMAIN", "build_server"]

DOMAIN = "scoring.creditscore"


async def build_server(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> ServerHandle:
    """Loads the scorecards (``ModelLoadError`` when there is none to score with:
    the service refuses to start), opens the store and builds the server."""
    registry = ModelRegistry.load(settings.model_dir, settings.model_version)
    engine = make_engine(settings.database_url)
    try:
        store = ScoreStore(engine)
        await store.create_schema()
        servicer = ScoringServicer(Scorer(registry, store))
        handle = create_server(
            [
                RegisteredService(
                    scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"],
                    scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
                    servicer,
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
