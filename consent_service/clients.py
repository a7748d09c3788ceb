"""gRPC adapters for the services a purge and an export reach: each one's internal
``PurgeSubject`` (``purge.Purger``) and ``ExportSubject`` (``export.HeldData``).
With the interceptor's policy, only callers of kind ``service`` may call them;
the consent service calls with its own service token (``self_token_source``).
The only modules of the consent service besides the servicer that know gRPC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import Deadline, TokenSource, downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .export import message_dict
from .purge import Purger, TableCount
from .tokens import CredentialDesk

__all__ = [
    "SELF_SERVICE_ID",
    "FeatureData",
    "GrpcPurger",
    "IngestData",
    "ScoringData",
    "purgers",
    "self_token_source",
]

#: The id the consent service's own service tokens name.
SELF_SERVICE_ID = "consent"
_EXPORT_PAGE = 500


def self_token_source(desk: CredentialDesk) -> TokenSource:
    """The consent service's own service tokens, signed locally (it holds the key),
    at its current credential generation."""

    async def fetch() -> str:
        return (await desk.service_token(SELF_SERVICE_ID)).token

    return TokenSource(fetch)


#: A service's ``PurgeSubjectRequest`` (each service has its own, all alike).
_PurgeRequest = TypeVar(
    "_PurgeRequest", ingest_pb2.PurgeSubjectRequest, feature_pb2.PurgeSubjectRequest, scoring_pb2.PurgeSubjectRequest
)
_PurgeRequest_contra = TypeVar("_PurgeRequest_contra", contravariant=True)


class _PurgeReply(Protocol):
    """A service's ``PurgeSubjectResponse``."""

    @property
    def tables(self) -> Iterable[common_pb2.PurgedTable]: ...


class _PurgeCall(Protocol[_PurgeRequest_contra]):
    """A stub's ``PurgeSubject`` on an asyncio channel."""

    def __call__(self, request: _PurgeRequest_contra, *, timeout: float | None = ...) -> Awaitable[_PurgeReply]: ...


class GrpcPurger(Generic[_PurgeRequest]):
    """One service's ``PurgeSubject``; ``service`` names it in errors."""

    def __init__(
        self, service: str, call: _PurgeCall[_PurgeRequest], request_type: type[_PurgeRequest]
    ) -> None:
        self._service = service
        self._call: _PurgeCall[_PurgeRequest] = call
        self._request_type: type[_PurgeRequest] = request_type

    async def purge(
        self, request_id: str, subject_id: str, source: int, timeout: float
    ) -> Sequence[TableCount]:
        request = self._request_type(
            request_id=request_id, subject_id=subject_id, source=common_pb2.DataSource.ValueType(source)
        )
        with downstream_errors(self._service):
            reply = await self._call(request, timeout=timeout)
        return [TableCount(t.table, t.deleted_rows, t.rewritten_rows) for t in reply.tables]


def purgers(
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub,
    feature: feature_pb2_grpc.FeatureServiceAsyncStub,
    scoring: scoring_pb2_grpc.ScoringServiceAsyncStub,
) -> dict[str, Purger]:
    return {
        "ingest_service": GrpcPurger("ingest_service", ingest.PurgeSubject, ingest_pb2.PurgeSubjectRequest),
        "feature_service": GrpcPurger("feature_service", feature.PurgeSubject, feature_pb2.PurgeSubjectRequest),
        "scoring_service": GrpcPurger("scoring_service", scoring.PurgeSubject, scoring_pb2.PurgeSubjectRequest),
    }


class IngestData:
    """Every record the ingest service holds for a subject (all pages)."""

    def __init__(self, stub: ingest_pb2_grpc.IngestServiceAsyncStub) -> None:
        self._stub = stub

    async def export(self, subject_id: str, timeout: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        token = ""
        budget = Deadline(timeout)
        with downstream_errors("ingest_service"):
            while True:
                page = await self._stub.ExportSubject(
                    ingest_pb2.ExportSubjectRequest(subject_id=subject_id, page_size=_EXPORT_PAGE, page_token=token),
                    timeout=budget.timeout(0),
                )
                records.extend(message_dict(r) for r in page.records)
                token = page.next_page_token
                if not token:
                    return records


class FeatureData:
    """The feature vector and applied records the feature service holds."""

    def __init__(self, stub: feature_pb2_grpc.FeatureServiceAsyncStub) -> None:
        self._stub = stub

    async def export(self, subject_id: str, timeout: float) -> dict[str, Any]:
        with downstream_errors("feature_service"):
            reply = await self._stub.ExportSubject(
                feature_pb2.ExportSubjectRequest(subject_id=subject_id), timeout=timeout
            )
        return message_dict(reply)


class ScoringData:
    """Every score the scoring service holds for a subject, with reasons (all pages)."""

    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceAsyncStub) -> None:
        self._stub = stub

    async def export(self, subject_id: str, timeout: float) -> list[dict[str, Any]]:
        scores: list[dict[str, Any]] = []
        token = ""
        budget = Deadline(timeout)
        with downstream_errors("scoring_service"):
            while True:
                page = await self._stub.ExportSubject(
                    scoring_pb2.ExportSubjectRequest(subject_id=subject_id, page_size=_EXPORT_PAGE, page_token=token),
                    timeout=budget.timeout(0),
                )
                scores.extend(message_dict(s) for s in page.scores)
                token = page.next_page_token
                if not token:
                    return scores
