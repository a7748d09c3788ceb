import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCreditScoreRequest(_message.Message):
    __slots__ = ("subject_id", "purpose", "transaction_id")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    purpose: _common_pb2.AccessPurpose
    transaction_id: str
    def __init__(self, subject_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class CreditScore(_message.Message):
    __slots__ = ("subject_id", "state", "score", "band", "probability_of_bad", "reasons", "model_version", "coverage", "score_time", "improvements")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OF_BAD_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_TIME_FIELD_NUMBER: _ClassVar[int]
    IMPROVEMENTS_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    state: _common_pb2.ScoreState
    score: int
    band: _common_pb2.ScoreBand
    probability_of_bad: float
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    model_version: str
    coverage: float
    score_time: _timestamp_pb2.Timestamp
    improvements: _containers.RepeatedCompositeFieldContainer[_common_pb2.Improvement]
    def __init__(self, subject_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ScoreState, str]] = ..., score: _Optional[int] = ..., band: _Optional[_Union[_common_pb2.ScoreBand, str]] = ..., probability_of_bad: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ..., model_version: _Optional[str] = ..., coverage: _Optional[float] = ..., score_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., improvements: _Optional[_Iterable[_Union[_common_pb2.Improvement, _Mapping]]] = ...) -> None: ...

class GetCreditScoreResponse(_message.Message):
    __slots__ = ("credit_score", "transaction_id")
    CREDIT_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    credit_score: CreditScore
    transaction_id: str
    def __init__(self, credit_score: _Optional[_Union[CreditScore, _Mapping]] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class CheckCreditThresholdRequest(_message.Message):
    __slots__ = ("subject_id", "purpose", "threshold", "transaction_id")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    purpose: _common_pb2.AccessPurpose
    threshold: int
    transaction_id: str
    def __init__(self, subject_id: _Optional[str] = ..., purpose: _Optional[_Union[_common_pb2.AccessPurpose, str]] = ..., threshold: _Optional[int] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class CheckCreditThresholdResponse(_message.Message):
    __slots__ = ("subject_id", "threshold", "decision", "transaction_id", "decision_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    threshold: int
    decision: _common_pb2.ThresholdDecision
    transaction_id: str
    decision_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., threshold: _Optional[int] = ..., decision: _Optional[_Union[_common_pb2.ThresholdDecision, str]] = ..., transaction_id: _Optional[str] = ..., decision_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchCheckCreditThresholdRequest(_message.Message):
    __slots__ = ("checks",)
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[CheckCreditThresholdRequest]
    def __init__(self, checks: _Optional[_Iterable[_Union[CheckCreditThresholdRequest, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "reason", "metadata", "field_violations")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    metadata: _containers.ScalarMap[str, str]
    field_violations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., field_violations: _Optional[_Iterable[str]] = ...) -> None: ...

class ThresholdResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: CheckCreditThresholdResponse
    error: ItemError
    def __init__(self, response: _Optional[_Union[CheckCreditThresholdResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class BatchCheckCreditThresholdResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ThresholdResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ThresholdResult, _Mapping]]] = ...) -> None: ...
