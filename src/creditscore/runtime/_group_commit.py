"""Group commit: concurrent write transactions coalesced into one.

A commit that is durable costs a sync of the log to disk (SQLite with
``synchronous=FULL``: ~1.2 ms on the reference machine; PostgreSQL the same at
the server), and on SQLite every write waits for the one before it. Under load,
many small writes (sign-ups, each a subject and its consents) wait at the same
moment; a ``GroupCommit`` runs them in one transaction, one after the other, each
in its own savepoint, and commits once::

    group = GroupCommit(Transactions.of(engine), name="consent")
    reply = await group.write(lambda conn: enroll(conn, request))

Each write keeps its own effect and its own answer: a write that raises is
rolled back to its savepoint (nothing of it is kept) and its caller gets its
error, while the others of the group go on and commit. Nothing is answered
before the commit: a caller gets its result only once the whole group is on
disk. When the commit itself fails (or the group is interrupted by anything but
an ordinary exception of one write), nothing of the group is kept and every
caller gets that error; each write is whole or absent, never half-written.

Like ``Batcher`` there is no timer and no added wait: a write starts at once when
no group is being committed; otherwise it waits for the group in flight, and the
writes that queued meanwhile (up to ``max_group``) form the next group. At one
write in flight every group has one write (and no savepoint). A caller that goes
away (cancelled) before its group starts is left out of it; once its group has
started, its write commits or not with the group (a retry under the same request
id then finds it).

Groups in flight: one by default (SQLite admits one writer anyway). On
PostgreSQL, whose every statement is a round trip to the server, a group's writes
run one after the other, so a few groups in flight (``max_in_flight``) keep
several connections busy. Two groups may then wait on each other's row locks:
the server breaks such a deadlock by failing one statement, which rolls back
only its write's savepoint; that write is run once more in a fresh savepoint
(its locks were released with the rollback), and fails alone if it fails again.
Where savepoints are not available (SQLite in memory), every write is its own
transaction.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from ._db import Transactions

__all__ = ["GroupCommit"]

T = TypeVar("T")


@dataclass(eq=False)
class _Pending(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]


@dataclass(frozen=True)
class _Failed:
    error: Exception


class GroupCommit:
    """Runs concurrent ``write(fn)`` calls in shared transactions, each ``fn`` in a
    savepoint of its own (see the module docstring). ``fn`` is synchronous
    SQLAlchemy (``Transactions``): no awaits inside, so a group holds the
    database for the time of its statements only."""

    def __init__(
        self, tx: Transactions, *, name: str = "group commit", max_group: int = 256, max_in_flight: int = 1
    ) -> None:
        if max_group < 1 or max_in_flight < 1:
            raise ValueError("max_group and max_in_flight must be at least 1")
        self._tx = tx
        self._name = name
        self._max_group = max_group if tx.savepoints else 1
        self._max_in_flight = max_in_flight
        self._queue: deque[_Pending[Any]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Groups committed (or failed) and the writes in them, for tests and benchmarks.
        self.groups = 0
        self.writes = 0

    @property
    def name(self) -> str:
        return self._name

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)``'s result once the group it ran in has committed; its error
        when it raised (its changes rolled back, the group's others kept), or the
        group's error when the group failed as a whole."""
        pending: _Pending[T] = _Pending(fn, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._pump()
        return await pending.future

    def _pump(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            group: list[_Pending[Any]] = []
            while self._queue and len(group) < self._max_group:
                pending = self._queue.popleft()
                if not pending.future.done():  # else its caller went away
                    group.append(pending)
            if not group:
                return
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[_Pending[Any]]) -> None:
        try:
            self.groups += 1
            self.writes += len(group)
            try:
                outcomes = await self._tx.write(functools.partial(_apply, [p.fn for p in group]))
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the group
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(exc)
                        p.future.exception()  # retrieved: no "never retrieved" warning
                if not isinstance(exc, Exception):
                    raise
                return
            for p, outcome in zip(group, outcomes, strict=True):
                if p.future.done():
                    continue
                if isinstance(outcome, _Failed):
                    p.future.set_exception(outcome.error)
                    p.future.exception()
                else:
                    p.future.set_result(outcome)
        finally:
            self._in_flight -= 1
            self._pump()


def _apply(fns: Sequence[Callable[[Connection], Any]], conn: Connection) -> list[Any]:
    """Runs each write in a savepoint of ``conn``'s transaction: its result, or
    ``_Failed`` with its error (its savepoint rolled back). A lone write needs no
    savepoint: its error rolls the transaction back. Anything but an ``Exception``
    (an interruption) rolls the whole group back."""
    if len(fns) == 1:
        return [fns[0](conn)]
    outcomes: list[Any] = []
    for fn in fns:
        for attempt in (1, 2):
            savepoint = conn.begin_nested()
            try:
                result = fn(conn)
            except Exception as exc:  # noqa: BLE001 - this write's own error, kept for its caller
                savepoint.rollback()
                if attempt == 1 and _lock_conflict(exc):
                    continue
                outcomes.append(_Failed(exc))
            else:
                savepoint.commit()
                outcomes.append(result)
            break
    return outcomes


#: PostgreSQL's codes of a statement failed to break a deadlock or a serialization conflict.
_CONFLICT_STATES = frozenset({"40P01", "40001"})


def _lock_conflict(exc: Exception) -> bool:
    """Whether ``exc`` is the database breaking a lock conflict (worth one retry)."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in _CONFLICT_STATES
