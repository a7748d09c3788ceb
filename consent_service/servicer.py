"""ConsentService over gRPC: validates each request, translates it to the rules
(``consents``, ``authorizations``, ``registry``) and the store, and the results
back to protobuf. No SQL here.

Errors are raised as domain errors; the runtime's interceptor turns them into
statuses with ``ErrorInfo`` (domain ``consent.creditscore``) and ``BadRequest``.
Who may call which RPC is the server's policy (``server.POLICY``), enforced by
the runtime's ``AuthInterceptor`` before a request reaches this class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    KIND_PARTNER,
    KIND_PRODUCER,
    REVOKE_CLIENT,
    REVOKE_SUBJECT,
    AlreadyExists,
    Deadline,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Revocations,
    Unauthenticated,
    Violations,
    check_subject_id,
    decode_page_token,
    encode_page_token,
    from_timestamp,
    page_size,
    subject_session_of,
    to_timestamp,
    utcnow,
)

from . import authorizations as auth_rules
from . import consents as rules
from . import registry, wire
from . import revocation as revoke_rules
from .authorizations import AccessToRecord, Authorization
from .consents import Consent, ConsentChoice, Enrollment, RequestKey, Subject
from .export import Exporter
from .purge import DeletionScope
from .registry import Client
from .revocation import RevocationRecord
from .store import Committed, ConsentStore, Withdrawal
from .tokens import CredentialDesk

__all__ = ["ConsentServicer"]

_INVALID = "the request is not valid"
_MAX_RECEIPT_ID_LENGTH = 40

#: A call's context (``grpc.aio.ServicerContext[request, response]``).
_Context = grpc.aio.ServicerContext
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
#: A mutating RPC's reply, and the domain value its store mutation made.
_Reply = TypeVar("_Reply", bound=Message)
_Value = TypeVar("_Value")
_Part = TypeVar("_Part")


class _Mutation(Protocol):
    """A mutating RPC's request: idempotent on its ``request_id``."""

    @property
    def DESCRIPTOR(self) -> Descriptor: ...

    @property
    def request_id(self) -> str: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


#: A store mutation idempotent on a request key, storing ``encode(value)`` as the
#: response of the request (``ConsentStore.grant_consent`` and the others).
_StoreWrite = Callable[[RequestKey, Callable[[_Value], bytes]], Awaitable[Committed[_Value]]]


class ConsentServicer(consent_pb2_grpc.ConsentServiceServicer):
    """Thin adapter from ConsentService RPCs to the store and the rules.

    ``clock`` gives "now" for grants, withdrawals, expiry checks and validation
    of times; tests pass a controllable one. ``desk`` issues tokens (None: the
    registry RPCs and IssueToken are unavailable); ``exporter`` builds exports;
    ``on_purge`` is called after a purge job was made (the worker's wake-up);
    ``export_timeout`` bounds an export whose caller set no deadline;
    ``on_revoke`` is called after a revocation was written (this service's own
    revocation list refreshes at once); ``revocations`` is that list (the token
    ids a subject's session is also checked against).

    A call made for a subject (the gateway's SubjectService names the subject's
    token in ``creditscore-subject-session`` metadata) is refused at once
    (UNAUTHENTICATED, ``TOKEN_REVOKED``) unless the token belongs to the subject's
    current enrollment and credentials: a token of an earlier enrollment of the
    same id, or one issued before a rotation, a closure or a revocation, never
    acts for the subject, whatever the revocation list's delay.
    """

    def __init__(
        self,
        store: ConsentStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        desk: CredentialDesk | None = None,
        exporter: Exporter | None = None,
        on_purge: Callable[[], None] | None = None,
        export_timeout: float = 30.0,
        on_revoke: Callable[[], None] | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._desk = desk
        self._exporter = exporter
        self._on_purge = on_purge or (lambda: None)
        self._export_timeout = export_timeout
        self._on_revoke = on_revoke or (lambda: None)
        self._revocations = revocations

    async def _acting_for(self, context: _Context[_Request, _Response] | None, subject_id: str) -> None:
        """Refuses a call made for a subject with a token that is not the subject's
        current one (see the class docstring); nothing for other calls."""
        if context is None:
            return
        session = subject_session_of(context.invocation_metadata())
        if session is None:
            return
        if session.subject_id != subject_id:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
        current = await self._store.subject_generation(subject_id)
        if current is None or current != session.generation:
            raise _subject_token_revoked()
        if self._revocations is not None:
            try:
                self._revocations.check(session.token_id, REVOKE_SUBJECT, subject_id, session.generation)
            except Unauthenticated:
                raise _subject_token_revoked() from None

    async def _mutate(
        self,
        request: _Mutation,
        reply_type: type[_Reply],
        reply_of: Callable[[_Value], _Reply],
        write: _StoreWrite[_Value],
    ) -> tuple[_Reply, _Value] | tuple[_Reply, None]:
        """The idempotent write of a mutating RPC: ``write`` runs the store's
        mutation under the request's key (``_key``), storing the reply
        ``reply_of(value)`` serialized in the same transaction. Returns the stored
        reply (this call's, or the first call's when this one repeats it) and the
        value this call made, None on a repeat: what is shown once (a new secret)
        and what follows a change (a hook) go only with a value."""
        done = await write(_key(request), lambda value: _serialize(reply_of(value)))
        reply = reply_type.FromString(done.response)
        return (reply, None) if done.value is None else (reply, done.value)

    # --- subjects and consents -------------------------------------------------

    async def EnrollSubject(
        self,
        request: consent_pb2.EnrollSubjectRequest,
        context: _Context[consent_pb2.EnrollSubjectRequest, consent_pb2.EnrollSubjectResponse],
    ) -> consent_pb2.EnrollSubjectResponse:
        now = self._clock()
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id, required=False)
        choices = _consent_choices(v, request.consents)
        rules.check_consent_choices(v, choices, now)
        v.raise_if_any(_INVALID)

        def reply_of(enrollment: Enrollment) -> consent_pb2.EnrollSubjectResponse:
            # Stored for retries: never with the secret (shown once).
            return consent_pb2.EnrollSubjectResponse(
                subject=wire.subject_pb(enrollment.subject), created=enrollment.created,
                consents=[wire.consent_pb(c, now) for c in enrollment.consents],
            )

        secret, hashed = await _new_subject_secret()
        reply, enrollment = await self._mutate(
            request, consent_pb2.EnrollSubjectResponse, reply_of,
            lambda key, encode: self._store.enroll_subject(
                key, request.subject_id or None, now=now, encode=encode, secret_hash=hashed, consents=choices
            ),
        )
        if enrollment is not None and enrollment.created:
            reply.subject_secret = secret
        return reply

    async def RotateSubjectSecret(
        self,
        request: consent_pb2.RotateSubjectSecretRequest,
        context: _Context[consent_pb2.RotateSubjectSecretRequest, consent_pb2.RotateSubjectSecretResponse],
    ) -> consent_pb2.RotateSubjectSecretResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)

        def reply_of(subject: Subject) -> consent_pb2.RotateSubjectSecretResponse:
            return consent_pb2.RotateSubjectSecretResponse(subject_id=subject.subject_id)

        secret, hashed = await _new_subject_secret()
        reply, rotated = await self._mutate(
            request, consent_pb2.RotateSubjectSecretResponse, reply_of,
            lambda key, encode: self._store.rotate_subject_secret(
                key, subject_id=request.subject_id, secret_hash=hashed, now=self._clock(), encode=encode
            ),
        )
        if rotated is not None:
            reply.subject_secret = secret
            self._on_revoke()
        return reply

    async def GetSubject(
        self,
        request: consent_pb2.GetSubjectRequest,
        context: _Context[consent_pb2.GetSubjectRequest, consent_pb2.GetSubjectResponse],
    ) -> consent_pb2.GetSubjectResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        subject = await self._store.get_subject(request.subject_id)
        if subject is None:
            raise NotFound("no subject is enrolled under this id", reason="SUBJECT_NOT_FOUND")
        return consent_pb2.GetSubjectResponse(subject=wire.subject_pb(subject))

    async def GrantConsent(
        self,
        request: consent_pb2.GrantConsentRequest,
        context: _Context[consent_pb2.GrantConsentRequest, consent_pb2.GrantConsentResponse],
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
        await self._acting_for(context, request.subject_id)

        def reply_of(consent: Consent) -> consent_pb2.GrantConsentResponse:
            return consent_pb2.GrantConsentResponse(consent=wire.consent_pb(consent, now))

        reply, _ = await self._mutate(
            request, consent_pb2.GrantConsentResponse, reply_of,
            lambda key, encode: self._store.grant_consent(
                key, subject_id=request.subject_id, source=request.source, purpose=request.purpose,
                expire_time=expire_time, now=now, encode=encode,
            ),
        )
        return reply

    async def WithdrawConsent(
        self,
        request: consent_pb2.WithdrawConsentRequest,
        context: _Context[consent_pb2.WithdrawConsentRequest, consent_pb2.WithdrawConsentResponse],
    ) -> consent_pb2.WithdrawConsentResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        rules.check_source(v, request.source)
        rules.check_purpose(v, request.purpose)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        now = self._clock()

        def reply_of(withdrawal: Withdrawal) -> consent_pb2.WithdrawConsentResponse:
            return consent_pb2.WithdrawConsentResponse(
                consent=wire.consent_pb(withdrawal.consent, now), receipt_id=withdrawal.receipt_id or ""
            )

        reply, withdrawal = await self._mutate(
            request, consent_pb2.WithdrawConsentResponse, reply_of,
            lambda key, encode: self._store.withdraw_consent(
                key, subject_id=request.subject_id, source=request.source, purpose=request.purpose,
                now=now, encode=encode,
            ),
        )
        if withdrawal is not None and withdrawal.receipt_id:
            self._on_purge()
        return reply

    async def CheckConsents(
        self,
        request: consent_pb2.CheckConsentsRequest,
        context: _Context[consent_pb2.CheckConsentsRequest, consent_pb2.CheckConsentsResponse],
    ) -> consent_pb2.CheckConsentsResponse:
        checks = [(c.subject_id, c.source) for c in request.checks]
        v = Violations()
        rules.check_purpose(v, request.purpose)
        rules.check_checks(v, checks)
        v.raise_if_any(_INVALID)
        if subject_session_of(context.invocation_metadata()) is not None:
            for subject_id in {subject_id for subject_id, _ in checks}:
                await self._acting_for(context, subject_id)
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
        self,
        request: consent_pb2.ListConsentsRequest,
        context: _Context[consent_pb2.ListConsentsRequest, consent_pb2.ListConsentsResponse],
    ) -> consent_pb2.ListConsentsResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        rules.check_page_size(v, request.page_size)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        limit = page_size(
            request.page_size, default=rules.PAGE_SIZE_DEFAULT, maximum=rules.PAGE_SIZE_MAX
        )
        after = rules.cursor_from_token(request.page_token, request.subject_id)
        now = self._clock()
        page, more = await self._store.list_consents(request.subject_id, after=after, limit=limit)
        return consent_pb2.ListConsentsResponse(
            consents=[wire.consent_pb(c, now) for c in page],
            next_page_token=rules.token_after(page[-1]) if more and page else "",
        )

    # --- withdrawal of everything, receipts, export ----------------------------

    async def WithdrawAllConsents(
        self,
        request: consent_pb2.WithdrawAllConsentsRequest,
        context: _Context[consent_pb2.WithdrawAllConsentsRequest, consent_pb2.WithdrawAllConsentsResponse],
    ) -> consent_pb2.WithdrawAllConsentsResponse:
        receipt = await self._purge_all(request, DeletionScope.ALL_DATA, context)
        return consent_pb2.WithdrawAllConsentsResponse(receipt=receipt)

    async def CloseAccount(
        self,
        request: consent_pb2.CloseAccountRequest,
        context: _Context[consent_pb2.CloseAccountRequest, consent_pb2.CloseAccountResponse],
    ) -> consent_pb2.CloseAccountResponse:
        receipt = await self._purge_all(request, DeletionScope.ACCOUNT, context)
        return consent_pb2.CloseAccountResponse(receipt=receipt)

    async def _purge_all(
        self,
        request: consent_pb2.WithdrawAllConsentsRequest | consent_pb2.CloseAccountRequest,
        scope: DeletionScope,
        context: _Context[_Request, _Response],
    ) -> consent_pb2.DeletionReceipt:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        receipt, created = await self._store.purge_subject(
            _key(request), subject_id=request.subject_id, scope=scope, now=self._clock()
        )
        if created:
            self._on_purge()
            if scope is DeletionScope.ACCOUNT:
                self._on_revoke()
        return wire.receipt_pb(receipt)

    async def GetDeletionReceipt(
        self,
        request: consent_pb2.GetDeletionReceiptRequest,
        context: _Context[consent_pb2.GetDeletionReceiptRequest, consent_pb2.GetDeletionReceiptResponse],
    ) -> consent_pb2.GetDeletionReceiptResponse:
        v = Violations()
        v.check(bool(request.receipt_id), "receipt_id", "must be set")
        v.check(len(request.receipt_id) <= _MAX_RECEIPT_ID_LENGTH, "receipt_id",
                f"must be at most {_MAX_RECEIPT_ID_LENGTH} characters")
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        # Receipt ids are printable: another cannot name one (and a NUL cannot
        # even be looked up in PostgreSQL: it answered INTERNAL).
        receipt = await self._store.receipt(request.receipt_id) if request.receipt_id.isprintable() else None
        if receipt is None or receipt.subject_id != request.subject_id:
            raise NotFound("no deletion receipt of this subject has this id", reason="RECEIPT_NOT_FOUND")
        return consent_pb2.GetDeletionReceiptResponse(receipt=wire.receipt_pb(receipt))

    async def ExportSubjectData(
        self,
        request: consent_pb2.ExportSubjectDataRequest,
        context: _Context[consent_pb2.ExportSubjectDataRequest, consent_pb2.ExportSubjectDataResponse],
    ) -> consent_pb2.ExportSubjectDataResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        exporter = _required(self._exporter, "export")
        document, when = await exporter.export(
            request.subject_id, Deadline.from_context(context, self._export_timeout)
        )
        return consent_pb2.ExportSubjectDataResponse(document=document, export_time=to_timestamp(when))

    # --- partners, producers, tokens -------------------------------------------

    async def RegisterPartner(
        self,
        request: consent_pb2.RegisterPartnerRequest,
        context: _Context[consent_pb2.RegisterPartnerRequest, consent_pb2.RegisterPartnerResponse],
    ) -> consent_pb2.RegisterPartnerResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        registry.check_client_id(v, request.partner_id, "partner_id", required=False)
        registry.check_display_name(v, request.display_name)
        v.raise_if_any(_INVALID)

        def reply_of(client: Client) -> consent_pb2.RegisterPartnerResponse:
            return consent_pb2.RegisterPartnerResponse(
                partner=wire.partner_pb(client),
                credentials=consent_pb2.ClientCredentials(client_id=client.client_id),
            )

        secret, client = await self._new_client(request.partner_id, KIND_PARTNER, request.display_name, ())
        generated_id = None if request.partner_id else registry.new_partner_id
        reply, registered = await self._mutate(
            request, consent_pb2.RegisterPartnerResponse, reply_of,
            lambda key, encode: self._store.register_client(key, client, generated_id=generated_id, encode=encode),
        )
        if registered is not None:
            reply.credentials.client_secret = secret
        return reply

    async def RegisterProducer(
        self,
        request: consent_pb2.RegisterProducerRequest,
        context: _Context[consent_pb2.RegisterProducerRequest, consent_pb2.RegisterProducerResponse],
    ) -> consent_pb2.RegisterProducerResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        registry.check_client_id(v, request.producer_id, "producer_id")
        registry.check_display_name(v, request.display_name)
        registry.check_sources(v, request.sources)
        v.raise_if_any(_INVALID)

        def reply_of(client: Client) -> consent_pb2.RegisterProducerResponse:
            return consent_pb2.RegisterProducerResponse(
                producer=wire.producer_pb(client),
                credentials=consent_pb2.ClientCredentials(client_id=client.client_id),
            )

        secret, client = await self._new_client(
            request.producer_id, KIND_PRODUCER, request.display_name, request.sources
        )
        reply, registered = await self._mutate(
            request, consent_pb2.RegisterProducerResponse, reply_of,
            lambda key, encode: self._store.register_client(key, client, generated_id=None, encode=encode),
        )
        if registered is not None:
            reply.credentials.client_secret = secret
        return reply

    async def _new_client(
        self, client_id: str, kind: str, display_name: str, sources: Iterable[int]
    ) -> tuple[str, Client]:
        desk = _required(self._desk, "registration")
        if client_id and desk.reserved(client_id):
            raise AlreadyExists(f"a client is already registered as {client_id!r}", reason="CLIENT_EXISTS")
        secret = registry.new_secret()
        hashed = await asyncio.to_thread(registry.hash_secret, secret)
        client = Client(
            client_id=client_id, kind=kind, display_name=display_name.strip(), secret_hash=hashed,
            register_time=self._clock(), sources=frozenset(sources),
        )
        return secret, client

    async def IssueToken(
        self,
        request: consent_pb2.IssueTokenRequest,
        context: _Context[consent_pb2.IssueTokenRequest, consent_pb2.IssueTokenResponse],
    ) -> consent_pb2.IssueTokenResponse:
        v = Violations()
        v.check(bool(request.client_id), "client_id", "must be set")
        v.check(bool(request.client_secret), "client_secret", "must be set")
        v.raise_if_any(_INVALID)
        issued = await _required(self._desk, "token issuing").issue(request.client_id, request.client_secret)
        return consent_pb2.IssueTokenResponse(
            token=issued.token,
            expire_time=to_timestamp(issued.expire_time),
            audience=issued.audience,
            kind=issued.kind,
            token_id=issued.token_id,
        )

    # --- revocation ----------------------------------------------------------------

    async def RevokeToken(
        self,
        request: consent_pb2.RevokeTokenRequest,
        context: _Context[consent_pb2.RevokeTokenRequest, consent_pb2.RevokeTokenResponse],
    ) -> consent_pb2.RevokeTokenResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        revoke_rules.check_token_id(v, request.token_id)
        revoke_rules.check_note(v, request.note)
        v.raise_if_any(_INVALID)

        def reply_of(record: RevocationRecord) -> consent_pb2.RevokeTokenResponse:
            return consent_pb2.RevokeTokenResponse(revocation=wire.revocation_pb(record))

        reply, revoked = await self._mutate(
            request, consent_pb2.RevokeTokenResponse, reply_of,
            lambda key, encode: self._store.revoke_token(
                key, token_id=request.token_id, note=request.note, now=self._clock(), encode=encode
            ),
        )
        if revoked is not None:
            self._on_revoke()
        return reply

    async def RevokeTokens(
        self,
        request: consent_pb2.RevokeTokensRequest,
        context: _Context[consent_pb2.RevokeTokensRequest, consent_pb2.RevokeTokensResponse],
    ) -> consent_pb2.RevokeTokensResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        which = request.WhichOneof("principal")
        if which == "subject_id":
            rules.check_subject_id(v, request.subject_id)
        elif which == "client_id":
            registry.check_client_id(v, request.client_id, "client_id")
        else:
            v.add("principal", "set client_id or subject_id")
        revoke_rules.check_note(v, request.note)
        v.raise_if_any(_INVALID)

        def reply_of(record: RevocationRecord) -> consent_pb2.RevokeTokensResponse:
            return consent_pb2.RevokeTokensResponse(revocation=wire.revocation_pb(record))

        principal_id = request.subject_id if which == "subject_id" else request.client_id
        kind = REVOKE_SUBJECT if which == "subject_id" else REVOKE_CLIENT
        service = which == "client_id" and self._desk is not None and self._desk.reserved(principal_id)
        reply, revoked = await self._mutate(
            request, consent_pb2.RevokeTokensResponse, reply_of,
            lambda key, encode: self._store.revoke_tokens(
                key, kind=kind, principal_id=principal_id, service=service, note=request.note,
                now=self._clock(), encode=encode,
            ),
        )
        if revoked is not None:
            self._on_revoke()
        return reply

    async def RevokeClient(
        self,
        request: consent_pb2.RevokeClientRequest,
        context: _Context[consent_pb2.RevokeClientRequest, consent_pb2.RevokeClientResponse],
    ) -> consent_pb2.RevokeClientResponse:
        v = Violations()
        rules.check_request_id(v, request.request_id)
        registry.check_client_id(v, request.client_id, "client_id")
        revoke_rules.check_note(v, request.note)
        v.raise_if_any(_INVALID)
        if self._desk is not None and self._desk.reserved(request.client_id):
            raise FailedPrecondition(
                "a service is configured, not registered: remove it from SERVICE_CREDENTIALS_FILE "
                "and revoke its tokens with RevokeTokens",
                reason="CLIENT_IS_SERVICE",
            )

        def reply_of(revoked: tuple[Client, RevocationRecord]) -> consent_pb2.RevokeClientResponse:
            client, record = revoked
            return consent_pb2.RevokeClientResponse(
                client_id=client.client_id, kind=client.kind,
                revoke_time=to_timestamp(client.revoke_time), revocation=wire.revocation_pb(record),
            )

        reply, revoked = await self._mutate(
            request, consent_pb2.RevokeClientResponse, reply_of,
            lambda key, encode: self._store.revoke_client(
                key, client_id=request.client_id, note=request.note, now=self._clock(), encode=encode
            ),
        )
        if revoked is not None:
            self._on_revoke()
        return reply

    async def ListRevocations(
        self,
        request: consent_pb2.ListRevocationsRequest,
        context: _Context[consent_pb2.ListRevocationsRequest, consent_pb2.ListRevocationsResponse],
    ) -> consent_pb2.ListRevocationsResponse:
        v = Violations()
        v.check(request.after_sequence >= 0, "after_sequence", "must not be negative")
        v.raise_if_any(_INVALID)
        records, last, more, reset = await self._store.revocations_after(
            request.after_sequence, now=self._clock()
        )
        return consent_pb2.ListRevocationsResponse(
            revocations=[wire.revocation_pb(r) for r in records], last_sequence=last, more=more, reset=reset
        )

    # --- authorizations ----------------------------------------------------------

    async def GrantAuthorization(
        self,
        request: consent_pb2.GrantAuthorizationRequest,
        context: _Context[consent_pb2.GrantAuthorizationRequest, consent_pb2.GrantAuthorizationResponse],
    ) -> consent_pb2.GrantAuthorizationResponse:
        now = self._clock()
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        registry.check_client_id(v, request.partner_id, "partner_id")
        auth_rules.check_access_purpose(v, request.purpose)
        scope = auth_rules.check_scope(v, request.scope)
        expire_time = auth_rules.resolve_expire_time(v, _optional_time(v, request, "expire_time"), now)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)

        def reply_of(grant: Authorization) -> consent_pb2.GrantAuthorizationResponse:
            return consent_pb2.GrantAuthorizationResponse(authorization=wire.authorization_pb(grant, now))

        reply, _ = await self._mutate(
            request, consent_pb2.GrantAuthorizationResponse, reply_of,
            lambda key, encode: self._store.grant_authorization(
                key, subject_id=request.subject_id, partner_id=request.partner_id, purpose=request.purpose,
                scope=scope, expire_time=expire_time, now=now, encode=encode,
            ),
        )
        return reply

    async def RevokeAuthorization(
        self,
        request: consent_pb2.RevokeAuthorizationRequest,
        context: _Context[consent_pb2.RevokeAuthorizationRequest, consent_pb2.RevokeAuthorizationResponse],
    ) -> consent_pb2.RevokeAuthorizationResponse:
        now = self._clock()
        v = Violations()
        rules.check_request_id(v, request.request_id)
        rules.check_subject_id(v, request.subject_id)
        registry.check_client_id(v, request.partner_id, "partner_id")
        auth_rules.check_access_purpose(v, request.purpose)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)

        def reply_of(grant: Authorization) -> consent_pb2.RevokeAuthorizationResponse:
            return consent_pb2.RevokeAuthorizationResponse(authorization=wire.authorization_pb(grant, now))

        reply, _ = await self._mutate(
            request, consent_pb2.RevokeAuthorizationResponse, reply_of,
            lambda key, encode: self._store.revoke_authorization(
                key, subject_id=request.subject_id, partner_id=request.partner_id, purpose=request.purpose,
                now=now, encode=encode,
            ),
        )
        return reply

    async def ListAuthorizations(
        self,
        request: consent_pb2.ListAuthorizationsRequest,
        context: _Context[consent_pb2.ListAuthorizationsRequest, consent_pb2.ListAuthorizationsResponse],
    ) -> consent_pb2.ListAuthorizationsResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        rules.check_page_size(v, request.page_size)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        limit = page_size(request.page_size, default=rules.PAGE_SIZE_DEFAULT, maximum=rules.PAGE_SIZE_MAX)
        position = _position(request.page_token, request.subject_id, {"p": str, "u": int})
        after = None if position is None else (position["p"], position["u"])
        now = self._clock()
        page, more = await self._store.list_authorizations(request.subject_id, after=after, limit=limit)
        token = ""
        if more and page:
            token = encode_page_token({"s": request.subject_id, "p": page[-1].partner_id, "u": page[-1].purpose})
        return consent_pb2.ListAuthorizationsResponse(
            authorizations=[wire.authorization_pb(a, now) for a in page], next_page_token=token
        )

    async def CheckAuthorization(
        self,
        request: consent_pb2.CheckAuthorizationRequest,
        context: _Context[consent_pb2.CheckAuthorizationRequest, consent_pb2.CheckAuthorizationResponse],
    ) -> consent_pb2.CheckAuthorizationResponse:
        v = Violations()
        check_subject_id(v, request.subject_id)
        registry.check_client_id(v, request.partner_id, "partner_id")
        auth_rules.check_access_purpose(v, request.purpose)
        v.raise_if_any(_INVALID)
        grant = await self._store.authorization(request.subject_id, request.partner_id, request.purpose)
        # Unknown subject or partner, never authorized, expired, revoked: one answer.
        if grant is None or not grant.is_live(self._clock()):
            return consent_pb2.CheckAuthorizationResponse(authorized=False)
        return consent_pb2.CheckAuthorizationResponse(
            authorized=True, scope=wire.authorization_scope(grant.scope), expire_time=to_timestamp(grant.expire_time)
        )

    # --- the access log ----------------------------------------------------------

    async def RecordAccess(
        self,
        request: consent_pb2.RecordAccessRequest,
        context: _Context[consent_pb2.RecordAccessRequest, consent_pb2.RecordAccessResponse],
    ) -> consent_pb2.RecordAccessResponse:
        v = Violations()
        kind = _check_access(v, request)
        v.raise_if_any(_INVALID)
        entry, created = await self._store.record_access(
            subject_id=request.subject_id,
            partner_id=request.partner_id,
            purpose=request.purpose,
            transaction_id=request.transaction_id,
            answer_kind=kind,
            answer=_serialize(request.answer),
            response=request.response,
            now=self._clock(),
        )
        return consent_pb2.RecordAccessResponse(entry=wire.access_pb(entry, with_response=True), created=created)

    async def RecordAccesses(
        self,
        request: consent_pb2.RecordAccessesRequest,
        context: _Context[consent_pb2.RecordAccessesRequest, consent_pb2.RecordAccessesResponse],
    ) -> consent_pb2.RecordAccessesResponse:
        v = Violations()
        items: list[AccessToRecord] = []
        count = len(request.accesses)
        if count == 0:
            v.add("accesses", "must have at least one access")
        elif count > auth_rules.MAX_ACCESSES:
            v.add("accesses", f"must have at most {auth_rules.MAX_ACCESSES} accesses, got {count}")
        else:
            for i, access in enumerate(request.accesses):
                prefix = f"accesses[{i}]."
                kind = _check_access(v, access, prefix)
                auth_rules.check_sources_used(v, access.sources_used, f"{prefix}sources_used")
                items.append(
                    AccessToRecord(
                        subject_id=access.subject_id,
                        partner_id=access.partner_id,
                        purpose=access.purpose,
                        transaction_id=access.transaction_id,
                        answer_kind=kind,
                        answer=_serialize(access.answer),
                        response=access.response,
                        sources_used=frozenset(access.sources_used),
                    )
                )
        v.raise_if_any(_INVALID)
        outcomes = await self._store.record_accesses(items, now=self._clock())
        return consent_pb2.RecordAccessesResponse(outcomes=[wire.access_outcome_pb(o) for o in outcomes])

    async def GetAccessByTransaction(
        self,
        request: consent_pb2.GetAccessByTransactionRequest,
        context: _Context[consent_pb2.GetAccessByTransactionRequest, consent_pb2.GetAccessByTransactionResponse],
    ) -> consent_pb2.GetAccessByTransactionResponse:
        v = Violations()
        registry.check_client_id(v, request.partner_id, "partner_id")
        auth_rules.check_transaction_id(v, request.transaction_id)
        check_subject_id(v, request.subject_id)
        auth_rules.check_access_purpose(v, request.purpose)
        v.raise_if_any(_INVALID)
        entry = await self._store.access_by_transaction(
            request.partner_id, request.transaction_id, now=self._clock()
        )
        if entry is None:
            return consent_pb2.GetAccessByTransactionResponse(found=False)
        auth_rules.ensure_same_lookup(entry, request.subject_id, request.purpose)
        return consent_pb2.GetAccessByTransactionResponse(
            found=True, entry=wire.access_pb(entry, with_response=True)
        )

    async def ListAccessLog(
        self,
        request: consent_pb2.ListAccessLogRequest,
        context: _Context[consent_pb2.ListAccessLogRequest, consent_pb2.ListAccessLogResponse],
    ) -> consent_pb2.ListAccessLogResponse:
        v = Violations()
        rules.check_subject_id(v, request.subject_id)
        rules.check_page_size(v, request.page_size)
        v.raise_if_any(_INVALID)
        await self._acting_for(context, request.subject_id)
        limit = page_size(request.page_size, default=rules.PAGE_SIZE_DEFAULT, maximum=rules.PAGE_SIZE_MAX)
        position = _position(request.page_token, request.subject_id, {"t": str, "a": str})
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position["t"]), position["a"])
            except ValueError:
                raise _bad_token() from None
        page, more = await self._store.list_access_log(request.subject_id, after=after, limit=limit)
        token = ""
        if more and page:
            last = page[-1]
            token = encode_page_token({"s": request.subject_id, "t": last.access_time.isoformat(), "a": last.access_id})
        return consent_pb2.ListAccessLogResponse(
            entries=[wire.access_pb(e, with_response=False) for e in page], next_page_token=token
        )


def _consent_choices(v: Violations, given: Iterable[consent_pb2.InitialConsent]) -> list[ConsentChoice]:
    """The consents an enrollment gives, as the rules read them (an invalid
    expiry a violation at ``consents[i].expire_time``)."""
    choices = []
    for i, consent in enumerate(given):
        expire_time = None
        if consent.HasField("expire_time"):
            expire_time = _optional_time(v, consent, "expire_time", f"consents[{i}].expire_time")
        choices.append(ConsentChoice(consent.source, consent.purpose, expire_time))
    return choices


def _check_access(
    v: Violations, access: consent_pb2.RecordAccessRequest | consent_pb2.AccessToRecord, prefix: str = ""
) -> str:
    """Checks one lookup to log (field paths under ``prefix``, e.g.
    ``accesses[3].``) and returns the kind of its answer."""
    check_subject_id(v, access.subject_id, f"{prefix}subject_id")
    registry.check_client_id(v, access.partner_id, f"{prefix}partner_id")
    auth_rules.check_access_purpose(v, access.purpose, f"{prefix}purpose")
    auth_rules.check_transaction_id(v, access.transaction_id, f"{prefix}transaction_id")
    kind = _check_answer(v, access.answer, f"{prefix}answer")
    v.check(len(access.response) <= auth_rules.MAX_RESPONSE_BYTES, f"{prefix}response",
            f"must be at most {auth_rules.MAX_RESPONSE_BYTES} bytes")
    return kind


def _check_answer(v: Violations, answer: consent_pb2.AccessAnswer, field: str) -> str:
    """The kind of answer recorded (threshold or score), checking its fields."""
    which = answer.WhichOneof("answer")
    if which == "threshold":
        threshold = answer.threshold
        v.check(350 <= threshold.threshold <= 950, f"{field}.threshold.threshold", "must be 350-950")
        v.check(threshold.decision != 0, f"{field}.threshold.decision", "must be set")
        return auth_rules.ANSWER_THRESHOLD
    if which == "score":
        score = answer.score
        v.check(score.state != 0, f"{field}.score.state", "must be set")
        v.check(score.score == 0 or 350 <= score.score <= 950, f"{field}.score.score", "must be 0 or 350-950")
        return auth_rules.ANSWER_SCORE
    v.add(field, "must be a threshold or a score answer")
    return ""


def _position(token: str, subject_id: str, fields: dict[str, type]) -> dict[str, Any] | None:
    """The position of a page token this service issued for ``subject_id``, with
    ``fields`` of the given types; ``INVALID_PAGE_TOKEN`` otherwise."""
    position = decode_page_token(token)
    if position is None:
        return None
    if position.get("s") != subject_id or any(
        type(position.get(name)) is not kind for name, kind in fields.items()
    ):
        raise _bad_token()
    return position


def _subject_token_revoked() -> Unauthenticated:
    """A subject's token that is not the subject's current one: the gateway
    answers the subject with it as its own (``metadata.principal``)."""
    return Unauthenticated(
        "the token has been revoked", reason="TOKEN_REVOKED", metadata={"principal": "subject"}
    )


def _bad_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not a token this service issued for this subject",
        [FieldViolation("page_token", "not a valid page token for this subject")],
        reason="INVALID_PAGE_TOKEN",
    )


async def _new_subject_secret() -> tuple[str, str]:
    """A fresh subject secret and its stored form (``registry.hash_generated_secret``)."""
    secret = registry.new_subject_secret()
    return secret, registry.hash_generated_secret(secret)


def _required(part: _Part | None, what: str) -> _Part:
    if part is None:
        raise FailedPrecondition(f"{what} is not configured on this server", reason="NOT_CONFIGURED")
    return part


def _key(request: _Mutation) -> RequestKey:
    """The idempotency key of a mutating request: its ``request_id``, its RPC (the
    request message names it: ``GrantConsentRequest`` is ``GrantConsent``'s) and
    its deterministic serialization."""
    method = request.DESCRIPTOR.name.removesuffix("Request")
    return RequestKey.of(request.request_id, method, request.SerializeToString(deterministic=True))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def _optional_time(v: Violations, message: Message, field: str, path: str = "") -> datetime | None:
    """The datetime of an optional Timestamp field; a violation (at ``path``,
    by default the field's name) when it is out of the range a Timestamp may hold."""
    try:
        return from_timestamp(message, field)
    except InvalidArgument:
        v.add(path or field, "not a valid timestamp")
        return None
