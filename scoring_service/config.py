"""Settings of the scoring service, from environment variables (``from_env``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from creditscore.runtime import AuthSettings, ChannelSettings, ServerSettings, TlsSettings, env_field

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_PORT", "Settings"]

DEFAULT_PORT = 50054
# The scorecards shipped inside the package (package data).
DEFAULT_MODEL_DIR = str(Path(__file__).resolve().parent / "models")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=DEFAULT_PORT))
    # Services' tokens checked with TOKEN_PUBLIC_KEY_FILE (AUTH_MODE); mutual TLS (TLS_*).
    # The revocation list comes from the consent service, with this service's own
    # token (SERVICE_CLIENT_ID / SERVICE_CLIENT_SECRET).
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    consent_service_addr: str = env_field(
        "CONSENT_SERVICE_ADDR", "localhost:50051", help="where the revocation list comes from"
    )
    database_url: str = env_field("DATABASE_URL", "sqlite:///var/scoring.db")
    auto_migrate: bool = env_field(
        "AUTO_MIGRATE",
        True,
        help="migrate the database to this build's schema on start; false: only check it is there",
    )
    model_dir: str = env_field(
        "MODEL_DIR", DEFAULT_MODEL_DIR, help="folder of scorecard-<version>.json artifacts"
    )
    model_version: str = env_field(
        "MODEL_VERSION",
        "",
        help="the scorecard activated on the first start against an empty model history "
        "(empty: the highest version found); afterwards ActivateModel/RollbackModel decide",
    )
    model_refresh_seconds: float = env_field(
        "MODEL_REFRESH_SECONDS",
        5.0,
        help="how often a replica re-reads the champion and challenger: the longest a replica "
        "scores with the old champion after another replica handled a change",
    )
    drift_max_scores: int = env_field(
        "DRIFT_MAX_SCORES", 20_000,
        help="the most scores one GetDrift reads; a larger window is sampled (pseudo-randomly, by id)",
    )
