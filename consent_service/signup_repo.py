"""The writes of a sign-up wave, group-committed: an enrollment with its consents
(``EnrollSubject``), a consent (``GrantConsent``) and a partner's authorization
(``GrantAuthorization``), each one unit of work idempotent on the request id, with
a fixed number of statements (an enrollment's whatever its number of consents).

They run through the store's ``GroupCommit``: synchronous SQLAlchemy on the
connection of a transaction shared with the concurrent writes, inside a
savepoint of their own, with statements built once (``_Statements``). The rules
are in ``consents`` and ``authorizations``: an id already enrolled keeps its
enrollment and gets the consents granted; an id whose account is still being
closed, or a consent a source is collected under while that source is being
purged, is ``PURGE_IN_PROGRESS``; an unknown subject ``SUBJECT_NOT_FOUND``, an
unknown partner ``PARTNER_NOT_FOUND``; a repeat of the request answers as stored
(``REQUEST_ID_REUSED`` for another request under its id). Rows of a subject are
locked as the other writers lock them (``SubjectsRepo``: the subject's row
shared, the consent or authorization row for update; no-ops on SQLite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from creditscore.runtime import KIND_PARTNER, REVOKE_SUBJECT, Aborted, NotFound, dialect_insert

from . import authorizations as auth_rules
from . import consents as rules
from . import revocation as revoke_rules
from .authorizations import Authorization
from .authorizations_repo import authorization_of, authorization_query
from .consents import Consent, ConsentChoice, Enrollment, RequestKey, Subject, ensure_same_request
from .consents_repo import consent_of
from .purge import DeletionScope
from .purges_repo import purge_in_progress
from .requests_repo import Committed
from .subjects_repo import subject_not_found
from .tables import (
    authorizations_table,
    clients_table,
    consents_table,
    purge_jobs_table,
    requests_table,
    revocations_table,
    subjects_table,
)

__all__ = ["enroll_with_consents", "grant_authorization", "grant_consent"]


@functools.cache
def _statements(dialect: str) -> _Statements:
    return _Statements(dialect)


class _Statements:
    """The sign-up's statements, built once per dialect and run with parameters
    (building a statement costs more than running it: this is the hot path)."""

    def __init__(self, dialect: str) -> None:
        r, s, c, j, v = (requests_table.c, subjects_table.c, consents_table.c, purge_jobs_table.c,
                         revocations_table.c)
        self.claim = (
            dialect_insert(dialect, requests_table)
            .on_conflict_do_nothing(index_elements=[r.request_id])
            .returning(r.request_id)
        )
        self.stored = select(r.method, r.request_sha256, r.response).where(r.request_id == bindparam("rid"))
        self.answer = (
            update(requests_table)
            .where(r.request_id == bindparam("rid"))
            .values(response=bindparam("response"), subject_id=bindparam("sid"))
        )
        self.floor = select(func.max(v.generation)).where(v.kind == REVOKE_SUBJECT, v.key == bindparam("sid"))
        self.insert_subject = (
            dialect_insert(dialect, subjects_table)
            .on_conflict_do_nothing(index_elements=[s.subject_id])
            .returning(s.subject_id)
        )
        self.subject = (
            select(s.subject_id, s.enroll_time)
            .where(s.subject_id == bindparam("sid"))
            .with_for_update(read=True, key_share=True)
        )
        self.open_purges = select(j.scope, j.source).where(
            j.subject_id == bindparam("sid"), j.complete_time.is_(None)
        )
        self.consents = select(consents_table).where(c.subject_id == bindparam("sid")).with_for_update()
        self.consent = (
            select(consents_table)
            .where(c.subject_id == bindparam("sid"), c.source == bindparam("source"),
                   c.purpose == bindparam("purpose"))
            .with_for_update()
        )
        a, k = authorizations_table.c, clients_table.c
        self.partner = select(k.display_name).where(k.client_id == bindparam("pid"), k.kind == KIND_PARTNER)
        self.authorization = (
            authorization_query()
            .where(a.subject_id == bindparam("sid"), a.partner_id == bindparam("pid"),
                   a.purpose == bindparam("purpose"))
            .with_for_update(of=authorizations_table)
        )
        upsert_authorization = dialect_insert(dialect, authorizations_table)
        self.upsert_authorization = upsert_authorization.on_conflict_do_update(
            index_elements=[a.subject_id, a.partner_id, a.purpose],
            set_={name: upsert_authorization.excluded[name]
                  for name in ("scope", "grant_time", "expire_time", "revoke_time")},
        )
        upsert = dialect_insert(dialect, consents_table)
        self.upsert = upsert.on_conflict_do_update(
            index_elements=[c.subject_id, c.source, c.purpose],
            set_={name: upsert.excluded[name] for name in ("grant_time", "expire_time", "withdraw_time")},
        )


def enroll_with_consents(
    conn: Connection,
    key: RequestKey,
    subject_id: str | None,
    choices: Sequence[ConsentChoice],
    *,
    now: datetime,
    encode: Callable[[Enrollment], bytes],
    secret_hash: str | None,
) -> Committed[Enrollment]:
    """Enrolls ``subject_id`` (a fresh id when None) and grants ``choices`` in the
    caller's transaction (see the module docstring). Raises what refuses the
    request; the caller rolls its changes back then."""
    st = _statements(conn.dialect.name)
    earlier = _claim(conn, st, key, now)
    if earlier is not None:
        return earlier
    enrollment = _enroll(conn, st, subject_id, now, secret_hash)
    sid = enrollment.subject.subject_id
    granted = _grant(conn, st, sid, choices, created=enrollment.created, now=now)
    if granted:
        enrollment = Enrollment(enrollment.subject, enrollment.created, tuple(granted))
    response = encode(enrollment)
    conn.execute(st.answer, {"rid": key.request_id, "response": response, "sid": sid})
    return Committed(response=response, value=enrollment)


def grant_consent(
    conn: Connection, key: RequestKey, *, subject_id: str, source: int, purpose: int,
    expire_time: datetime | None, now: datetime, encode: Callable[[Consent], bytes],
) -> Committed[Consent]:
    """``ConsentsRepo.grant``, group-committed: grants (or re-grants) a consent per
    ``consents.grant``, in the caller's transaction."""
    st = _statements(conn.dialect.name)
    earlier = _claim(conn, st, key, now)
    if earlier is not None:
        return earlier
    _require_subject(conn, st, subject_id)
    row = conn.execute(st.consent, {"sid": subject_id, "source": source, "purpose": purpose}).first()
    existing = None if row is None else consent_of(row)
    if purpose == rules.ingestion_purpose(source):
        _refuse_while_purging(conn, st, subject_id, [ConsentChoice(source, purpose)])
    updated = rules.grant(existing, subject_id=subject_id, source=source, purpose=purpose,
                          expire_time=expire_time, now=now)
    if updated != existing:
        conn.execute(st.upsert, [_consent_row(updated)])
    response = encode(updated)
    conn.execute(st.answer, {"rid": key.request_id, "response": response, "sid": subject_id})
    return Committed(response=response, value=updated)


def grant_authorization(
    conn: Connection, key: RequestKey, *, subject_id: str, partner_id: str, purpose: int, scope: int,
    expire_time: datetime, now: datetime, encode: Callable[[Authorization], bytes],
) -> Committed[Authorization]:
    """``AuthorizationsRepo.grant``, group-committed: grants per
    ``authorizations.grant_authorization``, in the caller's transaction."""
    st = _statements(conn.dialect.name)
    earlier = _claim(conn, st, key, now)
    if earlier is not None:
        return earlier
    _require_subject(conn, st, subject_id)
    partner = conn.execute(st.partner, {"pid": partner_id}).first()
    if partner is None:
        raise NotFound("no partner is registered under this id", reason="PARTNER_NOT_FOUND")
    row = conn.execute(st.authorization, {"sid": subject_id, "pid": partner_id, "purpose": purpose}).first()
    existing = None if row is None else authorization_of(row)
    updated = auth_rules.grant_authorization(
        existing, subject_id=subject_id, partner_id=partner_id, purpose=purpose, scope=scope,
        expire_time=expire_time, now=now,
    )
    if updated != existing:
        conn.execute(st.upsert_authorization, {
            "subject_id": subject_id, "partner_id": partner_id, "purpose": purpose, "scope": updated.scope,
            "grant_time": updated.grant_time, "expire_time": updated.expire_time,
            "revoke_time": updated.revoke_time,
        })
    granted = replace(updated, partner_name=str(partner.display_name))
    response = encode(granted)
    conn.execute(st.answer, {"rid": key.request_id, "response": response, "sid": subject_id})
    return Committed(response=response, value=granted)


def _claim(conn: Connection, st: _Statements, key: RequestKey, now: datetime) -> Committed[Any] | None:
    """Claims the request id (``RequestsRepo.idempotent``): None when claimed now;
    the stored answer of a repeat; ``REQUEST_ID_REUSED`` for another request."""
    claimed = conn.execute(st.claim, {
        "request_id": key.request_id, "method": key.method, "request_sha256": key.digest, "response": b"",
        "create_time": now,
    }).first()
    if claimed is not None:
        return None
    stored = conn.execute(st.stored, {"rid": key.request_id}).one()
    ensure_same_request(stored.method, stored.request_sha256, key)
    return Committed(response=bytes(stored.response))


def _require_subject(conn: Connection, st: _Statements, subject_id: str) -> None:
    """The subject's row share-locked; ``SUBJECT_NOT_FOUND`` when not enrolled."""
    if conn.execute(st.subject, {"sid": subject_id}).first() is None:
        raise subject_not_found()


def _refuse_while_purging(
    conn: Connection, st: _Statements, subject_id: str, choices: Sequence[ConsentChoice], *, created: bool = False
) -> None:
    """``PURGE_IN_PROGRESS`` for an account still being closed (a subject made now
    under its id) or a consent a source is collected under while its data is
    being deleted."""
    open_purges = {
        (DeletionScope(row.scope), row.source) for row in conn.execute(st.open_purges, {"sid": subject_id})
    }
    if created and any(scope is DeletionScope.ACCOUNT for scope, _ in open_purges):
        raise purge_in_progress("this account is still being closed")
    whole = {scope for scope, _ in open_purges} & {DeletionScope.ALL_DATA, DeletionScope.ACCOUNT}
    purged_sources = {source for scope, source in open_purges if scope is DeletionScope.SOURCE}
    for choice in choices:
        if choice.purpose == rules.ingestion_purpose(choice.source) and (whole or choice.source in purged_sources):
            raise purge_in_progress("the data of this source is still being deleted")


def _consent_row(x: Consent) -> dict[str, object]:
    return {"subject_id": x.subject_id, "source": x.source, "purpose": x.purpose, "grant_time": x.grant_time,
            "expire_time": x.expire_time, "withdraw_time": x.withdraw_time}


def _enroll(
    conn: Connection, st: _Statements, subject_id: str | None, now: datetime, secret_hash: str | None
) -> Enrollment:
    if subject_id is None:
        while True:
            candidate = rules.new_subject_id()
            if _insert_subject(conn, st, candidate, now, secret_hash, revoke_rules.generation_at(now)):
                return Enrollment(Subject(candidate, now), created=True)
    # The id was taken a moment ago but its account closed since (PostgreSQL, read
    # committed: the insert met the closing transaction's row, the read after it
    # finds none): enrolled again, as if the closing had come first. Once more at
    # most; this was INTERNAL (NoResultFound) under concurrent closing.
    for _ in range(2):
        # Above every revocation of an earlier enrollment of the same id: no token
        # of that one is ever valid for this one.
        floor = conn.execute(st.floor, {"sid": subject_id}).scalar_one_or_none()
        generation = max(revoke_rules.generation_at(now), int(floor or 0))
        if _insert_subject(conn, st, subject_id, now, secret_hash, generation):
            return Enrollment(Subject(subject_id, now), created=True)
        # Share-locked, as a grant locks it: a purge of the subject waits for this.
        row = conn.execute(st.subject, {"sid": subject_id}).one_or_none()
        if row is not None:
            return Enrollment(Subject(row.subject_id, row.enroll_time), created=False)
    raise Aborted("the subject's account was closed while it enrolled: try again", reason="CONCURRENT_CHANGE")


def _insert_subject(
    conn: Connection, st: _Statements, subject_id: str, now: datetime, secret_hash: str | None, generation: int
) -> bool:
    inserted = conn.execute(st.insert_subject, {
        "subject_id": subject_id, "enroll_time": now, "secret_hash": secret_hash, "token_generation": generation,
    })
    return inserted.first() is not None


def _grant(
    conn: Connection, st: _Statements, subject_id: str, choices: Sequence[ConsentChoice], *, created: bool,
    now: datetime,
) -> list[Consent]:
    """Grants ``choices`` to the subject (``consents.grant`` each), refusing as a
    grant does while a purge runs; the consents as granted, in order. A subject
    this call created has no open purge but one of an account closed under the
    same id (then the enrollment itself is refused)."""
    if not choices and not created:
        return []
    _refuse_while_purging(conn, st, subject_id, choices, created=created)
    if not choices:
        return []
    existing: dict[tuple[int, int], Consent] = {}
    if not created:
        rows = conn.execute(st.consents, {"sid": subject_id})
        existing = {(row.source, row.purpose): consent_of(row) for row in rows}
    granted: list[Consent] = []
    changed: list[Consent] = []
    for choice in choices:
        before = existing.get((choice.source, choice.purpose))
        after = rules.grant(
            before, subject_id=subject_id, source=choice.source, purpose=choice.purpose,
            expire_time=choice.expire_time, now=now,
        )
        granted.append(after)
        if after != before:
            changed.append(after)
    if changed:
        conn.execute(st.upsert, [_consent_row(x) for x in changed])
    return granted
