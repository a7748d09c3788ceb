"""The scoring service's domain: validate a feature vector, score it with the
champion (and shadow-score it with the challenger), record the scores; list the
loaded models; page through a subject's score history; recompute a stored score;
measure drift.

No gRPC here: the servicer translates protobuf to these calls, and the errors raised
(``InvalidArgument`` with one violation per bad field) travel through the runtime's
interceptor.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from creditscore.catalog import FEATURE_NAMES, features_of_source
from creditscore.common.v1 import common_pb2
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

from .drift import DEFAULT_MIN_SCORES, DriftReport, NoTrainingDistribution, compute_drift, training_distribution
from .lifecycle import Lifecycle
from .registry import ModelRegistry
from .scorecard import Scorecard, ScoreResult, version_key
from .store import ScoreRecord, ScoreRole, ScoreStore

__all__ = [
    "DEFAULT_DRIFT_MAX_SCORES",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DriftResult",
    "Recomputed",
    "Scorer",
    "recompute",
    "validate_score_request",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# The most scores one GetDrift reads; a larger window is sampled. PSI over 20,000
# scores differs from the whole window's by far less than its thresholds.
DEFAULT_DRIFT_MAX_SCORES = 20_000
_KNOWN = frozenset(FEATURE_NAMES)
_SOURCES = frozenset(v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number)


def validate_score_request(
    subject_id: str, features: Sequence[tuple[str, float | None]]
) -> dict[str, float | None]:
    """The feature vector as ``{name: value or None}`` (None: no data), or
    ``InvalidArgument`` naming every bad field: ``subject_id``,
    ``features[i].name`` (empty, not in the catalog, repeated) and
    ``features[i].value`` (not finite)."""
    v = Violations()
    check_subject_id(v, subject_id)
    values: dict[str, float | None] = {}
    first_index: dict[str, int] = {}
    for i, (name, value) in enumerate(features):
        if not name:
            v.add(f"features[{i}].name", "must be set")
        elif name not in _KNOWN:
            v.add(f"features[{i}].name", f"unknown feature {name!r}")
        elif name in first_index:
            v.add(f"features[{i}].name", f"duplicate of features[{first_index[name]}]")
        else:
            first_index[name] = i
            values[name] = value
        if value is not None and not math.isfinite(value):
            v.add(f"features[{i}].value", "must be a finite number (leave it unset for no data)")
    v.raise_if_any("the score request is not valid")
    return values


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


class Scorer:
    """Scores with the champion (and shadow-scores with the challenger) and
    records every score; reads the score history back."""

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

    @property
    def registry(self) -> ModelRegistry:
        return self.lifecycle.registry

    async def score(self, subject_id: str, features: Sequence[tuple[str, float | None]]) -> ScoreRecord:
        """Validates, scores with the champion, stores the score and returns it
        (with its id). With a challenger set, the challenger's score of the same
        vector is stored in the same transaction (role CHALLENGER) and not returned."""
        values = validate_score_request(subject_id, features)
        state = self.lifecycle.state  # one consistent champion/challenger pair
        now = self._clock()
        record = ScoreRecord.from_result(subject_id, state.active.score_one(values), values, now)
        shadow = None
        if state.challenger is not None:
            shadow = ScoreRecord.from_result(
                subject_id, state.challenger.score_one(values), values, now, role=ScoreRole.CHALLENGER
            )
        record_id, _ = await self._store.record_scores(record, shadow)
        return replace(record, id=record_id)

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
        """The drift of ``version`` (empty: the champion) over its scores with
        ``since <= score_time < until`` (until None: now). ``FailedPrecondition``
        NO_TRAINING_DISTRIBUTION for a scorecard that records no training
        population."""
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
