"""Gateway settings, from environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import ChannelSettings, ServerSettings, env_field

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50050))
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    consent_service_addr: str = env_field("CONSENT_SERVICE_ADDR", "localhost:50051")
    feature_service_addr: str = env_field("FEATURE_SERVICE_ADDR", "localhost:50053")
    scoring_service_addr: str = env_field("SCORING_SERVICE_ADDR", "localhost:50054")
    lookup_timeout_seconds: float = env_field(
        "LOOKUP_TIMEOUT_SECONDS", 3.0, help="budget of a lookup whose caller set no deadline"
    )
    lookup_timeout_cap_seconds: float = env_field(
        "LOOKUP_TIMEOUT_CAP_SECONDS", 10.0, help="a lookup never waits longer, whatever the caller's deadline"
    )
