"""Ingesting batches and streams of records, and listing a subject's records.

The steps of one batch (or one chunk of a stream), each answering every record
on its own:

1. the batch itself must be well formed, or the whole call is INVALID_ARGUMENT,
   and sent under the authenticated producer's own id, or the whole call is
   PERMISSION_DENIED ``PRODUCER_MISMATCH`` (nothing of it is stored);
2. each record is validated (REJECTED ``INVALID_RECORD`` with its violations) and
   must be of a source the producer may send (REJECTED ``SOURCE_NOT_ALLOWED``; a
   retraction, which only takes back one of the producer's own records, has no
   source of its own and is not checked);
3. a record id seen earlier in the batch is judged against the versions sent
   before it: the same content is a DUPLICATE, the same revision with other
   content ``CONFLICTING_DUPLICATE``, another revision a later version, stored
   after the earlier one (in a later "round" of the same transaction);
4. consent is checked for each (subject, source) in one call per purpose
   (REJECTED ``CONSENT_REQUIRED``); retractions need none, they only take data
   away. If the consent service cannot answer, the call fails and nothing of the
   batch is stored;
5. the rest is stored in one transaction with its outbox rows (see
   ``revisions``): ACCEPTED (new, or a correction or retraction that replaced
   the stored version), DUPLICATE (same revision and content stored before), or
   REJECTED ``CONFLICTING_DUPLICATE``, ``STALE_REVISION`` or
   ``INVALID_CORRECTION``.

A stream is a sequence of such batches ("chunks") from one producer, each
committed before the next is read, answered at the end with every record's
result indexed from the start of the stream. Its limits (records per stream,
the size of the reply) are checked before a chunk is touched, so a stream that
ends early keeps exactly the chunks it reports as committed.

No gRPC here: consent is reached through the ``ConsentChecker`` protocol.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2
from creditscore.runtime import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Violations,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    utcnow,
)

from .revisions import NewRecord, StoreOutcome, feeds_features
from .store import ExportPosition, ExportRow, RecordPosition, RecordStore
from .validation import (
    MAX_RECORD_ID_LENGTH,
    source_of,
    validate_batch,
    validate_record,
)

__all__ = [
    "CONFLICTING_DUPLICATE",
    "CONSENT_REQUIRED",
    "INVALID_CORRECTION",
    "INVALID_RECORD",
    "MAX_RESULT_BYTES",
    "MAX_STREAM_RECORDS",
    "SOURCE_NOT_ALLOWED",
    "STALE_REVISION",
    "AuthorizedProducer",
    "BatchOutcome",
    "Chunk",
    "ConsentChecker",
    "Ingestor",
    "RecordOutcome",
    "RecordPage",
    "Status",
    "StoredRecordView",
    "StreamOutcome",
    "content_hash",
    "serialize",
]

log = logging.getLogger("ingest_service")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
DEFAULT_EXPORT_CHUNK = 500
MAX_EXPORT_CHUNK = 1000  # one CheckConsents call answers at most 1000 pairs
MIN_EXPORT_CHUNK = 100
"""Fewest records a training export message holds (a smaller chunk size is served
as this): a streamed message costs about 0.2 ms whatever it holds, so one a record
would make the export several times slower for no use (100 records: ~10 KB)."""
EXPORT_PAGE_ROWS = 1000
"""Rows the training export reads per query, whatever the caller's chunk size: a
page has at most 1000 distinct (subject, source) pairs, one consent call."""

MAX_STREAM_RECORDS = 100_000
"""Most records one IngestRecordStream may carry (its reply answers every one)."""

MAX_RESULT_BYTES = 4096
"""An upper bound on one record's result in a reply (record id cut to 128
characters, at most a few dozen field violations with this service's own
texts): a stream reads a chunk only if the reply still has room for its worst case."""

INVALID_RECORD = "INVALID_RECORD"
CONSENT_REQUIRED = "CONSENT_REQUIRED"
CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"
STALE_REVISION = "STALE_REVISION"
INVALID_CORRECTION = "INVALID_CORRECTION"
SOURCE_NOT_ALLOWED = "SOURCE_NOT_ALLOWED"


@dataclass(frozen=True)
class AuthorizedProducer:
    """The producer a call is authenticated as (its token): its id and the
    ``DataSource`` numbers it may send. None where authentication is off."""

    producer_id: str
    sources: frozenset[int]

    def check_sender(self, producer_id: str, field_path: str = "producer_id") -> None:
        """``PermissionDenied`` (``PRODUCER_MISMATCH``) unless the batch is sent
        under the authenticated producer's own id."""
        if producer_id != self.producer_id:
            raise PermissionDenied(
                "a producer may send records only under its own producer_id",
                reason="PRODUCER_MISMATCH",
                metadata={"field": field_path},
            )


def _source_not_allowed(index: int, record_id: str, source: int) -> RecordOutcome:
    known = source in common_pb2.DataSource.values()
    name = common_pb2.DataSource.Name(cast(common_pb2.DataSource.ValueType, source)) if known else str(source)
    return RecordOutcome(
        index, record_id, Status.REJECTED, SOURCE_NOT_ALLOWED,
        (FieldViolation("body", f"this producer may not send records of {name}"),),
    )


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
class StreamOutcome(BatchOutcome):
    """The answers for a whole stream, indexed from its first record."""

    chunks: int = 0


@dataclass(frozen=True)
class Chunk:
    """One message of a stream, as the servicer hands it over."""

    request_id: str
    producer_id: str
    records: Sequence[records_pb2.Record]


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
    """One chunk of the training export: the consented records, and how many
    records between the chunk before and this one's last record (the last
    chunk's: to the end) were left out for want of model-development consent."""

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
    """A valid record on its way through the batch: one version of one record id."""

    index: int
    record: records_pb2.Record
    source: int
    payload: bytes
    digest: bytes
    round: int
    """0 for the first version of its id in the batch, 1 for the next, ..."""
    followers: list[int] = field(default_factory=list)
    """Later indexes of the batch with exactly this content."""


def _purpose_of(source: int) -> int:
    """Outcomes are training labels (model development); everything else scores."""
    if source == common_pb2.DATA_SOURCE_OUTCOMES:
        return common_pb2.PURPOSE_MODEL_DEVELOPMENT
    return common_pb2.PURPOSE_CREDIT_SCORING


def _echo_id(record_id: str) -> str:
    """The record id as a result echoes it: at most 128 characters, so that an
    oversized id cannot make the reply oversized."""
    return record_id[:MAX_RECORD_ID_LENGTH]


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def result_bytes(outcome: RecordOutcome) -> int:
    """An upper bound on the encoded size of one record's result."""
    size = 24 + _text_bytes(outcome.record_id) + len(outcome.reason)
    for v in outcome.violations:
        size += 12 + _text_bytes(v.field) + _text_bytes(v.description)
    return size


# What a store verdict means for the producer: (status, reason, violation).
_VERDICTS: dict[StoreOutcome, tuple[Status, str, FieldViolation | None]] = {
    StoreOutcome.INSERTED: (Status.ACCEPTED, "", None),
    StoreOutcome.REPLACED: (Status.ACCEPTED, "", None),
    StoreOutcome.SAME_CONTENT: (Status.DUPLICATE, "", None),
    StoreOutcome.OTHER_CONTENT: (
        Status.REJECTED,
        CONFLICTING_DUPLICATE,
        FieldViolation("record_id", "stored earlier with the same revision and different content"),
    ),
    StoreOutcome.STALE_REVISION: (
        Status.REJECTED,
        STALE_REVISION,
        FieldViolation("revision", "a higher revision of this record is stored"),
    ),
    StoreOutcome.SUBJECT_CHANGED: (
        Status.REJECTED,
        INVALID_CORRECTION,
        FieldViolation(
            "subject_id",
            "a correction must keep the subject of the stored record; retract it and send a new record",
        ),
    ),
    StoreOutcome.KIND_CHANGED: (
        Status.REJECTED,
        INVALID_CORRECTION,
        FieldViolation(
            "body",
            "a correction must keep the kind of record stored; retract it and send a new record",
        ),
    ),
}


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
        first_index: int = 0,
        producer: AuthorizedProducer | None = None,
    ) -> BatchOutcome:
        """Ingests one batch; see the module docstring for the steps. Results are
        indexed from ``first_index`` (a chunk's place in its stream). ``producer``
        is the authenticated sender (None: not checked, ``AUTH_MODE=disabled``).

        Raises ``InvalidArgument`` for a malformed batch, ``PermissionDenied``
        (``PRODUCER_MISMATCH``) for a batch under another producer's id and
        ``Unavailable`` (from the consent checker) when consent cannot be
        checked; nothing is stored then.
        """
        problems = validate_batch(request_id, producer_id, len(batch))
        if problems:
            raise InvalidArgument("the batch is not valid", problems)
        if producer is not None:
            producer.check_sender(producer_id)
        now = self._clock()

        results: list[RecordOutcome | None] = [None] * len(batch)
        versions: dict[str, list[_Entry]] = {}
        entries: list[_Entry] = []
        for index, record in enumerate(batch):
            violations = validate_record(record, now)
            if violations:
                results[index] = RecordOutcome(
                    index, _echo_id(record.record_id), Status.REJECTED, INVALID_RECORD,
                    tuple(violations),
                )
                continue
            # A retraction has no body, hence no source of its own: it can only
            # take back one of this producer's own records, and only takes data away.
            if producer is not None and not record.retracted and source_of(record) not in producer.sources:
                results[index] = _source_not_allowed(index, _echo_id(record.record_id), source_of(record))
                continue
            payload = serialize(record)
            digest = content_hash(payload)
            earlier = versions.get(record.record_id)
            if earlier is None:
                entry = _Entry(index, record, source_of(record), payload, digest, 0)
                versions[record.record_id] = [entry]
                entries.append(entry)
                continue
            same = next((e for e in earlier if e.digest == digest), None)
            if same is not None:
                same.followers.append(index)
                continue
            clash = next((e for e in earlier if e.record.revision == record.revision), None)
            if clash is not None:
                why = f"sent with the same revision and different content at index {clash.index} of this batch"
                results[index] = _conflict(index, record.record_id, why)
                continue
            entry = _Entry(index, record, source_of(record), payload, digest, len(earlier))
            earlier.append(entry)
            entries.append(entry)

        granted = await self._check_consent(entries, consent_timeout)
        rounds: list[list[_Entry]] = []
        for entry, ok in zip(entries, granted, strict=True):
            if not ok:
                results[entry.index] = RecordOutcome(
                    entry.index, entry.record.record_id, Status.REJECTED, CONSENT_REQUIRED
                )
                continue
            while len(rounds) <= entry.round:
                rounds.append([])
            rounds[entry.round].append(entry)

        verdicts, queued = await self._store.store_rounds(
            producer_id, [[_new_record(e) for e in round_] for round_ in rounds], now
        )
        for round_, outcomes in zip(rounds, verdicts, strict=True):
            for entry in round_:
                status, reason, violation = _VERDICTS[outcomes[entry.record.record_id]]
                results[entry.index] = RecordOutcome(
                    entry.index,
                    entry.record.record_id,
                    status,
                    reason,
                    (violation,) if violation is not None else (),
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
        final = tuple(
            r if first_index == 0 else replace(r, index=r.index + first_index)
            for r in results
            if r is not None
        )
        assert len(final) == len(batch)
        outcome = BatchOutcome(final)
        log.debug(
            "batch %s from %s: %d accepted, %d duplicate, %d rejected",
            request_id, producer_id, outcome.count(Status.ACCEPTED),
            outcome.count(Status.DUPLICATE), outcome.count(Status.REJECTED),
        )
        return outcome

    async def ingest_stream(
        self,
        chunks: AsyncIterable[Chunk],
        *,
        consent_timeout: Callable[[], float],
        reply_budget: int,
        producer: AuthorizedProducer | None = None,
    ) -> StreamOutcome:
        """Ingests a stream chunk by chunk, each committed (as one ``ingest``
        batch) before the next is read; returns every record's result, indexed
        from the first record of the stream.

        The producer is the first chunk's; a later chunk names the same producer
        or none; with ``producer`` (the authenticated sender) each chunk is checked
        as ``ingest`` checks a batch. ``consent_timeout()`` is asked before each chunk (the time left
        of the caller's deadline). ``reply_budget`` is the most bytes the reply may
        take: a chunk is read only if the reply keeps room for its worst case.

        Raises ``InvalidArgument`` for an empty stream or a malformed chunk and
        ``ResourceExhausted`` (``STREAM_TOO_LARGE``, ``REPLY_TOO_LARGE``) past a
        limit; these, and an error of the consent check, carry in their metadata
        ``records_committed`` and ``chunks_committed``: what the stream stored
        before it ended, which is all kept.
        """
        results: list[RecordOutcome] = []
        producer_id = ""
        chunk_count = 0
        reply_bytes = 0
        try:
            async for chunk in chunks:
                at = f"chunks[{chunk_count}]"
                if not producer_id:
                    producer_id = chunk.producer_id
                elif chunk.producer_id and chunk.producer_id != producer_id:
                    raise InvalidArgument(
                        "every chunk of a stream must come from the same producer",
                        [FieldViolation(f"{at}.producer_id", f"must be empty or {producer_id!r}")],
                    )
                if len(results) + len(chunk.records) > MAX_STREAM_RECORDS:
                    raise ResourceExhausted(
                        f"a stream may carry at most {MAX_STREAM_RECORDS} records; "
                        "send the rest in another stream",
                        reason="STREAM_TOO_LARGE",
                        metadata={"max_stream_records": str(MAX_STREAM_RECORDS)},
                    )
                if reply_bytes + len(chunk.records) * MAX_RESULT_BYTES > reply_budget:
                    raise ResourceExhausted(
                        "the reply to this stream is as large as it may grow; "
                        "send the rest in another stream",
                        reason="REPLY_TOO_LARGE",
                    )
                try:
                    outcome = await self.ingest(
                        chunk.request_id,
                        producer_id,
                        chunk.records,
                        consent_timeout=consent_timeout(),
                        first_index=len(results),
                        producer=producer,
                    )
                except InvalidArgument as bad:
                    raise InvalidArgument(
                        f"chunk {chunk_count} of the stream is not valid",
                        [FieldViolation(f"{at}.{v.field}", v.description) for v in bad.violations],
                        reason=bad.reason,
                    ) from None
                results.extend(outcome.results)
                reply_bytes += sum(result_bytes(r) for r in outcome.results)
                chunk_count += 1
        except DomainError as error:
            error.metadata.update(
                records_committed=str(len(results)), chunks_committed=str(chunk_count)
            )
            raise
        if chunk_count == 0:
            raise InvalidArgument(
                "the stream held no chunk", [FieldViolation("chunks", "must hold at least one chunk")]
            )
        return StreamOutcome(tuple(results), chunks=chunk_count)

    async def _check_consent(self, entries: Sequence[_Entry], timeout: float) -> list[bool]:
        """One consent answer per entry, asking each distinct (subject, source) once
        and making one call per purpose present (both at once). A retraction is
        always allowed: it takes data away."""
        by_purpose: dict[int, list[tuple[str, int]]] = {}
        for entry in entries:
            if entry.record.retracted:
                continue
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
            e.record.retracted or answers[(_purpose_of(e.source), e.record.subject_id, e.source)]
            for e in entries
        ]

    async def export_training(
        self, chunk_size: int, consent_timeout: float
    ) -> AsyncIterator[ExportChunk]:
        """Every stored record whose subject has a live PURPOSE_MODEL_DEVELOPMENT
        consent for the record's source (asked at the time of the export), in
        the order (subject, producer, record id), in messages of ``chunk_size``
        records (0 means 500; at least ``MIN_EXPORT_CHUNK``, at most 1000); only
        the last may hold fewer.

        The store is read in pages of ``EXPORT_PAGE_ROWS`` rows whatever the
        chunk size, with one consent call per page (its distinct (subject,
        source) pairs), and the messages are cut from what the pages kept: the
        queries and consent calls of an export depend on the size of the store,
        never on ``chunk_size``. A chunk's ``skipped_without_consent`` counts the
        records left out between the chunk before and the chunk's last record
        (the last chunk's: to the end of the store; it may hold no records and
        carry only that count)."""
        problems = Violations()
        problems.check(
            0 <= chunk_size <= MAX_EXPORT_CHUNK, "chunk_size", f"must be 0 to {MAX_EXPORT_CHUNK}"
        )
        problems.raise_if_any("the request is not valid")
        limit = max(chunk_size or DEFAULT_EXPORT_CHUNK, MIN_EXPORT_CHUNK)
        pending: list[StoredRecordView] = []  # kept, not yet sent
        gaps: list[int] = []  # gaps[i]: records left out just before pending[i]
        tail = 0  # records left out after the last one kept
        after: ExportPosition | None = None
        while True:
            rows = await self._store.export_after(after, EXPORT_PAGE_ROWS)
            if rows:
                after = rows[-1].position
                allowed = await self._development_consents(rows, consent_timeout)
                for r in rows:
                    if (r.subject_id, r.source) in allowed:
                        pending.append(StoredRecordView(
                            r.producer_id, records_pb2.Record.FromString(r.payload), r.ingest_time
                        ))
                        gaps.append(tail)
                        tail = 0
                    else:
                        tail += 1
            last = len(rows) < EXPORT_PAGE_ROWS
            start = 0
            while len(pending) - start >= limit or (last and (start < len(pending) or tail)):
                end = start + limit
                skipped = sum(gaps[start:end])
                if last and end >= len(pending):
                    skipped, tail = skipped + tail, 0
                yield ExportChunk(tuple(pending[start:end]), skipped)
                start = end
            if last:
                return
            del pending[:start], gaps[:start]

    async def _development_consents(
        self, rows: Sequence[ExportRow], consent_timeout: float
    ) -> set[tuple[str, int]]:
        """The (subject, source) pairs of ``rows`` with a live model-development
        consent: one consent call for a page (it has at most ``MAX_EXPORT_CHUNK``
        distinct pairs)."""
        pairs = list(dict.fromkeys((r.subject_id, r.source) for r in rows))
        granted: list[bool] = []
        for i in range(0, len(pairs), MAX_EXPORT_CHUNK):
            part = pairs[i:i + MAX_EXPORT_CHUNK]
            answers = await self._consent.check(common_pb2.PURPOSE_MODEL_DEVELOPMENT, part, consent_timeout)
            if len(answers) != len(part):
                raise DomainError(
                    "the consent service answered a different number of checks",
                    reason="CONSENT_REPLY_MISMATCH",
                )
            granted.extend(answers)
        return {pair for pair, ok in zip(pairs, granted, strict=True) if ok}

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _new_record(entry: _Entry) -> NewRecord:
    record = entry.record
    return NewRecord(
        record_id=record.record_id,
        subject_id=record.subject_id,
        source=entry.source,
        event_time=_EPOCH + timedelta(seconds=record.event_time.seconds, microseconds=record.event_time.nanos // 1000),
        payload=entry.payload,
        content_hash=entry.digest,
        enqueue=not record.retracted and feeds_features(entry.source),
        revision=record.revision,
        retracted=record.retracted,
        kind=record.WhichOneof("body") or "",
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
