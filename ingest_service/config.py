"""Settings of the ingest service, from environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import AuthSettings, ChannelSettings, ServerSettings, TlsSettings, env_field

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Everything ``build_server`` needs; ``from_env(Settings)`` reads it."""

    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50052))
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    # Producers' and services' tokens checked with TOKEN_PUBLIC_KEY_FILE; the
    # service's own (SERVICE_CLIENT_ID/SECRET) for its calls; mutual TLS (TLS_*).
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    database_url: str = env_field("DATABASE_URL", "sqlite:///var/ingest.db")
    auto_migrate: bool = env_field(
        "AUTO_MIGRATE",
        True,
        help="migrate the database to this build's schema on start; false: only check it is there",
    )
    consent_service_addr: str = env_field("CONSENT_SERVICE_ADDR", "localhost:50051")
    feature_service_addr: str = env_field("FEATURE_SERVICE_ADDR", "localhost:50053")
    consent_timeout_seconds: float = env_field(
        "CONSENT_TIMEOUT_SECONDS",
        5.0,
        help="bound of a consent check when the caller set no deadline",
    )
    outbox_batch: int = env_field(
        "OUTBOX_BATCH",
        500,
        help="most records per ApplyRecords call (1 to 1000); a call takes whole outbox rows "
        "(one ingested batch each), at least one",
    )
    outbox_poll_seconds: float = env_field(
        "OUTBOX_POLL_SECONDS",
        0.5,
        help="how often the dispatcher looks for due rows when not woken",
    )
    outbox_delivery_timeout_seconds: float = env_field(
        "OUTBOX_DELIVERY_TIMEOUT_SECONDS", 10.0, help="deadline of one ApplyRecords call"
    )
    outbox_dispatch: bool = env_field(
        "OUTBOX_DISPATCH",
        True,
        help="deliver the outbox from this replica; false: only take records (another replica delivers)",
    )
    outbox_concurrency: int = env_field(
        "OUTBOX_CONCURRENCY",
        1,
        help="deliveries in flight at once from this replica (1 to 16): with 2 the next batch is "
        "claimed and sent while the feature service applies the last",
    )
    outbox_lease_margin_seconds: float = env_field(
        "OUTBOX_LEASE_MARGIN_SECONDS",
        5.0,
        help="a claimed outbox row stays leased for the delivery timeout plus this; a crashed "
        "dispatcher's rows come due again after it",
    )
