"""creditscore.runtime: the one shared library of the services.

Server bootstrap (health, reflection, graceful stop), the error model and its
interceptor, client channels with deadlines and retries, tracing and metrics
(calls, errors, latency per RPC; gauges) from ``OTEL_*``,
settings from the environment, database engines and their schema migrations,
and small protobuf helpers.
"""

from ._channels import ChannelSettings, Deadline, create_channel, derive_timeout, downstream_errors
from ._config import SettingsError, env_field, from_env
from ._db import UtcDateTime, create_schema, dialect_insert, make_engine, normalize_database_url
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
from ._ids import MAX_SUBJECT_ID_LENGTH, SUBJECT_ID_RULE, check_subject_id, is_subject_id
from ._interceptors import ErrorInterceptor
from ._metrics import CALLS_METRIC, DURATION_METRIC, AsyncGauge, MetricsInterceptor
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
from ._server import (
    RegisteredService,
    ServerHandle,
    ServerSettings,
    create_server,
    run_main,
    serve,
)
from ._telemetry import configure_metrics, configure_tracing

__all__ = [
    "CALLS_METRIC",
    "DURATION_METRIC",
    "MAX_SUBJECT_ID_LENGTH",
    "SUBJECT_ID_RULE",
    "Aborted",
    "AlreadyExists",
    "AsyncGauge",
    "CallError",
    "ChannelSettings",
    "Deadline",
    "DeadlineExceeded",
    "DomainError",
    "ErrorInterceptor",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "MetricsInterceptor",
    "Migrations",
    "NotFound",
    "PermissionDenied",
    "RegisteredService",
    "ResourceExhausted",
    "SchemaError",
    "ServerHandle",
    "ServerSettings",
    "SettingsError",
    "Unauthenticated",
    "Unavailable",
    "UtcDateTime",
    "Violations",
    "check_schema",
    "check_subject_id",
    "configure_metrics",
    "configure_tracing",
    "create_channel",
    "create_schema",
    "decode_page_token",
    "derive_timeout",
    "dialect_insert",
    "downstream_errors",
    "encode_page_token",
    "env_field",
    "from_env",
    "from_timestamp",
    "is_subject_id",
    "make_engine",
    "normalize_database_url",
    "page_size",
    "prepare_schema",
    "run_main",
    "run_migrate",
    "run_migrations_env",
    "schema_differences",
    "serve",
    "to_status",
    "to_timestamp",
    "upgrade_schema",
    "utcnow",
]
