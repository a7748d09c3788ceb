"""Materialized scores: the port to the scoring service, and the background task
that keeps the stored scores up to date.

Next to each subject's aggregates the store keeps the score the scoring service
gave for the subject's vector (``store.MaterializedScore``), so that a lookup
(``FeatureBook.current_scores``) reads it instead of computing the vector and
calling the scoring service. A stored score is *stale* when the row has none,
when another model version than the active one gave it, or when its vector may
have changed with time (``valid_until`` has passed); a lookup that meets one
scores it again within the call, which costs that lookup one more call, so
``ScoreRefresher`` keeps stale rows rare:

- every ``refresh_seconds`` it scores again the rows whose ``valid_until`` has
  passed (found through the index on ``valid_until``), in pages;
- every ``model_refresh_seconds`` it asks the scoring service which model is
  active; after the active model changes (seen by that poll or in any score the
  scoring service returns), and once at start for rows without a score, it makes
  a pass over every stale row, in pages in key order (keyset by subject id).

A page (``batch_size`` rows, ``DEFAULT_REFRESH_PAGE`` by default) is read with
its aggregates in one statement and no lock, its vectors computed while the
previous page is being scored, scored 64 vectors per ``ScoreBatch`` (two calls
in flight: a lookup that meets a stale row waits at the scoring service behind
at most those), and written back with one executemany in
one short transaction, only to the rows whose aggregates are still the ones read
(``FeatureBook.finish_page``). No lock of the book is held across a scoring call,
so lookups, applies and purges go on during a rescore of the whole table; a
lookup that meets a row not rescored yet scores it within the call, as always.

On PostgreSQL, where replicas share the table, a page is *claimed*: read with
``SELECT ... FOR UPDATE SKIP LOCKED`` in a transaction that stays open while the
page is scored and is committed by its write (``FeatureStore.claim_stale_page``),
or rolled back when scoring fails or the refresher stops; a replica that dies
loses its connection and the database frees its rows. Replicas skip each
other's pages, so each row is scored by one of them. An apply or a purge of a
claimed row waits for the page's commit (a claim itself never waits: no
deadlock); a lookup's write skips the row, leaving it to the page. A pass over
stale rows is followed by another while the last one scored anything, for the
rows another replica let go unwritten. SQLite keeps the unlocked pages.

No gRPC here: the scoring service is reached through the ``Scorer`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from creditscore.runtime import DomainError
from creditscore.scoring.v1 import scoring_pb2

if TYPE_CHECKING:
    from .features import FeatureBook, RefreshPage

__all__ = [
    "DEFAULT_REFRESH_PAGE",
    "MAX_REFRESH_PAGE",
    "MAX_SCORE_BATCH",
    "SCORING_NOT_CONFIGURED",
    "SCORING_UNAVAILABLE",
    "ScoreRefresher",
    "Scorer",
]

log = logging.getLogger("feature_service.scores")

#: Most vectors in one ``Scorer.score`` call (ScoreBatch takes 1-256 items).
MAX_SCORE_BATCH = 256

#: Rows per page of the refresher, by default, and at most.
DEFAULT_REFRESH_PAGE = 1024
MAX_REFRESH_PAGE = 8192

#: The reason of ``Unavailable`` when the scoring service cannot be reached.
SCORING_UNAVAILABLE = "SCORING_UNAVAILABLE"
#: The reason of ``FailedPrecondition`` when scores are asked of a book without a scorer.
SCORING_NOT_CONFIGURED = "SCORING_NOT_CONFIGURED"


class Scorer(Protocol):
    """The scoring service, as the feature service uses it."""

    async def score(
        self, items: Sequence[tuple[str, Mapping[str, float | None]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        """ScoreBatch: the active scorecard's score of each (subject_id, vector), in
        order; a vector is ``{feature name: value}``, None for no data.
        Raises creditscore.runtime.Unavailable (reason SCORING_UNAVAILABLE) when the
        scoring service cannot be reached."""
        ...

    async def active_model(self, timeout: float) -> str:
        """The active model's version (ListModels, the one marked active)."""
        ...


class ScoreRefresher:
    """Scores stale rows of ``book`` again in the background; see the module
    docstring. The loop outlives any failure: it logs it, waits and goes on."""

    def __init__(
        self,
        book: FeatureBook,
        *,
        refresh_seconds: float,
        model_refresh_seconds: float,
        batch_size: int = DEFAULT_REFRESH_PAGE,
    ) -> None:
        if refresh_seconds <= 0 or model_refresh_seconds <= 0:
            raise ValueError("refresh_seconds and model_refresh_seconds must be positive")
        if not 1 <= batch_size <= MAX_REFRESH_PAGE:
            raise ValueError(f"batch_size must be 1 to {MAX_REFRESH_PAGE}, not {batch_size}")
        self._book = book
        self._refresh = refresh_seconds
        self._model_refresh = model_refresh_seconds
        self._batch_size = batch_size
        # ``book.model_changes`` when the last complete pass over every stale row
        # began; None: no pass yet (the first round makes one).
        self._passed: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Starts the background loop (once)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="feature-score-refresher")

    async def stop(self, grace: float = 10.0) -> None:
        """Stops the loop: a round in flight finishes its current batch (its
        transaction is never cut off in the middle, which would leave a database
        connection behind); after ``grace`` seconds the loop is cancelled."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def run_once(self) -> int:
        """One round: a pass over every stale row when none was made since the
        active model last changed (or since start), then the rows whose vector
        has moved with time. Returns how many rows were scored again."""
        book = self._book
        await book.active_model()  # asks the scoring service when not known yet
        rescored = 0
        changes = book.model_changes
        if changes != self._passed:
            while True:
                count, done = await self._pass(book.prepare_stale, "")
                rescored += count
                if not done:
                    return rescored  # stopping: the pass starts again at the next start
                # Claimed pages (PostgreSQL) skip the rows another replica holds; a
                # replica that dies or fails lets its rows go unwritten, so a pass
                # that scored anything is followed by one more, until one scores none.
                if not (count and book.claims_pages):
                    break
            self._passed = changes
        if not self._stopping.is_set():
            count, _ = await self._pass(book.prepare_expired, None)
            rescored += count
        return rescored

    async def _pass(
        self, prepare: Callable[[Any, int], Coroutine[Any, Any, RefreshPage]], start: Any
    ) -> tuple[int, bool]:
        """Pages from ``prepare`` until one says it was the last, each next page
        prepared while the one before is scored and written; how many rows were
        scored, and whether the pass got to its end (False: stopped)."""
        rescored = 0
        pending: asyncio.Task[RefreshPage] | None = asyncio.create_task(prepare(start, self._batch_size))
        try:
            while pending is not None:
                page = await pending
                pending = None
                if page.after is not None and not self._stopping.is_set():
                    pending = asyncio.create_task(prepare(page.after, self._batch_size))
                rescored += await self._book.finish_page(page)
                if page.after is None:
                    return rescored, True
            return rescored, False
        finally:
            if pending is not None:  # a page prepared but not to be scored
                if not pending.done():
                    # A claim in the middle runs to its end and is released (FeatureBook._claimed).
                    pending.cancel()
                    await asyncio.wait([pending])
                if not pending.cancelled() and pending.exception() is None:
                    # Its claim (PostgreSQL) is rolled back: the rows go to whoever comes next.
                    await self._book.release_page(pending.result())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while not self._stopping.is_set():
            try:
                if loop.time() >= next_poll:
                    next_poll = loop.time() + self._model_refresh
                    await self._book.poll_active_model()
                rescored = await self.run_once()
                if rescored:
                    log.info("scored %d stale rows again", rescored)
            except asyncio.CancelledError:
                raise
            except DomainError as exc:  # the scoring service unreachable: expected now and then
                log.warning("refreshing materialized scores failed: %s", exc)
            except Exception:  # noqa: BLE001 - the loop outlives a database blip
                log.exception("refreshing materialized scores failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), max(0.0, min(self._refresh, next_poll - loop.time()))
                )
