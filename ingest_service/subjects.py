"""A subject's records as a whole: forgetting them (the consent service's purge)
and handing them over (the consent service's export of everything held).

No gRPC here; only services may call the RPCs behind these (``server.POLICY``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2
from creditscore.runtime import (
    FieldViolation,
    InvalidArgument,
    PurgedTable,
    Violations,
    check_purge_request,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    utcnow,
)

from .ingestion import StoredRecordView
from .store import RecordStore

__all__ = ["SubjectData", "SubjectPage"]

_SOURCES = frozenset(v.number for v in common_pb2.DataSource.DESCRIPTOR.values if v.number)
DEFAULT_EXPORT_PAGE = 500
MAX_EXPORT_PAGE = 1000


@dataclass(frozen=True)
class SubjectPage:
    records: tuple[StoredRecordView, ...]
    next_page_token: str


class SubjectData:
    """Purge and export of one subject's records over ``store``."""

    def __init__(self, store: RecordStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    async def purge(self, request_id: str, subject_id: str, source: int) -> list[PurgedTable]:
        """Deletes the subject's records of ``source`` (0: every source) and their
        outbox entries; idempotent on ``request_id`` (see ``RecordStore.purge_subject``)."""
        v = Violations()
        check_purge_request(v, request_id, subject_id, source, _SOURCES)
        v.raise_if_any("the request is not valid")
        return await self._store.purge_subject(request_id, subject_id, source or None, self._clock())

    async def export(self, subject_id: str, page_size: int, page_token: str) -> SubjectPage:
        """A page of every record held for the subject, tombstones included, in key order."""
        v = Violations()
        check_subject_id(v, subject_id)
        v.check(0 <= page_size, "page_size", "must not be negative")
        v.raise_if_any("the request is not valid")
        after = _position(page_token, subject_id)
        limit = min(page_size or DEFAULT_EXPORT_PAGE, MAX_EXPORT_PAGE)
        rows = await self._store.subject_records(subject_id, after, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        token = ""
        if more:
            token = encode_page_token({"s": subject_id, "p": page[-1].producer_id, "r": page[-1].record_id})
        return SubjectPage(
            tuple(
                StoredRecordView(r.producer_id, records_pb2.Record.FromString(r.payload), r.ingest_time)
                for r in page
            ),
            token,
        )


def _position(token: str, subject_id: str) -> tuple[str, str] | None:
    position = decode_page_token(token)
    if position is None:
        return None
    producer_id, record_id = position.get("p"), position.get("r")
    if position.get("s") != subject_id or not isinstance(producer_id, str) or not isinstance(record_id, str):
        raise InvalidArgument(
            "page_token is not a token issued for this subject",
            [FieldViolation("page_token", "not a valid page token for this subject")],
            reason="INVALID_PAGE_TOKEN",
        )
    return producer_id, record_id
