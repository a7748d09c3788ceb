"""Small conversions between protobuf and Python shared by every service."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ._errors import FieldViolation, InvalidArgument

__all__ = [
    "decode_page_token",
    "encode_page_token",
    "from_timestamp",
    "page_size",
    "to_timestamp",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp for an aware (or naive-UTC) datetime; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(message: Any, field_name: str) -> datetime | None:
    """The aware UTC datetime of ``message.field_name``, or None where it is unset;
    ``InvalidArgument`` (a violation at ``field_name``) for a Timestamp outside what
    one may hold (years 1 to 9999, nanos 0 to 999,999,999): a request can carry any
    seconds and nanos on the wire."""
    if not message.HasField(field_name):
        return None
    ts: Timestamp = getattr(message, field_name)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(
            f"{field_name} is not a valid timestamp",
            [FieldViolation(field_name, "must be a valid timestamp (years 1 to 9999, nanos 0 to 999999999)")],
        ) from None


def page_size(requested: int, *, default: int, maximum: int, field_name: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation(field_name, "must be >= 0")]
        )
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_page_token(position: dict[str, Any]) -> str:
    """An opaque token for the next page; ``position`` is a small JSON-able dict."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, *, field_name: str = "page_token") -> dict[str, Any] | None:
    """The position a token stands for; None for the first page. A token this
    service did not issue is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, dict):
            raise ValueError("not an object")
        return position
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "page_token is not a token this service issued",
            [FieldViolation(field_name, "not a valid page token")],
            reason="INVALID_PAGE_TOKEN",
        ) from None
