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

class ModelRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ROLE_UNSPECIFIED: _ClassVar[ModelRole]
    MODEL_ROLE_CHAMPION: _ClassVar[ModelRole]
    MODEL_ROLE_CHALLENGER: _ClassVar[ModelRole]

class ModelEventAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_EVENT_ACTION_UNSPECIFIED: _ClassVar[ModelEventAction]
    MODEL_EVENT_ACTION_ACTIVATED: _ClassVar[ModelEventAction]
    MODEL_EVENT_ACTION_ROLLED_BACK: _ClassVar[ModelEventAction]
    MODEL_EVENT_ACTION_CHALLENGER_SET: _ClassVar[ModelEventAction]
    MODEL_EVENT_ACTION_CHALLENGER_CLEARED: _ClassVar[ModelEventAction]

class DriftStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIFT_STATUS_UNSPECIFIED: _ClassVar[DriftStatus]
    DRIFT_STATUS_STABLE: _ClassVar[DriftStatus]
    DRIFT_STATUS_MONITOR: _ClassVar[DriftStatus]
    DRIFT_STATUS_SHIFTED: _ClassVar[DriftStatus]
    DRIFT_STATUS_INSUFFICIENT_DATA: _ClassVar[DriftStatus]
MODEL_ROLE_UNSPECIFIED: ModelRole
MODEL_ROLE_CHAMPION: ModelRole
MODEL_ROLE_CHALLENGER: ModelRole
MODEL_EVENT_ACTION_UNSPECIFIED: ModelEventAction
MODEL_EVENT_ACTION_ACTIVATED: ModelEventAction
MODEL_EVENT_ACTION_ROLLED_BACK: ModelEventAction
MODEL_EVENT_ACTION_CHALLENGER_SET: ModelEventAction
MODEL_EVENT_ACTION_CHALLENGER_CLEARED: ModelEventAction
DRIFT_STATUS_UNSPECIFIED: DriftStatus
DRIFT_STATUS_STABLE: DriftStatus
DRIFT_STATUS_MONITOR: DriftStatus
DRIFT_STATUS_SHIFTED: DriftStatus
DRIFT_STATUS_INSUFFICIENT_DATA: DriftStatus

class Score(_message.Message):
    __slots__ = ("subject_id", "state", "score", "band", "probability_of_bad", "reasons", "model_version", "coverage", "score_time", "improvements", "score_id")
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
    SCORE_ID_FIELD_NUMBER: _ClassVar[int]
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
    score_id: int
    def __init__(self, subject_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ScoreState, str]] = ..., score: _Optional[int] = ..., band: _Optional[_Union[_common_pb2.ScoreBand, str]] = ..., probability_of_bad: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ..., model_version: _Optional[str] = ..., coverage: _Optional[float] = ..., score_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., improvements: _Optional[_Iterable[_Union[_common_pb2.Improvement, _Mapping]]] = ..., score_id: _Optional[int] = ...) -> None: ...

class ScoreFeaturesRequest(_message.Message):
    __slots__ = ("subject_id", "features")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    features: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureValue]
    def __init__(self, subject_id: _Optional[str] = ..., features: _Optional[_Iterable[_Union[_common_pb2.FeatureValue, _Mapping]]] = ...) -> None: ...

class ScoreFeaturesResponse(_message.Message):
    __slots__ = ("score",)
    SCORE_FIELD_NUMBER: _ClassVar[int]
    score: Score
    def __init__(self, score: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreFeaturesRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreFeaturesRequest, _Mapping]]] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    def __init__(self, scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("version", "active", "description", "train_time", "auc", "ks", "gini", "features", "challenger", "activate_time", "format")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    KS_FIELD_NUMBER: _ClassVar[int]
    GINI_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    version: str
    active: bool
    description: str
    train_time: _timestamp_pb2.Timestamp
    auc: float
    ks: float
    gini: float
    features: _containers.RepeatedScalarFieldContainer[str]
    challenger: bool
    activate_time: _timestamp_pb2.Timestamp
    format: str
    def __init__(self, version: _Optional[str] = ..., active: _Optional[bool] = ..., description: _Optional[str] = ..., train_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auc: _Optional[float] = ..., ks: _Optional[float] = ..., gini: _Optional[float] = ..., features: _Optional[_Iterable[str]] = ..., challenger: _Optional[bool] = ..., activate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., format: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PointsRow(_message.Message):
    __slots__ = ("feature", "bin_label", "points", "lo", "hi", "missing", "special", "categories", "other")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    BIN_LABEL_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    feature: str
    bin_label: str
    points: float
    lo: float
    hi: float
    missing: bool
    special: bool
    categories: _containers.RepeatedScalarFieldContainer[str]
    other: bool
    def __init__(self, feature: _Optional[str] = ..., bin_label: _Optional[str] = ..., points: _Optional[float] = ..., lo: _Optional[float] = ..., hi: _Optional[float] = ..., missing: _Optional[bool] = ..., special: _Optional[bool] = ..., categories: _Optional[_Iterable[str]] = ..., other: _Optional[bool] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model", "points", "intercept_points", "pdo", "offset", "min_coverage")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_POINTS_FIELD_NUMBER: _ClassVar[int]
    PDO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MIN_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    points: _containers.RepeatedCompositeFieldContainer[PointsRow]
    intercept_points: float
    pdo: float
    offset: float
    min_coverage: float
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., points: _Optional[_Iterable[_Union[PointsRow, _Mapping]]] = ..., intercept_points: _Optional[float] = ..., pdo: _Optional[float] = ..., offset: _Optional[float] = ..., min_coverage: _Optional[float] = ...) -> None: ...

class ModelEvent(_message.Message):
    __slots__ = ("sequence", "action", "version", "previous_version", "note", "event_time", "active_version", "challenger_version", "request_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    action: ModelEventAction
    version: str
    previous_version: str
    note: str
    event_time: _timestamp_pb2.Timestamp
    active_version: str
    challenger_version: str
    request_id: str
    def __init__(self, sequence: _Optional[int] = ..., action: _Optional[_Union[ModelEventAction, str]] = ..., version: _Optional[str] = ..., previous_version: _Optional[str] = ..., note: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_version: _Optional[str] = ..., challenger_version: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ActivateModelRequest(_message.Message):
    __slots__ = ("request_id", "version", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ActivateModelResponse(_message.Message):
    __slots__ = ("event", "model")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    event: ModelEvent
    model: ModelInfo
    def __init__(self, event: _Optional[_Union[ModelEvent, _Mapping]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class RollbackModelRequest(_message.Message):
    __slots__ = ("request_id", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RollbackModelResponse(_message.Message):
    __slots__ = ("event", "model")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    event: ModelEvent
    model: ModelInfo
    def __init__(self, event: _Optional[_Union[ModelEvent, _Mapping]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class SetChallengerRequest(_message.Message):
    __slots__ = ("request_id", "version", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SetChallengerResponse(_message.Message):
    __slots__ = ("event", "challenger")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FIELD_NUMBER: _ClassVar[int]
    event: ModelEvent
    challenger: ModelInfo
    def __init__(self, event: _Optional[_Union[ModelEvent, _Mapping]] = ..., challenger: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ListModelEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ModelEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[ModelEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("version", "since_time", "until_time", "min_scores")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORES_FIELD_NUMBER: _ClassVar[int]
    version: str
    since_time: _timestamp_pb2.Timestamp
    until_time: _timestamp_pb2.Timestamp
    min_scores: int
    def __init__(self, version: _Optional[str] = ..., since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_scores: _Optional[int] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("feature", "psi", "status")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    psi: float
    status: DriftStatus
    def __init__(self, feature: _Optional[str] = ..., psi: _Optional[float] = ..., status: _Optional[_Union[DriftStatus, str]] = ...) -> None: ...

class GetDriftResponse(_message.Message):
    __slots__ = ("version", "status", "score_psi", "features", "scores_used", "insufficient_data_share", "training_insufficient_data_share", "since_time", "until_time", "sampled", "scores_in_window")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCORE_PSI_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SCORES_USED_FIELD_NUMBER: _ClassVar[int]
    INSUFFICIENT_DATA_SHARE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_INSUFFICIENT_DATA_SHARE_FIELD_NUMBER: _ClassVar[int]
    SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FIELD_NUMBER: _ClassVar[int]
    SCORES_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    version: str
    status: DriftStatus
    score_psi: float
    features: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    scores_used: int
    insufficient_data_share: float
    training_insufficient_data_share: float
    since_time: _timestamp_pb2.Timestamp
    until_time: _timestamp_pb2.Timestamp
    sampled: bool
    scores_in_window: int
    def __init__(self, version: _Optional[str] = ..., status: _Optional[_Union[DriftStatus, str]] = ..., score_psi: _Optional[float] = ..., features: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., scores_used: _Optional[int] = ..., insufficient_data_share: _Optional[float] = ..., training_insufficient_data_share: _Optional[float] = ..., since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sampled: _Optional[bool] = ..., scores_in_window: _Optional[int] = ...) -> None: ...

class StoredScore(_message.Message):
    __slots__ = ("score", "role", "features", "shadow_of_score_id")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_OF_SCORE_ID_FIELD_NUMBER: _ClassVar[int]
    score: Score
    role: ModelRole
    features: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureValue]
    shadow_of_score_id: int
    def __init__(self, score: _Optional[_Union[Score, _Mapping]] = ..., role: _Optional[_Union[ModelRole, str]] = ..., features: _Optional[_Iterable[_Union[_common_pb2.FeatureValue, _Mapping]]] = ..., shadow_of_score_id: _Optional[int] = ...) -> None: ...

class ListScoresRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListScoresResponse(_message.Message):
    __slots__ = ("scores", "next_page_token")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[StoredScore]
    next_page_token: str
    def __init__(self, scores: _Optional[_Iterable[_Union[StoredScore, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecomputeScoreRequest(_message.Message):
    __slots__ = ("score_id",)
    SCORE_ID_FIELD_NUMBER: _ClassVar[int]
    score_id: int
    def __init__(self, score_id: _Optional[int] = ...) -> None: ...

class RecomputeScoreResponse(_message.Message):
    __slots__ = ("stored", "recomputed", "identical")
    STORED_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTED_FIELD_NUMBER: _ClassVar[int]
    IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    stored: StoredScore
    recomputed: Score
    identical: bool
    def __init__(self, stored: _Optional[_Union[StoredScore, _Mapping]] = ..., recomputed: _Optional[_Union[Score, _Mapping]] = ..., identical: _Optional[bool] = ...) -> None: ...

class PurgeSubjectRequest(_message.Message):
    __slots__ = ("request_id", "subject_id", "source")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_id: str
    source: _common_pb2.DataSource
    def __init__(self, request_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ...) -> None: ...

class PurgeSubjectResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[_common_pb2.PurgedTable]
    def __init__(self, tables: _Optional[_Iterable[_Union[_common_pb2.PurgedTable, _Mapping]]] = ...) -> None: ...

class ExportSubjectRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ExportSubjectResponse(_message.Message):
    __slots__ = ("scores", "next_page_token")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[StoredScore]
    next_page_token: str
    def __init__(self, scores: _Optional[_Iterable[_Union[StoredScore, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
