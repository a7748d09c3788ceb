import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PartyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTY_ROLE_UNSPECIFIED: _ClassVar[PartyRole]
    PARTY_ROLE_BUYER: _ClassVar[PartyRole]
    PARTY_ROLE_SELLER: _ClassVar[PartyRole]

class OrderOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_OUTCOME_UNSPECIFIED: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_COMPLETED: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_CANCELLED_BY_BUYER: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_CANCELLED_BY_SELLER: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_REFUNDED: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_DISPUTED: _ClassVar[OrderOutcome]
    ORDER_OUTCOME_UNPAID: _ClassVar[OrderOutcome]

class BillCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILL_CATEGORY_UNSPECIFIED: _ClassVar[BillCategory]
    BILL_CATEGORY_UTILITY: _ClassVar[BillCategory]
    BILL_CATEGORY_TELECOM: _ClassVar[BillCategory]
    BILL_CATEGORY_CREDIT_CARD: _ClassVar[BillCategory]
    BILL_CATEGORY_RENT: _ClassVar[BillCategory]
    BILL_CATEGORY_LOAN_INSTALMENT: _ClassVar[BillCategory]
    BILL_CATEGORY_OTHER: _ClassVar[BillCategory]

class ExternalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXTERNAL_KIND_UNSPECIFIED: _ClassVar[ExternalKind]
    EXTERNAL_KIND_LOAN_ACCOUNT: _ClassVar[ExternalKind]
    EXTERNAL_KIND_REPAYMENT: _ClassVar[ExternalKind]
    EXTERNAL_KIND_DELINQUENCY: _ClassVar[ExternalKind]
    EXTERNAL_KIND_COLLECTION: _ClassVar[ExternalKind]
    EXTERNAL_KIND_COURT_JUDGMENT: _ClassVar[ExternalKind]
    EXTERNAL_KIND_TAX_ARREARS: _ClassVar[ExternalKind]
    EXTERNAL_KIND_OTHER: _ClassVar[ExternalKind]

class ExternalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXTERNAL_STATUS_UNSPECIFIED: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_OPEN: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_CLOSED: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_ON_TIME: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_LATE: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_SETTLED: _ClassVar[ExternalStatus]
    EXTERNAL_STATUS_WRITTEN_OFF: _ClassVar[ExternalStatus]

class InstitutionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTITUTION_TYPE_UNSPECIFIED: _ClassVar[InstitutionType]
    INSTITUTION_TYPE_PUBLIC_AGENCY: _ClassVar[InstitutionType]
    INSTITUTION_TYPE_FINANCIAL_INSTITUTION: _ClassVar[InstitutionType]
    INSTITUTION_TYPE_MERCHANT: _ClassVar[InstitutionType]

class LoanOutcomeLabel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_OUTCOME_LABEL_UNSPECIFIED: _ClassVar[LoanOutcomeLabel]
    LOAN_OUTCOME_LABEL_GOOD: _ClassVar[LoanOutcomeLabel]
    LOAN_OUTCOME_LABEL_BAD: _ClassVar[LoanOutcomeLabel]
PARTY_ROLE_UNSPECIFIED: PartyRole
PARTY_ROLE_BUYER: PartyRole
PARTY_ROLE_SELLER: PartyRole
ORDER_OUTCOME_UNSPECIFIED: OrderOutcome
ORDER_OUTCOME_COMPLETED: OrderOutcome
ORDER_OUTCOME_CANCELLED_BY_BUYER: OrderOutcome
ORDER_OUTCOME_CANCELLED_BY_SELLER: OrderOutcome
ORDER_OUTCOME_REFUNDED: OrderOutcome
ORDER_OUTCOME_DISPUTED: OrderOutcome
ORDER_OUTCOME_UNPAID: OrderOutcome
BILL_CATEGORY_UNSPECIFIED: BillCategory
BILL_CATEGORY_UTILITY: BillCategory
BILL_CATEGORY_TELECOM: BillCategory
BILL_CATEGORY_CREDIT_CARD: BillCategory
BILL_CATEGORY_RENT: BillCategory
BILL_CATEGORY_LOAN_INSTALMENT: BillCategory
BILL_CATEGORY_OTHER: BillCategory
EXTERNAL_KIND_UNSPECIFIED: ExternalKind
EXTERNAL_KIND_LOAN_ACCOUNT: ExternalKind
EXTERNAL_KIND_REPAYMENT: ExternalKind
EXTERNAL_KIND_DELINQUENCY: ExternalKind
EXTERNAL_KIND_COLLECTION: ExternalKind
EXTERNAL_KIND_COURT_JUDGMENT: ExternalKind
EXTERNAL_KIND_TAX_ARREARS: ExternalKind
EXTERNAL_KIND_OTHER: ExternalKind
EXTERNAL_STATUS_UNSPECIFIED: ExternalStatus
EXTERNAL_STATUS_OPEN: ExternalStatus
EXTERNAL_STATUS_CLOSED: ExternalStatus
EXTERNAL_STATUS_ON_TIME: ExternalStatus
EXTERNAL_STATUS_LATE: ExternalStatus
EXTERNAL_STATUS_SETTLED: ExternalStatus
EXTERNAL_STATUS_WRITTEN_OFF: ExternalStatus
INSTITUTION_TYPE_UNSPECIFIED: InstitutionType
INSTITUTION_TYPE_PUBLIC_AGENCY: InstitutionType
INSTITUTION_TYPE_FINANCIAL_INSTITUTION: InstitutionType
INSTITUTION_TYPE_MERCHANT: InstitutionType
LOAN_OUTCOME_LABEL_UNSPECIFIED: LoanOutcomeLabel
LOAN_OUTCOME_LABEL_GOOD: LoanOutcomeLabel
LOAN_OUTCOME_LABEL_BAD: LoanOutcomeLabel

class Money(_message.Message):
    __slots__ = ("currency_code", "minor_units")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    minor_units: int
    def __init__(self, currency_code: _Optional[str] = ..., minor_units: _Optional[int] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("record_id", "subject_id", "event_time", "revision", "retracted", "order", "rating", "bill", "identity", "external", "loan_outcome")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RETRACTED_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    BILL_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    LOAN_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    subject_id: str
    event_time: _timestamp_pb2.Timestamp
    revision: int
    retracted: bool
    order: Order
    rating: Rating
    bill: Bill
    identity: IdentityTenure
    external: ExternalRecord
    loan_outcome: LoanOutcome
    def __init__(self, record_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., retracted: _Optional[bool] = ..., order: _Optional[_Union[Order, _Mapping]] = ..., rating: _Optional[_Union[Rating, _Mapping]] = ..., bill: _Optional[_Union[Bill, _Mapping]] = ..., identity: _Optional[_Union[IdentityTenure, _Mapping]] = ..., external: _Optional[_Union[ExternalRecord, _Mapping]] = ..., loan_outcome: _Optional[_Union[LoanOutcome, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("role", "amount", "placed_time", "outcome", "fulfilment_time")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PLACED_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FULFILMENT_TIME_FIELD_NUMBER: _ClassVar[int]
    role: PartyRole
    amount: Money
    placed_time: _timestamp_pb2.Timestamp
    outcome: OrderOutcome
    fulfilment_time: _timestamp_pb2.Timestamp
    def __init__(self, role: _Optional[_Union[PartyRole, str]] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., placed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[OrderOutcome, str]] = ..., fulfilment_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Rating(_message.Message):
    __slots__ = ("rated_role", "stars")
    RATED_ROLE_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    rated_role: PartyRole
    stars: int
    def __init__(self, rated_role: _Optional[_Union[PartyRole, str]] = ..., stars: _Optional[int] = ...) -> None: ...

class Bill(_message.Message):
    __slots__ = ("category", "amount_due", "issue_time", "due_time", "amount_paid", "paid_time")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    PAID_TIME_FIELD_NUMBER: _ClassVar[int]
    category: BillCategory
    amount_due: Money
    issue_time: _timestamp_pb2.Timestamp
    due_time: _timestamp_pb2.Timestamp
    amount_paid: Money
    paid_time: _timestamp_pb2.Timestamp
    def __init__(self, category: _Optional[_Union[BillCategory, str]] = ..., amount_due: _Optional[_Union[Money, _Mapping]] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_paid: _Optional[_Union[Money, _Mapping]] = ..., paid_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IdentityTenure(_message.Message):
    __slots__ = ("residence_since_time", "phone_since_time", "identity_verified")
    RESIDENCE_SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    PHONE_SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    residence_since_time: _timestamp_pb2.Timestamp
    phone_since_time: _timestamp_pb2.Timestamp
    identity_verified: bool
    def __init__(self, residence_since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., phone_since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., identity_verified: _Optional[bool] = ...) -> None: ...

class ExternalRecord(_message.Message):
    __slots__ = ("kind", "institution_type", "amount", "open_time", "close_time", "status")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    kind: ExternalKind
    institution_type: InstitutionType
    amount: Money
    open_time: _timestamp_pb2.Timestamp
    close_time: _timestamp_pb2.Timestamp
    status: ExternalStatus
    def __init__(self, kind: _Optional[_Union[ExternalKind, str]] = ..., institution_type: _Optional[_Union[InstitutionType, str]] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ExternalStatus, str]] = ...) -> None: ...

class LoanOutcome(_message.Message):
    __slots__ = ("application_time", "label", "observed_time")
    APPLICATION_TIME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_TIME_FIELD_NUMBER: _ClassVar[int]
    application_time: _timestamp_pb2.Timestamp
    label: LoanOutcomeLabel
    observed_time: _timestamp_pb2.Timestamp
    def __init__(self, application_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., label: _Optional[_Union[LoanOutcomeLabel, str]] = ..., observed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
