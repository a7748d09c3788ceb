import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from creditscore.records.v1 import records_pb2 as _records_pb2
from creditscore.scoring.v1 import scoring_pb2 as _scoring_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordEnvelope(_message.Message):
    __slots__ = ("producer_id", "record")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    record: _records_pb2.Record
    def __init__(self, producer_id: _Optional[str] = ..., record: _Optional[_Union[_records_pb2.Record, _Mapping]] = ...) -> None: ...

class ApplyRecordsRequest(_message.Message):
    __slots__ = ("request_id", "records")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    records: _containers.RepeatedCompositeFieldContainer[RecordEnvelope]
    def __init__(self, request_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[RecordEnvelope, _Mapping]]] = ...) -> None: ...

class ApplyRecordsResponse(_message.Message):
    __slots__ = ("applied_count", "duplicate_count")
    APPLIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    applied_count: int
    duplicate_count: int
    def __init__(self, applied_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class GetFeatureVectorRequest(_message.Message):
    __slots__ = ("subject_id", "as_of_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    as_of_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFeatureVectorsRequest(_message.Message):
    __slots__ = ("subject_ids",)
    SUBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    subject_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subject_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetFeatureVectorsResponse(_message.Message):
    __slots__ = ("feature_vectors",)
    FEATURE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    feature_vectors: _containers.RepeatedCompositeFieldContainer[FeatureVector]
    def __init__(self, feature_vectors: _Optional[_Iterable[_Union[FeatureVector, _Mapping]]] = ...) -> None: ...

class GetCurrentScoresRequest(_message.Message):
    __slots__ = ("subject_ids",)
    SUBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    subject_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subject_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CurrentScore(_message.Message):
    __slots__ = ("subject_id", "score", "sources_used")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_USED_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    score: _scoring_pb2.Score
    sources_used: _containers.RepeatedScalarFieldContainer[_common_pb2.DataSource]
    def __init__(self, subject_id: _Optional[str] = ..., score: _Optional[_Union[_scoring_pb2.Score, _Mapping]] = ..., sources_used: _Optional[_Iterable[_Union[_common_pb2.DataSource, str]]] = ...) -> None: ...

class GetCurrentScoresResponse(_message.Message):
    __slots__ = ("current_scores",)
    CURRENT_SCORES_FIELD_NUMBER: _ClassVar[int]
    current_scores: _containers.RepeatedCompositeFieldContainer[CurrentScore]
    def __init__(self, current_scores: _Optional[_Iterable[_Union[CurrentScore, _Mapping]]] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("subject_id", "as_of_time", "features", "record_count", "valid_until_time")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    as_of_time: _timestamp_pb2.Timestamp
    features: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureValue]
    record_count: int
    valid_until_time: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., features: _Optional[_Iterable[_Union[_common_pb2.FeatureValue, _Mapping]]] = ..., record_count: _Optional[int] = ..., valid_until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFeatureVectorResponse(_message.Message):
    __slots__ = ("feature_vector",)
    FEATURE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    feature_vector: FeatureVector
    def __init__(self, feature_vector: _Optional[_Union[FeatureVector, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("subject_id",)
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    def __init__(self, subject_id: _Optional[str] = ...) -> None: ...

class AppliedRecord(_message.Message):
    __slots__ = ("producer_id", "record_id", "revision", "source", "feeds_features", "apply_time")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FEEDS_FEATURES_FIELD_NUMBER: _ClassVar[int]
    APPLY_TIME_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    record_id: str
    revision: int
    source: _common_pb2.DataSource
    feeds_features: bool
    apply_time: _timestamp_pb2.Timestamp
    def __init__(self, producer_id: _Optional[str] = ..., record_id: _Optional[str] = ..., revision: _Optional[int] = ..., source: _Optional[_Union[_common_pb2.DataSource, str]] = ..., feeds_features: _Optional[bool] = ..., apply_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExportSubjectResponse(_message.Message):
    __slots__ = ("feature_vector", "applied_records")
    FEATURE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    APPLIED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    feature_vector: FeatureVector
    applied_records: _containers.RepeatedCompositeFieldContainer[AppliedRecord]
    def __init__(self, feature_vector: _Optional[_Union[FeatureVector, _Mapping]] = ..., applied_records: _Optional[_Iterable[_Union[AppliedRecord, _Mapping]]] = ...) -> None: ...
