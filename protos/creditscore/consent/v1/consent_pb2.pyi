import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_STATE_UNSPECIFIED: _ClassVar[ConsentState]
    CONSENT_STATE_GRANTED: _ClassVar[ConsentState]
    CONSENT_STATE_WITHDRAWN: _ClassVar[ConsentState]
    CONSENT_STATE_EXPIRED: _ClassVar[ConsentState]

class DeletionScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_SCOPE_UNSPECIFIED: _ClassVar[DeletionScope]
    DELETION_SCOPE_SOURCE: _ClassVar[DeletionScope]
    DELETION_SCOPE_ALL_DATA: _ClassVar[DeletionScope]
    DELETION_SCOPE_ACCOUNT: _ClassVar[DeletionScope]

class AuthorizationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHORIZATION_STATE_UNSPECIFIED: _ClassVar[AuthorizationState]
    AUTHORIZATION_STATE_LIVE: _ClassVar[AuthorizationState]
    AUTHORIZATION_STATE_REVOKED: _ClassVar[AuthorizationState]
    AUTHORIZATION_STATE_EXPIRED: _ClassVar[AuthorizationState]

class AccessOutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_OUTCOME_KIND_UNSPECIFIED: _ClassVar[AccessOutcomeKind]
    ACCESS_OUTCOME_KIND_RECORDED: _ClassVar[AccessOutcomeKind]
    ACCESS_OUTCOME_KIND_REPLAYED: _ClassVar[AccessOutcomeKind]
    ACCESS_OUTCOME_KIND_NOT_AUTHORIZED: _ClassVar[AccessOutcomeKind]
    ACCESS_OUTCOME_KIND_TRANSACTION_ID_REUSED: _ClassVar[AccessOutcomeKind]
    ACCESS_OUTCOME_KIND_SOURCES_CHANGED: _ClassVar[AccessOutcomeKind]

class RevocationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_KIND_UNSPECIFIED: _ClassVar[RevocationKind]
    REVOCATION_KIND_TOKEN: _ClassVar[RevocationKind]
    REVOCATION_KIND_SUBJECT_TOKENS: _ClassVar[RevocationKind]
    REVOCATION_KIND_CLIENT_TOKENS: _ClassVar[RevocationKind]
CONSENT_STATE_UNSPECIFIED: ConsentState
CONSENT_STATE_GRANTED: ConsentState
CONSENT_STATE_WITHDRAWN: ConsentState
CONSENT_STATE_EXPIRED: ConsentState
DELETION_SCOPE_UNSPECIFIED: DeletionScope
DELETION_SCOPE_SOURCE: DeletionScope
DELETION_SCOPE_ALL_DATA: DeletionScope
DELETION_SCOPE_ACCOUNT: DeletionScope
AUTHORIZATION_STATE_UNSPECIFIED: AuthorizationState
AUTHORIZATION_STATE_LIVE: AuthorizationState
AUTHORIZATION_STATE_REVOKED: AuthorizationState
AUTHORIZATION_STATE_EXPIRED: AuthorizationState
ACCESS_OUTCOME_KIND_UNSPECIFIED: AccessOutcomeKind
ACCESS_OUTCOME_KIND_RECORDED: AccessOutcomeKind
ACCESS_OUTCOME_KIND_REPLAYED: AccessOutcomeKind
ACCESS_OUTCOME_KIND_NOT_AUTHORIZED: AccessOutcomeKind
ACCESS_OUTCOME_KIND_TRANSACTION_ID_REUSED: AccessOutcomeKind
ACCESS_OUTCOME_KIND_SOURCES_CHANGED: AccessOutcomeKind
REVOCATION_KIND_UNSPECIFIED: RevocationKind
REVOCATION_KIND_TOKEN: RevocationKind
REVOCATION_KIND_SUBJECT_TOKENS: RevocationKind
REVOCATION_KIND_CLIENT_TOKENS: RevocationKind

class Subject(_message.Message):
    __slots__ = ("subject_id", "enroll_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ENROLL_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    enroll_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., enroll_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("subject_id", "source", "purpose", "state", "grant_time", "expire_time", "withdraw_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRANT_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    source: _common_pb2.DataSource
    purpose: _common_pb2.Purpose
    state: ConsentState
    grant_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    withdraw_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ..., state: _Optional[_Union[ConsentState, str]] = ..., grant_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., withdraw_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollSubjectRequest(_message.Message):
    __slots__ = ("request_id", "subject_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class EnrollSubjectResponse(_message.Message):
    __slots__ = ("subject", "created", "subject_secret")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SECRET_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    created: bool
    subject_secret: str
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., created: _Optional[bool] = ..., subject_secret: _Optional[str] = ...) -> None: ...

class RotateSubjectSecretRequest(_message.Message):
    __slots__ = ("request_id", "subject_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class RotateSubjectSecretResponse(_message.Message):
    __slots__ = ("subject_id", "subject_secret")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SECRET_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    subject_secret: str
    def __init__(self, subject_id: _Optional[str] = ..., subject_secret: _Optional[str] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("subject_id",)
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    def __init__(self, subject_id: _Optional[str] = ...) -> None: ...

class GetSubjectResponse(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ...) -> None: ...

class GrantConsentRequest(_message.Message):
    __slots__ = ("request_id", "subject_id", "source", "purpose", "expire_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    source: _common_pb2.DataSource
    purpose: _common_pb2.Purpose
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class WithdrawConsentRequest(_message.Message):
    __slots__ = ("request_id", "subject_id", "source", "purpose")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    source: _common_pb2.DataSource
    purpose: _common_pb2.Purpose
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ...) -> None: ...

class WithdrawConsentResponse(_message.Message):
    __slots__ = ("consent", "receipt_id")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    receipt_id: str
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ..., receipt_id: _Optional[str] = ...) -> None: ...

class ConsentCheck(_message.Message):
    __slots__ = ("subject_id", "source")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    source: _common_pb2.DataSource
    def __init__(self, subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ...) -> None: ...

class CheckConsentsRequest(_message.Message):
    __slots__ = ("purpose", "checks")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    purpose: _common_pb2.Purpose
    checks: _containers.RepeatedCompositeFieldContainer[ConsentCheck]
    def __init__(self, purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ..., checks: _Optional[_Iterable[_Union[ConsentCheck, _Mapping]]] = ...) -> None: ...

class ConsentDecision(_message.Message):
    __slots__ = ("subject_id", "source", "granted")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    source: _common_pb2.DataSource
    granted: bool
    def __init__(self, subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., granted: _Optional[bool] = ...) -> None: ...

class CheckConsentsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[ConsentDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[ConsentDecision, _Mapping]]] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents", "next_page_token")
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    next_page_token: str
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WithdrawAllConsentsRequest(_message.Message):
    __slots__ = ("request_id", "subject_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class WithdrawAllConsentsResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[DeletionReceipt, _Mapping]] = ...) -> None: ...

class CloseAccountRequest(_message.Message):
    __slots__ = ("request_id", "subject_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class CloseAccountResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[DeletionReceipt, _Mapping]] = ...) -> None: ...

class DeletionStep(_message.Message):
    __slots__ = ("service", "pass_number", "done", "tables", "complete_time", "attempts", "last_error")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PASS_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    service: str
    pass_number: int
    done: bool
    tables: _containers.RepeatedCompositeFieldContainer[_common_pb2.PurgedTable]
    complete_time: _timestamp_pb2.Timestamp
    attempts: int
    last_error: str
    def __init__(self, service: _Optional[str] = ..., pass_number: _Optional[int] = ..., done: _Optional[bool] = ..., tables: _Optional[_Iterable[_Union[_common_pb2.PurgedTable, _Mapping]]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class DeletionReceipt(_message.Message):
    __slots__ = ("receipt_id", "subject_id", "scope", "source", "request_time", "complete", "complete_time", "steps", "deleted_rows")
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    receipt_id: str
    subject_id: str
    scope: DeletionScope
    source: _common_pb2.DataSource
    request_time: _timestamp_pb2.Timestamp
    complete: bool
    complete_time: _timestamp_pb2.Timestamp
    steps: _containers.RepeatedCompositeFieldContainer[DeletionStep]
    deleted_rows: int
    def __init__(self, receipt_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., scope: _Optional[_Union[DeletionScope, str]] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., request_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete: _Optional[bool] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[DeletionStep, _Mapping]]] = ..., deleted_rows: _Optional[int] = ...) -> None: ...

class GetDeletionReceiptRequest(_message.Message):
    __slots__ = ("receipt_id", "subject_id")
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    receipt_id: str
    subject_id: str
    def __init__(self, receipt_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class GetDeletionReceiptResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[DeletionReceipt, _Mapping]] = ...) -> None: ...

class ExportSubjectDataRequest(_message.Message):
    __slots__ = ("subject_id",)
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    def __init__(self, subject_id: _Optional[str] = ...) -> None: ...

class ExportSubjectDataResponse(_message.Message):
    __slots__ = ("document", "export_time")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    document: str
    export_time: _timestamp_pb2.Timestamp
    def __init__(self, document: _Optional[str] = ..., export_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterPartnerRequest(_message.Message):
    __slots__ = ("request_id", "partner_id", "display_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    partner_id: str
    display_name: str
    def __init__(self, request_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class Partner(_message.Message):
    __slots__ = ("partner_id", "display_name", "register_time")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    display_name: str
    register_time: _timestamp_pb2.Timestamp
    def __init__(self, partner_id: _Optional[str] = ..., display_name: _Optional[str] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClientCredentials(_message.Message):
    __slots__ = ("client_id", "client_secret")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    client_secret: str
    def __init__(self, client_id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class RegisterPartnerResponse(_message.Message):
    __slots__ = ("partner", "credentials")
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    partner: Partner
    credentials: ClientCredentials
    def __init__(self, partner: _Optional[_Union[Partner, _Mapping]] = ..., credentials: _Optional[_Union[ClientCredentials, _Mapping]] = ...) -> None: ...

class RegisterProducerRequest(_message.Message):
    __slots__ = ("request_id", "producer_id", "display_name", "sources")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    producer_id: str
    display_name: str
    sources: _containers.RepeatedScalarFieldContainer[_common_pb2.DataSource]
    def __init__(self, request_id: _Optional[str] = ..., producer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DataSource, str]]] = ...) -> None: ...

class Producer(_message.Message):
    __slots__ = ("producer_id", "display_name", "sources", "register_time")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    display_name: str
    sources: _containers.RepeatedScalarFieldContainer[_common_pb2.DataSource]
    register_time: _timestamp_pb2.Timestamp
    def __init__(self, producer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DataSource, str]]] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterProducerResponse(_message.Message):
    __slots__ = ("producer", "credentials")
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    producer: Producer
    credentials: ClientCredentials
    def __init__(self, producer: _Optional[_Union[Producer, _Mapping]] = ..., credentials: _Optional[_Union[ClientCredentials, _Mapping]] = ...) -> None: ...

class IssueTokenRequest(_message.Message):
    __slots__ = ("client_id", "client_secret")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    client_secret: str
    def __init__(self, client_id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class IssueTokenResponse(_message.Message):
    __slots__ = ("token", "expire_time", "audience", "kind", "token_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    expire_time: _timestamp_pb2.Timestamp
    audience: str
    kind: str
    token_id: str
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience: _Optional[str] = ..., kind: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

class Authorization(_message.Message):
    __slots__ = ("subject_id", "partner_id", "partner_name", "purpose", "scope", "state", "grant_time", "expire_time", "revoke_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_NAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRANT_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    partner_id: str
    partner_name: str
    purpose: _common_pb2.AccessPurpose
    scope: _common_pb2.AuthorizationScope
    state: AuthorizationState
    grant_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., partner_name: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., scope: _Optional[_Union[_common_pb2.AuthorizationScope, str]] = ..., state: _Optional[_Union[AuthorizationState, str]] = ..., grant_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantAuthorizationRequest(_message.Message):
    __slots__ = ("request_id", "subject_id", "partner_id", "purpose", "scope", "expire_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    scope: _common_pb2.AuthorizationScope
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., scope: _Optional[_Union[_common_pb2.AuthorizationScope, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: Authorization
    def __init__(self, authorization: _Optional[_Union[Authorization, _Mapping]] = ...) -> None: ...

class RevokeAuthorizationRequest(_message.Message):
    __slots__ = ("request_id", "subject_id", "partner_id", "purpose")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ...) -> None: ...

class RevokeAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: Authorization
    def __init__(self, authorization: _Optional[_Union[Authorization, _Mapping]] = ...) -> None: ...

class ListAuthorizationsRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuthorizationsResponse(_message.Message):
    __slots__ = ("authorizations", "next_page_token")
    AUTHORIZATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    authorizations: _containers.RepeatedCompositeFieldContainer[Authorization]
    next_page_token: str
    def __init__(self, authorizations: _Optional[_Iterable[_Union[Authorization, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CheckAuthorizationRequest(_message.Message):
    __slots__ = ("subject_id", "partner_id", "purpose")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    def __init__(self, subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ...) -> None: ...

class CheckAuthorizationResponse(_message.Message):
    __slots__ = ("authorized", "scope", "expire_time")
    AUTHORIZED_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    authorized: bool
    scope: _common_pb2.AuthorizationScope
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, authorized: _Optional[bool] = ..., scope: _Optional[_Union[_common_pb2.AuthorizationScope, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ThresholdAnswer(_message.Message):
    __slots__ = ("threshold", "decision")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    threshold: int
    decision: _common_pb2.ThresholdDecision
    def __init__(self, threshold: _Optional[int] = ..., decision: _Optional[_Union[_common_pb2.ThresholdDecision, str]] = ...) -> None: ...

class ScoreAnswer(_message.Message):
    __slots__ = ("state", "score", "band", "reason_codes", "model_version")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.ScoreState
    score: int
    band: _common_pb2.ScoreBand
    reason_codes: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    def __init__(self, state: _Optional[_Union[_common_pb2.ScoreState, str]] = ..., score: _Optional[int] = ..., band: _Optional[_Union[_common_pb2.ScoreBand, str]] = ..., reason_codes: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class AccessAnswer(_message.Message):
    __slots__ = ("threshold", "score")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    threshold: ThresholdAnswer
    score: ScoreAnswer
    def __init__(self, threshold: _Optional[_Union[ThresholdAnswer, _Mapping]] = ..., score: _Optional[_Union[ScoreAnswer, _Mapping]] = ...) -> None: ...

class AccessEntry(_message.Message):
    __slots__ = ("access_id", "subject_id", "partner_id", "partner_name", "purpose", "transaction_id", "scope", "answer", "access_time", "response")
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_NAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    access_id: str
    subject_id: str
    partner_id: str
    partner_name: str
    purpose: _common_pb2.AccessPurpose
    transaction_id: str
    scope: _common_pb2.AuthorizationScope
    answer: AccessAnswer
    access_time: _timestamp_pb2.Timestamp
    response: bytes
    def __init__(self, access_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., partner_name: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., transaction_id: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.AuthorizationScope, str]] = ..., answer: _Optional[_Union[AccessAnswer, _Mapping]] = ..., access_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response: _Optional[bytes] = ...) -> None: ...

class RecordAccessRequest(_message.Message):
    __slots__ = ("subject_id", "partner_id", "purpose", "transaction_id", "answer", "response")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    transaction_id: str
    answer: AccessAnswer
    response: bytes
    def __init__(self, subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., transaction_id: _Optional[str] = ..., answer: _Optional[_Union[AccessAnswer, _Mapping]] = ..., response: _Optional[bytes] = ...) -> None: ...

class RecordAccessResponse(_message.Message):
    __slots__ = ("entry", "created")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    entry: AccessEntry
    created: bool
    def __init__(self, entry: _Optional[_Union[AccessEntry, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class AccessToRecord(_message.Message):
    __slots__ = ("subject_id", "partner_id", "purpose", "transaction_id", "answer", "response", "sources_used")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_USED_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    transaction_id: str
    answer: AccessAnswer
    response: bytes
    sources_used: _containers.RepeatedScalarFieldContainer[_common_pb2.DataSource]
    def __init__(self, subject_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., transaction_id: _Optional[str] = ..., answer: _Optional[_Union[AccessAnswer, _Mapping]] = ..., response: _Optional[bytes] = ..., sources_used: _Optional[_Iterable[_Union[_common_pb2.DataSource, str]]] = ...) -> None: ...

class RecordAccessesRequest(_message.Message):
    __slots__ = ("accesses",)
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    accesses: _containers.RepeatedCompositeFieldContainer[AccessToRecord]
    def __init__(self, accesses: _Optional[_Iterable[_Union[AccessToRecord, _Mapping]]] = ...) -> None: ...

class AccessOutcome(_message.Message):
    __slots__ = ("kind", "entry", "granted_sources")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    GRANTED_SOURCES_FIELD_NUMBER: _ClassVar[int]
    kind: AccessOutcomeKind
    entry: AccessEntry
    granted_sources: _containers.RepeatedScalarFieldContainer[_common_pb2.DataSource]
    def __init__(self, kind: _Optional[_Union[AccessOutcomeKind, str]] = ..., entry: _Optional[_Union[AccessEntry, _Mapping]] = ..., granted_sources: _Optional[_Iterable[_Union[_common_pb2.DataSource, str]]] = ...) -> None: ...

class RecordAccessesResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[AccessOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[AccessOutcome, _Mapping]]] = ...) -> None: ...

class GetAccessByTransactionRequest(_message.Message):
    __slots__ = ("partner_id", "transaction_id", "subject_id", "purpose")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    transaction_id: str
    subject_id: str
    purpose: _common_pb2.AccessPurpose
    def __init__(self, partner_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ...) -> None: ...

class GetAccessByTransactionResponse(_message.Message):
    __slots__ = ("found", "entry")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    found: bool
    entry: AccessEntry
    def __init__(self, found: _Optional[bool] = ..., entry: _Optional[_Union[AccessEntry, _Mapping]] = ...) -> None: ...

class ListAccessLogRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccessLogResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AccessEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AccessEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("sequence", "kind", "key", "generation", "revoke_time", "expire_time", "note")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: RevocationKind
    key: str
    generation: int
    revoke_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    note: str
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[RevocationKind, str]] = ..., key: _Optional[str] = ..., generation: _Optional[int] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("request_id", "token_id", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    token_id: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., token_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revocation",)
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...

class RevokeTokensRequest(_message.Message):
    __slots__ = ("request_id", "client_id", "subject_id", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    client_id: str
    subject_id: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., client_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RevokeTokensResponse(_message.Message):
    __slots__ = ("revocation",)
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...

class RevokeClientRequest(_message.Message):
    __slots__ = ("request_id", "client_id", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    client_id: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., client_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RevokeClientResponse(_message.Message):
    __slots__ = ("client_id", "kind", "revoke_time", "revocation")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    kind: str
    revoke_time: _timestamp_pb2.Timestamp
    revocation: Revocation
    def __init__(self, client_id: _Optional[str] = ..., kind: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...

class ListRevocationsRequest(_message.Message):
    __slots__ = ("after_sequence",)
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    def __init__(self, after_sequence: _Optional[int] = ...) -> None: ...

class ListRevocationsResponse(_message.Message):
    __slots__ = ("revocations", "last_sequence", "more", "reset")
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    last_sequence: int
    more: bool
    reset: bool
    def __init__(self, revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ..., last_sequence: _Optional[int] = ..., more: _Optional[bool] = ..., reset: _Optional[bool] = ...) -> None: ...
