"""The gRPC side of the subject's own API (``subject_servicer``): adapters to the
consent, feature and scoring services, and the relay of the consent service's
``IssueToken`` to callers outside.

Every call takes the timeout it is given (what is left of the caller's
``Deadline``) and maps its failure one of two ways:

- an answer about the request itself (INVALID_ARGUMENT, NOT_FOUND,
  FAILED_PRECONDITION, ALREADY_EXISTS: a bad page token, a request id reused,
  an unknown partner or receipt, a purge in progress) comes through as the same
  error, from the gateway: same code, reason, message and field violations;
- anything else as ``downstream_errors`` maps it: UNAVAILABLE ->
  ``DOWNSTREAM_UNAVAILABLE``, DEADLINE_EXCEEDED -> ``DOWNSTREAM_DEADLINE_EXCEEDED``,
  any other status ``DOWNSTREAM_ERROR``, the ErrorInfo metadata naming the service.

Kept apart from ``clients`` (the partner lookup's adapters): nothing here is on
the lookup's path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.runtime import (
    KIND_PARTNER,
    KIND_PRODUCER,
    KIND_SUBJECT,
    AlreadyExists,
    CallError,
    Deadline,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    downstream_errors,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import SCORED_SOURCES

__all__ = [
    "EDGE_KINDS",
    "SubjectConsent",
    "SubjectFeatures",
    "SubjectScoring",
    "TokenRelay",
    "invalid_client",
    "relayed_errors",
]

CONSENT = "consent_service"
FEATURE = "feature_service"
SCORING = "scoring_service"

#: The kinds of token handed out at the edge: never a service's.
EDGE_KINDS = frozenset({KIND_PARTNER, KIND_PRODUCER, KIND_SUBJECT})

#: Downstream answers about the request itself, passed on as the same error.
_RELAYED: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
}


def invalid_client() -> Unauthenticated:
    """The one answer to every wrong credential, as the consent service gives it."""
    return Unauthenticated("the client credentials are not valid", reason="INVALID_CLIENT")


def _relayed(exc: grpc.aio.AioRpcError) -> DomainError | None:
    kind = _RELAYED.get(exc.code())
    if kind is None:
        return None
    err = CallError.from_rpc_error(exc)
    reason = err.reason or None
    if kind is InvalidArgument:
        return InvalidArgument(err.message, err.violations, reason=reason, metadata=err.metadata)
    return kind(err.message, reason=reason, metadata=err.metadata)


@contextlib.contextmanager
def relayed_errors(service: str) -> Iterator[None]:
    """A downstream call's failure, as the module's docstring says."""
    with downstream_errors(service):
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            relayed = _relayed(exc)
            if relayed is None:
                raise
            raise relayed from None


class SubjectConsent:
    """The consent service's RPCs a subject's call reaches (with the gateway's
    service token, which the channel carries)."""

    def __init__(self, stub: consent_pb2_grpc.ConsentServiceStub) -> None:
        self._stub = stub

    async def call(self, rpc: str, request: Message, timeout: float) -> Any:
        """``ConsentService/<rpc>`` with ``request``; its reply."""
        with relayed_errors(CONSENT):
            return await getattr(self._stub, rpc)(request, timeout=timeout)

    async def granted_sources(self, subject_id: str, timeout: float) -> frozenset[int]:
        """The scored sources the subject has a live CREDIT_SCORING consent for."""
        request = consent_pb2.CheckConsentsRequest(
            purpose=common_pb2.PURPOSE_CREDIT_SCORING,
            checks=[consent_pb2.ConsentCheck(subject_id=subject_id, source=s) for s in SCORED_SOURCES],  # type: ignore[arg-type]
        )
        reply = await self.call("CheckConsents", request, timeout)
        return frozenset(d.source for d in reply.decisions if d.granted)


class SubjectFeatures:
    def __init__(self, stub: feature_pb2_grpc.FeatureServiceStub) -> None:
        self._stub = stub

    async def feature_vector(self, subject_id: str, timeout: float) -> Sequence[common_pb2.FeatureValue]:
        with relayed_errors(FEATURE):
            reply = await self._stub.GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=subject_id), timeout=timeout
            )
        return reply.feature_vector.features


class SubjectScoring:
    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceStub) -> None:
        self._stub = stub

    async def score(
        self, subject_id: str, features: Sequence[common_pb2.FeatureValue], timeout: float
    ) -> scoring_pb2.Score:
        with relayed_errors(SCORING):
            reply = await self._stub.ScoreFeatures(
                scoring_pb2.ScoreFeaturesRequest(subject_id=subject_id, features=features), timeout=timeout
            )
        return reply.score

    async def list_scores(
        self, subject_id: str, page_size: int, page_token: str, timeout: float
    ) -> scoring_pb2.ListScoresResponse:
        with relayed_errors(SCORING):
            return await self._stub.ListScores(
                scoring_pb2.ListScoresRequest(subject_id=subject_id, page_size=page_size, page_token=page_token),
                timeout=timeout,
            )


class TokenRelay:
    """``IssueToken`` for callers outside, relayed to the consent service on a
    channel that carries no token of the gateway's. At most ``concurrency``
    relays are in flight at once (a partner's or producer's costs the consent
    service one scrypt, so that unauthenticated callers cannot spend all of its
    CPU); the others wait within their deadline, and are refused
    (RESOURCE_EXHAUSTED, ``TOKEN_RELAY_BUSY``) if it runs out first."""

    def __init__(self, stub: consent_pb2_grpc.ConsentServiceStub, *, concurrency: int = 8) -> None:
        if concurrency < 1:
            raise ValueError("the token relay needs a concurrency of at least 1")
        self._stub = stub
        self._slots = asyncio.Semaphore(concurrency)

    async def issue(self, client_id: str, client_secret: str, deadline: Deadline) -> consent_pb2.IssueTokenResponse:
        """The consent service's token for the credentials; ``invalid_client()`` for
        every refusal of them and for a service's credentials alike."""
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=max(0.0, deadline.remaining()))
        except TimeoutError:
            raise ResourceExhausted(
                "too many token requests at once; retry later", reason="TOKEN_RELAY_BUSY"
            ) from None
        request = consent_pb2.IssueTokenRequest(client_id=client_id, client_secret=client_secret)
        try:
            with relayed_errors(CONSENT):
                try:
                    reply = await self._stub.IssueToken(request, timeout=deadline.timeout())
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                        raise invalid_client() from None
                    raise
        finally:
            self._slots.release()
        if reply.kind not in EDGE_KINDS:
            # A service's credentials: its token is not handed out at the edge.
            raise invalid_client()
        return reply
