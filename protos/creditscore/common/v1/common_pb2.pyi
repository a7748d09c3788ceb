from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DataSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_SOURCE_UNSPECIFIED: _ClassVar[DataSource]
    DATA_SOURCE_COMMERCE: _ClassVar[DataSource]
    DATA_SOURCE_PAYMENTS: _ClassVar[DataSource]
    DATA_SOURCE_IDENTITY: _ClassVar[DataSource]
    DATA_SOURCE_EXTERNAL: _ClassVar[DataSource]
    DATA_SOURCE_OUTCOMES: _ClassVar[DataSource]

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_CREDIT_SCORING: _ClassVar[Purpose]
    PURPOSE_MODEL_DEVELOPMENT: _ClassVar[Purpose]

class ScoreBand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_BAND_UNSPECIFIED: _ClassVar[ScoreBand]
    SCORE_BAND_POOR: _ClassVar[ScoreBand]
    SCORE_BAND_FAIR: _ClassVar[ScoreBand]
    SCORE_BAND_GOOD: _ClassVar[ScoreBand]
    SCORE_BAND_VERY_GOOD: _ClassVar[ScoreBand]
    SCORE_BAND_EXCELLENT: _ClassVar[ScoreBand]

class ScoreState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_STATE_UNSPECIFIED: _ClassVar[ScoreState]
    SCORE_STATE_SCORED: _ClassVar[ScoreState]
    SCORE_STATE_INSUFFICIENT_DATA: _ClassVar[ScoreState]

class AccessPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_PURPOSE_UNSPECIFIED: _ClassVar[AccessPurpose]
    ACCESS_PURPOSE_CREDIT_APPLICATION: _ClassVar[AccessPurpose]
    ACCESS_PURPOSE_INSTALMENT_PURCHASE: _ClassVar[AccessPurpose]
    ACCESS_PURPOSE_RENTAL: _ClassVar[AccessPurpose]
    ACCESS_PURPOSE_TELECOM_CONTRACT: _ClassVar[AccessPurpose]
    ACCESS_PURPOSE_ACCOUNT_REVIEW: _ClassVar[AccessPurpose]

class AuthorizationScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHORIZATION_SCOPE_UNSPECIFIED: _ClassVar[AuthorizationScope]
    AUTHORIZATION_SCOPE_THRESHOLD: _ClassVar[AuthorizationScope]
    AUTHORIZATION_SCOPE_FULL_SCORE: _ClassVar[AuthorizationScope]

class ThresholdDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THRESHOLD_DECISION_UNSPECIFIED: _ClassVar[ThresholdDecision]
    THRESHOLD_DECISION_MEETS: _ClassVar[ThresholdDecision]
    THRESHOLD_DECISION_BELOW: _ClassVar[ThresholdDecision]
    THRESHOLD_DECISION_INSUFFICIENT_DATA: _ClassVar[ThresholdDecision]
DATA_SOURCE_UNSPECIFIED: DataSource
DATA_SOURCE_COMMERCE: DataSource
DATA_SOURCE_PAYMENTS: DataSource
DATA_SOURCE_IDENTITY: DataSource
DATA_SOURCE_EXTERNAL: DataSource
DATA_SOURCE_OUTCOMES: DataSource
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_CREDIT_SCORING: Purpose
PURPOSE_MODEL_DEVELOPMENT: Purpose
SCORE_BAND_UNSPECIFIED: ScoreBand
SCORE_BAND_POOR: ScoreBand
SCORE_BAND_FAIR: ScoreBand
SCORE_BAND_GOOD: ScoreBand
SCORE_BAND_VERY_GOOD: ScoreBand
SCORE_BAND_EXCELLENT: ScoreBand
SCORE_STATE_UNSPECIFIED: ScoreState
SCORE_STATE_SCORED: ScoreState
SCORE_STATE_INSUFFICIENT_DATA: ScoreState
ACCESS_PURPOSE_UNSPECIFIED: AccessPurpose
ACCESS_PURPOSE_CREDIT_APPLICATION: AccessPurpose
ACCESS_PURPOSE_INSTALMENT_PURCHASE: AccessPurpose
ACCESS_PURPOSE_RENTAL: AccessPurpose
ACCESS_PURPOSE_TELECOM_CONTRACT: AccessPurpose
ACCESS_PURPOSE_ACCOUNT_REVIEW: AccessPurpose
AUTHORIZATION_SCOPE_UNSPECIFIED: AuthorizationScope
AUTHORIZATION_SCOPE_THRESHOLD: AuthorizationScope
AUTHORIZATION_SCOPE_FULL_SCORE: AuthorizationScope
THRESHOLD_DECISION_UNSPECIFIED: ThresholdDecision
THRESHOLD_DECISION_MEETS: ThresholdDecision
THRESHOLD_DECISION_BELOW: ThresholdDecision
THRESHOLD_DECISION_INSUFFICIENT_DATA: ThresholdDecision

class Reason(_message.Message):
    __slots__ = ("code", "text", "points_lost", "feature")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    POINTS_LOST_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    code: str
    text: str
    points_lost: float
    feature: str
    def __init__(self, code: _Optional[str] = ..., text: _Optional[str] = ..., points_lost: _Optional[float] = ..., feature: _Optional[str] = ...) -> None: ...

class FeatureValue(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class Improvement(_message.Message):
    __slots__ = ("feature", "code", "text", "current_value", "target_value", "points_gain")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VALUE_FIELD_NUMBER: _ClassVar[int]
    TARGET_VALUE_FIELD_NUMBER: _ClassVar[int]
    POINTS_GAIN_FIELD_NUMBER: _ClassVar[int]
    feature: str
    code: str
    text: str
    current_value: float
    target_value: float
    points_gain: float
    def __init__(self, feature: _Optional[str] = ..., code: _Optional[str] = ..., text: _Optional[str] = ..., current_value: _Optional[float] = ..., target_value: _Optional[float] = ..., points_gain: _Optional[float] = ...) -> None: ...

class PurgedTable(_message.Message):
    __slots__ = ("table", "deleted_rows", "rewritten_rows")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_ROWS_FIELD_NUMBER: _ClassVar[int]
    table: str
    deleted_rows: int
    rewritten_rows: int
    def __init__(self, table: _Optional[str] = ..., deleted_rows: _Optional[int] = ..., rewritten_rows: _Optional[int] = ...) -> None: ...
