"""The feature service's use cases: apply each version of a record exactly once,
read a vector, or the vectors of many subjects at once.

``FeatureBook`` joins the feature engine (``aggregates``) and the store: it is what
the servicer calls, and it knows neither gRPC nor SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from creditscore.catalog import FEATURE_NAMES, SOURCE_OF_BODY
from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2
from creditscore.runtime import PurgedTable, Violations, check_purge_request, check_subject_id, utcnow

from .aggregates import (
    NO_REPAIRS,
    Repairs,
    apply_record,
    epoch_seconds,
    feature_vector,
    next_month_start,
    rebuild_state,
    repair,
    unapply_record,
    vector_valid_until,
)
from .store import (
    AppliedRow,
    AppliedVersion,
    FeatureStore,
    RecordKey,
    StoredState,
    applied_records,
    subject_features,
)

__all__ = ["ApplyResult", "FeatureBook", "SubjectHoldings", "SubjectVector"]

_SOURCES = frozenset(v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number)


@dataclass(frozen=True)
class ApplyResult:
    """What one ``FeatureBook.apply`` did."""

    applied: int  # versions applied now: new records, corrections, retractions
    duplicates: int  # versions applied before (or superseded in the batch), ignored


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


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class FeatureBook:
    """Applies records to subjects' aggregates and serves feature vectors.

    ``clock`` gives "now"; ``clock_skew`` is how far ahead of it a record's event
    time or a lookup's as-of time may be (clocks of different hosts differ)."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        clock_skew: timedelta = timedelta(seconds=300),
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
                _source(record),
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
                await batch.save_states(states, now)
        return ApplyResult(applied=len(changes), duplicates=len(envelopes) - len(changes))

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

    async def purge(self, request_id: str, subject_id: str, source: int) -> list[PurgedTable]:
        """Forgets a subject (``source`` 0) or one source of it, in one transaction,
        idempotent on ``request_id`` (a retry answers the first call's counts).

        For one source the versions of that source are deleted and the subject's
        aggregates rebuilt from the versions of the other sources this service
        keeps (``aggregates.rebuild_state``): exactly the state of a subject that
        never had that source, with no call to the ingest service. A subject left
        with nothing that feeds features has no aggregates row, as if never seen."""
        v = Violations()
        check_purge_request(v, request_id, subject_id, source, _SOURCES)
        v.raise_if_any("the request is not valid")
        async with self._lock:
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
                    await batch.put_state(subject_id, rebuild_state(remaining), now)
                    removed, rewritten = 0, 1
                else:
                    removed = await batch.delete_state(subject_id)
                tables = [
                    PurgedTable(applied_records.name, deleted),
                    PurgedTable(subject_features.name, removed, rewritten),
                ]
                await batch.record_purge(request_id, tables, now)
        return tables

    async def holdings(self, subject_id: str) -> SubjectHoldings:
        """The subject's vector now and every record version held (export)."""
        v = Violations()
        check_subject_id(v, subject_id)
        v.raise_if_any("the request is not valid")
        return SubjectHoldings(await self.vector(subject_id), await self._store.applied_of(subject_id))
