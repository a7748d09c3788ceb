"""SubjectService and TokenService: the scored person's own API, and tokens at
the edge.

``SubjectServicer`` answers only a caller with a subject's token (the server's
policy lets no other kind in) and always about that subject: the subject id
comes from the token, never from the request. Each call translates the request
to the consent, feature or scoring service's, within one ``Deadline`` derived
from the caller's, and the reply back; failures map as ``subject_clients``
says. A subject's request ids are their own: the id sent to the consent service
is derived from the subject and the request id, so two subjects choosing the
same id never meet.

``TokenServicer`` relays ``IssueToken`` to the consent service for partners,
producers and subjects (``subject_clients.TokenRelay``).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Protocol, TypeVar

import grpc

from creditscore.consent.v1 import consent_pb2
from creditscore.gateway.v1 import gateway_pb2, subject_pb2, subject_pb2_grpc
from creditscore.runtime import (
    KIND_SUBJECT,
    Deadline,
    FailedPrecondition,
    Principal,
    Unauthenticated,
    Violations,
    current_principal,
    page_size,
)
from creditscore.scoring.v1 import scoring_pb2

from .config import Settings
from .lookup import mask_unconsented
from .subject_clients import SubjectConsent, SubjectFeatures, SubjectScoring, TokenRelay

#: A servicer method's context (its request and response types are the method's).
Context = grpc.aio.ServicerContext[Any, Any]


class _SubjectRequest(Protocol):
    """A consent request made for a subject: its request id and subject are the gateway's to set."""

    request_id: str
    subject_id: str


SubjectReq = TypeVar("SubjectReq", bound=_SubjectRequest)
Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = [
    "HISTORY_PAGE_DEFAULT",
    "HISTORY_PAGE_MAX",
    "SubjectServicer",
    "TokenServicer",
    "credit_score",
    "subject_request_id",
]

_INVALID = "the request is not valid"
MAX_REQUEST_ID_LENGTH = 128
HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 50, 100
#: Scoring pages read at most to fill one page of history (challenger scores,
#: never shown, leave gaps: at most one per champion score).
_HISTORY_READS = 4


def _subject() -> Principal:
    """The subject calling (from its token). Without one (``AUTH_MODE=disabled``)
    there is nobody to answer about."""
    principal = current_principal()
    if principal is None or principal.kind != KIND_SUBJECT:
        raise Unauthenticated(
            "the subject's API answers subjects only: send a subject's token", reason="TOKEN_MISSING"
        )
    return principal


def subject_request_id(subject_id: str, request_id: str) -> str:
    """The request id the consent service keys a subject's request by: its own per
    subject (the consent service's ids are global), the same for a retry."""
    digest = hashlib.sha256(f"{subject_id}\0{request_id}".encode()).hexdigest()
    return f"subject.{digest}"


def _check_request_id(v: Violations, value: str) -> None:
    if not value:
        v.add("request_id", "must be set")
    elif len(value) > MAX_REQUEST_ID_LENGTH:
        v.add("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
    elif not value.isprintable():
        v.add("request_id", "must be printable characters only")


def credit_score(score: scoring_pb2.Score) -> gateway_pb2.CreditScore:
    """A score as the subject sees it: everything, the advice included."""
    out = gateway_pb2.CreditScore(
        subject_id=score.subject_id,
        state=score.state,
        score=score.score,
        band=score.band,
        probability_of_bad=score.probability_of_bad,
        reasons=score.reasons,
        model_version=score.model_version,
        coverage=score.coverage,
        improvements=score.improvements,
    )
    if score.HasField("score_time"):
        out.score_time.CopyFrom(score.score_time)
    return out


def consent_required() -> FailedPrecondition:
    return FailedPrecondition(
        "there is no live consent to be scored: grant PURPOSE_CREDIT_SCORING for a data source first",
        reason="CONSENT_REQUIRED",
    )


class SubjectServicer(subject_pb2_grpc.SubjectServiceServicer):
    def __init__(
        self,
        settings: Settings,
        *,
        consent: SubjectConsent,
        features: SubjectFeatures,
        scoring: SubjectScoring,
    ) -> None:
        self._settings = settings
        self._consent = consent
        self._features = features
        self._scoring = scoring

    def _deadline(self, context: Context) -> Deadline:
        return Deadline.from_context(
            context,
            self._settings.subject_timeout_seconds,
            cap=self._settings.subject_timeout_cap_seconds,
        )

    async def _consent_call(
        self, rpc: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, context: Context, subject: Principal
    ) -> Resp:
        return await self._consent.call(rpc, request, self._deadline(context).timeout(), subject)

    async def _mutate(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[SubjectReq, Resp],
        request: SubjectReq,
        request_id: str,
        context: Context,
    ) -> Resp:
        """A mutating consent RPC for the subject: the subject's request id checked
        and made the subject's own, the subject id set."""
        subject = _subject()
        v = Violations()
        _check_request_id(v, request_id)
        v.raise_if_any(_INVALID)
        request.request_id = subject_request_id(subject.id, request_id)
        request.subject_id = subject.id
        return await self._consent_call(rpc, request, context, subject)

    # --- the score ---------------------------------------------------------------

    async def GetMyScore(
        self, request: subject_pb2.GetMyScoreRequest, context: Context
    ) -> subject_pb2.GetMyScoreResponse:
        subject = _subject()
        deadline = self._deadline(context)
        timeout = deadline.timeout()
        granted, vector = await asyncio.gather(
            self._consent.granted_sources(subject, timeout),
            self._features.feature_vector(subject.id, timeout),
            return_exceptions=True,
        )
        for result in (granted, vector):
            if isinstance(result, BaseException):
                raise result
        assert isinstance(granted, frozenset)
        if not granted:
            raise consent_required()
        masked = mask_unconsented(vector, granted)  # type: ignore[arg-type]
        score = await self._scoring.score(subject.id, masked, deadline.timeout())
        return subject_pb2.GetMyScoreResponse(credit_score=credit_score(score))

    async def ListMyScoreHistory(
        self, request: subject_pb2.ListMyScoreHistoryRequest, context: Context
    ) -> subject_pb2.ListMyScoreHistoryResponse:
        subject = _subject()
        want = page_size(request.page_size, default=HISTORY_PAGE_DEFAULT, maximum=HISTORY_PAGE_MAX)
        deadline = self._deadline(context)
        # The one call of this API that reaches no other consent RPC: the token is
        # confirmed as the subject's current one alongside the reads.
        confirmed = asyncio.ensure_future(self._consent.confirm(subject, deadline.timeout()))
        scores: list[scoring_pb2.Score] = []
        token = request.page_token
        try:
            for _ in range(_HISTORY_READS):
                page = await self._scoring.list_scores(subject.id, want - len(scores), token, deadline.timeout())
                scores.extend(s.score for s in page.scores if s.role != scoring_pb2.MODEL_ROLE_CHALLENGER)
                token = page.next_page_token
                if not token or len(scores) >= want:
                    break
        finally:
            await confirmed  # its refusal wins over anything read
        return subject_pb2.ListMyScoreHistoryResponse(
            scores=[credit_score(s) for s in scores], next_page_token=token
        )

    # --- reads of the consent service --------------------------------------------

    async def ListMyAccessLog(
        self, request: subject_pb2.ListMyAccessLogRequest, context: Context
    ) -> subject_pb2.ListMyAccessLogResponse:
        subject = _subject()
        reply = await self._consent_call(self._consent.stub.ListAccessLog, consent_pb2.ListAccessLogRequest(
            subject_id=subject.id, page_size=request.page_size, page_token=request.page_token
        ), context, subject)
        return subject_pb2.ListMyAccessLogResponse(entries=reply.entries, next_page_token=reply.next_page_token)

    async def ListMyConsents(
        self, request: subject_pb2.ListMyConsentsRequest, context: Context
    ) -> subject_pb2.ListMyConsentsResponse:
        subject = _subject()
        reply = await self._consent_call(self._consent.stub.ListConsents, consent_pb2.ListConsentsRequest(
            subject_id=subject.id, page_size=request.page_size, page_token=request.page_token
        ), context, subject)
        return subject_pb2.ListMyConsentsResponse(consents=reply.consents, next_page_token=reply.next_page_token)

    async def ListMyAuthorizations(
        self, request: subject_pb2.ListMyAuthorizationsRequest, context: Context
    ) -> subject_pb2.ListMyAuthorizationsResponse:
        subject = _subject()
        reply = await self._consent_call(self._consent.stub.ListAuthorizations, consent_pb2.ListAuthorizationsRequest(
            subject_id=subject.id, page_size=request.page_size, page_token=request.page_token
        ), context, subject)
        return subject_pb2.ListMyAuthorizationsResponse(
            authorizations=reply.authorizations, next_page_token=reply.next_page_token
        )

    async def GetDeletionReceipt(
        self, request: subject_pb2.GetDeletionReceiptRequest, context: Context
    ) -> subject_pb2.GetDeletionReceiptResponse:
        subject = _subject()
        reply = await self._consent_call(self._consent.stub.GetDeletionReceipt, consent_pb2.GetDeletionReceiptRequest(
            receipt_id=request.receipt_id, subject_id=subject.id
        ), context, subject)
        return subject_pb2.GetDeletionReceiptResponse(receipt=reply.receipt)

    async def ExportMyData(
        self, request: subject_pb2.ExportMyDataRequest, context: Context
    ) -> subject_pb2.ExportMyDataResponse:
        subject = _subject()
        reply = await self._consent_call(self._consent.stub.ExportSubjectData, consent_pb2.ExportSubjectDataRequest(
            subject_id=subject.id
        ), context, subject)
        return subject_pb2.ExportMyDataResponse(document=reply.document, export_time=reply.export_time)

    # --- changes -------------------------------------------------------------------

    async def GrantConsent(
        self, request: subject_pb2.GrantConsentRequest, context: Context
    ) -> subject_pb2.GrantConsentResponse:
        grant = consent_pb2.GrantConsentRequest(source=request.source, purpose=request.purpose)
        if request.HasField("expire_time"):
            grant.expire_time.CopyFrom(request.expire_time)
        reply = await self._mutate(self._consent.stub.GrantConsent, grant, request.request_id, context)
        return subject_pb2.GrantConsentResponse(consent=reply.consent)

    async def WithdrawConsent(
        self, request: subject_pb2.WithdrawConsentRequest, context: Context
    ) -> subject_pb2.WithdrawConsentResponse:
        reply = await self._mutate(
            self._consent.stub.WithdrawConsent,
            consent_pb2.WithdrawConsentRequest(source=request.source, purpose=request.purpose),
            request.request_id, context,
        )
        return subject_pb2.WithdrawConsentResponse(consent=reply.consent, receipt_id=reply.receipt_id)

    async def WithdrawAllConsents(
        self, request: subject_pb2.WithdrawAllConsentsRequest, context: Context
    ) -> subject_pb2.WithdrawAllConsentsResponse:
        reply = await self._mutate(
            self._consent.stub.WithdrawAllConsents, consent_pb2.WithdrawAllConsentsRequest(),
            request.request_id, context,
        )
        return subject_pb2.WithdrawAllConsentsResponse(receipt=reply.receipt)

    async def CloseAccount(
        self, request: subject_pb2.CloseAccountRequest, context: Context
    ) -> subject_pb2.CloseAccountResponse:
        reply = await self._mutate(
            self._consent.stub.CloseAccount, consent_pb2.CloseAccountRequest(), request.request_id, context
        )
        return subject_pb2.CloseAccountResponse(receipt=reply.receipt)

    async def GrantAuthorization(
        self, request: subject_pb2.GrantAuthorizationRequest, context: Context
    ) -> subject_pb2.GrantAuthorizationResponse:
        grant = consent_pb2.GrantAuthorizationRequest(
            partner_id=request.partner_id, purpose=request.purpose, scope=request.scope
        )
        if request.HasField("expire_time"):
            grant.expire_time.CopyFrom(request.expire_time)
        reply = await self._mutate(self._consent.stub.GrantAuthorization, grant, request.request_id, context)
        return subject_pb2.GrantAuthorizationResponse(authorization=reply.authorization)

    async def RevokeAuthorization(
        self, request: subject_pb2.RevokeAuthorizationRequest, context: Context
    ) -> subject_pb2.RevokeAuthorizationResponse:
        reply = await self._mutate(
            self._consent.stub.RevokeAuthorization,
            consent_pb2.RevokeAuthorizationRequest(partner_id=request.partner_id, purpose=request.purpose),
            request.request_id, context,
        )
        return subject_pb2.RevokeAuthorizationResponse(authorization=reply.authorization)

    async def RotateMySecret(
        self, request: subject_pb2.RotateMySecretRequest, context: Context
    ) -> subject_pb2.RotateMySecretResponse:
        reply = await self._mutate(
            self._consent.stub.RotateSubjectSecret, consent_pb2.RotateSubjectSecretRequest(),
            request.request_id, context,
        )
        return subject_pb2.RotateMySecretResponse(subject_secret=reply.subject_secret)


class TokenServicer(subject_pb2_grpc.TokenServiceServicer):
    """``IssueToken`` at the edge (no token needed: the credentials are the request)."""

    def __init__(self, settings: Settings, *, relay: TokenRelay) -> None:
        self._settings = settings
        self._relay = relay

    async def IssueToken(
        self, request: subject_pb2.IssueTokenRequest, context: Context
    ) -> subject_pb2.IssueTokenResponse:
        v = Violations()
        v.check(bool(request.client_id), "client_id", "must be set")
        v.check(bool(request.client_secret), "client_secret", "must be set")
        v.raise_if_any(_INVALID)
        deadline = Deadline.from_context(
            context, self._settings.subject_timeout_seconds, cap=self._settings.subject_timeout_cap_seconds
        )
        issued = await self._relay.issue(request.client_id, request.client_secret, deadline, peer=context.peer())
        return subject_pb2.IssueTokenResponse(
            token=issued.token, expire_time=issued.expire_time, audience=issued.audience, kind=issued.kind,
            token_id=issued.token_id,
        )
