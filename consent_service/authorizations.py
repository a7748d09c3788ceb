"""Partner authorizations and the access log: the rules.

A subject authorizes a partner for one purpose (``common.v1.AccessPurpose``) and a
scope (``AuthorizationScope``: THRESHOLD by default, FULL_SCORE only when asked),
until an expiry. As with consents, the stored facts are the grant, expiry and
revocation times, and the state is derived at read time, so that an expired
authorization needs no job to stop counting.

Every partner lookup the gateway answers is an access log entry, written before
the answer leaves. A partner's transaction id names one lookup: within
``DEDUPE_WINDOW`` (24 hours) the same (partner, transaction id) is the same entry,
and its stored answer is what the partner gets again.

Pure logic: no gRPC, no SQL.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from creditscore.common.v1 import common_pb2
from creditscore.runtime import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)

__all__ = [
    "DEDUPE_WINDOW",
    "DEFAULT_AUTHORIZATION_TTL",
    "MAX_AUTHORIZATION_TTL",
    "MAX_RESPONSE_BYTES",
    "MAX_TRANSACTION_ID_LENGTH",
    "SCOPE_FULL_SCORE",
    "SCOPE_THRESHOLD",
    "VALID_ACCESS_PURPOSES",
    "AccessEntry",
    "Authorization",
    "AuthorizationState",
    "check_access_purpose",
    "check_scope",
    "check_transaction_id",
    "ensure_same_lookup",
    "ensure_scope_covers",
    "grant_authorization",
    "new_access_id",
    "not_authorized",
    "resolve_expire_time",
    "revoke_authorization",
]

DEFAULT_AUTHORIZATION_TTL = timedelta(days=30)
MAX_AUTHORIZATION_TTL = timedelta(days=366)
DEDUPE_WINDOW = timedelta(hours=24)
MAX_TRANSACTION_ID_LENGTH = 128
MAX_RESPONSE_BYTES = 64 * 1024

SCOPE_THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD
SCOPE_FULL_SCORE = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
_SCOPES = frozenset({SCOPE_THRESHOLD, SCOPE_FULL_SCORE})

#: Every AccessPurpose but UNSPECIFIED.
VALID_ACCESS_PURPOSES: frozenset[int] = frozenset(
    v.number for v in common_pb2.AccessPurpose.DESCRIPTOR.values if v.number != 0
)

#: What an answer needs: a threshold answer any live authorization, a score FULL_SCORE.
ANSWER_THRESHOLD = "threshold"
ANSWER_SCORE = "score"
__all__ += ["ANSWER_SCORE", "ANSWER_THRESHOLD"]


class AuthorizationState(enum.IntEnum):
    """Numbered as ``consent.v1.AuthorizationState``."""

    UNSPECIFIED = 0
    LIVE = 1
    REVOKED = 2
    EXPIRED = 3


@dataclass(frozen=True)
class Authorization:
    """The stored facts of one (subject, partner, purpose) authorization."""

    subject_id: str
    partner_id: str
    purpose: int
    scope: int
    grant_time: datetime
    expire_time: datetime
    revoke_time: datetime | None = None
    partner_name: str = ""

    def state_at(self, now: datetime) -> AuthorizationState:
        if self.revoke_time is not None:
            return AuthorizationState.REVOKED
        if self.expire_time <= now:
            return AuthorizationState.EXPIRED
        return AuthorizationState.LIVE

    def is_live(self, now: datetime) -> bool:
        return self.state_at(now) is AuthorizationState.LIVE


def grant_authorization(
    existing: Authorization | None,
    *,
    subject_id: str,
    partner_id: str,
    purpose: int,
    scope: int,
    expire_time: datetime,
    now: datetime,
) -> Authorization:
    """The authorization after granting at ``now``: a live one keeps its grant time
    and takes the new scope and expiry; anything else starts afresh."""
    if existing is not None and existing.is_live(now):
        return replace(existing, scope=scope, expire_time=expire_time)
    return Authorization(subject_id, partner_id, purpose, scope, now, expire_time, None)


def revoke_authorization(existing: Authorization | None, *, now: datetime) -> Authorization:
    """The authorization after revoking at ``now``; revoking twice keeps the first
    time. ``NotFound`` (``AUTHORIZATION_NOT_FOUND``) when never granted."""
    if existing is None:
        raise NotFound(
            "this partner was never authorized for this purpose", reason="AUTHORIZATION_NOT_FOUND"
        )
    if existing.revoke_time is not None:
        return existing
    return replace(existing, revoke_time=now)


def not_authorized() -> PermissionDenied:
    """The one refusal of a lookup without a live authorization that covers it."""
    return PermissionDenied("no live authorization covers this lookup", reason="NOT_AUTHORIZED")


def ensure_scope_covers(authorization: Authorization | None, answer: str, now: datetime) -> Authorization:
    """The live authorization, when it allows an answer of kind ``answer``: a
    threshold answer needs any live one, a score FULL_SCORE. ``not_authorized`` otherwise."""
    if authorization is None or not authorization.is_live(now):
        raise not_authorized()
    if answer == ANSWER_SCORE and authorization.scope != SCOPE_FULL_SCORE:
        raise not_authorized()
    return authorization


# --- the access log -------------------------------------------------------------


@dataclass(frozen=True)
class AccessEntry:
    """One partner lookup as logged. ``answer`` is the serialized
    ``consent.v1.AccessAnswer``; ``response`` what the partner got, opaque."""

    access_id: str
    subject_id: str
    partner_id: str
    purpose: int
    transaction_id: str
    scope: int
    answer: bytes
    response: bytes
    access_time: datetime
    partner_name: str = ""


def new_access_id() -> str:
    return "acc_" + secrets.token_hex(12)


def ensure_same_lookup(entry: AccessEntry, subject_id: str, purpose: int) -> None:
    """A transaction id names one lookup: reusing it for another subject or purpose
    is ``InvalidArgument`` (``TRANSACTION_ID_REUSED``), never the other answer."""
    if entry.subject_id != subject_id or entry.purpose != purpose:
        raise InvalidArgument(
            "transaction_id was already used for a different lookup in the last 24 hours",
            [FieldViolation("transaction_id", "already used for a different lookup")],
            reason="TRANSACTION_ID_REUSED",
        )


# --- validation -------------------------------------------------------------------


def check_access_purpose(v: Violations, value: int, field: str = "purpose") -> None:
    if value == 0:
        v.add(field, "must be set")
    elif value not in VALID_ACCESS_PURPOSES:
        v.add(field, f"unknown access purpose {value}")


def check_scope(v: Violations, value: int, field: str = "scope") -> int:
    """The scope asked for: UNSPECIFIED means THRESHOLD."""
    if value == 0:
        return SCOPE_THRESHOLD
    if value not in _SCOPES:
        v.add(field, f"unknown authorization scope {value}")
    return value


def resolve_expire_time(
    v: Violations, value: datetime | None, now: datetime, field: str = "expire_time"
) -> datetime:
    """The expiry of a grant: ``DEFAULT_AUTHORIZATION_TTL`` from now when unset;
    otherwise in the future and at most ``MAX_AUTHORIZATION_TTL`` ahead."""
    if value is None:
        return now + DEFAULT_AUTHORIZATION_TTL
    if value <= now:
        v.add(field, "must be in the future")
    elif value > now + MAX_AUTHORIZATION_TTL:
        v.add(field, f"must be at most {MAX_AUTHORIZATION_TTL.days} days ahead")
    return value


def check_transaction_id(v: Violations, value: str, field: str = "transaction_id") -> None:
    if not value:
        v.add(field, "must be set")
    elif len(value) > MAX_TRANSACTION_ID_LENGTH or not (value.isascii() and value.isprintable()):
        v.add(field, f"must be 1-{MAX_TRANSACTION_ID_LENGTH} printable ASCII characters")
