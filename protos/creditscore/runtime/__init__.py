"""creditscore.runtime: the one shared library of the services.

Server bootstrap (health, reflection, graceful stop), the error model and its
interceptor, client channels with deadlines and retries, tracing from ``OTEL_*``,
settings from the environment, database engines, and small protobuf helpers.
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
from ._telemetry import configure_tracing

__all__ = [
    "MAX_SUBJECT_ID_LENGTH",
    "SUBJECT_ID_RULE",
    "Aborted",
    "AlreadyExists",
    "CallError",
    "ChannelSettings",
    "Deadline",
    "DeadlineExceeded",
    "DomainError",
    "ErrorInterceptor",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RegisteredService",
    "ResourceExhausted",
    "ServerHandle",
    "ServerSettings",
    "SettingsError",
    "Unauthenticated",
    "Unavailable",
    "UtcDateTime",
    "Violations",
    "check_subject_id",
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
    "run_main",
    "serve",
    "to_status",
    "to_timestamp",
    "utcnow",
]
