"""The scoring service's domain: validate a feature vector, score it with the active
scorecard, record the score; list the loaded models; recompute a stored score.

No gRPC here: the servicer translates protobuf to these calls, and the errors raised
(``InvalidArgument`` with one violation per bad field) travel through the runtime's
interceptor.
"""

from __future__ import annotations

import math
from dataclasses import replace
from collections.abc import Callable, Sequence
from datetime import datetime

from creditscore.catalog import FEATURE_NAMES
from creditscore.runtime import (
    FieldViolation,
    InvalidArgument,
    Violations,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    page_size,
    utcnow,
)

from .registry import ModelRegistry
from .scorecard import Scorecard, ScoreResult, version_key
from .store import ScoreRecord, ScoreStore

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Scorer",
    "recompute",
    "validate_score_request",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
_KNOWN = frozenset(FEATURE_NAMES)


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


class Scorer:
    """Scores with the registry's active scorecard and records every score."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: ScoreStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self._store = store
        self._clock = clock

    async def score(self, subject_id: str, features: Sequence[tuple[str, float | None]]) -> ScoreRecord:
        """Validates, scores with the active model, stores the score and returns it
        (with its id)."""
        values = validate_score_request(subject_id, features)
        result = self.registry.active.score_one(values)
        record = ScoreRecord.from_result(subject_id, result, values, self._clock())
        record_id = await self._store.record(record)
        return replace(record, id=record_id)

    def is_active(self, card: Scorecard) -> bool:
        return card is self.registry.active

    def list_models(self, requested_page_size: int, page_token: str) -> tuple[list[Scorecard], str]:
        """A page of loaded scorecards, newest version first, and the token of the
        next page (empty on the last)."""
        size = page_size(requested_page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        position = decode_page_token(page_token)
        cards = list(self.registry)
        if position is not None:
            after = position.get("after")
            if not isinstance(after, str):
                raise InvalidArgument(
                    "page_token is not a token this service issued",
                    [FieldViolation("page_token", "not a valid page token")],
                    reason="INVALID_PAGE_TOKEN",
                )
            key = version_key(after)
            cards = [c for c in cards if version_key(c.version) < key]
        page = cards[:size]
        next_token = encode_page_token({"after": page[-1].version}) if len(cards) > size else ""
        return page, next_token
