"""Settings of the ingest service, from environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import ChannelSettings, ServerSettings, env_field

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Everything ``build_server`` needs; ``from_env(Settings)`` reads it."""

    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50052))
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    database_url: str = env_field("DATABASE_URL", "sqlite:///var/ingest.db")
    consent_service_addr: str = env_field("CONSENT_SERVICE_ADDR", "localhost:50051")
    feature_service_addr: str = env_field("FEATURE_SERVICE_ADDR", "localhost:50053")
    consent_timeout_seconds: float = env_field(
        "CONSENT_TIMEOUT_SECONDS",
        5.0,
        help="bound of a consent check when the caller set no deadline",
    )
    outbox_batch: int = env_field(
        "OUTBOX_BATCH", 500, help="most outbox rows per ApplyRecords call (1 to 1000)"
    )
    outbox_poll_seconds: float = env_field(
        "OUTBOX_POLL_SECONDS",
        0.5,
        help="how often the dispatcher looks for due rows when not woken",
    )
    outbox_delivery_timeout_seconds: float = env_field(
        "OUTBOX_DELIVERY_TIMEOUT_SECONDS", 10.0, help="deadline of one ApplyRecords call"
    )
