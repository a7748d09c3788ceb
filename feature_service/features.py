"""The feature service's use cases: apply each version of a record exactly once,
read a vector, or the vectors of many subjects at once, and the subjects' current
scores.

``FeatureBook`` joins the feature engine (``aggregates``), the store and, when
given one, the scoring service (``scores.Scorer``): it is what the servicer
calls, and it knows neither gRPC nor SQL.

With a scorer, every subject's score is materialized next to its aggregates: an
apply or a per-source purge has the scoring service score the changed subjects'
new vectors (as of now) and writes each score with its row in the same
transaction, before it commits; when scoring fails, nothing is committed and the
call fails (``Unavailable``, SCORING_UNAVAILABLE). ``current_scores`` answers
from those rows; see ``scores`` for when a stored score is stale and what scores
it again. Without a scorer rows are written without a score, and
``current_scores`` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import FEATURE_NAMES, SOURCE_OF_BODY, sources_used
from creditscore.features.engine import (
    NO_REPAIRS,
    Repairs,
    SubjectState,
    apply_record,
    epoch_seconds,
    feature_vector,
    next_month_start,
    rebuild_state,
    repair,
    unapply_record,
    vector_valid_until,
)
from creditscore.records.v1 import records_pb2
from creditscore.runtime import (
    Deadline,
    FailedPrecondition,
    PurgedTable,
    Violations,
    check_purge_request,
    check_subject_id,
    utcnow,
)
from creditscore.scoring.v1 import scoring_pb2

from .scores import MAX_SCORE_BATCH, SCORING_NOT_CONFIGURED, Scorer
from .store import (
    AppliedRow,
    AppliedVersion,
    FeatureStore,
    MaterializedScore,
    PageClaim,
    RecordKey,
    StaleRow,
    StoredState,
    applied_records,
    subject_features,
)

__all__ = [
    "ApplyResult",
    "CurrentScore",
    "FeatureBook",
    "RefreshPage",
    "SubjectHoldings",
    "SubjectVector",
    "feature_values",
]

#: A subject's current score and the scored sources with a value in its vector.
CurrentScore = tuple[scoring_pb2.Score, frozenset[int]]

_SOURCES = frozenset(v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number)


T = TypeVar("T")

@dataclass(frozen=True)
class ApplyResult:
    """What one ``FeatureBook.apply`` did."""

    applied: int  # versions applied now: new records, corrections, retractions
    duplicates: int  # versions applied before (or superseded in the batch), ignored


def _check_time_left(deadline: Deadline | None) -> None:
    """``DeadlineExceeded`` when the caller's ``deadline`` has (almost) passed:
    work that waited for the book's lock is not started for a caller gone."""
    if deadline is not None:
        deadline.timeout()


def _feeds_features(record: records_pb2.Record) -> bool:
    """A version that counts: it has a body, and is not a loan outcome (a label)."""
    return not record.retracted and record.WhichOneof("body") not in (None, "loan_outcome")


def _source(record: records_pb2.Record) -> int:
    """The record's data source by its body; 0 for a retraction (no body)."""
    body = record.WhichOneof("body")
    return 0 if body is None else SOURCE_OF_BODY[body]


@dataclass(frozen=True)
class SubjectHoldings:
    """Everything this service holds about a subject (the consent service's export)."""

    vector: SubjectVector
    applied: list[AppliedRow]


@dataclass(frozen=True)
class SubjectVector:
    """One subject's features as of a time, and until when they stay the same."""

    subject_id: str
    as_of: datetime
    values: dict[str, float | None]  # catalog order; None = no data
    record_count: int
    # The instant the values may change with no record applied or purged
    # (``aggregates.vector_valid_until``); they are the same from ``as_of`` until then.
    valid_until: datetime


def _vector_of(subject_id: str, stored: StoredState | None, when: datetime) -> SubjectVector:
    """The vector of a subject's stored aggregates (None: no record applied, so
    every feature is missing and the record count 0) as of ``when``."""
    seconds = epoch_seconds(when)
    if stored is None:
        until = next_month_start(seconds)
        return SubjectVector(subject_id, when, dict.fromkeys(FEATURE_NAMES), 0, _utc(until))
    until = vector_valid_until(stored.state, seconds)
    return SubjectVector(subject_id, when, feature_vector(stored.state, when), stored.record_count, _utc(until))


def _row_vector(row: StaleRow, when: datetime) -> SubjectVector:
    """``_vector_of`` a row read with its aggregates as JSON (a refresh page's, a
    stale lookup's)."""
    stored = StoredState(row.subject_id, SubjectState.from_json(row.state), row.record_count, when)
    return _vector_of(row.subject_id, stored, when)


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def feature_values(vector: SubjectVector) -> list[common_pb2.FeatureValue]:
    """The vector's values as the contracts carry them: every catalog feature in
    catalog order, value unset where there is no data."""
    return [
        common_pb2.FeatureValue(name=name) if value is None else common_pb2.FeatureValue(name=name, value=value)
        for name, value in vector.values.items()
    ]


#: Vectors computed between two yields to the event loop while a refresh page is
#: prepared (a page's computation would otherwise hold up the lookups in flight).
_VECTORS_PER_YIELD = 16
#: ``ScoreBatch`` calls one refresh page keeps in flight at once, and vectors per
#: call: a lookup that meets a stale row waits at the scoring service behind at
#: most this many of the refresher's vectors.
_SCORE_CALLS_IN_FLIGHT = 2
_REFRESH_CHUNK = 64


@dataclass(frozen=True)
class RefreshPage:
    """One page of stale rows read and their vectors computed as of ``now``, to
    be scored and written back (``FeatureBook.finish_page``); ``after`` is where
    the next page starts (None: this page was the last). On PostgreSQL the rows
    are claimed (``claim``: locked by a transaction open until the page is
    written, or released by ``FeatureBook.release_page``); None on SQLite."""

    rows: list[tuple[StaleRow, SubjectVector]]
    after: str | tuple[datetime, str] | None
    claim: PageClaim | None = None


def _fresh(score: MaterializedScore, active_model: str, now: datetime) -> bool:
    """Whether a stored score still answers: the active model gave it, and its
    vector has not moved since."""
    return score.model_version == active_model and now < score.valid_until


def _answer(score: MaterializedScore) -> CurrentScore:
    return scoring_pb2.Score.FromString(score.score), score.sources_used


class FeatureBook:
    """Applies records to subjects' aggregates and serves feature vectors and,
    with a scorer, the subjects' current scores (materialized; see the module).

    ``clock`` gives "now"; ``clock_skew`` is how far ahead of it a record's event
    time or a lookup's as-of time may be (clocks of different hosts differ).
    ``scorer`` (None: nothing is materialized) scores vectors, each of its calls
    given ``score_timeout_seconds``."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        clock_skew: timedelta = timedelta(seconds=300),
        scorer: Scorer | None = None,
        score_timeout_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._clock_skew = clock_skew
        self._scorer = scorer
        self._score_timeout = score_timeout_seconds
        # The active model version, from the scoring service's answers (None: not
        # known yet), and how many times it has changed since it was first known.
        self._active_model: str | None = None
        self._model_changes = 0
        # The active model's score of an empty vector: every subject without data
        # gets it (with its own subject_id); kept until the active model changes.
        self._empty_score: scoring_pb2.Score | None = None
        # One batch at a time in this process: batches for the same subjects would
        # otherwise wait on each other's row locks (PostgreSQL) or the database
        # lock (SQLite) while holding a connection each.
        self._lock = asyncio.Lock()
        # Writes in flight (``_unbroken``): ``drain`` waits for them.
        self._writes: set[asyncio.Task[Any]] = set()

    async def _unbroken(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs a write transaction to its end even when the caller goes away: its
        transaction now spans a call to the scoring service, and a cancellation
        there (a client that gave up, a server stopping) would cut it off in the
        middle and leave its database connection behind. The caller's
        cancellation still reaches the caller; the write commits or rolls back on
        its own (an apply is redelivered anyway). ``drain`` waits for them."""
        task = asyncio.get_running_loop().create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Waits for the writes in flight (a server's stop hook, before the engine
        is disposed)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def latest_allowed_time(self) -> datetime:
        """The latest event or as-of time accepted now (now plus the clock skew)."""
        return self._clock() + self._clock_skew

    async def apply(
        self, envelopes: Sequence[tuple[str, records_pb2.Record]], deadline: Deadline | None = None
    ) -> ApplyResult:
        """Applies ``(producer_id, record)`` pairs (already validated), each version
        once: idempotent per (producer_id, record_id, revision).

        A record never seen is applied. A higher revision than the one applied
        replaces it: the applied version (kept by the store) is taken out of the
        aggregates and the new one put in; a retraction only takes out. A revision
        not higher than the one applied is a duplicate, so deliveries may come in
        any order and any number of times. Within one request only the highest
        revision of a record counts. All or nothing: the version rows and the
        aggregates commit in one transaction.

        ``deadline`` (the caller's) bounds the work, the wait for the book's lock
        and the scoring call included: work whose caller has given up is not done
        (``DeadlineExceeded``), and a scoring service that does not answer fails
        the apply before the caller's deadline, not after."""
        unique: dict[RecordKey, records_pb2.Record] = {}
        for producer_id, record in envelopes:
            key = (producer_id, record.record_id)
            held = unique.get(key)
            if held is None or record.revision > held.revision:
                unique[key] = record
        incoming = {
            key: AppliedVersion(
                record.subject_id,
                record.revision,
                record.SerializeToString(deterministic=True) if _feeds_features(record) else None,
                _source(record),
            )
            for key, record in unique.items()
        }
        async def work() -> ApplyResult:
            async with self._lock:
                _check_time_left(deadline)
                now = self._clock()
                async with self._store.batch() as batch:
                    before = await batch.claim(incoming, now)
                    changes: list[tuple[AppliedVersion | None, records_pb2.Record]] = []
                    newer: dict[RecordKey, AppliedVersion] = {}
                    for key, record in unique.items():
                        prior = before[key]
                        if prior is None:
                            changes.append((None, record))
                        elif record.revision > prior.revision:
                            changes.append((prior, record))
                            # A retraction has no body: the record keeps its source.
                            newer[key] = replace(incoming[key], source=incoming[key].source or prior.source)
                    await batch.replace(newer, now)
                    subjects = {record.subject_id for prior, record in changes if _feeds_features(record)}
                    subjects |= {prior.subject_id for prior, _ in changes if prior is not None and prior.payload}
                    states = await batch.lock_states(sorted(subjects), now)
                    needs: dict[str, Repairs] = {}
                    for prior, record in changes:
                        if prior is not None and prior.payload is not None:
                            old = records_pb2.Record.FromString(prior.payload)
                            found = unapply_record(states[prior.subject_id], old)
                            needs[prior.subject_id] = needs.get(prior.subject_id, NO_REPAIRS) | found
                        if _feeds_features(record):
                            apply_record(states[record.subject_id], record)
                    for subject_id, need in needs.items():
                        if need:
                            remaining = [
                                records_pb2.Record.FromString(payload)
                                for payload in await batch.feeding_payloads(subject_id)
                            ]
                            repair(states[subject_id], need, remaining)
                    # Scored before the commit: a scoring failure rolls the whole batch back.
                    scores = await self._materialize(states, now, deadline)
                    await batch.save_states(states, now, scores)
            return ApplyResult(applied=len(changes), duplicates=len(envelopes) - len(changes))

        return await self._unbroken(work())

    async def vector(self, subject_id: str, as_of: datetime | None = None) -> SubjectVector:
        """The subject's features as of ``as_of`` (now when None). A subject with no
        record applied gets an all-missing vector and a record count of 0: this
        service does not know who is enrolled, so that is not an error."""
        when = self._clock() if as_of is None else as_of
        return _vector_of(subject_id, await self._store.get(subject_id), when)

    async def vectors(self, subject_ids: Sequence[str]) -> list[SubjectVector]:
        """The vectors of ``subject_ids`` now, one per id in the given order
        (repeats included), each equal to what ``vector`` gives for it at the same
        instant: all read with one statement (``FeatureStore.get_many``), so the
        cost is a constant number of reads whatever the number of subjects."""
        when = self._clock()
        stored = await self._store.get_many(subject_ids)
        made: dict[str, SubjectVector] = {}
        out = []
        for subject_id in subject_ids:
            vector = made.get(subject_id)
            if vector is None:
                vector = made[subject_id] = _vector_of(subject_id, stored.get(subject_id), when)
            out.append(vector)
        return out

    async def purge(
        self, request_id: str, subject_id: str, source: int, deadline: Deadline | None = None
    ) -> list[PurgedTable]:
        """Forgets a subject (``source`` 0) or one source of it, in one transaction,
        idempotent on ``request_id`` (a retry answers the first call's counts).

        For one source the versions of that source are deleted and the subject's
        aggregates rebuilt from the versions of the other sources this service
        keeps (``aggregates.rebuild_state``): exactly the state of a subject that
        never had that source, with no call to the ingest service. A subject left
        with nothing that feeds features has no aggregates row, as if never seen.
        With a scorer the rebuilt vector is scored before the commit; a forgotten
        subject's score goes with its row."""
        v = Violations()
        check_purge_request(v, request_id, subject_id, source, _SOURCES)
        v.raise_if_any("the request is not valid")
        async def work() -> list[PurgedTable]:
            async with self._lock:
                _check_time_left(deadline)
                now = self._clock()
                async with self._store.batch() as batch:
                    done = await batch.claim_purge(request_id, now)
                    if done is not None:
                        return done
                    # Lock the subject's aggregates first: an apply of another replica
                    # waits for this rebuild instead of overwriting it.
                    await batch.lock_state(subject_id)
                    deleted = await batch.delete_applied(subject_id, source or None)
                    rewritten = 0
                    remaining = []
                    if source:
                        remaining = [records_pb2.Record.FromString(p) for p in await batch.feeding_payloads(subject_id)]
                    if remaining:
                        state = rebuild_state(remaining)
                        scores = await self._materialize({subject_id: state}, now, deadline)
                        await batch.put_state(subject_id, state, now, scores.get(subject_id))
                        removed, rewritten = 0, 1
                    else:
                        removed = await batch.delete_state(subject_id)
                    tables = [
                        PurgedTable(applied_records.name, deleted),
                        PurgedTable(subject_features.name, removed, rewritten),
                    ]
                    await batch.record_purge(request_id, tables, now)
            return tables

        return await self._unbroken(work())

    async def holdings(self, subject_id: str) -> SubjectHoldings:
        """The subject's vector now and every record version held (export)."""
        v = Violations()
        check_subject_id(v, subject_id)
        v.raise_if_any("the request is not valid")
        return SubjectHoldings(await self.vector(subject_id), await self._store.applied_of(subject_id))

    # -- materialized scores ----------------------------------------------------------

    @property
    def claims_pages(self) -> bool:
        """Whether refresh pages are claimed (PostgreSQL; see ``prepare_stale``)."""
        return self._store.claims

    @property
    def model_changes(self) -> int:
        """How many times the active model version known here has changed since it
        was first known (the refresher makes a pass over stale rows after each)."""
        return self._model_changes

    async def active_model(self, deadline: Deadline | None = None) -> str:
        """The active model version: the last one the scoring service reported,
        or asked of it now (within ``deadline``) when none was."""
        if self._active_model is None:
            return await self.poll_active_model(deadline)
        return self._active_model

    async def poll_active_model(self, deadline: Deadline | None = None) -> str:
        """Asks the scoring service which model version is active, and keeps it."""
        version = await self._scoring().active_model(self._timeout(deadline))
        self._note_model(version)
        return version

    async def current_scores(
        self, subject_ids: Sequence[str], deadline: Deadline | None = None
    ) -> list[CurrentScore]:
        """The current score of each of ``subject_ids`` (already validated) and the
        scored sources with a value in the vector it scored, one per id in the
        given order (repeats included).

        A fresh stored score is answered from its row alone: one read of the score
        columns for all the ids. Stale rows (see ``scores``) are scored again within
        the call, with one scoring call, and written back. A subject without a row
        (no data) gets the active model's score of an empty vector, the same for
        every such subject but for its subject_id (score_id 0, score_time now),
        scored once per model version. ``FailedPrecondition``
        (SCORING_NOT_CONFIGURED) without a scorer; ``Unavailable``
        (SCORING_UNAVAILABLE) when a score must be computed and the scoring
        service cannot be reached, within ``deadline`` (the caller's) when given."""
        self._scoring()
        active = await self.active_model(deadline)
        now = self._clock()
        stored = await self._store.scores_of(subject_ids)
        answers: dict[str, CurrentScore] = {}
        stale: list[str] = []
        for subject_id, row in stored.items():
            if row is not None and _fresh(row, active, now):
                answers[subject_id] = _answer(row)
            else:
                stale.append(subject_id)
        if stale:
            answers.update((await self._rescore(stale, active, deadline))[0])
        out: list[CurrentScore] = []
        for subject_id in subject_ids:
            answer = answers.get(subject_id)
            if answer is None:  # no row (or forgotten since the read): no data
                empty = scoring_pb2.Score()
                empty.CopyFrom(await self._no_data_score(subject_id, now, deadline))
                empty.subject_id = subject_id
                empty.score_id = 0
                empty.score_time.FromDatetime(now)
                answer = (empty, frozenset())
            out.append(answer)
        return out

    async def rescore_expired(self, limit: int = MAX_SCORE_BATCH) -> tuple[int, bool]:
        """Scores again up to ``limit`` rows whose vector may have moved with time
        (``valid_until`` passed), the earliest first: how many were scored, and
        whether more may be waiting (the page was full)."""
        page = await self.prepare_expired(None, limit)
        return await self.finish_page(page), page.after is not None

    async def rescore_stale(self, after: str, limit: int = MAX_SCORE_BATCH) -> tuple[int, str | None]:
        """One page of a pass over every stale row in key order: scores again up
        to ``limit`` stale rows of subjects after ``after``; how many were scored,
        and the key to continue after (None: the pass is done)."""
        page = await self.prepare_stale(after, limit)
        count = await self.finish_page(page)
        assert page.after is None or isinstance(page.after, str)
        return count, page.after

    async def prepare_stale(self, after: str, limit: int) -> RefreshPage:
        """Reads the next page of a pass over every stale row (key order, after
        ``after``) and computes their vectors as of now; nothing written.
        ``finish_page`` scores and writes it; the refresher prepares the next page
        meanwhile. On SQLite nothing is locked. On PostgreSQL the page is claimed
        (``FeatureStore.claim_stale_page``): rows another replica's page holds are
        skipped, and the page's rows stay locked until ``finish_page`` writes
        them or ``release_page`` lets them go."""
        active = await self.active_model()
        now = self._clock()
        if self._store.claims:
            claim = await self._claimed(self._store.claim_stale_page(active, now, after, limit))
            rows = claim.rows
            vectors = await self._vectors_claimed(claim, now)
        else:
            claim = None
            rows = await self._store.stale_page(active, now, after, limit)
            vectors = await self._vectors_of(rows, now)
        return RefreshPage(vectors, rows[-1].subject_id if len(rows) == limit else None, claim)

    async def prepare_expired(self, after: tuple[datetime, str] | None, limit: int) -> RefreshPage:
        """``prepare_stale`` for the rows whose vector may have moved with time
        (``valid_until`` passed), in (valid_until, subject id) order after
        ``after`` (None: the earliest)."""
        now = self._clock()
        if self._store.claims:
            claim = await self._claimed(self._store.claim_expired_page(now, after, limit))
            rows = claim.rows
            vectors = await self._vectors_claimed(claim, now)
        else:
            claim = None
            rows = await self._store.expired_page(now, after, limit)
            vectors = await self._vectors_of(rows, now)
        last = rows[-1] if len(rows) == limit else None
        return RefreshPage(vectors, None if last is None or last.valid_until is None
                           else (last.valid_until, last.subject_id), claim)

    async def release_page(self, page: RefreshPage) -> None:
        """Lets a prepared page's claimed rows go unwritten (a refresher stopping
        before it scores the page); nothing for a page without a claim."""
        if page.claim is not None:
            await self._unbroken(page.claim.release())

    async def _claimed(self, claiming: Coroutine[Any, Any, PageClaim]) -> PageClaim:
        """Runs a claim to its end even when the caller is cancelled meanwhile
        (cutting a statement off mid-way would leave its connection behind); a
        claim whose caller went away is released as soon as it is made."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(claiming)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            async def release() -> None:
                with contextlib.suppress(Exception):
                    await (await task).release()

            releasing = loop.create_task(release())
            self._writes.add(releasing)
            releasing.add_done_callback(self._writes.discard)
            raise

    async def _vectors_claimed(self, claim: PageClaim, now: datetime) -> list[tuple[StaleRow, SubjectVector]]:
        """``_vectors_of`` the claim's rows; the claim released if that fails or is cancelled."""
        try:
            return await self._vectors_of(claim.rows, now)
        except BaseException:
            await self._unbroken(claim.release())
            raise

    async def finish_page(self, page: RefreshPage) -> int:
        """Scores a prepared page (``_REFRESH_CHUNK`` vectors per call, up to
        ``_SCORE_CALLS_IN_FLIGHT`` calls at once) and writes each score back in one
        short transaction, to the rows whose aggregates are still the ones read
        (``FeatureStore.save_scores_if_unchanged``): a row an apply or a purge
        changed meanwhile keeps what that wrote. No lock of the book is held, so
        lookups and applies go on meanwhile. How many rows were scored."""
        if not page.rows:
            if page.claim is not None:
                await self._unbroken(page.claim.save([]))
            return 0
        gate = asyncio.Semaphore(_SCORE_CALLS_IN_FLIGHT)

        async def score(part: Sequence[tuple[StaleRow, SubjectVector]]) -> list[tuple[StaleRow, MaterializedScore]]:
            async with gate:
                scored = await self._score([vector for _, vector in part])
            return [(row, stored) for (row, _), (_, stored) in zip(part, scored, strict=True)]

        try:
            parts = await asyncio.gather(*(
                score(page.rows[start:start + _REFRESH_CHUNK]) for start in range(0, len(page.rows), _REFRESH_CHUNK)
            ))
        except BaseException:  # scoring failed or the refresher was cancelled: the rows go unwritten
            await self.release_page(page)
            raise
        scores = [pair for part in parts for pair in part]
        # Run to its end even when the refresher is stopped meanwhile (drain waits for it).
        if page.claim is not None:
            await self._unbroken(page.claim.save(scores))  # the claim's transaction commits
        else:
            await self._unbroken(self._store.save_scores_if_unchanged(scores))
        return len(page.rows)

    async def _vectors_of(self, rows: Sequence[StaleRow], now: datetime) -> list[tuple[StaleRow, SubjectVector]]:
        """The vector as of ``now`` of each row's aggregates, yielding to the event
        loop every ``_VECTORS_PER_YIELD`` subjects."""
        out = []
        for start in range(0, len(rows), _VECTORS_PER_YIELD):
            for row in rows[start:start + _VECTORS_PER_YIELD]:
                out.append((row, _row_vector(row, now)))
            await asyncio.sleep(0)
        return out

    def _scoring(self) -> Scorer:
        if self._scorer is None:
            raise FailedPrecondition(
                "this feature service has no scoring service to score with", reason=SCORING_NOT_CONFIGURED
            )
        return self._scorer

    def _note_model(self, version: str) -> None:
        """Keeps ``version`` as the active model version (the scoring service said so)."""
        if version and version != self._active_model:
            if self._active_model is not None:
                self._model_changes += 1
            self._active_model = version

    def _timeout(self, deadline: Deadline | None) -> float:
        """The timeout of a scoring call: ``score_timeout_seconds``, or less when
        the caller's ``deadline`` leaves less (``DeadlineExceeded`` when it leaves none)."""
        if deadline is None:
            return self._score_timeout
        return min(self._score_timeout, deadline.timeout())

    async def _score(
        self, vectors: Sequence[SubjectVector], deadline: Deadline | None = None
    ) -> list[tuple[scoring_pb2.Score, MaterializedScore]]:
        """The scoring service's score of each vector, in order, as returned and as
        stored: one call per ``MAX_SCORE_BATCH`` vectors, each within ``deadline``."""
        scorer = self._scoring()
        out: list[tuple[scoring_pb2.Score, MaterializedScore]] = []
        for start in range(0, len(vectors), MAX_SCORE_BATCH):
            part = vectors[start:start + MAX_SCORE_BATCH]
            scores = await scorer.score([(v.subject_id, v.values) for v in part], self._timeout(deadline))
            for vector, score in zip(part, scores, strict=True):
                stored = MaterializedScore(
                    score.SerializeToString(deterministic=True),
                    score.model_version,
                    sources_used(vector.values.items()),
                    vector.valid_until,
                )
                out.append((score, stored))
            if scores:
                self._note_model(scores[-1].model_version)
        return out

    async def _materialize(
        self, states: Mapping[str, SubjectState], now: datetime, deadline: Deadline | None = None
    ) -> dict[str, MaterializedScore]:
        """The scores of the vectors of new aggregates as of ``now``, by subject
        (none without a scorer): written with them, in their transaction."""
        if self._scorer is None or not states:
            return {}
        vectors = [
            _vector_of(subject_id, StoredState(subject_id, state, state.record_count, now), now)
            for subject_id, state in sorted(states.items())
        ]
        scored = await self._score(vectors, deadline)
        return {vector.subject_id: stored for vector, (_, stored) in zip(vectors, scored, strict=True)}

    async def _rescore(
        self, subject_ids: Sequence[str], active_model: str, deadline: Deadline | None = None
    ) -> tuple[dict[str, CurrentScore], int]:
        """The current scores of those of ``subject_ids`` that still have a row, and
        how many were scored again. The rows are read with their aggregates (one
        statement, no lock); a row found fresh by now (another call or the
        refresher got there first) is answered as it is; the others' vectors (as
        of now) are scored in one call and written back in one short transaction,
        each only if its aggregates are still the ones read, so that a score is
        never written over a newer apply's (``FeatureStore.save_scores_if_unchanged``).
        No lock is held across the scoring call: lookups that meet stale rows
        during a rescore of the whole table do not queue behind one another."""
        now = self._clock()
        answers: dict[str, CurrentScore] = {}
        todo: list[StaleRow] = []
        for row, score in await self._store.scored_rows(subject_ids):
            if score is not None and _fresh(score, active_model, now):
                answers[row.subject_id] = _answer(score)
            else:
                todo.append(row)
        if not todo:
            return answers, 0
        vectors = [_row_vector(row, now) for row in todo]
        scored = await self._score(vectors, deadline)
        # Written even when the caller goes away meanwhile (drain waits for it).
        await self._unbroken(self._store.save_scores_if_unchanged(
            [(row, stored) for row, (_, stored) in zip(todo, scored, strict=True)]))
        for row, (given, stored) in zip(todo, scored, strict=True):
            answers[row.subject_id] = (given, stored.sources_used)
        return answers, len(todo)

    async def _no_data_score(
        self, subject_id: str, now: datetime, deadline: Deadline | None = None
    ) -> scoring_pb2.Score:
        """The active model's score of an empty vector (asked once per model
        version, with ``subject_id``: the scoring service needs one)."""
        active = await self.active_model(deadline)
        cached = self._empty_score
        if cached is None or cached.model_version != active:
            [(cached, _)] = await self._score([_vector_of(subject_id, None, now)], deadline)
            self._empty_score = cached
        return cached
