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

``decide_accesses`` is the lookup's one question (``RecordAccesses``) for a batch
of lookups: given what the store read in one transaction, which are refused,
replayed, to be scored again without some sources, or to be written.

Pure logic: no gRPC, no SQL.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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

from .consents import VALID_SOURCES, Consent, ingestion_purpose

__all__ = [
    "DEDUPE_WINDOW",
    "MAX_ACCESSES",
    "SCORED_SOURCES",
    "AccessOutcome",
    "AccessOutcomeKind",
    "AccessToRecord",
    "check_sources_used",
    "covering_authorization",
    "decide_accesses",
    "holds_transaction_id",
    "is_same_lookup",
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
    "replay_of",
    "resolve_expire_time",
    "revoke_authorization",
]

DEFAULT_AUTHORIZATION_TTL = timedelta(days=30)
MAX_AUTHORIZATION_TTL = timedelta(days=366)
DEDUPE_WINDOW = timedelta(hours=24)
MAX_TRANSACTION_ID_LENGTH = 128
MAX_RESPONSE_BYTES = 64 * 1024
#: Lookups in one ``RecordAccesses`` call.
MAX_ACCESSES = 256

SCOPE_THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD
SCOPE_FULL_SCORE = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
_SCOPES = frozenset({SCOPE_THRESHOLD, SCOPE_FULL_SCORE})

#: The purpose of the consent a lookup needs, per source it draws on.
_SCORING = common_pb2.PURPOSE_CREDIT_SCORING
#: The sources a score may draw on: those collected to score (loan outcomes are
#: training labels, never a scoring input).
SCORED_SOURCES: frozenset[int] = frozenset(s for s in VALID_SOURCES if ingestion_purpose(s) == _SCORING)

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


def covering_authorization(
    authorization: Authorization | None, answer: str, now: datetime
) -> Authorization | None:
    """The authorization when it is live at ``now`` and allows an answer of kind
    ``answer`` (a threshold answer needs any live one, a score FULL_SCORE); None otherwise."""
    if authorization is None or not authorization.is_live(now):
        return None
    if answer == ANSWER_SCORE and authorization.scope != SCOPE_FULL_SCORE:
        return None
    return authorization


def ensure_scope_covers(authorization: Authorization | None, answer: str, now: datetime) -> Authorization:
    """The live authorization, when it allows an answer of kind ``answer``
    (``covering_authorization``); ``not_authorized`` otherwise."""
    covering = covering_authorization(authorization, answer, now)
    if covering is None:
        raise not_authorized()
    return covering


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


def holds_transaction_id(entry: AccessEntry, now: datetime) -> bool:
    """Whether ``entry`` still holds its (partner, transaction id) at ``now``: for
    ``DEDUPE_WINDOW`` after it was written; after that the id names a new lookup."""
    return entry.access_time > now - DEDUPE_WINDOW


def is_same_lookup(entry: AccessEntry, subject_id: str, purpose: int) -> bool:
    """Whether a lookup of ``subject_id`` for ``purpose`` is the one ``entry`` logged."""
    return entry.subject_id == subject_id and entry.purpose == purpose


def ensure_same_lookup(entry: AccessEntry, subject_id: str, purpose: int) -> None:
    """A transaction id names one lookup: reusing it for another subject or purpose
    is ``InvalidArgument`` (``TRANSACTION_ID_REUSED``), never the other answer."""
    if not is_same_lookup(entry, subject_id, purpose):
        raise InvalidArgument(
            "transaction_id was already used for a different lookup in the last 24 hours",
            [FieldViolation("transaction_id", "already used for a different lookup")],
            reason="TRANSACTION_ID_REUSED",
        )


# --- the lookup's one question: authorize and record a batch -------------------------


class AccessOutcomeKind(enum.IntEnum):
    """Numbered as ``consent.v1.AccessOutcomeKind``."""

    UNSPECIFIED = 0
    RECORDED = 1
    REPLAYED = 2
    NOT_AUTHORIZED = 3
    TRANSACTION_ID_REUSED = 4
    SOURCES_CHANGED = 5


@dataclass(frozen=True)
class AccessToRecord:
    """One lookup to authorize and log: the answer it gives (``answer_kind``
    ``ANSWER_THRESHOLD`` or ``ANSWER_SCORE``, ``answer`` the serialized
    ``consent.v1.AccessAnswer``, ``response`` as the partner gets it) and the
    scored sources the answer drew on."""

    subject_id: str
    partner_id: str
    purpose: int
    transaction_id: str
    answer_kind: str
    answer: bytes
    response: bytes
    sources_used: frozenset[int] = frozenset()

    @property
    def transaction_key(self) -> tuple[str, str]:
        """(partner, transaction id): what the access log dedupes on."""
        return self.partner_id, self.transaction_id

    @property
    def authorization_key(self) -> tuple[str, str, int]:
        """(subject, partner, purpose): the authorization it needs."""
        return self.subject_id, self.partner_id, self.purpose


@dataclass(frozen=True)
class AccessOutcome:
    """What became of one ``AccessToRecord``: ``entry`` for RECORDED (the new
    entry) and REPLAYED (the first entry); ``granted_sources`` for
    SOURCES_CHANGED (the scored sources with a live consent)."""

    kind: AccessOutcomeKind
    entry: AccessEntry | None = None
    granted_sources: frozenset[int] = frozenset()


def decide_accesses(
    items: Sequence[AccessToRecord],
    *,
    subjects: Collection[str],
    authorizations: Mapping[tuple[str, str, int], Authorization],
    consents: Iterable[Consent],
    entries: Mapping[tuple[str, str], AccessEntry],
    now: datetime,
    new_id: Callable[[], str] = new_access_id,
) -> list[AccessOutcome]:
    """One outcome per item, in order, from what the store holds: the enrolled
    ``subjects`` among the items', their ``authorizations`` by (subject, partner,
    purpose), their ``consents`` and the access-log ``entries`` by (partner,
    transaction id). For each item, the first rule that applies:

    1. NOT_AUTHORIZED unless the subject is enrolled, the authorization covers
       the answer at ``now`` (``covering_authorization``) and the subject holds a
       live CREDIT_SCORING consent for at least one scored source: before
       anything else, so a refused partner learns nothing, not even whether its
       transaction id was used;
    2. REPLAYED (that entry) when an entry holds the transaction id for the same
       subject and purpose, TRANSACTION_ID_REUSED when for another; an item
       recorded earlier in the batch counts as such an entry;
    3. SOURCES_CHANGED when a source in ``sources_used`` has no live consent;
    4. RECORDED: a new entry at ``now``, with the authorization's scope and the
       partner's name, for the store to write.
    """
    granted: dict[str, set[int]] = {}
    for consent in consents:
        if consent.purpose == _SCORING and consent.source in SCORED_SOURCES and consent.is_live(now):
            granted.setdefault(consent.subject_id, set()).add(consent.source)
    held = {key: entry for key, entry in entries.items() if holds_transaction_id(entry, now)}
    outcomes: list[AccessOutcome] = []
    for item in items:
        authorization = None
        if item.subject_id in subjects:
            authorization = covering_authorization(
                authorizations.get(item.authorization_key), item.answer_kind, now
            )
        sources = frozenset(granted.get(item.subject_id, ()))
        if authorization is None or not sources:
            outcomes.append(AccessOutcome(AccessOutcomeKind.NOT_AUTHORIZED))
            continue
        earlier = held.get(item.transaction_key)
        if earlier is not None:
            outcomes.append(replay_of(earlier, item))
            continue
        if not item.sources_used <= sources:
            outcomes.append(AccessOutcome(AccessOutcomeKind.SOURCES_CHANGED, granted_sources=sources))
            continue
        entry = AccessEntry(
            access_id=new_id(),
            subject_id=item.subject_id,
            partner_id=item.partner_id,
            purpose=item.purpose,
            transaction_id=item.transaction_id,
            scope=authorization.scope,
            answer=item.answer,
            response=item.response,
            access_time=now,
            partner_name=authorization.partner_name,
        )
        held[item.transaction_key] = entry
        outcomes.append(AccessOutcome(AccessOutcomeKind.RECORDED, entry))
    return outcomes


def replay_of(entry: AccessEntry, item: AccessToRecord) -> AccessOutcome:
    """The outcome of ``item`` whose transaction id ``entry`` holds: REPLAYED when
    it is the same lookup, TRANSACTION_ID_REUSED otherwise."""
    if is_same_lookup(entry, item.subject_id, item.purpose):
        return AccessOutcome(AccessOutcomeKind.REPLAYED, entry)
    return AccessOutcome(AccessOutcomeKind.TRANSACTION_ID_REUSED)


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


def check_sources_used(v: Violations, values: Iterable[int], field: str = "sources_used") -> None:
    """Each source an answer drew on must be a scored source (paths like
    ``sources_used[1]``); repeats are harmless."""
    for i, value in enumerate(values):
        if value not in SCORED_SOURCES:
            v.add(f"{field}[{i}]", f"not a scored data source: {value}")
