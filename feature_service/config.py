"""Feature service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import AuthSettings, ServerSettings, TlsSettings, env_field

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50053))
    # Services' tokens checked with TOKEN_PUBLIC_KEY_FILE (AUTH_MODE); mutual TLS (TLS_*).
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    database_url: str = env_field("DATABASE_URL", "sqlite:///var/feature.db")
    auto_migrate: bool = env_field(
        "AUTO_MIGRATE",
        True,
        help="migrate the database to this build's schema on start; false: only check it is there",
    )
    clock_skew_seconds: float = env_field(
        "FEATURE_CLOCK_SKEW_SECONDS",
        300.0,
        help="how far ahead of this host's clock a record's event time or a lookup's as-of time may be "
        "(at least the ingest service's 5 minutes: a record ingest accepted must not be refused here)",
    )
