"""Validation of ingest batches and of single records, and the source of a record.

Pure functions: no gRPC, no database, no clock of their own (``now`` is passed in),
so that every rule can be tested on its own. Violations carry paths relative to the
record (``bill.amount_due.currency_code``); the caller adds the record's index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2
from creditscore.runtime import SUBJECT_ID_RULE, FieldViolation, is_subject_id

__all__ = [
    "CLOCK_SKEW",
    "EARLIEST_EVENT_TIME",
    "MAX_BATCH_RECORDS",
    "MAX_MINOR_UNITS",
    "MAX_RECORD_ID_LENGTH",
    "is_valid_request_id",
    "is_valid_producer_id",
    "source_of",
    "validate_batch",
    "validate_record",
]

MAX_BATCH_RECORDS = 1000
"""Most records one IngestRecords call may carry (the contract says 1 to 1000)."""

EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""No record states a fact older than this: earlier event times are typos."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far a producer's clock may run ahead of ours before a time counts as future."""

MAX_MINOR_UNITS = 10**13
"""The largest amount a record may state, in minor units (100 billion in a
currency with cents): anything larger is a unit mix-up, and would swamp every
sum it enters."""

MAX_RECORD_ID_LENGTH = 128
"""Longest record id (and request id): printable characters only."""

_PRODUCER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_RECORD_ID = MAX_RECORD_ID_LENGTH
_MAX_REQUEST_ID = 128
_REPAYMENT_STATUSES = frozenset((records_pb2.EXTERNAL_STATUS_ON_TIME, records_pb2.EXTERNAL_STATUS_LATE))

# The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799

_SOURCE_BY_BODY: dict[str, int] = {
    "order": common_pb2.DATA_SOURCE_COMMERCE,
    "rating": common_pb2.DATA_SOURCE_COMMERCE,
    "bill": common_pb2.DATA_SOURCE_PAYMENTS,
    "identity": common_pb2.DATA_SOURCE_IDENTITY,
    "external": common_pb2.DATA_SOURCE_EXTERNAL,
    "loan_outcome": common_pb2.DATA_SOURCE_OUTCOMES,
}


def source_of(record: records_pb2.Record) -> int:
    """The ``common_pb2.DataSource`` a record belongs to, which follows from its body
    (order and rating: COMMERCE, bill: PAYMENTS, identity: IDENTITY, external:
    EXTERNAL, loan_outcome: OUTCOMES); DATA_SOURCE_UNSPECIFIED when no body is set."""
    body = record.WhichOneof("body")
    if body is None:
        return common_pb2.DATA_SOURCE_UNSPECIFIED
    return _SOURCE_BY_BODY[body]


def _is_printable_id(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def is_valid_request_id(value: str) -> bool:
    """A request (or chunk) id: 1 to 128 printable characters."""
    return _is_printable_id(value, _MAX_REQUEST_ID)


def is_valid_producer_id(value: str) -> bool:
    """A producer id: 1 to 64 characters of ``[A-Za-z0-9_.-]``."""
    return _PRODUCER_ID.fullmatch(value) is not None


def validate_batch(request_id: str, producer_id: str, record_count: int) -> list[FieldViolation]:
    """What is wrong with an IngestRecords call (or one chunk of a stream) as a
    whole, not with its records: ``request_id`` set, ``producer_id`` 1 to 64 of
    ``[A-Za-z0-9_.-]``, 1 to 1000 records."""
    out: list[FieldViolation] = []
    if not request_id:
        out.append(FieldViolation("request_id", "must be set"))
    elif not is_valid_request_id(request_id):
        out.append(
            FieldViolation("request_id", f"must be 1 to {_MAX_REQUEST_ID} printable characters")
        )
    if not producer_id:
        out.append(FieldViolation("producer_id", "must be set"))
    elif not is_valid_producer_id(producer_id):
        out.append(FieldViolation("producer_id", "must be 1 to 64 characters of [A-Za-z0-9_.-]"))
    if not 1 <= record_count <= MAX_BATCH_RECORDS:
        out.append(
            FieldViolation(
                "records", f"must hold 1 to {MAX_BATCH_RECORDS} records, not {record_count}"
            )
        )
    return out


_NS = 1_000_000_000
_EARLIEST_NS = int(EARLIEST_EVENT_TIME.timestamp()) * _NS
_SKEW_NS = int(CLOCK_SKEW.total_seconds()) * _NS


class _Checker:
    """Collects the violations of one record; helpers return the parsed value or
    None (unset or invalid, the violation already noted) so rules can chain.
    Times are compared as integer nanoseconds since the epoch: exact, and without
    building a datetime per timestamp (the hot path of ingestion)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.latest_ns = (int(now.timestamp()) * _NS + now.microsecond * 1000) + _SKEW_NS
        self.violations: list[FieldViolation] = []

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def time(self, message: Any, name: str, path: str, *, required: bool) -> int | None:
        """The timestamp in nanoseconds, or None (unset, or invalid and reported)."""
        if not message.HasField(name):
            if required:
                self.add(path, "must be set")
            return None
        ts: timestamp_pb2.Timestamp = getattr(message, name)
        seconds, nanos = ts.seconds, ts.nanos
        if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos <= 999_999_999):
            self.add(path, "is not a valid timestamp")
            return None
        return seconds * _NS + nanos

    def not_future(self, value: int | None, path: str) -> None:
        if value is not None and value > self.latest_ns:
            self.add(path, "must not be in the future")

    def not_before(self, later: int | None, earlier: int | None, path: str, other: str) -> None:
        if later is not None and earlier is not None and later < earlier:
            self.add(path, f"must not be before {other}")

    def enum(self, value: int, descriptor: EnumDescriptor, path: str) -> None:
        if value == 0:
            self.add(path, "must be set")
        elif value not in descriptor.values_by_number:
            self.add(path, f"unknown {descriptor.name} value {value}")

    def money(
        self, message: Any, name: str, path: str, *, required: bool
    ) -> records_pb2.Money | None:
        if not message.HasField(name):
            if required:
                self.add(path, "must be set")
            return None
        money: records_pb2.Money = getattr(message, name)
        if _CURRENCY.fullmatch(money.currency_code) is None:
            self.add(f"{path}.currency_code", "must be three upper-case letters (ISO 4217)")
        if money.minor_units < 0:
            self.add(f"{path}.minor_units", "must not be negative")
        elif money.minor_units > MAX_MINOR_UNITS:
            self.add(f"{path}.minor_units", f"must be at most {MAX_MINOR_UNITS}")
        return money

    def past_time(self, message: Any, name: str, path: str, *, required: bool) -> int | None:
        """A time that states a fact that already happened: not in the future."""
        value = self.time(message, name, path, required=required)
        self.not_future(value, path)
        return value


def _order(c: _Checker, order: records_pb2.Order) -> None:
    c.enum(order.role, records_pb2.PartyRole.DESCRIPTOR, "order.role")
    c.money(order, "amount", "order.amount", required=False)
    placed = c.past_time(order, "placed_time", "order.placed_time", required=True)
    c.enum(order.outcome, records_pb2.OrderOutcome.DESCRIPTOR, "order.outcome")
    fulfilled = c.past_time(order, "fulfilment_time", "order.fulfilment_time", required=False)
    c.not_before(fulfilled, placed, "order.fulfilment_time", "placed_time")


def _rating(c: _Checker, rating: records_pb2.Rating) -> None:
    c.enum(rating.rated_role, records_pb2.PartyRole.DESCRIPTOR, "rating.rated_role")
    if not 1 <= rating.stars <= 5:
        c.add("rating.stars", "must be 1 to 5")


def _bill(c: _Checker, bill: records_pb2.Bill) -> None:
    c.enum(bill.category, records_pb2.BillCategory.DESCRIPTOR, "bill.category")
    due_amount = c.money(bill, "amount_due", "bill.amount_due", required=True)
    issued = c.past_time(bill, "issue_time", "bill.issue_time", required=True)
    # A bill may fall due in the future (issued, not yet due); it cannot be paid there.
    due = c.time(bill, "due_time", "bill.due_time", required=True)
    c.not_before(due, issued, "bill.due_time", "issue_time")
    paid_amount = c.money(bill, "amount_paid", "bill.amount_paid", required=False)
    paid = c.past_time(bill, "paid_time", "bill.paid_time", required=False)
    c.not_before(paid, issued, "bill.paid_time", "issue_time")
    if bill.HasField("paid_time") and paid_amount is None:
        c.add("bill.amount_paid", "must be set when paid_time is set")
    if (
        due_amount is not None
        and paid_amount is not None
        and _CURRENCY.fullmatch(due_amount.currency_code) is not None
        and _CURRENCY.fullmatch(paid_amount.currency_code) is not None
        and due_amount.currency_code != paid_amount.currency_code
    ):
        c.add("bill.amount_paid.currency_code", "must be the currency of amount_due")


def _identity(c: _Checker, identity: records_pb2.IdentityTenure) -> None:
    fields: tuple[Literal["residence_since_time", "phone_since_time", "identity_verified"], ...] = (
        "residence_since_time", "phone_since_time", "identity_verified")
    if not any(identity.HasField(name) for name in fields):
        c.add("identity", "must set at least one of " + ", ".join(fields))
    for name in fields[:2]:
        c.not_future(c.time(identity, name, f"identity.{name}", required=False), f"identity.{name}")


def _external(c: _Checker, external: records_pb2.ExternalRecord) -> None:
    c.enum(external.kind, records_pb2.ExternalKind.DESCRIPTOR, "external.kind")
    c.enum(
        external.institution_type,
        records_pb2.InstitutionType.DESCRIPTOR,
        "external.institution_type",
    )
    c.money(external, "amount", "external.amount", required=False)
    opened = c.past_time(external, "open_time", "external.open_time", required=True)
    closed = c.past_time(external, "close_time", "external.close_time", required=False)
    c.not_before(closed, opened, "external.close_time", "open_time")
    c.enum(external.status, records_pb2.ExternalStatus.DESCRIPTOR, "external.status")
    # ON_TIME and LATE say how a repayment went, and only that (checked once both
    # the kind and the status are known values, each reported above otherwise).
    status, kind = external.status, external.kind
    known = records_pb2.ExternalStatus.DESCRIPTOR.values_by_number
    kinds = records_pb2.ExternalKind.DESCRIPTOR.values_by_number
    if status and kind and status in known and kind in kinds:
        repayment = kind == records_pb2.EXTERNAL_KIND_REPAYMENT
        if repayment and status not in _REPAYMENT_STATUSES:
            c.add("external.status", "must be EXTERNAL_STATUS_ON_TIME or EXTERNAL_STATUS_LATE for a repayment")
        elif not repayment and status in _REPAYMENT_STATUSES:
            c.add("external.status", "ON_TIME and LATE are for repayments only")


def _loan_outcome(c: _Checker, outcome: records_pb2.LoanOutcome) -> None:
    applied = c.past_time(outcome, "application_time", "loan_outcome.application_time", required=True)
    c.enum(outcome.label, records_pb2.LoanOutcomeLabel.DESCRIPTOR, "loan_outcome.label")
    observed = c.past_time(outcome, "observed_time", "loan_outcome.observed_time", required=False)
    c.not_before(observed, applied, "loan_outcome.observed_time", "application_time")


_BODY_RULES: dict[str, Callable[[_Checker, Any], None]] = {
    "order": _order,
    "rating": _rating,
    "bill": _bill,
    "identity": _identity,
    "external": _external,
    "loan_outcome": _loan_outcome,
}


def validate_record(record: records_pb2.Record, now: datetime) -> list[FieldViolation]:
    """Every violation of one record, in field order; empty when it is valid.

    ``now`` is the ingest clock: event times and every time that states a past
    fact (placed, fulfilled, issued, paid, opened, closed, applied, observed,
    since) may run ahead of it by at most ``CLOCK_SKEW``; a bill's due time may
    be later. A retraction (``retracted``) carries a revision of at least 1 and
    no body; any other record carries a body.
    """
    c = _Checker(now)
    if not _is_printable_id(record.record_id, _MAX_RECORD_ID):
        c.add("record_id", f"must be 1 to {_MAX_RECORD_ID} printable characters")
    if not is_subject_id(record.subject_id):
        c.add("subject_id", SUBJECT_ID_RULE)
    event = c.time(record, "event_time", "event_time", required=True)
    if event is not None and event < _EARLIEST_NS:
        c.add("event_time", "must not be before 2000-01-01")
    c.not_future(event, "event_time")
    if record.revision < 0:
        c.add("revision", "must not be negative")
    elif record.retracted and record.revision == 0:
        c.add("revision", "must be at least 1 on a retraction: it replaces a version sent before")
    body = record.WhichOneof("body")
    if record.retracted:
        if body is not None:
            c.add(body, "must not be set on a retraction")
    elif body is None:
        c.add("body", "must be set: one of " + ", ".join(_BODY_RULES))
    else:
        _BODY_RULES[body](c, getattr(record, body))
    return c.violations
