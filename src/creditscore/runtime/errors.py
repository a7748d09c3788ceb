"""The runtime's error model, light to import: catching ``CallError`` or raising a
``DomainError`` loads grpc and the ``google.rpc`` messages, and nothing else of the
runtime (no database driver, no SQLAlchemy, no JWT, no OpenTelemetry SDK)::

    from creditscore.runtime.errors import CallError, NotFound

The hierarchy and how each error travels are in ``_errors``, where they are defined.
"""

from __future__ import annotations

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

__all__ = [
    "Aborted",
    "AlreadyExists",
    "CallError",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Violations",
    "to_status",
]
