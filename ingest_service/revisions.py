"""Versions of one record: what a newly sent version does to the stored one.

A producer's record is identified by (producer_id, record_id) and versioned by
``Record.revision``. Sending a version judges it against the version stored
under the same key (pure rules, no database; the store applies the verdict in
the transaction that read the stored version):

- none stored: the version is stored (``INSERTED``), even a retraction: its
  tombstone keeps a lower revision that arrives later from counting;
- a lower revision than the stored one: ``STALE_REVISION``, nothing changes;
- the same revision: ``SAME_CONTENT`` (a duplicate) when the bytes are equal,
  otherwise ``OTHER_CONTENT`` (a conflicting duplicate);
- a higher revision: it replaces the stored version (``REPLACED``), unless it
  moves the record to another subject (``SUBJECT_CHANGED``) or, with both
  versions carrying a body, to another kind of record (``KIND_CHANGED``).

Which versions the feature service hears about: every stored version whose body
feeds features (not loan outcomes, which are training labels only), and every
retraction of such a version, so that the feature service can undo it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2

__all__ = ["Judgement", "NewRecord", "StoreOutcome", "StoredVersion", "feeds_features", "judge"]


class StoreOutcome(enum.Enum):
    """What storing one record did."""

    INSERTED = "inserted"
    """Stored now: no version was stored under its key."""
    SAME_CONTENT = "same_content"
    """The same revision is stored with the same content: a duplicate."""
    OTHER_CONTENT = "other_content"
    """The same revision is stored with other content: a conflicting duplicate."""
    STALE_REVISION = "stale_revision"
    """A higher revision is stored; nothing changed."""
    REPLACED = "replaced"
    """A higher revision: it replaced the stored version."""
    SUBJECT_CHANGED = "subject_changed"
    """A higher revision for another subject: refused, nothing changed."""
    KIND_CHANGED = "kind_changed"
    """A higher revision with another kind of body: refused, nothing changed."""


@dataclass(frozen=True)
class NewRecord:
    """A valid (and, unless a retraction, consented) record ready to be stored."""

    record_id: str
    subject_id: str
    source: int
    """``common_pb2.DataSource``; DATA_SOURCE_UNSPECIFIED for a retraction (no body)."""
    event_time: datetime
    payload: bytes
    content_hash: bytes
    enqueue: bool
    """Whether this version goes to the feature service (False for loan outcomes,
    training labels only, and for retractions, which go only when they retract
    a version the feature service got)."""
    revision: int = 0
    retracted: bool = False
    kind: str = ""
    """The body's name (``bill``, ``order``, ...); empty for a retraction."""


@dataclass(frozen=True)
class StoredVersion:
    """The version stored under a key, as the store read it (locked)."""

    subject_id: str
    source: int
    revision: int
    retracted: bool
    content_hash: bytes
    payload: bytes

    @property
    def kind(self) -> str:
        """The stored body's name; empty for a tombstone. Parsed on demand: only a
        correction asks."""
        return records_pb2.Record.FromString(self.payload).WhichOneof("body") or ""


@dataclass(frozen=True)
class Judgement:
    """A verdict, and for ``REPLACED`` what the new row holds and whether the
    change goes to the feature service."""

    outcome: StoreOutcome
    enqueue: bool = False
    source: int = common_pb2.DATA_SOURCE_UNSPECIFIED


def feeds_features(source: int) -> bool:
    """Whether records of ``source`` go to the feature service: every source but
    outcomes (labels for training, never an input to a score)."""
    return source not in (common_pb2.DATA_SOURCE_OUTCOMES, common_pb2.DATA_SOURCE_UNSPECIFIED)


def judge(stored: StoredVersion, new: NewRecord) -> Judgement:
    """What sending ``new`` does when ``stored`` is stored under its key; see the
    module docstring."""
    if new.revision < stored.revision:
        return Judgement(StoreOutcome.STALE_REVISION)
    if new.revision == stored.revision:
        if new.content_hash == stored.content_hash:
            return Judgement(StoreOutcome.SAME_CONTENT)
        return Judgement(StoreOutcome.OTHER_CONTENT)
    if new.subject_id != stored.subject_id:
        return Judgement(StoreOutcome.SUBJECT_CHANGED)
    if not new.retracted and not stored.retracted and new.kind != stored.kind:
        return Judgement(StoreOutcome.KIND_CHANGED)
    if new.retracted:
        # The tombstone keeps the source of what it retracts (for listing and purges).
        undo = not stored.retracted and feeds_features(stored.source)
        return Judgement(StoreOutcome.REPLACED, enqueue=undo, source=stored.source)
    return Judgement(StoreOutcome.REPLACED, enqueue=new.enqueue, source=new.source)
