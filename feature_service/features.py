"""The feature service's use cases: apply each version of a record exactly once,
read a vector.

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

from .aggregates import NO_REPAIRS, Repairs, apply_record, feature_vector, repair, unapply_record
from .store import AppliedVersion, FeatureStore, RecordKey

__all__ = ["ApplyResult", "FeatureBook", "SubjectVector"]


@dataclass(frozen=True)
class ApplyResult:
    """What one ``FeatureBook.apply`` did."""

    applied: int  # versions applied now: new records, corrections, retractions
    duplicates: int  # versions applied before (or superseded in the batch), ignored


def _feeds_features(record: records_pb2.Record) -> bool:
    """A version that counts: it has a body, and is not a loan outcome (a label)."""
    return not record.retracted and record.WhichOneof("body") not in (None, "loan_outcome")


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
        """Applies ``(producer_id, record)`` pairs (already validated), each version
        once: idempotent per (producer_id, record_id, revision).

        A record never seen is applied. A higher revision than the one applied
        replaces it: the applied version (kept by the store) is taken out of the
        aggregates and the new one put in; a retraction only takes out. A revision
        not higher than the one applied is a duplicate, so deliveries may come in
        any order and any number of times. Within one request only the highest
        revision of a record counts. All or nothing: the version rows and the
        aggregates commit in one transaction."""
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
            )
            for key, record in unique.items()
        }
        async with self._lock:
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
                        newer[key] = incoming[key]
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
                await batch.save_states(states, now)
        return ApplyResult(applied=len(changes), duplicates=len(envelopes) - len(changes))

    async def vector(self, subject_id: str, as_of: datetime | None = None) -> SubjectVector:
        """The subject's features as of ``as_of`` (now when None). A subject with no
        record applied gets an all-missing vector and a record count of 0: this
        service does not know who is enrolled, so that is not an error."""
        when = self._clock() if as_of is None else as_of
        stored = await self._store.get(subject_id)
        if stored is None:
            return SubjectVector(subject_id, when, dict.fromkeys(FEATURE_NAMES), 0)
        return SubjectVector(subject_id, when, feature_vector(stored.state, when), stored.record_count)
