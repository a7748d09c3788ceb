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
CONSENT_STATE_UNSPECIFIED: ConsentState
CONSENT_STATE_GRANTED: ConsentState
CONSENT_STATE_WITHDRAWN: ConsentState
CONSENT_STATE_EXPIRED: ConsentState

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
    __slots__ = ("subject", "created")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    created: bool
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

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
