"""The outbox dispatcher: hands accepted records to the feature service.

A background task. Each round it claims due outbox rows in id order, holding up
to ``batch_size`` records (whole rows: a row is one ingested batch, so at least
one row, at most 1000 records), leasing them so that a second replica skips them
and a crashed one's rows come due again; it loads their records' current
versions and sends them in one ``ApplyRecords`` call with
``request_id = "outbox-<first row id>-<last row id>"``. Delivered rows are
deleted; on a failure every row of the call is retried later with exponential
backoff (0.1 s, doubling, at most 30 s) and the error is kept in ``last_error``.

It wakes at once when a batch is accepted (``notify``), and otherwise polls every
``poll_seconds`` (sooner when a backed-off row comes due). Delivery is at least
once: the feature service is idempotent per (producer_id, record_id).

``concurrency`` rounds run at once (each its own loop): while one delivery is
being applied by the feature service, the next is claimed, read and sent, so the
feature service does not sit idle between batches. Their claims never overlap
(the lease; on SQLite the claims of one process also take turns, see
``RecordStore.claim_due``). Deliveries may then be applied out of id order, which
the feature service takes (it keeps the highest revision of each record).

No gRPC here: the feature service is reached through the ``FeatureSink`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from creditscore.runtime import utcnow

from .store import OutboxFailure, OutboxItem, RecordStore

__all__ = ["DispatchResult", "Dispatcher", "FeatureSink"]

log = logging.getLogger("ingest_service.dispatcher")

MAX_BATCH = 1000
"""ApplyRecords takes at most 1000 records."""


class FeatureSink(Protocol):
    """Where accepted records go: the feature service's ApplyRecords."""

    async def apply(self, request_id: str, items: Sequence[OutboxItem], timeout: float) -> None:
        """Delivers ``items`` (each with its producer and serialized record) or raises."""
        ...


@dataclass(frozen=True)
class DispatchResult:
    """What one round did: records claimed, records delivered, and the error if it failed."""

    claimed: int
    delivered: int
    error: str | None = None


class Dispatcher:
    """Delivers the outbox of ``store`` to ``sink``; see the module docstring."""

    def __init__(
        self,
        store: RecordStore,
        sink: FeatureSink,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        delivery_timeout: float = 10.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        lease_margin: float = 5.0,
        concurrency: int = 1,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}, not {batch_size}")
        if not 1 <= concurrency <= 16:
            raise ValueError(f"concurrency must be 1 to 16, not {concurrency}")
        if poll_seconds <= 0 or delivery_timeout <= 0:
            raise ValueError("poll_seconds and delivery_timeout must be positive")
        self._store = store
        self._sink = sink
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._timeout = delivery_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # A claimed row stays invisible to other dispatchers for this long.
        self._lease = timedelta(seconds=delivery_timeout + lease_margin)
        self._clock = clock
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self) -> None:
        """Wakes the loop now: new rows were queued."""
        self._wake.set()

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the next attempt of a row that has failed
        ``failures`` times before this failure: 0.1, 0.2, 0.4, ... at most 30."""
        return min(self._backoff_initial * 2.0 ** min(failures, 64), self._backoff_max)

    async def start(self) -> None:
        """Starts the background loops (``concurrency`` of them, once)."""
        if not self._tasks or all(task.done() for task in self._tasks):
            self._tasks = [
                asyncio.create_task(self._run(), name=f"ingest-outbox-dispatcher-{n}")
                for n in range(self._concurrency)
            ]

    async def stop(self) -> None:
        """Cancels the loops and waits for them; a round in flight is abandoned and
        its rows come due again when their lease ends."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> DispatchResult:
        """One round: claim due rows, deliver them, delete or back them off."""
        now = self._clock()
        items = await self._store.claim_due(self._batch_size, now, now + self._lease)
        if not items:
            return DispatchResult(0, 0)
        request_id = f"outbox-{items[0].id}-{items[-1].id}"
        try:
            await self._sink.apply(request_id, items, self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is retried later
            error = f"{type(exc).__name__}: {exc}"
            failed_at = self._clock()
            await self._store.record_failures(
                [
                    OutboxFailure(
                        item.id,
                        item.attempts + 1,
                        failed_at + timedelta(seconds=self.backoff(item.attempts)),
                    )
                    for item in items
                ],
                error,
            )
            log.warning(
                "delivering %s (%d records) failed, attempt %d: %s",
                request_id, len(items), items[0].attempts + 1, error,
            )
            return DispatchResult(len(items), 0, error)
        await self._store.delete_outbox([item.id for item in items])
        return DispatchResult(len(items), len(items))

    async def drain(self, timeout: float) -> None:
        """Waits until the outbox is empty (the loop must be running); raises
        ``TimeoutError`` when it is not empty after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            backlog = await self._store.outbox_backlog()
            if backlog == 0:
                return
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"the outbox still holds {backlog} rows after {timeout} s")
            self.notify()
            await asyncio.sleep(min(0.02, left))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                result = await self.run_once()
                if result.error is None and result.claimed > 0:
                    self._wake.set()  # the other loops too: more may be due right now
                    continue
                wait = await self._idle_wait()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop outlives a database blip
                log.exception("outbox dispatch round failed")
                wait = self._poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _idle_wait(self) -> float:
        """Seconds until the next round: the poll interval, or sooner when a
        backed-off row comes due before it."""
        due = await self._store.next_due_time()
        if due is None:
            return self._poll
        return min(self._poll, max(0.005, (due - self._clock()).total_seconds()))
