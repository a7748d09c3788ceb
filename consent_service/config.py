"""Settings of the consent service, read from the environment by ``run_main``."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import ServerSettings, env_field

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """``GRPC_*`` (port 50051 by default) and ``DATABASE_URL``. The consent
    service calls no other service, so it has no ``*_SERVICE_ADDR``."""

    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50051))
    database_url: str = env_field(
        "DATABASE_URL", "sqlite:///var/consent.db", help="SQLite file or PostgreSQL database"
    )
    auto_migrate: bool = env_field(
        "AUTO_MIGRATE",
        True,
        help="migrate the database to this build's schema on start; false: only check it is there",
    )
