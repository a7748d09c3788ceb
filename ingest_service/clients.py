"""gRPC adapters for the ingest service's two dependencies.

``GrpcConsentChecker`` implements ``ingestion.ConsentChecker`` over
``ConsentService.CheckConsents``; ``GrpcFeatureSink`` implements
``dispatcher.FeatureSink`` over ``FeatureService.ApplyRecords``. They are the only
ingest modules besides the servicer that know about gRPC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, DomainError, Unavailable

from .store import OutboxItem

__all__ = ["DeliveryError", "GrpcConsentChecker", "GrpcFeatureSink"]

# Failures that mean "could not get an answer in time", as opposed to a refusal.
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
#: The consent service failing itself (its bug or crash, not ours): try again later.
_FAILED = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


class GrpcConsentChecker:
    """Asks the consent service, one ``CheckConsents`` call per question set."""

    def __init__(self, stub: consent_pb2_grpc.ConsentServiceAsyncStub) -> None:
        self._stub = stub

    async def check(
        self, purpose: int, pairs: Sequence[tuple[str, int]], timeout: float
    ) -> list[bool]:
        """Whether each ``(subject_id, source)`` has live consent for ``purpose``.

        Raises ``Unavailable`` (reason ``CONSENT_SERVICE_UNAVAILABLE``) when the
        consent service cannot be reached in ``timeout`` seconds (after the
        channel's own retries), ``Unavailable`` (``CONSENT_CHECK_FAILED``) when it
        fails itself (INTERNAL, UNKNOWN), and an INTERNAL ``DomainError``
        (``CONSENT_CHECK_FAILED``) when it refuses the request, or for a reply
        that does not match the questions.
        """
        request = consent_pb2.CheckConsentsRequest(
            purpose=cast(common_pb2.Purpose.ValueType, purpose),
            checks=[
                consent_pb2.ConsentCheck(subject_id=subject_id, source=cast(common_pb2.DataSource.ValueType, source))
                for subject_id, source in pairs
            ],
        )
        try:
            reply = await self._stub.CheckConsents(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            error = CallError.from_rpc_error(exc)
            if error.code in _UNREACHABLE:
                raise Unavailable(
                    f"the consent service could not be reached ({error.code.name})",
                    reason="CONSENT_SERVICE_UNAVAILABLE",
                    metadata={"consent_code": error.code.name},
                ) from None
            failure = Unavailable if error.code in _FAILED else DomainError
            raise failure(
                "the consent check failed",
                reason="CONSENT_CHECK_FAILED",
                metadata={"consent_code": error.code.name, "consent_reason": error.reason},
            ) from None
        decisions = list(reply.decisions)
        if len(decisions) != len(pairs) or any(
            (d.subject_id, d.source) != pair for d, pair in zip(decisions, pairs, strict=False)
        ):
            raise DomainError(
                "the consent service answered other questions than asked",
                reason="CONSENT_REPLY_MISMATCH",
            )
        return [d.granted for d in decisions]


class DeliveryError(Exception):
    """ApplyRecords failed; the dispatcher retries the batch later."""


class GrpcFeatureSink:
    """Delivers outbox batches with ``FeatureService.ApplyRecords``; a delivery is
    done when the reply accounts for every record sent (applied or duplicate)."""

    def __init__(self, stub: feature_pb2_grpc.FeatureServiceAsyncStub) -> None:
        self._stub = stub

    async def apply(self, request_id: str, items: Sequence[OutboxItem], timeout: float) -> None:
        request = feature_pb2.ApplyRecordsRequest(
            request_id=request_id,
            records=[
                feature_pb2.RecordEnvelope(
                    producer_id=item.producer_id, record=records_pb2.Record.FromString(item.payload)
                )
                for item in items
            ],
        )
        try:
            reply = await self._stub.ApplyRecords(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            error = CallError.from_rpc_error(exc)
            detail = f" [{error.reason}]" if error.reason else ""
            raise DeliveryError(
                f"ApplyRecords failed: {error.code.name}: {error.message}{detail}"
            ) from None
        # Every record sent is either applied now or a duplicate: a reply that does
        # not account for each one is not an acknowledgement (the rows stay queued).
        answered = reply.applied_count + reply.duplicate_count
        if answered != len(request.records):
            raise DeliveryError(
                f"ApplyRecords answered for {answered} of {len(request.records)} records "
                f"({reply.applied_count} applied, {reply.duplicate_count} duplicates)"
            )
