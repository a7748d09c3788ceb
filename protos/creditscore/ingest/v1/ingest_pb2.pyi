import datetime

from creditscore.common.v1 import common_pb2 as _common_pb2
from creditscore.records.v1 import records_pb2 as _records_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_STATUS_UNSPECIFIED: _ClassVar[RecordStatus]
    RECORD_STATUS_ACCEPTED: _ClassVar[RecordStatus]
    RECORD_STATUS_DUPLICATE: _ClassVar[RecordStatus]
    RECORD_STATUS_REJECTED: _ClassVar[RecordStatus]
RECORD_STATUS_UNSPECIFIED: RecordStatus
RECORD_STATUS_ACCEPTED: RecordStatus
RECORD_STATUS_DUPLICATE: RecordStatus
RECORD_STATUS_REJECTED: RecordStatus

class RecordFieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RecordResult(_message.Message):
    __slots__ = ("index", "record_id", "status", "reason", "field_violations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    record_id: str
    status: RecordStatus
    reason: str
    field_violations: _containers.RepeatedCompositeFieldContainer[RecordFieldViolation]
    def __init__(self, index: _Optional[int] = ..., record_id: _Optional[str] = ..., status: _Optional[_Union[RecordStatus, str]] = ..., reason: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[RecordFieldViolation, _Mapping]]] = ...) -> None: ...

class IngestRecordsRequest(_message.Message):
    __slots__ = ("request_id", "producer_id", "records")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    producer_id: str
    records: _containers.RepeatedCompositeFieldContainer[_records_pb2.Record]
    def __init__(self, request_id: _Optional[str] = ..., producer_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_records_pb2.Record, _Mapping]]] = ...) -> None: ...

class IngestRecordsResponse(_message.Message):
    __slots__ = ("results", "accepted_count", "duplicate_count", "rejected_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordResult]
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[RecordResult, _Mapping]]] = ..., accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ...) -> None: ...

class IngestRecordStreamRequest(_message.Message):
    __slots__ = ("request_id", "producer_id", "records")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    producer_id: str
    records: _containers.RepeatedCompositeFieldContainer[_records_pb2.Record]
    def __init__(self, request_id: _Optional[str] = ..., producer_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_records_pb2.Record, _Mapping]]] = ...) -> None: ...

class IngestRecordStreamResponse(_message.Message):
    __slots__ = ("results", "accepted_count", "duplicate_count", "rejected_count", "chunk_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordResult]
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    chunk_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[RecordResult, _Mapping]]] = ..., accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., chunk_count: _Optional[int] = ...) -> None: ...

class StoredRecord(_message.Message):
    __slots__ = ("producer_id", "record", "ingest_time")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    record: _records_pb2.Record
    ingest_time: _timestamp_pb2.Timestamp
    def __init__(self, producer_id: _Optional[str] = ..., record: _Optional[_Union[_records_pb2.Record, _Mapping]] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("subject_id", "page_size", "page_token")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    page_size: int
    page_token: str
    def __init__(self, subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportTrainingRecordsRequest(_message.Message):
    __slots__ = ("chunk_size",)
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk_size: int
    def __init__(self, chunk_size: _Optional[int] = ...) -> None: ...

class ExportTrainingRecordsResponse(_message.Message):
    __slots__ = ("records", "skipped_without_consent")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_WITHOUT_CONSENT_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    skipped_without_consent: int
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., skipped_without_consent: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
