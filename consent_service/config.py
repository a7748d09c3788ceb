"""Settings of the consent service, read from the environment by ``run_main``."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditscore.runtime import (
    SQLITE_SYNCHRONOUS,
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
    """``GRPC_*`` (port 50051 by default), ``DATABASE_URL``, the token key and
    lifetime, the service identities, the addresses of the services a purge or an
    export reaches, and how the purge worker retries.

    Tokens: the consent service alone holds the Ed25519 private key
    (``TOKEN_SIGNING_KEY_FILE``, PEM). When that file does not exist and
    ``TOKEN_KEY_GENERATE`` is true (the default, for development), a key pair is
    generated there on first start, the public key beside it
    (``TOKEN_PUBLIC_KEY_OUT``, by default the same name with ``.pub`` before the
    extension), and the service logs that it did; every other service verifies
    with that public key (their ``TOKEN_PUBLIC_KEY_FILE``). In production, mount
    the key from a secret and set ``TOKEN_KEY_GENERATE=false``.

    Service identities (``SERVICE_CREDENTIALS_FILE``): one line per internal caller,
    ``<service id> <secret>``, where the secret is either the secret itself or its
    hash as ``python -m consent_service hash-secret`` prints it (``scrypt$...``);
    blank lines and ``#`` comments are ignored. Each caller presents the same id
    and secret (its ``SERVICE_CLIENT_ID`` / ``SERVICE_CLIENT_SECRET``) to
    ``IssueToken`` and gets tokens of kind ``service``, audience ``internal``.

    Subjects trade their id and secret (shown once, at enrollment) for tokens of
    kind ``subject``, audience ``gateway``, valid ``SUBJECT_TOKEN_TTL_SECONDS``.
    """

    server: ServerSettings = field(default_factory=lambda: ServerSettings(port=50051))
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    database_url: str = env_field(
        "DATABASE_URL", "sqlite:///var/consent.db", help="SQLite file or PostgreSQL database"
    )
    sqlite_synchronous: str = env_field(
        "SQLITE_SYNCHRONOUS", "NORMAL",
        help="SQLite only: NORMAL (an answered write survives the process crashing) or FULL (it also "
        "survives the machine losing power: one sync of the log per commit, shared by a group commit)",
    )
    auto_migrate: bool = env_field(
        "AUTO_MIGRATE",
        True,
        help="migrate the database to this build's schema on start; false: only check it is there",
    )
    signing_key_file: str = env_field(
        "TOKEN_SIGNING_KEY_FILE", "var/keys/token-signing.pem",
        help="PEM of the Ed25519 private key tokens are signed with",
    )
    key_generate: bool = env_field(
        "TOKEN_KEY_GENERATE", True,
        help="generate a key pair at TOKEN_SIGNING_KEY_FILE when it does not exist (development)",
    )
    public_key_out: str = env_field(
        "TOKEN_PUBLIC_KEY_OUT", "",
        help="where a generated key pair's public key goes (default: beside the private key, .pub)",
    )
    token_ttl_seconds: int = env_field("TOKEN_TTL_SECONDS", 900, help="lifetime of an issued token")
    subject_token_ttl_seconds: int = env_field(
        "SUBJECT_TOKEN_TTL_SECONDS", 900, help="lifetime of a subject's token (kind subject)"
    )
    service_credentials_file: str = env_field(
        "SERVICE_CREDENTIALS_FILE", "", help="internal callers' ids and secrets, one '<id> <secret>' a line"
    )
    ingest_service_addr: str = env_field("INGEST_SERVICE_ADDR", "localhost:50052")
    feature_service_addr: str = env_field("FEATURE_SERVICE_ADDR", "localhost:50053")
    scoring_service_addr: str = env_field("SCORING_SERVICE_ADDR", "localhost:50054")
    downstream_timeout_seconds: float = env_field(
        "DOWNSTREAM_TIMEOUT_SECONDS", 30.0, help="deadline of one purge step or export call"
    )
    purge_poll_seconds: float = env_field(
        "PURGE_POLL_SECONDS", 1.0, help="how often the purge worker looks for due steps when not woken"
    )
    purge_sweep_seconds: float = env_field(
        "PURGE_SWEEP_SECONDS", 30.0,
        help="delay of a purge's second pass, which deletes what was in flight during the first "
        "(longer than a batch's consent check plus an outbox delivery)",
    )
    purge_backoff_max_seconds: float = env_field(
        "PURGE_BACKOFF_MAX_SECONDS", 60.0, help="longest wait between two attempts of a failing step"
    )
    purge_worker: bool = env_field(
        "PURGE_WORKER", True, help="run the purge worker in this replica"
    )

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
            raise SettingsError(
                f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {self.sqlite_synchronous!r}"
            )
