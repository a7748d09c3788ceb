"""Purge jobs and their steps (``purge_jobs``, ``purge_steps``): the deletion
receipts, and the worker's leases on the steps.

A job is made in the transaction of the withdrawal that starts it (a source's:
``start_source_purge``; everything's or an account's: ``claim_request`` then
``record_own_step``, idempotent on the request id through the job's own unique
``request_id``: the job is the receipt and outlives the subject). The steps are
then driven by ``purge.PurgeWorker`` through ``claim_due_steps`` and the
``*_step`` methods, each in a transaction of its own. The rules are in ``purge``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Update

from creditscore.runtime import FailedPrecondition, begin_write, dialect_insert

from .consents import RequestKey, ensure_same_request
from .purge import DeletionScope, Receipt, Step, StepTask, TableCount, new_receipt_id, plan_steps
from .tables import purge_jobs_table, purge_steps_table

__all__ = ["PurgesRepo", "purge_in_progress"]


class PurgesRepo:
    """Makes purge jobs, reads receipts, and leases and records steps.

    ``sweep_delay`` is when a job's second pass comes due (see ``purge``)."""

    def __init__(self, engine: AsyncEngine, *, sweep_delay: timedelta) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._sweep_delay = sweep_delay

    # --- making jobs (in the caller's transaction) -----------------------------------

    async def open_purge(
        self, conn: AsyncConnection, subject_id: str, source: int | None, whole: Collection[DeletionScope]
    ) -> bool:
        """Whether an unfinished purge of the subject covers ``source`` (a SOURCE purge
        of it) or is of one of the ``whole`` scopes."""
        jobs = purge_jobs_table.c
        covers: ColumnElement[bool] = jobs.scope.in_([int(s) for s in whole])
        if source is not None:
            covers = or_(covers, and_(jobs.scope == int(DeletionScope.SOURCE), jobs.source == source))
        row = (
            await conn.execute(
                select(jobs.receipt_id)
                .where(jobs.subject_id == subject_id, jobs.complete_time.is_(None), covers)
                .limit(1)
            )
        ).first()
        return row is not None

    async def start_source_purge(self, conn: AsyncConnection, subject_id: str, source: int, now: datetime) -> str:
        """Makes the job that purges one source of the subject everywhere; its receipt id."""
        receipt_id = new_receipt_id()
        await conn.execute(
            purge_jobs_table.insert().values(
                receipt_id=receipt_id, subject_id=subject_id, scope=int(DeletionScope.SOURCE), source=source,
                request_id=None, method=None, request_sha256=None, request_time=now, complete_time=None,
            )
        )
        await _insert_steps(conn, receipt_id, plan_steps(now, self._sweep_delay))
        return receipt_id

    async def claim_request(
        self,
        conn: AsyncConnection,
        key: RequestKey,
        *,
        receipt_id: str,
        subject_id: str,
        scope: DeletionScope,
        now: datetime,
    ) -> Receipt | None:
        """Makes the job ``receipt_id`` of a purge of everything of the subject under
        ``key``'s request id, steps to follow (``record_own_step``); None when this
        call made it. A repeat of the request gets the receipt of the job it made;
        another request under its id is ``REQUEST_ID_REUSED``."""
        jobs = purge_jobs_table.c
        claimed = await conn.execute(
            dialect_insert(self._dialect, purge_jobs_table)
            .values(
                receipt_id=receipt_id, subject_id=subject_id, scope=int(scope), source=0,
                request_id=key.request_id, method=key.method, request_sha256=key.digest,
                request_time=now, complete_time=None,
            )
            .on_conflict_do_nothing(index_elements=[jobs.request_id])
            .returning(jobs.receipt_id)
        )
        if claimed.first() is not None:
            return None
        row = (await conn.execute(select(purge_jobs_table).where(jobs.request_id == key.request_id))).one()
        ensure_same_request(row.method or "", row.request_sha256 or "", key)
        receipt = await _receipt(conn, row.receipt_id)
        assert receipt is not None
        return receipt

    async def record_own_step(
        self, conn: AsyncConnection, receipt_id: str, tables: Sequence[TableCount], now: datetime
    ) -> Receipt:
        """Adds the steps of a claimed job, the consent service's own done with
        ``tables`` (deleted in this transaction); the receipt as it stands."""
        await _insert_steps(conn, receipt_id, plan_steps(now, self._sweep_delay, tables))
        receipt = await _receipt(conn, receipt_id)
        assert receipt is not None
        return receipt

    # --- receipts ------------------------------------------------------------------

    async def receipt(self, receipt_id: str) -> Receipt | None:
        async with self._engine.connect() as conn:
            return await _receipt(conn, receipt_id)

    async def receipts_of(self, subject_id: str) -> list[Receipt]:
        """Every deletion receipt of a subject, oldest first."""
        jobs = purge_jobs_table.c
        async with self._engine.connect() as conn:
            ids = (
                await conn.execute(
                    select(jobs.receipt_id)
                    .where(jobs.subject_id == subject_id)
                    .order_by(jobs.request_time, jobs.receipt_id)
                )
            ).scalars().all()
            receipts = [await _receipt(conn, receipt_id) for receipt_id in ids]
        return [r for r in receipts if r is not None]

    # --- the worker's steps (``purge.PurgeStore``) -------------------------------------

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[StepTask]:
        """Leases, until ``lease_until``, the first unfinished step of each open job
        when it is due at ``now`` (its ``not_before`` and ``next_attempt_time``
        passed); at most ``limit``. The lease is a conditional update, so of two
        workers claiming the same step one gets it."""
        jobs, steps = purge_jobs_table.c, purge_steps_table.c
        query = (
            select(
                steps.receipt_id, steps.position, steps.service, steps.not_before,
                steps.next_attempt_time, steps.attempts, jobs.subject_id, jobs.source,
            )
            .join(purge_jobs_table, jobs.receipt_id == steps.receipt_id)
            .where(jobs.complete_time.is_(None), steps.complete_time.is_(None))
            .order_by(jobs.request_time, steps.receipt_id, steps.position)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        claimed: list[StepTask] = []
        seen: set[str] = set()
        for row in rows:
            if row.receipt_id in seen:
                continue  # only the first unfinished step of a job may run
            seen.add(row.receipt_id)
            if row.not_before > now or row.next_attempt_time > now:
                continue
            # Each lease is one conditional UPDATE of its own (a write first: no
            # read-then-write transaction for SQLite's WAL to refuse).
            async with begin_write(self._engine) as conn:
                leased = await conn.execute(
                    _open_step(row.receipt_id, row.position)
                    .where(steps.next_attempt_time == row.next_attempt_time)
                    .values(next_attempt_time=lease_until)
                )
            if leased.rowcount == 1:
                claimed.append(
                    StepTask(row.receipt_id, row.position, row.service, row.subject_id,
                             row.source, row.attempts)
                )
            if len(claimed) >= limit:
                break
        return claimed

    async def complete_step(
        self, receipt_id: str, position: int, tables: Sequence[TableCount], now: datetime
    ) -> None:
        """Records a step's result and, with its last step done, completes the job."""
        steps = purge_steps_table.c
        result = json.dumps([[t.table, t.deleted, t.rewritten] for t in tables])
        async with begin_write(self._engine) as conn:
            await conn.execute(
                _open_step(receipt_id, position).values(
                    result=result, complete_time=now, last_error=None, attempts=steps.attempts + 1
                )
            )
            left = (
                await conn.execute(
                    select(func.count())
                    .select_from(purge_steps_table)
                    .where(steps.receipt_id == receipt_id, steps.complete_time.is_(None))
                )
            ).scalar_one()
            if left == 0:
                await conn.execute(
                    update(purge_jobs_table)
                    .where(
                        purge_jobs_table.c.receipt_id == receipt_id,
                        purge_jobs_table.c.complete_time.is_(None),
                    )
                    .values(complete_time=now)
                )

    async def fail_step(
        self, receipt_id: str, position: int, attempts: int, retry_at: datetime, error: str
    ) -> None:
        async with begin_write(self._engine) as conn:
            await conn.execute(
                _open_step(receipt_id, position).values(
                    attempts=attempts, next_attempt_time=retry_at, last_error=error
                )
            )

    async def release_step(self, receipt_id: str, position: int, now: datetime) -> None:
        """Ends a lease early (a worker stopping): the step is due again at ``now``."""
        async with begin_write(self._engine) as conn:
            await conn.execute(_open_step(receipt_id, position).values(next_attempt_time=now))

    async def next_step_time(self) -> datetime | None:
        """The earliest time an unfinished step may come due; None when none is left."""
        steps = purge_steps_table.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(steps.not_before, steps.next_attempt_time).where(steps.complete_time.is_(None))
                )
            ).all()
        times = [max(r.not_before, r.next_attempt_time) for r in rows]
        return min(times) if times else None


def purge_in_progress(message: str) -> FailedPrecondition:
    return FailedPrecondition(f"{message}; try again once its deletion receipt is complete",
                              reason="PURGE_IN_PROGRESS")


async def _insert_steps(conn: AsyncConnection, receipt_id: str, steps: Sequence[Step]) -> None:
    await conn.execute(
        purge_steps_table.insert(),
        [
            {
                "receipt_id": receipt_id,
                "position": s.position,
                "service": s.service,
                "pass": s.pass_,
                "not_before": s.not_before,
                "next_attempt_time": s.next_attempt_time,
                "attempts": s.attempts,
                "last_error": s.last_error,
                "result": None
                if s.tables is None
                else json.dumps([[t.table, t.deleted, t.rewritten] for t in s.tables]),
                "complete_time": s.complete_time,
            }
            for s in steps
        ],
    )


async def _receipt(conn: AsyncConnection, receipt_id: str) -> Receipt | None:
    jobs, steps = purge_jobs_table.c, purge_steps_table.c
    job = (await conn.execute(select(purge_jobs_table).where(jobs.receipt_id == receipt_id))).first()
    if job is None:
        return None
    rows = (
        await conn.execute(
            select(purge_steps_table).where(steps.receipt_id == receipt_id).order_by(steps.position)
        )
    ).all()
    return Receipt(
        receipt_id=job.receipt_id,
        subject_id=job.subject_id,
        scope=DeletionScope(job.scope),
        source=job.source,
        request_time=job.request_time,
        complete_time=job.complete_time,
        steps=tuple(_step(row) for row in rows),
    )


def _step(row: Row[Any]) -> Step:
    tables = None
    if row.result is not None:
        tables = tuple(TableCount(t, int(d), int(w)) for t, d, w in json.loads(row.result))
    return Step(
        position=row.position,
        service=row.service,
        pass_=row._mapping["pass"],
        not_before=row.not_before,
        next_attempt_time=row.next_attempt_time,
        attempts=row.attempts,
        last_error=row.last_error,
        tables=tables,
        complete_time=row.complete_time,
    )


def _open_step(receipt_id: str, position: int) -> Update:
    """An ``UPDATE`` of one purge step that is not complete yet (a completed
    step is never written again: its lease, result or failure is over)."""
    steps = purge_steps_table.c
    return update(purge_steps_table).where(
        steps.receipt_id == receipt_id, steps.position == position, steps.complete_time.is_(None)
    )
