"""Gateway settings, from environment variables."""

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

from .subject_clients import RelayLimits

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """``auth``: partners' tokens verified with ``TOKEN_PUBLIC_KEY_FILE``; the
    gateway's own (``SERVICE_CLIENT_ID``/``SERVICE_CLIENT_SECRET``) for its calls.
    ``tls``: mutual TLS on the gateway's port and on its calls (``TLS_*``).
    Subjects' tokens are verified the same way (kind ``subject``)."""

    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50050))
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    consent_service_addr: str = env_field("CONSENT_SERVICE_ADDR", "localhost:50051")
    feature_service_addr: str = env_field("FEATURE_SERVICE_ADDR", "localhost:50053")
    scoring_service_addr: str = env_field("SCORING_SERVICE_ADDR", "localhost:50054")
    lookup_timeout_seconds: float = env_field(
        "LOOKUP_TIMEOUT_SECONDS", 3.0, help="budget of a lookup whose caller set no deadline"
    )
    lookup_timeout_cap_seconds: float = env_field(
        "LOOKUP_TIMEOUT_CAP_SECONDS", 10.0, help="a lookup never waits longer, whatever the caller's deadline"
    )
    batch_max_size: int = env_field(
        "BATCH_MAX_SIZE", 128,
        help="most concurrent lookups answered together, with one call to each downstream (<= 256)",
    )
    batch_max_in_flight: int = env_field(
        "BATCH_MAX_IN_FLIGHT", 1,
        help="batches of lookups being answered at once; lookups arriving meanwhile form the next",
    )
    subject_timeout_seconds: float = env_field(
        "SUBJECT_TIMEOUT_SECONDS", 10.0,
        help="budget of a subject's own call (SubjectService, TokenService) whose caller set no deadline",
    )
    subject_timeout_cap_seconds: float = env_field(
        "SUBJECT_TIMEOUT_CAP_SECONDS", 30.0,
        help="a subject's own call never waits longer (an export gathers every service)",
    )
    token_relay_concurrency: int = env_field(
        "TOKEN_RELAY_CONCURRENCY", 8,
        help="IssueToken relays in flight at once (a partner's or producer's costs the consent service one scrypt); "
        "more wait within their deadline",
    )

    partner_lookup_rate: float = env_field(
        "PARTNER_LOOKUP_RATE", 500.0,
        help="lookups a second one partner may make through this replica (a batch check counts each "
        "check); 0: no limit. Beyond it: RESOURCE_EXHAUSTED (LOOKUP_RATE_LIMITED) with RetryInfo",
    )
    partner_lookup_burst: float = env_field(
        "PARTNER_LOOKUP_BURST", 1000.0, help="lookups one partner may make at once after a quiet spell"
    )
    token_rate_per_client: float = env_field(
        "TOKEN_RATE_PER_CLIENT", 0.2, help="IssueToken requests a second per client id (known or not)"
    )
    token_burst_per_client: float = env_field("TOKEN_BURST_PER_CLIENT", 10.0)
    token_rate_per_peer: float = env_field(
        "TOKEN_RATE_PER_PEER", 5.0, help="IssueToken requests a second per peer address"
    )
    token_burst_per_peer: float = env_field("TOKEN_BURST_PER_PEER", 50.0)
    login_free_failures: int = env_field(
        "LOGIN_FREE_FAILURES", 5, help="wrong secrets in a row for one client id before it is locked"
    )
    login_lock_base_seconds: float = env_field(
        "LOGIN_LOCK_BASE_SECONDS", 1.0, help="the first lock; each further wrong secret doubles it"
    )
    login_lock_max_seconds: float = env_field("LOGIN_LOCK_MAX_SECONDS", 300.0, help="the longest lock")

    def relay_limits(self) -> RelayLimits:
        return RelayLimits(
            per_client_rate=self.token_rate_per_client, per_client_burst=self.token_burst_per_client,
            per_peer_rate=self.token_rate_per_peer, per_peer_burst=self.token_burst_per_peer,
            free_failures=self.login_free_failures, lock_base_seconds=self.login_lock_base_seconds,
            lock_max_seconds=self.login_lock_max_seconds,
        )

    def __post_init__(self) -> None:
        if not 1 <= self.batch_max_size <= 256:
            raise SettingsError(f"BATCH_MAX_SIZE must be 1 to 256, not {self.batch_max_size}")
        if self.batch_max_in_flight < 1:
            raise SettingsError(f"BATCH_MAX_IN_FLIGHT must be at least 1, not {self.batch_max_in_flight}")
        if self.partner_lookup_rate < 0 or (self.partner_lookup_rate and self.partner_lookup_burst < 1):
            raise SettingsError("PARTNER_LOOKUP_RATE must be 0 (no limit) or positive, with a burst of at least 1")
        try:
            self.relay_limits()
        except ValueError as exc:
            raise SettingsError(f"token relay limits (TOKEN_*, LOGIN_*): {exc}") from None
