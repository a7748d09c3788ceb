"""ConsentService over gRPC: validates each request, translates it to the rules
in ``consents`` and the store, and the results back to protobuf. No SQL here.

Errors are raised as domain errors; the runtime's interceptor turns them into
statuses with ``ErrorInfo`` (domain ``consent.creditscore``) and ``BadRequest``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.message import Message

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    NotFound,
    Violations,
    from_timestamp,
    page_size,
    to_timestamp,
    utcnow,
)

from . import consents as rules
from .consents import Consent, Enrollment, RequestKey, Subject
from .store import ConsentStore

__all__ = ["ConsentServicer"]

_INVALID = "the request is not valid"


class ConsentServicer(consent_pb2_grpc.ConsentServiceServicer):
    """Thin adapter from ConsentService RPCs to ``ConsentStore`` and ``consents``.

    ``clock`` gives "now" for grants, withdrawals, expiry checks and validation of
    ``expire_time``; tests pass a controllable one.
    """

    def __init__(self, store: ConsentStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    async def EnrollSubject(
        self, request: consent_pb2.EnrollSubjectRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.EnrollSubjectResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id, required=False)
        v.raise_if_any(_INVALID)

        def encode(enrollment: Enrollment) -> bytes:
            return _serialize(
                consent_pb2.EnrollSubjectResponse(
                    subject=_subject_pb(enrollment.subject), created=enrollment.created
                )
            )

        done = await self._store.enroll_subject(
            _key("EnrollSubject", request),
            request.subject_id or None,
            now=self._clock(),
            encode=encode,
        )
        return consent_pb2.EnrollSubjectResponse.FromString(done.response)

    async def GetSubject(
        self, request: consent_pb2.GetSubjectRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.GetSubjectResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        subject = await self._store.get_subject(request.subject_id)
        if subject is None:
            raise NotFound("no subject is enrolled under this id", reason="SUBJECT_NOT_FOUND")
        return consent_pb2.GetSubjectResponse(subject=_subject_pb(subject))

    async def GrantConsent(
        self, request: consent_pb2.GrantConsentRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.GrantConsentResponse:
        now = self._clock()
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        rules.check_source(v, request.source)
        rules.check_purpose(v, request.purpose)
        expire_time = _optional_time(v, request, "expire_time")
        rules.check_expire_time(v, expire_time, now)
        v.raise_if_any(_INVALID)

        def encode(consent: Consent) -> bytes:
            return _serialize(consent_pb2.GrantConsentResponse(consent=_consent_pb(consent, now)))

        done = await self._store.grant_consent(
            _key("GrantConsent", request),
            subject_id=request.subject_id,
            source=request.source,
            purpose=request.purpose,
            expire_time=expire_time,
            now=now,
            encode=encode,
        )
        return consent_pb2.GrantConsentResponse.FromString(done.response)

    async def WithdrawConsent(
        self, request: consent_pb2.WithdrawConsentRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.WithdrawConsentResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        rules.check_source(v, request.source)
        rules.check_purpose(v, request.purpose)
        v.raise_if_any(_INVALID)
        now = self._clock()

        def encode(consent: Consent) -> bytes:
            return _serialize(consent_pb2.WithdrawConsentResponse(consent=_consent_pb(consent, now)))

        done = await self._store.withdraw_consent(
            _key("WithdrawConsent", request),
            subject_id=request.subject_id,
            source=request.source,
            purpose=request.purpose,
            now=now,
            encode=encode,
        )
        return consent_pb2.WithdrawConsentResponse.FromString(done.response)

    async def CheckConsents(
        self, request: consent_pb2.CheckConsentsRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.CheckConsentsResponse:
        checks = [(c.subject_id, c.source) for c in request.checks]
        v = Violations()
        rules.check_purpose(v, request.purpose)
        rules.check_checks(v, checks)
        v.raise_if_any(_INVALID)
        now = self._clock()
        held = await self._store.consents_for(
            [subject_id for subject_id, _ in checks],
            [source for _, source in checks],
            request.purpose,
        )
        granted = rules.decide(checks, held, now)
        return consent_pb2.CheckConsentsResponse(
            decisions=[
                consent_pb2.ConsentDecision(subject_id=subject_id, source=source, granted=ok)
                for (subject_id, source), ok in zip(checks, granted, strict=True)
            ]
        )

    async def ListConsents(
        self, request: consent_pb2.ListConsentsRequest, context: grpc.aio.ServicerContext
    ) -> consent_pb2.ListConsentsResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        rules.check_page_size(v, request.page_size)
        v.raise_if_any(_INVALID)
        limit = page_size(
            request.page_size, default=rules.PAGE_SIZE_DEFAULT, maximum=rules.PAGE_SIZE_MAX
        )
        after = rules.cursor_from_token(request.page_token, request.subject_id)
        now = self._clock()
        page, more = await self._store.list_consents(request.subject_id, after=after, limit=limit)
        return consent_pb2.ListConsentsResponse(
            consents=[_consent_pb(c, now) for c in page],
            next_page_token=rules.token_after(page[-1]) if more and page else "",
        )


def _key(method: str, request: Message) -> RequestKey:
    return RequestKey.of(
        request.request_id,  # type: ignore[attr-defined]
        method,
        request.SerializeToString(deterministic=True),
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def _optional_time(v: Violations, message: Any, field: str) -> datetime | None:
    """The datetime of an optional Timestamp field; a violation when it is out of
    the range a Timestamp may hold."""
    try:
        return from_timestamp(message, field)
    except (ValueError, OverflowError):
        v.add(field, "not a valid timestamp")
        return None


def _subject_pb(subject: Subject) -> consent_pb2.Subject:
    return consent_pb2.Subject(
        subject_id=subject.subject_id, enroll_time=to_timestamp(subject.enroll_time)
    )


def _consent_pb(consent: Consent, now: datetime) -> consent_pb2.Consent:
    """The wire form of ``consent`` with its state as of ``now``."""
    return consent_pb2.Consent(
        subject_id=consent.subject_id,
        source=consent.source,  # type: ignore[arg-type]
        purpose=consent.purpose,  # type: ignore[arg-type]
        state=int(consent.state_at(now)),  # type: ignore[arg-type]
        grant_time=to_timestamp(consent.grant_time),
        expire_time=to_timestamp(consent.expire_time),
        withdraw_time=to_timestamp(consent.withdraw_time),
    )
