"""Revocation rules: credential generations, revocation entries and how long they
live. Pure logic (no gRPC, no SQL); the store writes what these decide.

Every token carries the credential generation of its principal (claim ``gen``): a
subject's (``subjects.token_generation``), a registered client's
(``clients.token_generation``) or a configured service's
(``service_generations``). A revocation raises the generation and appends an
entry "tokens of this principal below generation G are refused" to the log that
every service polls (``creditscore.runtime._revocation``). A generation is a
millisecond timestamp, at least one more than the last one, so that a later
enrollment of the same subject id, which starts from the clock, lands above every
entry of the earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from creditscore.runtime import REVOKE_CLIENT, REVOKE_SUBJECT, REVOKE_TOKEN, Violations

__all__ = [
    "KIND_NUMBERS",
    "MAX_NOTE_LENGTH",
    "MAX_TOKEN_ID_LENGTH",
    "PAGE_MAX",
    "RevocationRecord",
    "check_note",
    "check_token_id",
    "next_generation",
]

MAX_NOTE_LENGTH = 200
MAX_TOKEN_ID_LENGTH = 64
#: Entries in one ListRevocations answer.
PAGE_MAX = 10_000
#: creditscore.consent.v1.RevocationKind numbers of the runtime's entry kinds.
KIND_NUMBERS = {REVOKE_TOKEN: 1, REVOKE_SUBJECT: 2, REVOKE_CLIENT: 3}

#: Notes of the revocations the service makes by itself.
NOTE_ACCOUNT_CLOSED = "account closed"
NOTE_SECRET_ROTATED = "secret rotated"
NOTE_CLIENT_REVOKED = "client revoked"


def generation_at(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def next_generation(previous: int, now: datetime) -> int:
    """A generation above ``previous``: the clock's milliseconds, or one more."""
    return max(generation_at(now), previous + 1)


@dataclass(frozen=True)
class RevocationRecord:
    """One entry of the revocation log, as stored."""

    sequence: int
    kind: str
    key: str
    generation: int
    revoke_time: datetime
    expire_time: datetime
    note: str = ""


def expire_time(now: datetime, longest_token_life: timedelta) -> datetime:
    """When an entry made ``now`` stops mattering: every token it refuses was
    issued before ``now`` and lives at most ``longest_token_life``."""
    return now + longest_token_life


def check_note(v: Violations, note: str, field: str = "note") -> None:
    if len(note) > MAX_NOTE_LENGTH or not note.isprintable():
        v.add(field, f"must be at most {MAX_NOTE_LENGTH} printable characters")


def check_token_id(v: Violations, token_id: str, field: str = "token_id") -> None:
    if not token_id:
        v.add(field, "must be set")
    elif len(token_id) > MAX_TOKEN_ID_LENGTH or not token_id.isascii() or not token_id.isprintable():
        v.add(field, f"must be 1-{MAX_TOKEN_ID_LENGTH} printable ASCII characters")


__all__ += ["NOTE_ACCOUNT_CLOSED", "NOTE_CLIENT_REVOKED", "NOTE_SECRET_ROTATED", "expire_time", "generation_at"]
