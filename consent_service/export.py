"""The subject's copy of everything held about them, as one JSON document.

The consent service's own part (enrollment, consents, authorizations, access log,
deletion receipts) comes from its store; the records, features and scores from
each service's internal ``ExportSubject``, asked at once within one deadline.
Any part that cannot be had fails the export (a partial copy would claim to be
complete).

No gRPC here: the other services are reached through ``HeldData``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from creditscore.runtime import Deadline, utcnow

from . import wire
from .store import ConsentStore

__all__ = ["EXPORT_PARTS", "Exporter", "HeldData", "message_dict"]

#: Which service's part goes under which key of the document.
EXPORT_PARTS = {"ingest_service": "records", "feature_service": "features", "scoring_service": "scores"}


class HeldData(Protocol):
    """One service's ``ExportSubject``: what it holds about a subject, JSON-able."""

    async def export(self, subject_id: str, timeout: float) -> object: ...


def message_dict(message: Message) -> dict[str, Any]:
    """A message as the document shows it: proto field names, enums by name,
    timestamps in RFC 3339, unset fields left out."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Exporter:
    """Builds the export document of one subject."""

    def __init__(
        self,
        store: ConsentStore,
        held: Mapping[str, HeldData],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        missing = set(EXPORT_PARTS) - set(held)
        if missing:
            raise ValueError(f"no export source for {sorted(missing)}")
        self._store = store
        self._held = dict(held)
        self._clock = clock

    async def export(self, subject_id: str, deadline: Deadline) -> tuple[str, datetime]:
        """The document (JSON text) and its time. ``SUBJECT_NOT_FOUND`` for an
        unknown subject; a service's failure fails the export."""
        now = self._clock()
        subject, consents, grants, accesses, receipts = await self._store.subject_holdings(subject_id)
        services = list(EXPORT_PARTS)
        parts = await asyncio.gather(
            *(self._held[s].export(subject_id, deadline.timeout()) for s in services)
        )
        document: dict[str, Any] = {
            "subject_id": subject_id,
            "export_time": now.isoformat().replace("+00:00", "Z"),
            "subject": message_dict(wire.subject_pb(subject)),
            "consents": [message_dict(wire.consent_pb(c, now)) for c in consents],
            "authorizations": [message_dict(wire.authorization_pb(a, now)) for a in grants],
            "access_log": [message_dict(wire.access_pb(e, with_response=False)) for e in accesses],
            "deletion_receipts": [message_dict(wire.receipt_pb(r)) for r in receipts],
        }
        for service, part in zip(services, parts, strict=True):
            document[EXPORT_PARTS[service]] = part
        return json.dumps(document, indent=1, sort_keys=True), now
