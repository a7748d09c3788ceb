"""Consent rules: who may be enrolled, what a grant or a withdrawal does, when a
consent is live, and what makes a request valid.

Pure logic: no gRPC, no SQL. The store persists what these functions decide and
the servicer translates protobuf to and from these types, so the rules can be
read and tested in one place.

A consent's stored facts are its grant, expiry and withdrawal times; its state is
derived from them *at read time* (``Consent.state_at``), so an expired consent
needs no background job to become ``EXPIRED``.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from creditscore.common.v1 import common_pb2
from creditscore.runtime import (
    MAX_SUBJECT_ID_LENGTH,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
    check_subject_id,
    decode_page_token,
    encode_page_token,
)

__all__ = [
    "MAX_CHECKS",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_SUBJECT_ID_LENGTH",
    "PAGE_SIZE_DEFAULT",
    "PAGE_SIZE_MAX",
    "VALID_PURPOSES",
    "VALID_SOURCES",
    "MAX_INITIAL_CONSENTS",
    "Consent",
    "ConsentChoice",
    "ConsentState",
    "Enrollment",
    "RequestKey",
    "Subject",
    "check_checks",
    "check_consent_choices",
    "check_expire_time",
    "check_page_size",
    "check_purpose",
    "check_request_id",
    "check_source",
    "check_subject_id",
    "cursor_from_token",
    "decide",
    "ensure_same_request",
    "grant",
    "ingestion_purpose",
    "new_subject_id",
    "starts_source_purge",
    "token_after",
    "withdraw",
]

MAX_REQUEST_ID_LENGTH = 128
MAX_CHECKS = 1000
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 100


#: The data sources a consent can name: every enum value but UNSPECIFIED. Proto3
#: enums are open, so a client can send a number outside the enum; it is invalid.
VALID_SOURCES: frozenset[int] = frozenset(
    v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number != 0
)
#: The purposes a consent can name: every enum value but UNSPECIFIED.
VALID_PURPOSES: frozenset[int] = frozenset(
    v.number for v in common_pb2.Purpose.DESCRIPTOR.values if v.number != 0
)


#: The most consents one enrollment may give: one per source and purpose.
MAX_INITIAL_CONSENTS = len(VALID_SOURCES) * len(VALID_PURPOSES)


class ConsentState(enum.IntEnum):
    """A consent's state as read at some instant; numbered as ``consent.v1.ConsentState``."""

    UNSPECIFIED = 0
    GRANTED = 1
    WITHDRAWN = 2
    EXPIRED = 3


@dataclass(frozen=True)
class Subject:
    """An enrolled person: an opaque id and when they signed up, nothing else
    (no name, phone or address is ever stored)."""

    subject_id: str
    enroll_time: datetime


@dataclass(frozen=True)
class Enrollment:
    """What enrolling did: the subject, whether this call created it, and the
    consents given with it, as granted (in the order asked)."""

    subject: Subject
    created: bool
    consents: tuple[Consent, ...] = ()


@dataclass(frozen=True)
class ConsentChoice:
    """A consent given at sign-up: a source and purpose, until ``expire_time``
    (None: no expiry); granted as ``grant`` grants one."""

    source: int
    purpose: int
    expire_time: datetime | None = None


@dataclass(frozen=True)
class Consent:
    """The stored facts of one (subject, source, purpose) consent.

    ``withdraw_time`` set means withdrawn; otherwise it is granted, and expired
    once ``expire_time`` (None: never) is not after the instant asked about.
    """

    subject_id: str
    source: int
    purpose: int
    grant_time: datetime
    expire_time: datetime | None = None
    withdraw_time: datetime | None = None

    def state_at(self, now: datetime) -> ConsentState:
        """The state at ``now``: WITHDRAWN, EXPIRED or GRANTED."""
        if self.withdraw_time is not None:
            return ConsentState.WITHDRAWN
        if self.expire_time is not None and self.expire_time <= now:
            return ConsentState.EXPIRED
        return ConsentState.GRANTED

    def is_live(self, now: datetime) -> bool:
        """True when data may be used under this consent at ``now``."""
        return self.state_at(now) is ConsentState.GRANTED


# --- state transitions -------------------------------------------------------


def grant(
    existing: Consent | None,
    *,
    subject_id: str,
    source: int,
    purpose: int,
    expire_time: datetime | None,
    now: datetime,
) -> Consent:
    """The consent after granting at ``now``.

    A live grant stays the same grant (its ``grant_time`` is kept) and takes the
    new ``expire_time`` (None removes the expiry). Anything else (no consent yet,
    withdrawn, expired) starts a new grant at ``now`` with no withdrawal.
    ``expire_time`` must be after ``now``.
    """
    if expire_time is not None and expire_time <= now:
        raise InvalidArgument(
            "expire_time must be in the future",
            [FieldViolation("expire_time", "must be in the future")],
        )
    if existing is not None and existing.is_live(now):
        return replace(existing, expire_time=expire_time)
    return Consent(
        subject_id=subject_id,
        source=source,
        purpose=purpose,
        grant_time=now,
        expire_time=expire_time,
        withdraw_time=None,
    )


def withdraw(existing: Consent | None, *, now: datetime) -> Consent:
    """The consent after withdrawing at ``now``.

    Withdrawing one already withdrawn returns it unchanged (the first withdrawal
    time stands). A granted or expired consent becomes WITHDRAWN at ``now``.
    Raises ``NotFound`` (``CONSENT_NOT_FOUND``) when it was never granted.
    """
    if existing is None:
        raise NotFound(
            "no consent was ever granted for this source and purpose",
            reason="CONSENT_NOT_FOUND",
        )
    if existing.withdraw_time is not None:
        return existing
    return replace(existing, withdraw_time=now)


def decide(
    checks: Sequence[tuple[str, int]], consents: Iterable[Consent], now: datetime
) -> list[bool]:
    """One decision per ``(subject_id, source)`` check, in order: True only where
    ``consents`` (those of the purpose asked about) hold a live one. A subject
    with no consents, enrolled or not, simply gets False."""
    live = {(c.subject_id, c.source) for c in consents if c.is_live(now)}
    return [check in live for check in checks]


def ingestion_purpose(source: int) -> int:
    """The purpose a source's records are collected under: loan outcomes are
    training labels (model development); everything else is collected to score."""
    if source == common_pb2.DATA_SOURCE_OUTCOMES:
        return common_pb2.PURPOSE_MODEL_DEVELOPMENT
    return common_pb2.PURPOSE_CREDIT_SCORING


def starts_source_purge(before: Consent | None, after: Consent) -> bool:
    """Whether a withdrawal from ``before`` to ``after`` purges the source's data:
    the consent its records are collected under went from granted (or expired) to
    withdrawn now. Withdrawing model development for a scored source only keeps
    its records out of training exports (checked when exporting); withdrawing
    again changes nothing."""
    return (
        before is not None
        and before.withdraw_time is None
        and after.withdraw_time is not None
        and after.purpose == ingestion_purpose(after.source)
    )


def new_subject_id() -> str:
    """A fresh opaque subject id: ``subj_`` and 24 random hex characters."""
    return "subj_" + secrets.token_hex(12)


# --- idempotency -------------------------------------------------------------


@dataclass(frozen=True)
class RequestKey:
    """Identifies one mutating request: its ``request_id``, the method, and the
    SHA-256 of the serialized request, so a reused id can be told from a retry."""

    request_id: str
    method: str
    digest: str

    @classmethod
    def of(cls, request_id: str, method: str, payload: bytes) -> RequestKey:
        """The key of a request whose deterministic serialization is ``payload``."""
        return cls(request_id, method, hashlib.sha256(payload).hexdigest())


def ensure_same_request(stored_method: str, stored_digest: str, key: RequestKey) -> None:
    """Raises ``InvalidArgument`` (``REQUEST_ID_REUSED``) unless the request stored
    under ``key.request_id`` is this very request (a retry)."""
    if stored_method != key.method or stored_digest != key.digest:
        raise InvalidArgument(
            "request_id was already used for a different request",
            [FieldViolation("request_id", "already used for a different request")],
            reason="REQUEST_ID_REUSED",
        )


# --- input validation --------------------------------------------------------
# Each check adds at most one violation to ``v`` for its field path, so that an
# RPC can report every bad field at once.


def check_request_id(v: Violations, value: str, field: str = "request_id") -> None:
    """``request_id`` is required, 1-128 printable characters (a NUL or another
    control character is refused: PostgreSQL cannot store a NUL in text, and
    answered INTERNAL)."""
    if not value:
        v.add(field, "must be set")
    elif len(value) > MAX_REQUEST_ID_LENGTH:
        v.add(field, f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
    elif not value.isprintable():
        v.add(field, "must be printable characters only")


def check_source(v: Violations, value: int, field: str = "source") -> None:
    """A source must be one of the enum's values other than UNSPECIFIED."""
    if value == 0:
        v.add(field, "must be set")
    elif value not in VALID_SOURCES:
        v.add(field, f"unknown data source {value}")


def check_purpose(v: Violations, value: int, field: str = "purpose") -> None:
    """A purpose must be one of the enum's values other than UNSPECIFIED."""
    if value == 0:
        v.add(field, "must be set")
    elif value not in VALID_PURPOSES:
        v.add(field, f"unknown purpose {value}")


def check_expire_time(
    v: Violations, value: datetime | None, now: datetime, field: str = "expire_time"
) -> None:
    """An expiry, when given, must be after ``now``."""
    if value is not None and value <= now:
        v.add(field, "must be in the future")


def check_consent_choices(
    v: Violations, choices: Sequence[ConsentChoice], now: datetime, field: str = "consents"
) -> None:
    """At most one choice per (source, purpose), each as ``GrantConsent`` checks
    its fields (paths like ``consents[2].source``). Past the limit only
    ``consents`` itself is reported."""
    if len(choices) > MAX_INITIAL_CONSENTS:
        v.add(field, f"must have at most {MAX_INITIAL_CONSENTS} consents, got {len(choices)}")
        return
    seen: set[tuple[int, int]] = set()
    for i, choice in enumerate(choices):
        # Paths are made only for a violation: a sign-up wave checks nine a call.
        if choice.source not in VALID_SOURCES:
            check_source(v, choice.source, f"{field}[{i}].source")
        if choice.purpose not in VALID_PURPOSES:
            check_purpose(v, choice.purpose, f"{field}[{i}].purpose")
        if choice.expire_time is not None:
            check_expire_time(v, choice.expire_time, now, f"{field}[{i}].expire_time")
        pair = (choice.source, choice.purpose)
        if pair in seen:
            v.add(f"{field}[{i}]", "names a source and purpose given earlier in the list")
        seen.add(pair)


def check_page_size(v: Violations, value: int, field: str = "page_size") -> None:
    """A page size must not be negative (0 means the default, more than the
    maximum is capped)."""
    if value < 0:
        v.add(field, "must be >= 0")


def check_checks(v: Violations, checks: Sequence[tuple[str, int]], field: str = "checks") -> None:
    """1-1000 checks, each with a valid subject id and source (paths like
    ``checks[3].source``). Past the limit only ``checks`` itself is reported."""
    if not checks:
        v.add(field, "must have at least one check")
        return
    if len(checks) > MAX_CHECKS:
        v.add(field, f"must have at most {MAX_CHECKS} checks, got {len(checks)}")
        return
    for i, (subject_id, source) in enumerate(checks):
        check_subject_id(v, subject_id, f"{field}[{i}].subject_id")
        check_source(v, source, f"{field}[{i}].source")


# --- pagination --------------------------------------------------------------


def token_after(consent: Consent) -> str:
    """The page token of the page that follows ``consent`` in (source, purpose) order."""
    return encode_page_token(
        {"subject": consent.subject_id, "source": consent.source, "purpose": consent.purpose}
    )


def cursor_from_token(token: str, subject_id: str, field: str = "page_token") -> tuple[int, int] | None:
    """The (source, purpose) a page starts after; None for the first page. A token
    not issued by ``token_after`` for this subject is ``INVALID_PAGE_TOKEN``."""
    position = decode_page_token(token, field_name=field)
    if position is None:
        return None
    source, purpose = position.get("source"), position.get("purpose")
    if (
        position.get("subject") != subject_id
        or not _is_int(source)
        or not _is_int(purpose)
    ):
        raise InvalidArgument(
            "page_token is not a token this service issued for this subject",
            [FieldViolation(field, "not a valid page token for this subject")],
            reason="INVALID_PAGE_TOKEN",
        )
    assert isinstance(source, int) and isinstance(purpose, int)
    return source, purpose


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

