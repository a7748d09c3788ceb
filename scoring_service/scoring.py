"""The scoring service's domain: validate a feature vector (or a batch of them),
score it with the champion (and shadow-score it with the challenger), record the
score when it changed; list the loaded models; page through a subject's score
history; recompute a stored score; measure drift.

What is recorded
----------------
The score history is the history of each subject's *score*, not a log of lookups
(the consent service's access log is that). A score is written (with its
challenger's shadow score when a challenger is set) only when it differs from the
subject's latest stored champion score: another model version, state, score or
feature vector (the values with data; a feature sent without a value is the same
as one not sent). Otherwise the reply is that stored score, with its ``score_id``
and its ``score_time``: when that score was first computed from these features.
A vector with no data at all is scored (INSUFFICIENT_DATA) and never stored, so
nothing is written about a subject id this service cannot know to be real; its
reply has no ``score_id``.

A batch reads the latest rows of its subjects in one query and writes, when
anything changed, in one transaction of three statements (champions, shadows,
latest-row pointers), whatever its size. Two calls of one replica that score the
same changed subject at once write one row: the writes of a replica take turns,
and one that finds another committed since its read reads again first (one more
statement). Two *replicas* may both write it: the history then holds two equal
rows one after the other, both valid, both recomputable; the subject's latest row
is the later one. Nothing fails. Likewise, while replicas disagree on the champion
(up to ``MODEL_REFRESH_SECONDS`` after a change), a subject scored by both gets a
row from each version as they alternate: each is a change from the one before.

No gRPC here: the servicer translates protobuf to these calls, and the errors raised
(``InvalidArgument`` with one violation per bad field) travel through the runtime's
interceptor.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import FEATURE_NAMES, features_of_source
from creditscore.runtime import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PurgedTable,
    Violations,
    check_purge_request,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    page_size,
    utcnow,
)
from creditscore.scorecard.drift import (
    DEFAULT_MIN_SCORES,
    DriftReport,
    NoTrainingDistribution,
    compute_drift,
    training_distribution,
)
from creditscore.scorecard.model import Scorecard, ScoreResult, version_key

from .lifecycle import Lifecycle
from .registry import ModelRegistry
from .store import ScoreRecord, ScoreRole, ScoreStore

__all__ = [
    "DEFAULT_DRIFT_MAX_SCORES",
    "DEFAULT_PAGE_SIZE",
    "MAX_BATCH_ITEMS",
    "MAX_PAGE_SIZE",
    "DriftResult",
    "Recomputed",
    "Scorer",
    "recompute",
    "same_score",
    "validate_score_batch",
    "validate_score_request",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# The most scores one GetDrift reads; a larger window is sampled. PSI over 20,000
# scores differs from the whole window's by far less than its thresholds.
DEFAULT_DRIFT_MAX_SCORES = 20_000
#: Most vectors in one ScoreBatch.
MAX_BATCH_ITEMS = 256
_KNOWN = frozenset(FEATURE_NAMES)
_SOURCES = frozenset(v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number)


def _check_vector(
    v: Violations, subject_id: str, features: Sequence[tuple[str, float | None]], at: str = ""
) -> dict[str, float | None]:
    """Adds a violation per bad field of one request (paths prefixed with ``at``);
    the vector as ``{name: value or None}``."""
    check_subject_id(v, subject_id, f"{at}subject_id")
    values: dict[str, float | None] = {}
    first_index: dict[str, int] = {}
    for i, (name, value) in enumerate(features):
        path = f"{at}features[{i}]"
        if not name:
            v.add(f"{path}.name", "must be set")
        elif name not in _KNOWN:
            v.add(f"{path}.name", f"unknown feature {name!r}")
        elif name in first_index:
            v.add(f"{path}.name", f"duplicate of {at}features[{first_index[name]}]")
        else:
            first_index[name] = i
            values[name] = value
        if value is not None and not math.isfinite(value):
            v.add(f"{path}.value", "must be a finite number (leave it unset for no data)")
    return values


def validate_score_request(
    subject_id: str, features: Sequence[tuple[str, float | None]]
) -> dict[str, float | None]:
    """The feature vector as ``{name: value or None}`` (None: no data), or
    ``InvalidArgument`` naming every bad field: ``subject_id``,
    ``features[i].name`` (empty, not in the catalog, repeated) and
    ``features[i].value`` (not finite)."""
    v = Violations()
    values = _check_vector(v, subject_id, features)
    v.raise_if_any("the score request is not valid")
    return values


def validate_score_batch(
    items: Sequence[tuple[str, Sequence[tuple[str, float | None]]]],
) -> list[tuple[str, dict[str, float | None]]]:
    """``(subject_id, vector)`` per item, in order, or ``InvalidArgument`` naming
    ``items`` (not 1 to ``MAX_BATCH_ITEMS`` of them) or every bad field of every
    item, as ``validate_score_request`` does, under ``items[i].``. One bad item
    refuses the whole batch: nothing is scored or written."""
    v = Violations()
    out: list[tuple[str, dict[str, float | None]]] = []
    if v.check(1 <= len(items) <= MAX_BATCH_ITEMS, "items", f"must hold 1 to {MAX_BATCH_ITEMS} items"):
        for i, (subject_id, features) in enumerate(items):
            out.append((subject_id, _check_vector(v, subject_id, features, f"items[{i}].")))
    v.raise_if_any("the score batch is not valid")
    return out


def _with_data(features: Mapping[str, float | None]) -> dict[str, float]:
    return {name: value for name, value in features.items() if value is not None}


def same_score(stored: ScoreRecord, fresh: ScoreRecord) -> bool:
    """Whether ``fresh`` is no change from ``stored``: same model version, state,
    score and feature values (a feature without data counts as absent)."""
    return (
        stored.model_version == fresh.model_version
        and stored.state is fresh.state
        and stored.score == fresh.score
        and _with_data(stored.features) == _with_data(fresh.features)
    )


def recompute(registry: ModelRegistry, record: ScoreRecord) -> ScoreResult:
    """Scores a stored record's feature vector again with the model version it
    was scored with; the result equals what was given then."""
    return registry.get(record.model_version).score_one(record.features)


@dataclass(frozen=True)
class Recomputed:
    """A stored score and the same vector scored again by the same version."""

    stored: ScoreRecord
    recomputed: ScoreRecord  # id, subject, time, role and shadow_of copied from stored

    @property
    def identical(self) -> bool:
        return self.stored.outcome() == self.recomputed.outcome()


@dataclass(frozen=True)
class DriftResult:
    report: DriftReport
    since: datetime | None
    until: datetime
    in_window: int  # scores of the version in the window
    sampled: bool  # more than the service reads at once: report.scores_used of them, spread over it


def _invalid_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not a token this service issued",
        [FieldViolation("page_token", "not a valid page token")],
        reason="INVALID_PAGE_TOKEN",
    )


class _Plan:
    """Which items of a batch are written, and what each item's reply is.

    Items are taken in order; each is compared with its subject's latest score:
    the stored one, or an earlier item of the batch that is to be written. An
    item without data is never written and answers its own score."""

    def __init__(self, fresh: Sequence[ScoreRecord], latest: Mapping[str, ScoreRecord]) -> None:
        self._fresh = fresh
        self.writes: list[int] = []  # indexes into fresh, in order
        self._answers: list[ScoreRecord | int] = []  # a record, or an index into writes
        current: dict[str, ScoreRecord | int] = dict(latest)
        for index, record in enumerate(fresh):
            if not _with_data(record.features):
                self._answers.append(record)
                continue
            prior = current.get(record.subject_id)
            if prior is not None:
                prior_record = fresh[self.writes[prior]] if isinstance(prior, int) else prior
                if same_score(prior_record, record):
                    self._answers.append(prior)
                    continue
            current[record.subject_id] = len(self.writes)
            self._answers.append(len(self.writes))
            self.writes.append(index)

    def replies(self, ids: Sequence[int]) -> list[ScoreRecord]:
        """The reply of each item, given the ids the written ones got."""
        return [
            replace(self._fresh[self.writes[a]], id=ids[a]) if isinstance(a, int) else a
            for a in self._answers
        ]


class Scorer:
    """Scores with the champion (and shadow-scores with the challenger), records
    each subject's score when it changes, and reads the score history back."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        store: ScoreStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        drift_max_scores: int = DEFAULT_DRIFT_MAX_SCORES,
    ) -> None:
        self.lifecycle = lifecycle
        self._store = store
        self._clock = clock
        self._drift_max_scores = drift_max_scores
        # Writes of this replica take turns (reads do not wait), and count, so that
        # a write looks again only when another one committed since its read.
        self._write_lock = asyncio.Lock()
        self._writes = 0

    @property
    def registry(self) -> ModelRegistry:
        return self.lifecycle.registry

    async def score(self, subject_id: str, features: Sequence[tuple[str, float | None]]) -> ScoreRecord:
        """Validates and scores one vector with the champion, as ``score_batch``
        does a batch of one (see the module's notes on what is recorded)."""
        values = validate_score_request(subject_id, features)
        return (await self._score([(subject_id, values)]))[0]

    async def score_batch(
        self, items: Sequence[tuple[str, Sequence[tuple[str, float | None]]]]
    ) -> list[ScoreRecord]:
        """Validates 1 to ``MAX_BATCH_ITEMS`` ``(subject_id, features)`` items and
        scores each with the champion as ``score`` would: one score per item, in
        order, with the subjects' latest rows read in one query and what changed
        written in one transaction. A subject may come more than once: each item
        is compared with the one before it."""
        return await self._score(validate_score_batch(items))

    async def _score(self, items: Sequence[tuple[str, dict[str, float | None]]]) -> list[ScoreRecord]:
        state = self.lifecycle.state  # one consistent champion/challenger pair for the batch
        now = self._clock()
        fresh = [
            ScoreRecord.from_result(subject_id, state.active.score_one(values), values, now)
            for subject_id, values in items
        ]
        # A vector without any data says nothing about the subject: scored, never
        # stored, nor looked up.
        known = {r.subject_id for r in fresh if _with_data(r.features)}
        if not known:
            return fresh
        read_at = self._writes
        latest = await self._store.latest(known)
        plan = _Plan(fresh, latest)
        if not plan.writes:
            return plan.replies([])
        async with self._write_lock:
            async with self._store.batch() as writer:
                if self._writes != read_at:
                    # A call of this replica wrote since the read: look again, as
                    # it may have written the same change (then this is none).
                    changed = {fresh[i].subject_id for i in plan.writes}
                    latest = {**latest, **await writer.latest(changed)}
                    plan = _Plan(fresh, latest)
                    if not plan.writes:
                        return plan.replies([])
                champions = [fresh[i] for i in plan.writes]
                shadows = [
                    None if state.challenger is None else ScoreRecord.from_result(
                        r.subject_id, state.challenger.score_one(r.features), r.features, now,
                        role=ScoreRole.CHALLENGER,
                    )
                    for r in champions
                ]
                ids, _ = await writer.insert(champions, shadows)
            self._writes += 1  # committed
        return plan.replies(ids)

    def is_active(self, card: Scorecard) -> bool:
        return card is self.lifecycle.active

    def is_challenger(self, card: Scorecard) -> bool:
        return card is self.lifecycle.challenger

    def activate_time(self, version: str) -> datetime | None:
        """When ``version`` last became the champion; None if it never was."""
        return self.lifecycle.state.activate_times.get(version)

    def list_models(self, requested_page_size: int, page_token: str) -> tuple[list[Scorecard], str]:
        """A page of loaded scorecards, newest version first, and the token of the
        next page (empty on the last)."""
        size = page_size(requested_page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        position = decode_page_token(page_token)
        cards = list(self.registry)
        if position is not None:
            after = position.get("after")
            if not isinstance(after, str):
                raise _invalid_token()
            key = version_key(after)
            cards = [c for c in cards if version_key(c.version) < key]
        page = cards[:size]
        next_token = encode_page_token({"after": page[-1].version}) if len(cards) > size else ""
        return page, next_token

    async def list_scores(
        self, subject_id: str, requested_page_size: int, page_token: str
    ) -> tuple[list[ScoreRecord], str]:
        """A page of the subject's scores, newest first (champion and challenger
        alike), and the next page's token (empty on the last)."""
        v = Violations()
        check_subject_id(v, subject_id)
        if requested_page_size < 0:
            v.add("page_size", "must be >= 0")
        v.raise_if_any("the request is not valid")
        size = page_size(requested_page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        position = decode_page_token(page_token)
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position["t"]), int(position["id"]))
            except (KeyError, TypeError, ValueError):
                raise _invalid_token() from None
            if after[0].tzinfo is None or position.get("s") != subject_id:
                raise _invalid_token()
        rows = await self._store.history(subject_id, limit=size + 1, after=after)
        page = rows[:size]
        token = ""
        if len(rows) > size:
            last = page[-1]
            token = encode_page_token({"s": subject_id, "t": last.score_time.isoformat(), "id": last.id})
        return page, token

    async def purge(self, request_id: str, subject_id: str, source: int) -> list[PurgedTable]:
        """Deletes the subject's scores (``source`` 0), or those that used a value
        of a feature of ``source`` (its records are being forgotten); idempotent on
        ``request_id`` (the consent service's purge step)."""
        v = Violations()
        check_purge_request(v, request_id, subject_id, source, _SOURCES)
        v.raise_if_any("the request is not valid")
        features = features_of_source(source) if source else None
        return await self._store.purge_subject(request_id, subject_id, features, self._clock())

    async def recompute_score(self, score_id: int) -> Recomputed:
        """The stored score ``score_id`` and its vector scored again by its model
        version. ``NotFound`` SCORE_NOT_FOUND, ``FailedPrecondition``
        MODEL_NOT_LOADED when that version is no longer loaded."""
        if score_id <= 0:
            raise InvalidArgument(
                "the request is not valid", [FieldViolation("score_id", "must be a positive score id")]
            )
        stored = await self._store.get(score_id)
        if stored is None:
            raise NotFound(f"no score {score_id}", reason="SCORE_NOT_FOUND", metadata={"score_id": str(score_id)})
        if stored.model_version not in self.registry:
            raise FailedPrecondition(
                f"score {score_id} was given by scorecard {stored.model_version}, which is not loaded",
                reason="MODEL_NOT_LOADED",
                metadata={"version": stored.model_version},
            )
        result = recompute(self.registry, stored)
        again = ScoreRecord.from_result(stored.subject_id, result, stored.features, stored.score_time)
        again = replace(again, id=stored.id, role=stored.role, shadow_of=stored.shadow_of)
        return Recomputed(stored, again)

    async def drift(
        self, version: str, since: datetime | None, until: datetime | None, min_scores: int
    ) -> DriftResult:
        """The drift of ``version`` (empty: the champion) over its stored scores
        with ``since <= score_time < until`` (until None: now): each subject's first
        score and each change of it in the window, not each lookup.
        ``FailedPrecondition`` NO_TRAINING_DISTRIBUTION for a scorecard that records
        no training population."""
        v = Violations()
        if since is not None and until is not None and until <= since:
            v.add("until_time", "must be after since_time")
        if min_scores < 0:
            v.add("min_scores", "must be >= 0")
        v.raise_if_any("the request is not valid")
        card = self.lifecycle.model(version)
        try:
            distribution = training_distribution(card)
        except NoTrainingDistribution as exc:
            raise FailedPrecondition(
                str(exc), reason="NO_TRAINING_DISTRIBUTION", metadata={"version": card.version}
            ) from None
        until = until or self._clock()
        window = await self._store.window(card.version, since, until, limit=self._drift_max_scores)
        # numpy and Python over up to drift_max_scores vectors: off the event loop,
        # so that scoring requests keep being served meanwhile.
        report = await asyncio.to_thread(
            compute_drift, card, window.scores, window.vectors,
            min_scores=min_scores or DEFAULT_MIN_SCORES, distribution=distribution,
        )
        return DriftResult(report, since, until, window.in_window, window.sampled)
