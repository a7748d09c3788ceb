"""Ingesting a batch of records, and listing a subject's records.

The steps of one batch, each answering every record on its own:

1. the batch itself must be well formed, or the whole call is INVALID_ARGUMENT;
2. each record is validated (REJECTED ``INVALID_RECORD`` with its violations);
3. a record id seen earlier in the batch is judged against its first occurrence;
4. consent is checked for each (subject, source) in one call per purpose
   (REJECTED ``CONSENT_REQUIRED``); if the consent service cannot answer,
   the call fails and nothing is stored;
5. the rest is stored idempotently in one transaction with its outbox rows:
   ACCEPTED, DUPLICATE (same content stored before) or REJECTED
   ``CONFLICTING_DUPLICATE`` (different content under the same id).

No gRPC here: consent is reached through the ``ConsentChecker`` protocol.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2
from creditscore.runtime import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    Violations,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    utcnow,
)

from .store import NewRecord, RecordPosition, RecordStore, StoreOutcome
from .validation import source_of, validate_batch, validate_record

__all__ = [
    "BatchOutcome",
    "ConsentChecker",
    "Ingestor",
    "RecordOutcome",
    "RecordPage",
    "Status",
    "StoredRecordView",
    "content_hash",
    "serialize",
]

log = logging.getLogger("ingest_service")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
DEFAULT_EXPORT_CHUNK = 500
MAX_EXPORT_CHUNK = 1000  # one CheckConsents call answers at most 1000 pairs

INVALID_RECORD = "INVALID_RECORD"
CONSENT_REQUIRED = "CONSENT_REQUIRED"
CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"


class ConsentChecker(Protocol):
    """Answers "may these subjects' data from these sources be used for this purpose?"."""

    async def check(
        self, purpose: int, pairs: Sequence[tuple[str, int]], timeout: float
    ) -> list[bool]:
        """One answer per ``(subject_id, source)`` pair, in order. Raises a
        ``DomainError`` (``Unavailable`` when the service cannot be reached)."""
        ...


class Status(enum.Enum):
    """The fate of one record in a batch."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RecordOutcome:
    """The answer for one record of a batch."""

    index: int
    record_id: str
    status: Status
    reason: str = ""
    violations: tuple[FieldViolation, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    """The answers for a whole batch, in request order, and their counts."""

    results: tuple[RecordOutcome, ...]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)


@dataclass(frozen=True)
class StoredRecordView:
    """One stored record for ListRecords."""

    producer_id: str
    record: records_pb2.Record
    ingest_time: datetime


@dataclass(frozen=True)
class RecordPage:
    records: tuple[StoredRecordView, ...]
    next_page_token: str


@dataclass(frozen=True)
class ExportChunk:
    """One chunk of the training export: the consented records, and how many of
    the chunk were left out for want of model-development consent."""

    records: tuple[StoredRecordView, ...]
    skipped_without_consent: int


def serialize(record: records_pb2.Record) -> bytes:
    """The deterministic serialization a record is stored and hashed as."""
    return record.SerializeToString(deterministic=True)


def content_hash(payload: bytes) -> bytes:
    """sha256 of a record's deterministic serialization: "same content"."""
    return hashlib.sha256(payload).digest()


@dataclass
class _Entry:
    """A valid record on its way through the batch."""

    index: int
    record: records_pb2.Record
    source: int
    payload: bytes
    digest: bytes
    followers: list[int] = field(default_factory=list)


def _purpose_of(source: int) -> int:
    """Outcomes are training labels (model development); everything else scores."""
    if source == common_pb2.DATA_SOURCE_OUTCOMES:
        return common_pb2.PURPOSE_MODEL_DEVELOPMENT
    return common_pb2.PURPOSE_CREDIT_SCORING


class Ingestor:
    """Ingest domain logic over a store and a consent checker.

    ``on_enqueued`` is called after a batch that queued outbox rows committed (the
    dispatcher's wake-up); ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        store: RecordStore,
        consent: ConsentChecker,
        *,
        on_enqueued: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._consent = consent
        self._on_enqueued = on_enqueued
        self._clock = clock

    async def ingest(
        self,
        request_id: str,
        producer_id: str,
        batch: Sequence[records_pb2.Record],
        *,
        consent_timeout: float,
    ) -> BatchOutcome:
        """Ingests one batch; see the module docstring for the steps.

        Raises ``InvalidArgument`` for a malformed batch and ``Unavailable`` (from
        the consent checker) when consent cannot be checked; nothing is stored then.
        """
        problems = validate_batch(request_id, producer_id, len(batch))
        if problems:
            raise InvalidArgument("the batch is not valid", problems)
        now = self._clock()

        results: list[RecordOutcome | None] = [None] * len(batch)
        firsts: dict[str, _Entry] = {}
        for index, record in enumerate(batch):
            violations = validate_record(record, now)
            if violations:
                results[index] = RecordOutcome(
                    index, record.record_id, Status.REJECTED, INVALID_RECORD, tuple(violations)
                )
                continue
            payload = serialize(record)
            digest = content_hash(payload)
            first = firsts.get(record.record_id)
            if first is None:
                firsts[record.record_id] = _Entry(index, record, source_of(record), payload, digest)
            elif first.digest == digest:
                first.followers.append(index)
            else:
                why = f"sent with different content at index {first.index} of this batch"
                results[index] = _conflict(index, record.record_id, why)

        entries = list(firsts.values())
        granted = await self._check_consent(entries, consent_timeout)
        to_store: list[_Entry] = []
        for entry, ok in zip(entries, granted, strict=True):
            if not ok:
                results[entry.index] = RecordOutcome(
                    entry.index, entry.record.record_id, Status.REJECTED, CONSENT_REQUIRED
                )
            else:
                to_store.append(entry)

        stored, queued = await self._store.store_batch(
            producer_id,
            [
                NewRecord(
                    record_id=e.record.record_id,
                    subject_id=e.record.subject_id,
                    source=e.source,
                    event_time=e.record.event_time.ToDatetime(tzinfo=UTC),
                    payload=e.payload,
                    content_hash=e.digest,
                    enqueue=e.source != common_pb2.DATA_SOURCE_OUTCOMES,
                )
                for e in to_store
            ],
            now,
        )
        for entry in to_store:
            record_id = entry.record.record_id
            stored_as = stored[record_id]
            if stored_as is StoreOutcome.INSERTED:
                results[entry.index] = RecordOutcome(entry.index, record_id, Status.ACCEPTED)
            elif stored_as is StoreOutcome.SAME_CONTENT:
                results[entry.index] = RecordOutcome(entry.index, record_id, Status.DUPLICATE)
            else:
                results[entry.index] = _conflict(
                    entry.index, record_id, "stored earlier with different content"
                )

        # A repeat within the batch shares its first occurrence's fate; a second
        # copy of an accepted record is a duplicate.
        for entry in entries:
            first_result = results[entry.index]
            assert first_result is not None
            for index in entry.followers:
                if first_result.status in (Status.ACCEPTED, Status.DUPLICATE):
                    results[index] = RecordOutcome(index, first_result.record_id, Status.DUPLICATE)
                else:
                    results[index] = replace(first_result, index=index)

        if queued and self._on_enqueued is not None:
            self._on_enqueued()
        final = tuple(r for r in results if r is not None)
        assert len(final) == len(batch)
        outcome = BatchOutcome(final)
        log.debug(
            "batch %s from %s: %d accepted, %d duplicate, %d rejected",
            request_id, producer_id, outcome.count(Status.ACCEPTED),
            outcome.count(Status.DUPLICATE), outcome.count(Status.REJECTED),
        )
        return outcome

    async def _check_consent(self, entries: Sequence[_Entry], timeout: float) -> list[bool]:
        """One consent answer per entry, asking each distinct (subject, source) once
        and making one call per purpose present (both at once)."""
        by_purpose: dict[int, list[tuple[str, int]]] = {}
        for entry in entries:
            pairs = by_purpose.setdefault(_purpose_of(entry.source), [])
            pairs.append((entry.record.subject_id, entry.source))
        purposes = sorted(by_purpose)
        questions = {p: list(dict.fromkeys(by_purpose[p])) for p in purposes}
        replies = await asyncio.gather(
            *(self._consent.check(p, questions[p], timeout) for p in purposes),
            return_exceptions=True,
        )
        answers: dict[tuple[int, str, int], bool] = {}
        for purpose, reply in zip(purposes, replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            if len(reply) != len(questions[purpose]):
                raise DomainError(
                    "the consent service answered a different number of checks",
                    reason="CONSENT_REPLY_MISMATCH",
                )
            for pair, granted in zip(questions[purpose], reply, strict=True):
                answers[(purpose, *pair)] = granted
        return [
            answers[(_purpose_of(e.source), e.record.subject_id, e.source)] for e in entries
        ]

    async def export_training(
        self, chunk_size: int, consent_timeout: float
    ) -> AsyncIterator[ExportChunk]:
        """Every stored record, in chunks of at most ``chunk_size`` (0 means 500,
        at most 1000), keeping only those whose subject has a live
        PURPOSE_MODEL_DEVELOPMENT consent for the record's source — asked once
        per distinct (subject, source) of a chunk, at the time of the export."""
        problems = Violations()
        problems.check(
            0 <= chunk_size <= MAX_EXPORT_CHUNK, "chunk_size", f"must be 0 to {MAX_EXPORT_CHUNK}"
        )
        problems.raise_if_any("the request is not valid")
        limit = chunk_size or DEFAULT_EXPORT_CHUNK
        after: tuple[str, str] | None = None
        while True:
            rows = await self._store.export_after(after, limit)
            if not rows:
                return
            after = (rows[-1].producer_id, rows[-1].record_id)
            pairs = list(dict.fromkeys((r.subject_id, r.source) for r in rows))
            granted = await self._consent.check(
                common_pb2.PURPOSE_MODEL_DEVELOPMENT, pairs, consent_timeout
            )
            if len(granted) != len(pairs):
                raise DomainError(
                    "the consent service answered a different number of checks",
                    reason="CONSENT_REPLY_MISMATCH",
                )
            allowed = {pair for pair, ok in zip(pairs, granted, strict=True) if ok}
            kept = tuple(
                StoredRecordView(r.producer_id, records_pb2.Record.FromString(r.payload), r.ingest_time)
                for r in rows
                if (r.subject_id, r.source) in allowed
            )
            yield ExportChunk(kept, len(rows) - len(kept))
            if len(rows) < limit:
                return

    async def list_records(self, subject_id: str, page_size: int, page_token: str) -> RecordPage:
        """A page of a subject's records, newest event time first. ``page_size`` 0
        means 100, more than 500 means 500; the token is the previous page's."""
        problems = Violations()
        check_subject_id(problems, subject_id)
        problems.check(page_size >= 0, "page_size", "must not be negative")
        after: RecordPosition | None = None
        try:
            after = _decode_position(page_token, subject_id)
        except InvalidArgument as bad:
            if not problems:
                raise  # keeps its reason, INVALID_PAGE_TOKEN
            problems.items.extend(bad.violations)
        problems.raise_if_any("the request is not valid")
        limit = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
        rows = await self._store.list_by_subject(subject_id, limit + 1, after)
        page, more = rows[:limit], len(rows) > limit
        token = ""
        if more:
            last = page[-1]
            token = encode_page_token({
                "s": subject_id,
                "t": last.event_time.isoformat(),
                "p": last.producer_id,
                "r": last.record_id,
            })
        return RecordPage(
            records=tuple(
                StoredRecordView(
                    row.producer_id, records_pb2.Record.FromString(row.payload), row.ingest_time
                )
                for row in page
            ),
            next_page_token=token,
        )


def _conflict(index: int, record_id: str, why: str) -> RecordOutcome:
    violation = FieldViolation("record_id", why)
    return RecordOutcome(index, record_id, Status.REJECTED, CONFLICTING_DUPLICATE, (violation,))


def _decode_position(token: str, subject_id: str) -> RecordPosition | None:
    """The position a ListRecords token stands for; the token must be one this
    service issued for the same subject."""
    position = decode_page_token(token)
    if position is None:
        return None
    bad = InvalidArgument(
        "page_token is not a token issued for this listing",
        [FieldViolation("page_token", "not a valid page token for this subject")],
        reason="INVALID_PAGE_TOKEN",
    )
    try:
        event_time = datetime.fromisoformat(position["t"])
        producer_id, record_id = position["p"], position["r"]
        if position["s"] != subject_id or event_time.tzinfo is None:
            raise bad
        if not isinstance(producer_id, str) or not isinstance(record_id, str):
            raise bad
    except (KeyError, TypeError, ValueError):
        raise bad from None
    return RecordPosition(event_time, producer_id, record_id)
