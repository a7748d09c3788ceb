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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

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
    LoginGuard,
    NotFound,
    Principal,
    RateLimiter,
    ResourceExhausted,
    Unauthenticated,
    downstream_errors,
    revoked,
    subject_session,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .lookup import SCORED_SOURCES

__all__ = [
    "EDGE_KINDS",
    "RelayLimits",
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
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        # The consent service refusing the subject's token (a closed or re-enrolled
        # account, a rotated secret, a revocation not yet in this gateway's list):
        # the subject's answer. Any other refusal is of the gateway's own token.
        err = CallError.from_rpc_error(exc)
        if err.reason == "TOKEN_REVOKED" and err.metadata.get("principal") == "subject":
            return revoked()
        return None
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


Req = TypeVar("Req")
Resp = TypeVar("Resp")


class SubjectConsent:
    """The consent service's RPCs a subject's call reaches (with the gateway's
    service token, which the channel carries), each naming the subject's token
    (``subject_session``): the consent service refuses it at once unless it is
    the subject's current one. ``stub`` is the typed stub the servicer picks an
    RPC from; ``call`` makes it."""

    def __init__(self, stub: consent_pb2_grpc.ConsentServiceAsyncStub) -> None:
        self.stub = stub

    async def call(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float,
        subject: Principal,
    ) -> Resp:
        """``rpc`` (one of ``stub``'s) with ``request``, for ``subject``; its reply."""
        with relayed_errors(CONSENT):
            return await rpc(request, timeout=timeout, metadata=subject_session(subject))

    async def granted_sources(self, subject: Principal, timeout: float) -> frozenset[int]:
        """The scored sources the subject has a live CREDIT_SCORING consent for."""
        request = consent_pb2.CheckConsentsRequest(
            purpose=common_pb2.PURPOSE_CREDIT_SCORING,
            checks=[consent_pb2.ConsentCheck(subject_id=subject.id, source=s) for s in SCORED_SOURCES],
        )
        reply = await self.call(self.stub.CheckConsents, request, timeout, subject)
        return frozenset(d.source for d in reply.decisions if d.granted)

    async def confirm(self, subject: Principal, timeout: float) -> None:
        """That the subject's token is still the subject's current one (for a call
        that otherwise reaches no consent RPC)."""
        await self.call(self.stub.GetSubject, consent_pb2.GetSubjectRequest(subject_id=subject.id), timeout, subject)


class SubjectFeatures:
    def __init__(self, stub: feature_pb2_grpc.FeatureServiceAsyncStub) -> None:
        self._stub = stub

    async def feature_vector(self, subject_id: str, timeout: float) -> Sequence[common_pb2.FeatureValue]:
        with relayed_errors(FEATURE):
            reply = await self._stub.GetFeatureVector(
                feature_pb2.GetFeatureVectorRequest(subject_id=subject_id), timeout=timeout
            )
        return reply.feature_vector.features


class SubjectScoring:
    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceAsyncStub) -> None:
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


@dataclass(frozen=True)
class RelayLimits:
    """How much the public token relay takes (see ``TokenRelay``); per gateway
    replica. ``per_client_rate`` / ``per_peer_rate`` are requests a second with
    bursts of ``per_client_burst`` / ``per_peer_burst``; ``free_failures`` wrong
    secrets in a row for one client id are free, then each further one locks the
    id ``lock_base_seconds``, doubling, at most ``lock_max_seconds``."""

    per_client_rate: float = 0.2
    per_client_burst: float = 10
    per_peer_rate: float = 5.0
    per_peer_burst: float = 50
    free_failures: int = 5
    lock_base_seconds: float = 1.0
    lock_max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if min(self.per_client_rate, self.per_peer_rate) <= 0 or min(self.per_client_burst, self.per_peer_burst) < 1:
            raise ValueError("rates must be positive and bursts at least 1")
        if self.free_failures < 1 or not 0 < self.lock_base_seconds <= self.lock_max_seconds:
            raise ValueError("need free_failures >= 1 and 0 < lock_base_seconds <= lock_max_seconds")


def rate_limited(wait: float) -> ResourceExhausted:
    return ResourceExhausted(
        "too many token requests; retry later", reason="TOKEN_RATE_LIMITED", retry_after=wait
    )


def login_locked(wait: float) -> ResourceExhausted:
    """The answer while a client id is locked after wrong secrets: the same for an
    id that exists and one that does not."""
    return ResourceExhausted(
        "too many failed sign-ins for this client id; retry later", reason="LOGIN_LOCKED", retry_after=wait
    )


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string (``ipv4:1.2.3.4:5678``,
    ``ipv6:[::1]:5678``, ``unix:...``): the key of the per-address limit."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        return rest.rpartition("]:")[0].lstrip("[") or rest
    return peer


class TokenRelay:
    """``IssueToken`` for callers outside, relayed to the consent service on a
    channel that carries no token of the gateway's.

    In front of the relay, in this order, each refusal RESOURCE_EXHAUSTED with
    ``RetryInfo``, all of it in this replica's memory (``RelayLimits``):

    1. a rate per peer address (``TOKEN_RATE_LIMITED``);
    2. a rate per client id, known or not (``TOKEN_RATE_LIMITED``);
    3. a lockout of the client id after wrong secrets (``LOGIN_LOCKED``), decided
       without looking at the secret or at whether the id exists, so that the
       answer tells nothing about either;
    4. at most ``concurrency`` relays in flight at once (a partner's or producer's
       costs the consent service one scrypt): the others wait within their
       deadline, and are refused (``TOKEN_RELAY_BUSY``) if it runs out first.

    Every wrong credential is ``invalid_client()``, and counts toward the lockout;
    a token issued clears the id's count."""

    def __init__(
        self,
        stub: consent_pb2_grpc.ConsentServiceAsyncStub,
        *,
        concurrency: int = 8,
        limits: RelayLimits = RelayLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("the token relay needs a concurrency of at least 1")
        self._stub = stub
        self._slots = asyncio.Semaphore(concurrency)
        self._per_peer = RateLimiter(limits.per_peer_rate, limits.per_peer_burst, clock=clock)
        self._per_client = RateLimiter(limits.per_client_rate, limits.per_client_burst, clock=clock)
        self._guard = LoginGuard(
            free_failures=limits.free_failures, base_lock=limits.lock_base_seconds,
            max_lock=limits.lock_max_seconds, clock=clock,
        )

    async def issue(
        self, client_id: str, client_secret: str, deadline: Deadline, *, peer: str = ""
    ) -> consent_pb2.IssueTokenResponse:
        """The consent service's token for the credentials; ``invalid_client()`` for
        every refusal of them and for a service's credentials alike."""
        wait = self._per_peer.allow(peer_host(peer)) if peer else 0.0
        if wait:
            raise rate_limited(wait)
        wait = self._per_client.allow(client_id)
        if wait:
            raise rate_limited(wait)
        locked = self._guard.locked_for(client_id)
        if locked:
            raise login_locked(locked)
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
                        self._guard.failed(client_id)
                        raise invalid_client() from None
                    raise
        finally:
            self._slots.release()
        if reply.kind not in EDGE_KINDS:
            # A service's credentials: its token is not handed out at the edge.
            self._guard.failed(client_id)
            raise invalid_client()
        self._guard.succeeded(client_id)
        return reply
