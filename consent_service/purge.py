"""Deleting a subject's data everywhere, with a receipt, and surviving crashes.

A purge is a job (its id is the deletion receipt's id) made of steps, one per
service and pass, run in order:

- ``consent_service`` (account and all-data purges only): the consent service's own
  rows of the subject (consents, authorizations, access log, idempotency records,
  and for an account the enrollment), deleted in the very transaction that
  creates the job, so that every check answers "no" from that instant;
- ``ingest_service``, ``feature_service``, ``scoring_service``, pass 1: each
  service's ``PurgeSubject`` (records and their outbox entries, then the features
  derived from them, then scores), ingest first so that nothing is re-delivered
  to the feature service after it forgot the subject;
- the same three again, pass 2, not before ``sweep_delay`` after the job was
  made: a batch whose consent check passed just before the withdrawal, or an
  outbox delivery already in flight, can still land after pass 1; the second
  pass deletes (and counts) what did. ``sweep_delay`` must be longer than a
  batch's consent check plus an outbox delivery (their timeouts).

The job and its steps are rows of the consent database, written in the same
transaction as the withdrawal that starts them, so a purge, once asked for, is
never lost. ``PurgeWorker`` drives the steps: it claims the first unfinished step
of each open job when it is due (a lease, so that two replicas do not run the
same step and a crashed worker's step comes due again), calls the service with
request id ``<receipt id>.<position>`` and records the tables and counts it
answers; a failure is retried with exponential backoff, without end, until it
succeeds. Each service keeps the answer of a purge request id with its deletion,
in one transaction, so a step retried after a crash between the service's commit
and ours gets the counts of the first call: nothing is counted twice, nothing
is lost from the receipt. The receipt is complete when every step is done.

No gRPC here: the services are reached through ``Purger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from creditscore.runtime import PurgedTable, utcnow

__all__ = [
    "CONSENT_SERVICE",
    "REMOTE_SERVICES",
    "DeletionScope",
    "PurgeStore",
    "PurgeWorker",
    "Purger",
    "Receipt",
    "Step",
    "StepTask",
    "TableCount",
    "new_receipt_id",
    "plan_steps",
    "step_request_id",
]

log = logging.getLogger("consent_service.purge")

CONSENT_SERVICE = "consent_service"
#: The services a purge reaches, in the order they run.
REMOTE_SERVICES = ("ingest_service", "feature_service", "scoring_service")
_LAST_ERROR_LIMIT = 1000


class DeletionScope(enum.IntEnum):
    """Numbered as ``consent.v1.DeletionScope``."""

    UNSPECIFIED = 0
    SOURCE = 1
    ALL_DATA = 2
    ACCOUNT = 3


#: What a purge did to one table (rows deleted, rows rewritten without the subject).
TableCount = PurgedTable


@dataclass(frozen=True)
class Step:
    """One service's part of a purge, in one pass."""

    position: int
    service: str
    pass_: int
    not_before: datetime
    next_attempt_time: datetime
    attempts: int = 0
    last_error: str | None = None
    tables: tuple[TableCount, ...] | None = None
    complete_time: datetime | None = None

    @property
    def done(self) -> bool:
        return self.complete_time is not None


@dataclass(frozen=True)
class Receipt:
    """A purge job as it stands: what it covers and each step."""

    receipt_id: str
    subject_id: str
    scope: DeletionScope
    source: int
    request_time: datetime
    complete_time: datetime | None
    steps: tuple[Step, ...]

    @property
    def complete(self) -> bool:
        return self.complete_time is not None

    @property
    def deleted_rows(self) -> int:
        return sum(t.deleted for s in self.steps for t in (s.tables or ()))


@dataclass(frozen=True)
class StepTask:
    """A claimed step: what the worker needs to run it."""

    receipt_id: str
    position: int
    service: str
    subject_id: str
    source: int
    attempts: int


def new_receipt_id() -> str:
    return "del_" + secrets.token_hex(12)


def step_request_id(receipt_id: str, position: int) -> str:
    """The request id a step calls its service with: the same on every retry."""
    return f"{receipt_id}.{position}"


def plan_steps(
    now: datetime, sweep_delay: timedelta, consent_tables: Sequence[TableCount] | None = None
) -> list[Step]:
    """The steps of a new job made at ``now``: the consent service's own (already
    done, with ``consent_tables``) when given, then pass 1 of every service, then
    pass 2 not before ``now + sweep_delay``."""
    steps: list[Step] = []
    if consent_tables is not None:
        steps.append(Step(0, CONSENT_SERVICE, 1, now, now, 0, None, tuple(consent_tables), now))
    for pass_, not_before in ((1, now), (2, now + sweep_delay)):
        for service in REMOTE_SERVICES:
            steps.append(Step(len(steps), service, pass_, not_before, not_before))
    return steps


class Purger(Protocol):
    """One service's ``PurgeSubject``."""

    async def purge(
        self, request_id: str, subject_id: str, source: int, timeout: float
    ) -> Sequence[TableCount]:
        """Deletes the subject's data (of ``source``, or all when 0); a retry with
        the same ``request_id`` answers the same counts. Raises on failure."""
        ...


class PurgeStore(Protocol):
    """What the worker needs of the consent store."""

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[StepTask]: ...

    async def complete_step(
        self, receipt_id: str, position: int, tables: Sequence[TableCount], now: datetime
    ) -> None: ...

    async def fail_step(
        self, receipt_id: str, position: int, attempts: int, retry_at: datetime, error: str
    ) -> None: ...

    async def release_step(self, receipt_id: str, position: int, now: datetime) -> None: ...

    async def next_step_time(self) -> datetime | None: ...


class PurgeWorker:
    """Drives purge steps to completion; see the module docstring.

    ``purgers`` maps each of ``REMOTE_SERVICES`` to its ``Purger``. A claimed step
    is leased for ``timeout`` plus ``lease_margin`` seconds. ``notify`` wakes the
    worker when a job is made; otherwise it looks every ``poll_seconds`` (sooner
    when a step comes due)."""

    def __init__(
        self,
        store: PurgeStore,
        purgers: Mapping[str, Purger],
        *,
        timeout: float = 30.0,
        poll_seconds: float = 1.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        lease_margin: float = 10.0,
        batch: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        missing = set(REMOTE_SERVICES) - set(purgers)
        if missing:
            raise ValueError(f"no purger for {sorted(missing)}")
        if timeout <= 0 or poll_seconds <= 0:
            raise ValueError("timeout and poll_seconds must be positive")
        self._store = store
        self._purgers = dict(purgers)
        self._timeout = timeout
        self._poll = poll_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._lease = timedelta(seconds=timeout + lease_margin)
        self._batch = batch
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """A job was made: look now."""
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1`` of a failing step."""
        # The exponent is capped: 2.0 ** 1024 overflows (a step failing for ~17 hours).
        return min(self._backoff_max, self._backoff_initial * 2.0 ** min(max(0, attempts - 1), 64))

    async def run_once(self) -> int:
        """Claims the steps due now and runs them, one after another; the number run."""
        now = self._clock()
        tasks = await self._store.claim_due_steps(now, now + self._lease, self._batch)
        for task in tasks:
            await self._run(task)
        return len(tasks)

    async def _run(self, task: StepTask) -> None:
        purger = self._purgers[task.service]
        request_id = step_request_id(task.receipt_id, task.position)
        try:
            tables = await purger.purge(request_id, task.subject_id, task.source, self._timeout)
        except asyncio.CancelledError:
            # Stopping: hand the step back so that the next worker need not wait
            # for the lease (a crash leaves it to the lease).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release_step(task.receipt_id, task.position, self._clock()))
            raise
        except Exception as exc:  # noqa: BLE001 - retried with backoff, without end
            attempts = task.attempts + 1
            delay = self.backoff(attempts)
            error = f"{type(exc).__name__}: {exc}"[:_LAST_ERROR_LIMIT]
            log.warning(
                "purge %s step %d (%s) failed, attempt %d; retrying in %.1fs: %s",
                task.receipt_id, task.position, task.service, attempts, delay, error,
            )
            await self._store.fail_step(
                task.receipt_id, task.position, attempts, self._clock() + timedelta(seconds=delay), error
            )
            return
        await self._store.complete_step(task.receipt_id, task.position, tables, self._clock())
        log.info(
            "purge %s step %d (%s) done: %s", task.receipt_id, task.position, task.service,
            ", ".join(f"{t.table} -{t.deleted}" + (f" ~{t.rewritten}" if t.rewritten else "") for t in tables)
            or "nothing held",
        )

    async def _loop(self) -> None:
        while True:
            try:
                ran = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be back next round
                log.exception("purge worker round failed")
                ran = 0
            if ran:
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        wait = self._poll
        with contextlib.suppress(Exception):
            due = await self._store.next_step_time()
            if due is not None:
                wait = max(0.0, min(wait, (due - self._clock()).total_seconds()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="purge-worker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
