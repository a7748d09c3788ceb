"""The feature service's use cases: apply records exactly once, read a vector.

``FeatureBook`` joins the feature engine (``aggregates``) and the store: it is what
the servicer calls, and it knows neither gRPC nor SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from creditscore.catalog import FEATURE_NAMES
from creditscore.records.v1 import records_pb2
from creditscore.runtime import utcnow

from .aggregates import apply_record, feature_vector
from .store import FeatureStore, RecordKey

__all__ = ["ApplyResult", "FeatureBook", "SubjectVector"]


@dataclass(frozen=True)
class ApplyResult:
    """What one ``FeatureBook.apply`` did."""

    applied: int  # records applied now
    duplicates: int  # records applied before (or twice in the batch), ignored


@dataclass(frozen=True)
class SubjectVector:
    """One subject's features as of a time."""

    subject_id: str
    as_of: datetime
    values: dict[str, float | None]  # catalog order; None = no data
    record_count: int


class FeatureBook:
    """Applies records to subjects' aggregates and serves feature vectors.

    ``clock`` gives "now"; ``clock_skew`` is how far ahead of it a record's event
    time or a lookup's as-of time may be (clocks of different hosts differ)."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        clock_skew: timedelta = timedelta(seconds=60),
    ) -> None:
        self._store = store
        self._clock = clock
        self._clock_skew = clock_skew
        # One batch at a time in this process: batches for the same subjects would
        # otherwise wait on each other's row locks (PostgreSQL) or the database
        # lock (SQLite) while holding a connection each.
        self._lock = asyncio.Lock()

    def latest_allowed_time(self) -> datetime:
        """The latest event or as-of time accepted now (now plus the clock skew)."""
        return self._clock() + self._clock_skew

    async def apply(self, envelopes: Sequence[tuple[str, records_pb2.Record]]) -> ApplyResult:
        """Applies ``(producer_id, record)`` pairs (already validated) that were not
        applied before; idempotent per (producer_id, record_id). All or nothing:
        the dedupe rows and the aggregates commit in one transaction."""
        unique: dict[RecordKey, records_pb2.Record] = {}
        for producer_id, record in envelopes:
            unique.setdefault((producer_id, record.record_id), record)
        async with self._lock:
            now = self._clock()
            async with self._store.batch() as batch:
                claimed = await batch.claim({key: r.subject_id for key, r in unique.items()}, now)
                fresh = [record for key, record in unique.items() if key in claimed]
                # Loan outcomes are claimed (so they count once) but never feed features.
                effective = [r for r in fresh if r.WhichOneof("body") != "loan_outcome"]
                states = await batch.lock_states([r.subject_id for r in effective], now)
                for record in effective:
                    apply_record(states[record.subject_id], record)
                await batch.save_states(states, now)
        return ApplyResult(applied=len(fresh), duplicates=len(envelopes) - len(fresh))

    async def vector(self, subject_id: str, as_of: datetime | None = None) -> SubjectVector:
        """The subject's features as of ``as_of`` (now when None). A subject with no
        record applied gets an all-missing vector and a record count of 0: this
        service does not know who is enrolled, so that is not an error."""
        when = self._clock() if as_of is None else as_of
        stored = await self._store.get(subject_id)
        if stored is None:
            return SubjectVector(subject_id, when, dict.fromkeys(FEATURE_NAMES), 0)
        return SubjectVector(subject_id, when, feature_vector(stored.state, when), stored.record_count)
