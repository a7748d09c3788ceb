"""Feature service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import (
    AuthSettings,
    ChannelSettings,
    ServerSettings,
    SettingsError,
    TlsSettings,
    env_field,
)

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50053))
    # Retries and keepalive of its calls to the scoring service (and the token fetch).
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    # Services' tokens checked with TOKEN_PUBLIC_KEY_FILE (AUTH_MODE); the service's
    # own (SERVICE_CLIENT_ID/SECRET) for its calls to scoring; mutual TLS (TLS_*).
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
    # The consent service issues this service's tokens (IssueToken) for its calls.
    consent_service_addr: str = env_field("CONSENT_SERVICE_ADDR", "localhost:50051")
    scoring_service_addr: str = env_field("SCORING_SERVICE_ADDR", "localhost:50054")
    score_timeout_seconds: float = env_field(
        "SCORE_TIMEOUT_SECONDS",
        5.0,
        help="bound of one scoring of a batch of subjects (ScoreBatch) or check of the active "
        "model (ListModels) by the scoring service",
    )
    score_refresh_seconds: float = env_field(
        "SCORE_REFRESH_SECONDS",
        1.0,
        help="how often materialized scores whose vector has expired (valid_until passed) are scored again",
    )
    model_refresh_seconds: float = env_field(
        "MODEL_REFRESH_SECONDS",
        5.0,
        help="how often the scoring service is asked which model is active; after a change, "
        "every materialized score of another model is scored again",
    )

    def __post_init__(self) -> None:
        for variable, value in (
            ("SCORE_TIMEOUT_SECONDS", self.score_timeout_seconds),
            ("SCORE_REFRESH_SECONDS", self.score_refresh_seconds),
            ("MODEL_REFRESH_SECONDS", self.model_refresh_seconds),
        ):
            if not value > 0:
                raise SettingsError(f"{variable} must be positive, not {value}")
