"""Domain errors, raised by domain code and mapped to gRPC status by one interceptor.

The hierarchy, written down once::

    DomainError                      (INTERNAL unless a subclass says otherwise)
    ├── InvalidArgument              INVALID_ARGUMENT, with BadRequest field violations
    ├── NotFound                     NOT_FOUND
    ├── AlreadyExists                ALREADY_EXISTS
    ├── FailedPrecondition           FAILED_PRECONDITION
    ├── PermissionDenied             PERMISSION_DENIED
    ├── Unauthenticated              UNAUTHENTICATED
    ├── Aborted                      ABORTED (a conflict; the caller may retry)
    ├── ResourceExhausted            RESOURCE_EXHAUSTED
    ├── Unavailable                  UNAVAILABLE
    └── DeadlineExceeded             DEADLINE_EXCEEDED

Every error carries an UPPER_SNAKE ``reason`` and string ``metadata`` that travel
as ``google.rpc.ErrorInfo`` with the service's domain; one with ``retry_after``
(seconds: a rate limit, a lockout) also carries ``google.rpc.RetryInfo``.

On the client side, ``CallError`` is the one exception type for a failed call: it
carries the status code, message and the decoded ``ErrorInfo``/``BadRequest``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

# Imported as modules: mypy then finds google.rpc's .pyi files beside the protobuf
# stubs' own "google" package.
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
from grpc_status import rpc_status

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
    "to_status",
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(violations)


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


def to_status(error: DomainError, domain: str) -> grpc.Status:
    """The ``grpc.Status`` (with rich details) that ``error`` travels as."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    status.details.add().Pack(info)
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(0, int(error.retry_after * 1e9)))
        status.details.add().Pack(retry)
    if isinstance(error, InvalidArgument) and error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad)
    return rpc_status.to_status(status)


@dataclass
class CallError(Exception):
    """A failed gRPC call, with its rich details decoded."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: tuple[FieldViolation, ...] = ()
    #: Seconds to wait before trying again (``google.rpc.RetryInfo``), when given.
    retry_after: float | None = None

    def __str__(self) -> str:
        extra = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}: {self.message}{extra}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> CallError:
        """Decodes a ``grpc.aio.AioRpcError`` (or sync ``grpc.RpcError``)."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        out = cls(code=code, message=message or "")
        status = None
        trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
        # Pairs either way: grpc.aio's Metadata, or the sync API's _Metadatum
        # namedtuples (the stubs type those by their attributes only).
        for key, value in cast("Iterable[tuple[str, str | bytes]]", trailing or ()):
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                status = status_pb2.Status.FromString(value)
        if status is None:
            return out
        for detail in status.details:
            # Unpack is True when the detail is of the message's type.
            info = error_details_pb2.ErrorInfo()
            retry = error_details_pb2.RetryInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Unpack(retry):
                out.retry_after = retry.retry_delay.ToNanoseconds() / 1e9
            elif detail.Unpack(bad):
                out.violations = tuple(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
        return out


class Violations:
    """Collects field violations, then raises one ``InvalidArgument`` for all of them.

    >>> v = Violations()
    >>> v.check(bool(request.subject_id), "subject_id", "must be set")
    >>> v.raise_if_any("the request is not valid")
    """

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def check(self, ok: bool, field_path: str, description: str) -> bool:
        if not ok:
            self.add(field_path, description)
        return ok

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, message: str, *, reason: str | None = None) -> None:
        if self.items:
            raise InvalidArgument(message, self.items, reason=reason)


__all__ += ["Violations"]
