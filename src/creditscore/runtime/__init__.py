"""creditscore.runtime: the one shared library of the services.

Server bootstrap (health, reflection, graceful stop) and the builder that owns what
a server acquires (``ServiceBuilder``, ``ServiceStack``), the error model and its
interceptor, authentication (bearer tokens, ``_auth``) and mutual TLS (``_tls``),
client channels with deadlines and retries, tracing and metrics (calls, errors,
latency per RPC; gauges) from ``OTEL_*``, settings from the environment, database
engines and their schema migrations, and small protobuf helpers.

Each name is loaded on first use (PEP 562): ``from creditscore.runtime import
CallError`` loads the error model, not the database, token or telemetry code. The
light way to the errors alone is ``creditscore.runtime.errors``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._auth import (
        AUDIENCE_GATEWAY,
        AUDIENCE_INGEST,
        AUDIENCE_INTERNAL,
        ISSUER,
        KIND_PARTNER,
        KIND_PRODUCER,
        KIND_SERVICE,
        KIND_SUBJECT,
        PUBLIC,
        SUBJECT_SESSION_METADATA,
        AuthInterceptor,
        AuthSettings,
        BearerTokenInterceptor,
        Principal,
        SubjectSession,
        TokenSource,
        TokenVerifier,
        current_principal,
        server_auth,
        subject_session,
        subject_session_of,
        token_expiry,
        warn_disabled,
    )
    from ._batching import (
        BATCH_SIZE_METRIC,
        Batcher,
    )
    from ._builder import (
        ServiceBuilder,
    )
    from ._channels import (
        ChannelSettings,
        Deadline,
        Outgoing,
        create_channel,
        derive_timeout,
        direct_channel,
        downstream_errors,
        health_status,
        service_channels,
        service_tokens,
        tool_channel,
    )
    from ._config import (
        SettingsError,
        env_field,
        from_env,
    )
    from ._db import (
        SQLITE_SYNCHRONOUS,
        Transactions,
        UtcDateTime,
        begin_write,
        create_schema,
        dialect_insert,
        make_engine,
        normalize_database_url,
    )
    from ._errors import (
        Aborted,
        AlreadyExists,
        CallError,
        DeadlineExceeded,
        DomainError,
        FailedPrecondition,
        FieldViolation,
        InvalidArgument,
        NotFound,
        PermissionDenied,
        ResourceExhausted,
        Unauthenticated,
        Unavailable,
        Violations,
        to_status,
    )
    from ._group_commit import GroupCommit
    from ._ids import (
        MAX_SUBJECT_ID_LENGTH,
        SUBJECT_ID_RULE,
        check_subject_id,
        is_subject_id,
    )
    from ._interceptors import (
        ErrorInterceptor,
    )
    from ._keys import (
        KeyRing,
        KeyRingFile,
        key_id,
    )
    from ._metrics import (
        CALLS_METRIC,
        DURATION_METRIC,
        AsyncGauge,
        MetricsInterceptor,
    )
    from ._migrations import (
        Migrations,
        SchemaError,
        check_schema,
        prepare_schema,
        run_migrate,
        run_migrations_env,
        schema_differences,
        upgrade_schema,
    )
    from ._proto import (
        decode_page_token,
        encode_page_token,
        from_timestamp,
        page_size,
        to_timestamp,
        utcnow,
    )
    from ._purge import (
        PURGE_REQUEST_ID_LENGTH,
        PurgedTable,
        PurgeLedger,
        check_purge_request,
        purge_requests_table,
    )
    from ._ratelimit import (
        LoginGuard,
        RateLimiter,
    )
    from ._revocation import (
        REVOCATION_KINDS,
        REVOKE_CLIENT,
        REVOKE_SUBJECT,
        REVOKE_TOKEN,
        AuthWatch,
        RevocationEntry,
        RevocationFetch,
        RevocationPage,
        Revocations,
        revoked,
    )
    from ._server import (
        RegisteredService,
        ServerHandle,
        ServerSettings,
        create_server,
        keep_tokens_current,
        run_main,
        serve,
    )
    from ._stack import (
        ServiceStack,
    )
    from ._telemetry import (
        configure_metrics,
        configure_tracing,
    )
    from ._tls import (
        SERVICE_SPIFFE_PREFIX,
        TlsSettings,
        service_name_of,
    )

#: The module that defines each public name, loaded when the name is first used.
_MODULES: dict[str, tuple[str, ...]] = {
    "_auth": (
        "AUDIENCE_GATEWAY", "AUDIENCE_INGEST", "AUDIENCE_INTERNAL", "ISSUER", "KIND_PARTNER", "KIND_PRODUCER",
        "KIND_SERVICE", "KIND_SUBJECT", "PUBLIC", "SUBJECT_SESSION_METADATA", "AuthInterceptor", "AuthSettings",
        "BearerTokenInterceptor", "Principal", "SubjectSession", "TokenSource", "TokenVerifier", "current_principal",
        "server_auth", "subject_session", "subject_session_of", "token_expiry", "warn_disabled",
    ),
    "_batching": ("BATCH_SIZE_METRIC", "Batcher"),
    "_builder": ("ServiceBuilder",),
    "_group_commit": ("GroupCommit",),
    "_channels": (
        "ChannelSettings", "Deadline", "Outgoing", "create_channel", "derive_timeout", "direct_channel",
        "downstream_errors", "health_status", "service_channels", "service_tokens", "tool_channel",
    ),
    "_config": ("SettingsError", "env_field", "from_env"),
    "_db": (
        "SQLITE_SYNCHRONOUS", "Transactions", "UtcDateTime", "begin_write", "create_schema", "dialect_insert",
        "make_engine", "normalize_database_url",
    ),
    "_errors": (
        "Aborted", "AlreadyExists", "CallError", "DeadlineExceeded", "DomainError", "FailedPrecondition",
        "FieldViolation", "InvalidArgument", "NotFound", "PermissionDenied", "ResourceExhausted", "Unauthenticated",
        "Unavailable", "Violations", "to_status",
    ),
    "_ids": ("MAX_SUBJECT_ID_LENGTH", "SUBJECT_ID_RULE", "check_subject_id", "is_subject_id"),
    "_interceptors": ("ErrorInterceptor",),
    "_keys": ("KeyRing", "KeyRingFile", "key_id"),
    "_metrics": ("CALLS_METRIC", "DURATION_METRIC", "AsyncGauge", "MetricsInterceptor"),
    "_migrations": (
        "Migrations", "SchemaError", "check_schema", "prepare_schema", "run_migrate", "run_migrations_env",
        "schema_differences", "upgrade_schema",
    ),
    "_proto": ("decode_page_token", "encode_page_token", "from_timestamp", "page_size", "to_timestamp", "utcnow"),
    "_purge": ("PURGE_REQUEST_ID_LENGTH", "PurgedTable", "PurgeLedger", "check_purge_request", "purge_requests_table"),
    "_ratelimit": ("LoginGuard", "RateLimiter"),
    "_revocation": (
        "REVOCATION_KINDS", "REVOKE_CLIENT", "REVOKE_SUBJECT", "REVOKE_TOKEN", "AuthWatch", "RevocationEntry",
        "RevocationFetch", "RevocationPage", "Revocations", "revoked",
    ),
    "_server": (
        "RegisteredService", "ServerHandle", "ServerSettings", "create_server", "keep_tokens_current", "run_main",
        "serve",
    ),
    "_stack": ("ServiceStack",),
    "_telemetry": ("configure_metrics", "configure_tracing"),
    "_tls": ("SERVICE_SPIFFE_PREFIX", "TlsSettings", "service_name_of"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "AUDIENCE_GATEWAY",
    "AUDIENCE_INGEST",
    "AUDIENCE_INTERNAL",
    "Aborted",
    "AlreadyExists",
    "AsyncGauge",
    "AuthInterceptor",
    "AuthSettings",
    "AuthWatch",
    "BATCH_SIZE_METRIC",
    "Batcher",
    "BearerTokenInterceptor",
    "CALLS_METRIC",
    "CallError",
    "ChannelSettings",
    "DURATION_METRIC",
    "Deadline",
    "DeadlineExceeded",
    "DomainError",
    "ErrorInterceptor",
    "FailedPrecondition",
    "FieldViolation",
    "GroupCommit",
    "ISSUER",
    "InvalidArgument",
    "KIND_PARTNER",
    "KIND_PRODUCER",
    "KIND_SERVICE",
    "KIND_SUBJECT",
    "KeyRing",
    "KeyRingFile",
    "LoginGuard",
    "MAX_SUBJECT_ID_LENGTH",
    "MetricsInterceptor",
    "Migrations",
    "NotFound",
    "Outgoing",
    "PUBLIC",
    "PURGE_REQUEST_ID_LENGTH",
    "PermissionDenied",
    "Principal",
    "PurgeLedger",
    "PurgedTable",
    "REVOCATION_KINDS",
    "REVOKE_CLIENT",
    "REVOKE_SUBJECT",
    "REVOKE_TOKEN",
    "RateLimiter",
    "RegisteredService",
    "ResourceExhausted",
    "RevocationEntry",
    "RevocationFetch",
    "RevocationPage",
    "Revocations",
    "SERVICE_SPIFFE_PREFIX",
    "SQLITE_SYNCHRONOUS",
    "SUBJECT_ID_RULE",
    "SUBJECT_SESSION_METADATA",
    "SchemaError",
    "ServerHandle",
    "ServerSettings",
    "ServiceBuilder",
    "ServiceStack",
    "SettingsError",
    "SubjectSession",
    "TlsSettings",
    "TokenSource",
    "TokenVerifier",
    "Transactions",
    "Unauthenticated",
    "Unavailable",
    "UtcDateTime",
    "Violations",
    "begin_write",
    "check_purge_request",
    "check_schema",
    "check_subject_id",
    "configure_metrics",
    "configure_tracing",
    "create_channel",
    "create_schema",
    "create_server",
    "current_principal",
    "decode_page_token",
    "derive_timeout",
    "dialect_insert",
    "direct_channel",
    "downstream_errors",
    "encode_page_token",
    "env_field",
    "from_env",
    "from_timestamp",
    "is_subject_id",
    "keep_tokens_current",
    "key_id",
    "make_engine",
    "normalize_database_url",
    "page_size",
    "prepare_schema",
    "purge_requests_table",
    "revoked",
    "run_main",
    "run_migrate",
    "run_migrations_env",
    "schema_differences",
    "serve",
    "server_auth",
    "health_status",
    "service_channels",
    "service_name_of",
    "service_tokens",
    "subject_session",
    "subject_session_of",
    "to_status",
    "to_timestamp",
    "token_expiry",
    "tool_channel",
    "upgrade_schema",
    "utcnow",
    "warn_disabled",
]


def __getattr__(name: str) -> Any:
    """Loads the module that defines ``name`` and keeps the name here (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
