"""Request validation: every field of a request is checked before anything is
applied, and all bad fields are reported at once (``google.rpc.BadRequest``).

The feature service receives records the ingest service already accepted, so a bad
record here means a bug upstream: the whole batch is refused and nothing applied.
Only what the feature engine relies on is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf import timestamp_pb2

from creditscore.feature.v1 import feature_pb2
from creditscore.records.v1 import records_pb2 as _R
from creditscore.runtime import Violations, check_subject_id, from_timestamp

from .store import MAX_ID_LENGTH

__all__ = [
    "MAX_RECORDS_PER_BATCH",
    "MAX_SUBJECTS_PER_BATCH",
    "FeatureQuery",
    "validate_apply_records",
    "validate_get_current_scores",
    "validate_get_feature_vector",
    "validate_get_feature_vectors",
]

MAX_RECORDS_PER_BATCH = 1000
#: Most subject ids in one GetFeatureVectors or GetCurrentScores.
MAX_SUBJECTS_PER_BATCH = 256

# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799

_ROLES = (_R.PARTY_ROLE_BUYER, _R.PARTY_ROLE_SELLER)


@dataclass(frozen=True)
class FeatureQuery:
    """A validated GetFeatureVector request."""

    subject_id: str
    as_of: datetime | None  # None: now


def _check_id(v: Violations, value: str, path: str) -> None:
    if v.check(bool(value), path, "must be set"):
        v.check(len(value) <= MAX_ID_LENGTH, path, f"must be at most {MAX_ID_LENGTH} characters")


def _valid_timestamp(message: object, field_name: str) -> bool:
    ts: timestamp_pb2.Timestamp = getattr(message, field_name)
    return _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000


def _check_time(v: Violations, message: object, field_name: str, path: str, *, required: bool) -> None:
    if not message.HasField(field_name):  # type: ignore[attr-defined]
        if required:
            v.add(path, "must be set")
        return
    v.check(_valid_timestamp(message, field_name), path, "must be a valid timestamp")


def _check_money(v: Violations, message: object, field_name: str, path: str) -> None:
    if message.HasField(field_name):  # type: ignore[attr-defined]
        v.check(getattr(message, field_name).minor_units >= 0, f"{path}.minor_units", "must not be negative")


def _check_body(v: Violations, record: _R.Record, path: str) -> None:
    body = record.WhichOneof("body")
    v.check(record.revision >= 0, f"{path}.revision", "must not be negative")
    if record.retracted:
        # A retraction takes the applied version out; it carries nothing to apply.
        v.check(record.revision >= 1, f"{path}.revision", "must be at least 1 on a retraction")
        v.check(body is None, f"{path}.{body}", "must not be set on a retraction")
        return
    if body is None:
        v.add(f"{path}.body", "must be set: one of order, rating, bill, identity, external, loan_outcome")
        return
    at = f"{path}.{body}"
    if body == "bill":
        bill = record.bill
        _check_time(v, bill, "due_time", f"{at}.due_time", required=True)
        _check_time(v, bill, "paid_time", f"{at}.paid_time", required=False)
        _check_money(v, bill, "amount_due", f"{at}.amount_due")
        _check_money(v, bill, "amount_paid", f"{at}.amount_paid")
    elif body == "order":
        order = record.order
        v.check(order.role in _ROLES, f"{at}.role", "must be PARTY_ROLE_BUYER or PARTY_ROLE_SELLER")
        v.check(order.outcome != _R.ORDER_OUTCOME_UNSPECIFIED, f"{at}.outcome", "must be set")
        _check_time(v, order, "placed_time", f"{at}.placed_time", required=True)
        _check_time(v, order, "fulfilment_time", f"{at}.fulfilment_time", required=False)
        _check_money(v, order, "amount", f"{at}.amount")
    elif body == "rating":
        rating = record.rating
        v.check(rating.rated_role in _ROLES, f"{at}.rated_role", "must be PARTY_ROLE_BUYER or PARTY_ROLE_SELLER")
        v.check(1 <= rating.stars <= 5, f"{at}.stars", "must be 1 to 5")
    elif body == "identity":
        identity = record.identity
        _check_time(v, identity, "residence_since_time", f"{at}.residence_since_time", required=False)
        _check_time(v, identity, "phone_since_time", f"{at}.phone_since_time", required=False)
    elif body == "external":
        external = record.external
        v.check(external.kind != _R.EXTERNAL_KIND_UNSPECIFIED, f"{at}.kind", "must be set")
        _check_time(v, external, "open_time", f"{at}.open_time", required=False)
        _check_time(v, external, "close_time", f"{at}.close_time", required=False)
        _check_money(v, external, "amount", f"{at}.amount")
    # loan_outcome: claimed for idempotency, never read by the feature engine.


def validate_apply_records(
    request: feature_pb2.ApplyRecordsRequest, *, latest_allowed: datetime
) -> list[tuple[str, _R.Record]]:
    """The ``(producer_id, record)`` pairs of a valid request; otherwise raises
    ``InvalidArgument`` with one violation per bad field, e.g.
    ``records[2].record.subject_id``. Event times after ``latest_allowed`` are refused."""
    v = Violations()
    _check_id(v, request.request_id, "request_id")
    count = len(request.records)
    v.check(
        1 <= count <= MAX_RECORDS_PER_BATCH, "records", f"must hold 1 to {MAX_RECORDS_PER_BATCH} records"
    )
    if count <= MAX_RECORDS_PER_BATCH:
        latest = int(latest_allowed.timestamp())
        for i, envelope in enumerate(request.records):
            path = f"records[{i}]"
            _check_id(v, envelope.producer_id, f"{path}.producer_id")
            if not envelope.HasField("record"):
                v.add(f"{path}.record", "must be set")
                continue
            record = envelope.record
            at = f"{path}.record"
            _check_id(v, record.record_id, f"{at}.record_id")
            check_subject_id(v, record.subject_id, f"{at}.subject_id")
            if record.HasField("event_time"):
                if not _valid_timestamp(record, "event_time"):
                    v.add(f"{at}.event_time", "must be a valid timestamp")
                else:
                    v.check(record.event_time.seconds <= latest, f"{at}.event_time", "must not be in the future")
            else:
                v.add(f"{at}.event_time", "must be set")
            _check_body(v, record, at)
    v.raise_if_any("the ApplyRecords request is not valid")
    return [(envelope.producer_id, envelope.record) for envelope in request.records]


def validate_get_feature_vector(
    request: feature_pb2.GetFeatureVectorRequest, *, latest_allowed: datetime
) -> FeatureQuery:
    """The subject and as-of time of a valid request; otherwise ``InvalidArgument``.
    An as-of time after ``latest_allowed`` (now plus clock skew) is refused."""
    v = Violations()
    check_subject_id(v, request.subject_id)
    as_of: datetime | None = None
    if request.HasField("as_of_time"):
        if not _valid_timestamp(request, "as_of_time"):
            v.add("as_of_time", "must be a valid timestamp")
        else:
            as_of = from_timestamp(request, "as_of_time")
            assert as_of is not None
            v.check(as_of <= latest_allowed, "as_of_time", "must not be in the future")
    v.raise_if_any("the GetFeatureVector request is not valid")
    return FeatureQuery(subject_id=request.subject_id, as_of=as_of)


def validate_get_feature_vectors(request: feature_pb2.GetFeatureVectorsRequest) -> list[str]:
    """The subject ids of a valid request, in request order (repeats kept);
    otherwise ``InvalidArgument`` naming the list (``subject_ids``: 1 to
    ``MAX_SUBJECTS_PER_BATCH``) or each bad id (``subject_ids[i]``)."""
    return _subject_ids(request.subject_ids, "GetFeatureVectors")


def validate_get_current_scores(request: feature_pb2.GetCurrentScoresRequest) -> list[str]:
    """As ``validate_get_feature_vectors``: the subject ids of a valid request, in
    request order (repeats kept); otherwise ``InvalidArgument``."""
    return _subject_ids(request.subject_ids, "GetCurrentScores")


def _subject_ids(subject_ids: Sequence[str], rpc: str) -> list[str]:
    v = Violations()
    count = len(subject_ids)
    if v.check(
        1 <= count <= MAX_SUBJECTS_PER_BATCH,
        "subject_ids",
        f"must hold 1 to {MAX_SUBJECTS_PER_BATCH} subject ids",
    ):
        for i, subject_id in enumerate(subject_ids):
            check_subject_id(v, subject_id, f"subject_ids[{i}]")
    v.raise_if_any(f"the {rpc} request is not valid")
    return list(subject_ids)
