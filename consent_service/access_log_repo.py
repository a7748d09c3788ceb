"""The access log (``access_log``): every partner lookup the gateway answered, and
the lookup's one question, ``record_batch`` (``RecordAccesses``).

The log is idempotent on (partner, transaction id) rather than on a request id: a
unique key on the transaction id while it dedupes (24 hours), so that concurrent
duplicates cannot make two entries. ``record_batch`` authorizes and logs a batch
of lookups in one transaction with a fixed number of statements, whatever the
batch's size, through ``Transactions`` (one step: no round trip per statement).
The rules are in ``authorizations``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from creditscore.common.v1 import common_pb2
from creditscore.runtime import Aborted, Transactions, begin_write, dialect_insert

from . import authorizations as auth_rules
from .authorizations import AccessEntry, AccessOutcome, AccessOutcomeKind, AccessToRecord
from .authorizations_repo import AuthorizationsRepo, authorization_of, authorization_query
from .consents_repo import consent_of
from .purge import TableCount
from .subjects_repo import SubjectsRepo
from .tables import access_log_table, authorizations_table, clients_table, consents_table, subjects_table

__all__ = ["AccessLogRepo"]


class AccessLogRepo:
    """Records lookups, one or a batch, and reads the log.

    ``tx`` runs the batch's transaction in one step (``Transactions.of(engine)``)."""

    def __init__(
        self, engine: AsyncEngine, tx: Transactions, subjects: SubjectsRepo, authorizations: AuthorizationsRepo
    ) -> None:
        self._engine = engine
        self._tx = tx
        self._dialect = engine.dialect.name
        self._subjects = subjects
        self._authorizations = authorizations

    # --- recording -------------------------------------------------------------------

    async def record(
        self,
        *,
        subject_id: str,
        partner_id: str,
        purpose: int,
        transaction_id: str,
        answer_kind: str,
        answer: bytes,
        response: bytes,
        now: datetime,
    ) -> tuple[AccessEntry, bool]:
        """Writes one lookup to the log, in one transaction, and returns it with
        True; or, when (partner, transaction id) was recorded in the last 24 hours,
        returns that entry with False and writes nothing (a different subject or
        purpose under it is ``TRANSACTION_ID_REUSED``). A new entry needs a live
        authorization whose scope covers ``answer_kind``, read locked in the same
        transaction, so a revocation committed first refuses it
        (``NOT_AUTHORIZED``)."""
        log = access_log_table.c
        async with begin_write(self._engine) as conn:
            # An entry older than the window no longer holds the transaction id.
            await conn.execute(
                update(access_log_table)
                .where(
                    log.partner_id == partner_id,
                    log.transaction_key == transaction_id,
                    log.access_time <= now - auth_rules.DEDUPE_WINDOW,
                )
                .values(transaction_key=None)
            )
            existing = await _access_by_key(conn, partner_id, transaction_id)
            if existing is not None:
                auth_rules.ensure_same_lookup(existing, subject_id, purpose)
                return existing, False
            grant = None
            if await self._subjects.find(conn, subject_id, lock="share") is not None:
                grant = await self._authorizations.locked(conn, subject_id, partner_id, purpose)
            granted = auth_rules.ensure_scope_covers(grant, answer_kind, now)
            entry = AccessEntry(
                access_id=auth_rules.new_access_id(),
                subject_id=subject_id,
                partner_id=partner_id,
                purpose=purpose,
                transaction_id=transaction_id,
                scope=granted.scope,
                answer=answer,
                response=response,
                access_time=now,
                partner_name=granted.partner_name,
            )
            inserted = await conn.execute(
                dialect_insert(self._dialect, access_log_table)
                .values(**_access_row(entry))
                .on_conflict_do_nothing(index_elements=[log.partner_id, log.transaction_key])
                .returning(log.access_id)
            )
            if inserted.first() is not None:
                return entry, True
            # A concurrent call with the same transaction id committed first.
            existing = await _access_by_key(conn, partner_id, transaction_id)
            assert existing is not None
            auth_rules.ensure_same_lookup(existing, subject_id, purpose)
            return existing, False

    async def record_batch(self, items: Sequence[AccessToRecord], *, now: datetime) -> list[AccessOutcome]:
        """Authorizes and logs a batch of lookups: one outcome per item, in order,
        per ``authorizations.decide_accesses``, in one transaction committed before
        returning, with the same few statements for 1 item or 256.

        It locks what ``record`` locks: the subjects (shared: a purge waits
        for this transaction, then deletes its entries too, or runs first and this
        finds the subject or its authorizations gone) and the authorizations (so a
        revocation commits first and refuses, or waits). Consents are read, not
        locked: a withdrawal committed first refuses (or is ``SOURCES_CHANGED``);
        one committing later is ordered after these lookups, as it reads nothing
        they write. An entry older than the 24 hours no longer holds its
        transaction id. When another transaction wrote an entry under one of the
        batch's transaction ids between the read and the write, that entry is the
        item's (REPLAYED or TRANSACTION_ID_REUSED), never a second entry."""
        if not items:
            return []
        keys = sorted({item.transaction_key for item in items})
        subject_ids = sorted({item.subject_id for item in items})
        grant_keys = sorted({item.authorization_key for item in items})
        return await self._tx.write(
            lambda conn: _record_accesses(conn, self._dialect, items, keys, subject_ids, grant_keys, now)
        )

    async def delete_of(self, conn: AsyncConnection, subject_id: str) -> TableCount:
        """Deletes the subject's entries (a purge)."""
        result = await conn.execute(delete(access_log_table).where(access_log_table.c.subject_id == subject_id))
        return TableCount(access_log_table.name, int(result.rowcount))

    # --- reads ---------------------------------------------------------------------

    async def by_transaction(self, partner_id: str, transaction_id: str, *, now: datetime) -> AccessEntry | None:
        """The entry (partner, transaction id) was recorded under in the last 24 hours."""
        async with self._engine.connect() as conn:
            entry = await _access_by_key(conn, partner_id, transaction_id)
        if entry is None or entry.access_time <= now - auth_rules.DEDUPE_WINDOW:
            return None
        return entry

    async def page(
        self, subject_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[AccessEntry], bool]:
        """Up to ``limit`` of the subject's entries, newest first (ties by id,
        descending), after ``after``; ``SUBJECT_NOT_FOUND`` for an unknown subject."""
        log = access_log_table.c
        query = _access_query().where(log.subject_id == subject_id)
        if after is not None:
            time, access_id = after
            query = query.where(
                or_(log.access_time < time, and_(log.access_time == time, log.access_id < access_id))
            )
        rows, more = await self._subjects.page(
            subject_id, query.order_by(log.access_time.desc(), log.access_id.desc()), limit
        )
        return [_access(row) for row in rows], more

    async def of_subject(self, conn: AsyncConnection, subject_id: str) -> list[AccessEntry]:
        """Every entry of the subject, oldest first (an export)."""
        log = access_log_table.c
        rows = await conn.execute(
            _access_query().where(log.subject_id == subject_id).order_by(log.access_time, log.access_id)
        )
        return [_access(row) for row in rows]


def _access_query() -> Select[Any]:
    """Entries with their partner's display name (``partner_name``)."""
    log, k = access_log_table.c, clients_table.c
    return select(access_log_table, k.display_name.label("partner_name")).join(
        clients_table, k.client_id == log.partner_id
    )


async def _access_by_key(conn: AsyncConnection, partner_id: str, transaction_id: str) -> AccessEntry | None:
    key = (partner_id, transaction_id)
    return (await conn.run_sync(_accesses_by_keys, [key])).get(key)


class _LookupStatements:
    """The statements of ``_record_accesses``, built once per dialect with
    expanding parameters: building and coercing a statement costs more than
    SQLite runs it, and the lookup runs these for every batch."""

    def __init__(self, dialect: str) -> None:
        a, c, log, s = authorizations_table.c, consents_table.c, access_log_table.c, subjects_table.c
        # Keys are matched as "partner in (...) and key in (...)", a superset of the
        # batch's pairs read through the (partner_id, transaction_key) index, and
        # narrowed to the pairs in Python: SQLite answers a row-value IN
        # ("(a, b) in ((?, ?), ...)") with a scan of the whole table, so the cost
        # of a lookup would grow with the access log. Releasing a stale key of a
        # pair outside the batch is harmless: a stale key holds nothing.
        self.release_stale_keys = (
            update(access_log_table)
            .where(
                log.partner_id.in_(bindparam("partners", expanding=True)),
                log.transaction_key.in_(bindparam("transactions", expanding=True)),
                log.access_time <= bindparam("cutoff"),
            )
            .values(transaction_key=None)
        )
        self.share_subjects = (
            select(s.subject_id)
            .where(s.subject_id.in_(bindparam("subject_ids", expanding=True)))
            .order_by(s.subject_id)
            .with_for_update(read=True, key_share=True)
        )
        self.grants = (
            authorization_query()
            .where(
                a.subject_id.in_(bindparam("subject_ids", expanding=True)),
                a.partner_id.in_(bindparam("partners", expanding=True)),
            )
            .order_by(a.subject_id, a.partner_id, a.purpose)
            .with_for_update(of=authorizations_table)
        )
        self.consents = select(consents_table).where(
            c.subject_id.in_(bindparam("subject_ids", expanding=True)),
            c.purpose == common_pb2.PURPOSE_CREDIT_SCORING,
            c.source.in_(sorted(auth_rules.SCORED_SOURCES)),
        )
        self.entries = _access_query().where(
            log.partner_id.in_(bindparam("partners", expanding=True)),
            log.transaction_key.in_(bindparam("transactions", expanding=True)),
        )
        self.insert = (
            dialect_insert(dialect, access_log_table)
            .on_conflict_do_nothing(index_elements=[log.partner_id, log.transaction_key])
            .returning(log.access_id)
        )


@functools.cache
def _lookup_statements(dialect: str) -> _LookupStatements:
    return _LookupStatements(dialect)


def _record_accesses(
    conn: Connection,
    dialect: str,
    items: Sequence[AccessToRecord],
    keys: Sequence[tuple[str, str]],
    subject_ids: Sequence[str],
    grant_keys: Sequence[tuple[str, str, int]],
    now: datetime,
) -> list[AccessOutcome]:
    """``AccessLogRepo.record_batch`` inside its transaction (synchronous: one step)."""
    q = _lookup_statements(dialect)
    release = {**_key_params(keys), "cutoff": now - auth_rules.DEDUPE_WINDOW}
    if dialect == "sqlite":
        # A write first, as record and RequestsRepo.idempotent begin: the
        # transaction holds SQLite's one write lock from its first
        # statement, so everything read below stays true until it commits.
        conn.execute(q.release_stale_keys, release)
        subjects = set(conn.execute(q.share_subjects, {"subject_ids": list(subject_ids)}).scalars())
    else:
        # Subjects first, as a purge locks its subject before deleting the
        # subject's entries (which releasing a stale key may touch).
        subjects = set(conn.execute(q.share_subjects, {"subject_ids": list(subject_ids)}).scalars())
        conn.execute(q.release_stale_keys, release)
    wanted = set(grant_keys)
    grants = {
        key: authorization_of(row)
        for row in conn.execute(q.grants, {
            "subject_ids": sorted({k[0] for k in grant_keys}), "partners": sorted({k[1] for k in grant_keys}),
        })
        if (key := (row.subject_id, row.partner_id, row.purpose)) in wanted
    }
    consents = [consent_of(row) for row in conn.execute(q.consents, {"subject_ids": list(subject_ids)})]
    entries = _accesses_by_keys(conn, keys)
    outcomes = auth_rules.decide_accesses(
        items, subjects=subjects, authorizations=grants, consents=consents, entries=entries, now=now
    )
    new = [o.entry for o in outcomes if o.kind is AccessOutcomeKind.RECORDED and o.entry is not None]
    if not new:
        return outcomes
    # One INSERT for the batch, in key order (so that two batches with
    # common transaction ids wait on each other, never deadlock).
    new.sort(key=lambda e: (e.partner_id, e.transaction_id))
    inserted = conn.execute(q.insert, [_access_row(e) for e in new])
    written = set(inserted.scalars().all())
    lost = {e.access_id: e for e in new if e.access_id not in written}
    if not lost:
        return outcomes
    # Another transaction wrote under these transaction ids meanwhile: its
    # entries stand, for the items recorded here and those replaying them.
    winners = _accesses_by_keys(
        conn, sorted({(e.partner_id, e.transaction_id) for e in lost.values()})
    )
    settled: list[AccessOutcome] = []
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.entry is None or outcome.entry.access_id not in lost:
            settled.append(outcome)
            continue
        winner = winners.get(item.transaction_key)
        if winner is None:  # written, then purged, between two statements
            raise Aborted("the access log changed while recording; try again",
                          reason="ACCESS_LOG_CONFLICT")
        settled.append(auth_rules.replay_of(winner, item))
    return settled


def _accesses_by_keys(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], AccessEntry]:
    """The entries holding any of the (partner, transaction id) ``keys``, by key."""
    wanted = set(keys)
    rows = conn.execute(_lookup_statements(conn.dialect.name).entries, _key_params(keys))
    return {
        key: _access(row) for row in rows if (key := (row.partner_id, row.transaction_key)) in wanted
    }


def _key_params(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The (partner, transaction id) pairs as the two lists the statements match."""
    return {"partners": sorted({p for p, _ in keys}), "transactions": sorted({t for _, t in keys})}


def _access_row(entry: AccessEntry) -> dict[str, object]:
    """The access log row of a new entry: it holds its transaction id."""
    return {
        "access_id": entry.access_id,
        "subject_id": entry.subject_id,
        "partner_id": entry.partner_id,
        "purpose": entry.purpose,
        "transaction_id": entry.transaction_id,
        "transaction_key": entry.transaction_id,
        "scope": entry.scope,
        "answer": entry.answer,
        "response": entry.response,
        "access_time": entry.access_time,
    }


def _access(row: Row[Any]) -> AccessEntry:
    return AccessEntry(
        access_id=row.access_id,
        subject_id=row.subject_id,
        partner_id=row.partner_id,
        purpose=row.purpose,
        transaction_id=row.transaction_id,
        scope=row.scope,
        answer=bytes(row.answer),
        response=bytes(row.response),
        access_time=row.access_time,
        partner_name=row.partner_name,
    )
