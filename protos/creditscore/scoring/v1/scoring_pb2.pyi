import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Score(_message.Message):
    __slots__ = ("subject_id", "state", "score", "band", "probability_of_bad", "reasons", "model_version", "coverage", "score_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OF_BAD_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    state: _common_pb2.ScoreState
    score: int
    band: _common_pb2.ScoreBand
    probability_of_bad: float
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    model_version: str
    coverage: float
    score_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ScoreState, str]] = ..., score: _Optional[int] = ..., band: _Optional[_Union[_common_pb2.ScoreBand, str]] = ..., probability_of_bad: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ..., model_version: _Optional[str] = ..., coverage: _Optional[float] = ..., score_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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

class ModelInfo(_message.Message):
    __slots__ = ("version", "active", "description", "train_time", "auc", "ks", "gini", "features")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    KS_FIELD_NUMBER: _ClassVar[int]
    GINI_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    version: str
    active: bool
    description: str
    train_time: _timestamp_pb2.Timestamp
    auc: float
    ks: float
    gini: float
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., active: _Optional[bool] = ..., description: _Optional[str] = ..., train_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auc: _Optional[float] = ..., ks: _Optional[float] = ..., gini: _Optional[float] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

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
