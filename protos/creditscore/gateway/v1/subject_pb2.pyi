import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from creditscore.consent.v1 import consent_pb2 as _consent_pb2
from creditscore.gateway.v1 import gateway_pb2 as _gateway_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetMyScoreRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMyScoreResponse(_message.Message):
    __slots__ = ("credit_score",)
    CREDIT_SCORE_FIELD_NUMBER: _ClassVar[int]
    credit_score: _gateway_pb2.CreditScore
    def __init__(self, credit_score: _Optional[_Union[_gateway_pb2.CreditScore, _Mapping]] = ...) -> None: ...

class ListMyScoreHistoryRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMyScoreHistoryResponse(_message.Message):
    __slots__ = ("scores", "next_page_token")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[_gateway_pb2.CreditScore]
    next_page_token: str
    def __init__(self, scores: _Optional[_Iterable[_Union[_gateway_pb2.CreditScore, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMyAccessLogRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMyAccessLogResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_consent_pb2.AccessEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_consent_pb2.AccessEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMyConsentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMyConsentsResponse(_message.Message):
    __slots__ = ("consents", "next_page_token")
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[_consent_pb2.Consent]
    next_page_token: str
    def __init__(self, consents: _Optional[_Iterable[_Union[_consent_pb2.Consent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GrantConsentRequest(_message.Message):
    __slots__ = ("request_id", "source", "purpose", "expire_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    source: _common_pb2.DataSource
    purpose: _common_pb2.Purpose
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: _consent_pb2.Consent
    def __init__(self, consent: _Optional[_Union[_consent_pb2.Consent, _Mapping]] = ...) -> None: ...

class WithdrawConsentRequest(_message.Message):
    __slots__ = ("request_id", "source", "purpose")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    source: _common_pb2.DataSource
    purpose: _common_pb2.Purpose
    def __init__(self, request_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., purpose: _Optional[_Union[_common_pb2.Purpose, str]] = ...) -> None: ...

class WithdrawConsentResponse(_message.Message):
    __slots__ = ("consent", "receipt_id")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    consent: _consent_pb2.Consent
    receipt_id: str
    def __init__(self, consent: _Optional[_Union[_consent_pb2.Consent, _Mapping]] = ..., receipt_id: _Optional[str] = ...) -> None: ...

class WithdrawAllConsentsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class WithdrawAllConsentsResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: _consent_pb2.DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[_consent_pb2.DeletionReceipt, _Mapping]] = ...) -> None: ...

class ListMyAuthorizationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMyAuthorizationsResponse(_message.Message):
    __slots__ = ("authorizations", "next_page_token")
    AUTHORIZATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    authorizations: _containers.RepeatedCompositeFieldContainer[_consent_pb2.Authorization]
    next_page_token: str
    def __init__(self, authorizations: _Optional[_Iterable[_Union[_consent_pb2.Authorization, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GrantAuthorizationRequest(_message.Message):
    __slots__ = ("request_id", "partner_id", "purpose", "scope", "expire_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    scope: _common_pb2.AuthorizationScope
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., scope: _Optional[_Union[_common_pb2.AuthorizationScope, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: _consent_pb2.Authorization
    def __init__(self, authorization: _Optional[_Union[_consent_pb2.Authorization, _Mapping]] = ...) -> None: ...

class RevokeAuthorizationRequest(_message.Message):
    __slots__ = ("request_id", "partner_id", "purpose")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    partner_id: str
    purpose: _common_pb2.AccessPurpose
    def __init__(self, request_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ...) -> None: ...

class RevokeAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: _consent_pb2.Authorization
    def __init__(self, authorization: _Optional[_Union[_consent_pb2.Authorization, _Mapping]] = ...) -> None: ...

class ExportMyDataRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportMyDataResponse(_message.Message):
    __slots__ = ("document", "export_time")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    document: str
    export_time: _timestamp_pb2.Timestamp
    def __init__(self, document: _Optional[str] = ..., export_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CloseAccountRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CloseAccountResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: _consent_pb2.DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[_consent_pb2.DeletionReceipt, _Mapping]] = ...) -> None: ...

class GetDeletionReceiptRequest(_message.Message):
    __slots__ = ("receipt_id",)
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    receipt_id: str
    def __init__(self, receipt_id: _Optional[str] = ...) -> None: ...

class GetDeletionReceiptResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: _consent_pb2.DeletionReceipt
    def __init__(self, receipt: _Optional[_Union[_consent_pb2.DeletionReceipt, _Mapping]] = ...) -> None: ...

class RotateMySecretRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class RotateMySecretResponse(_message.Message):
    __slots__ = ("subject_secret",)
    SUBJECT_SECRET_FIELD_NUMBER: _ClassVar[int]
    subject_secret: str
    def __init__(self, subject_secret: _Optional[str] = ...) -> None: ...

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
