"""Every record rule of ingest_service.validation, table-driven, and source_of."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import to_timestamp
from ingest_service.validation import source_of, validate_batch, validate_record

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def ts(value: datetime):
    return to_timestamp(value)


def usd(units: int = 1000) -> r.Money:
    return r.Money(currency_code="USD", minor_units=units)


def base(**body) -> r.Record:
    return r.Record(record_id="rec-1", subject_id="subj_1", event_time=ts(NOW - timedelta(days=1)), **body)


def order() -> r.Record:
    return base(order=r.Order(
        role=r.PARTY_ROLE_BUYER, amount=usd(), placed_time=ts(NOW - timedelta(days=10)),
        outcome=r.ORDER_OUTCOME_COMPLETED, fulfilment_time=ts(NOW - timedelta(days=8))))


def rating() -> r.Record:
    return base(rating=r.Rating(rated_role=r.PARTY_ROLE_SELLER, stars=4))


def bill() -> r.Record:
    return base(bill=r.Bill(
        category=r.BILL_CATEGORY_UTILITY, amount_due=usd(5000), issue_time=ts(NOW - timedelta(days=30)),
        due_time=ts(NOW - timedelta(days=10)), amount_paid=usd(5000), paid_time=ts(NOW - timedelta(days=12))))


def identity() -> r.Record:
    return base(identity=r.IdentityTenure(
        residence_since_time=ts(datetime(1995, 3, 1, tzinfo=UTC)), phone_since_time=ts(NOW - timedelta(days=900)),
        identity_verified=True))


def external() -> r.Record:
    return base(external=r.ExternalRecord(
        kind=r.EXTERNAL_KIND_LOAN_ACCOUNT, institution_type=r.INSTITUTION_TYPE_FINANCIAL_INSTITUTION,
        amount=usd(100000), open_time=ts(NOW - timedelta(days=400)), close_time=ts(NOW - timedelta(days=30)),
        status=r.EXTERNAL_STATUS_CLOSED))


def outcome() -> r.Record:
    return base(loan_outcome=r.LoanOutcome(
        application_time=ts(NOW - timedelta(days=400)), label=r.LOAN_OUTCOME_LABEL_GOOD,
        observed_time=ts(NOW - timedelta(days=30))))


BUILDERS: dict[str, Callable[[], r.Record]] = {
    "order": order, "rating": rating, "bill": bill, "identity": identity, "external": external,
    "loan_outcome": outcome,
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_valid_records_have_no_violations(kind):
    assert validate_record(BUILDERS[kind](), NOW) == []


def _set(path: str, value) -> Callable[[r.Record], None]:
    """A mutation setting a dotted field path (a Timestamp value is copied in)."""
    def apply(rec: r.Record) -> None:
        *parents, leaf = path.split(".")
        msg = rec
        for name in parents:
            msg = getattr(msg, name)
        if hasattr(value, "DESCRIPTOR"):
            getattr(msg, leaf).CopyFrom(value)
        else:
            setattr(msg, leaf, value)
    return apply


def _clear(path: str) -> Callable[[r.Record], None]:
    def apply(rec: r.Record) -> None:
        *parents, leaf = path.split(".")
        msg = rec
        for name in parents:
            msg = getattr(msg, name)
        msg.ClearField(leaf)
    return apply


DAY = timedelta(days=1)

# (builder, mutation, the violation paths expected, a word the description must hold)
CASES = [
    # record envelope
    ("order", _set("record_id", ""), ["record_id"], "printable"),
    ("order", _set("record_id", "x" * 129), ["record_id"], "printable"),
    ("order", _set("record_id", "bad\nid"), ["record_id"], "printable"),
    ("order", _set("record_id", "x" * 128), [], ""),
    ("order", _set("subject_id", ""), ["subject_id"], "A-Za-z0-9"),
    ("order", _set("subject_id", "a b"), ["subject_id"], "A-Za-z0-9"),
    ("order", _set("subject_id", "a.b"), ["subject_id"], "A-Za-z0-9"),
    ("order", _set("subject_id", "x" * 65), ["subject_id"], "A-Za-z0-9"),
    ("order", _set("subject_id", "x" * 64), [], ""),
    ("order", _clear("event_time"), ["event_time"], "must be set"),
    ("order", _set("event_time", ts(datetime(1999, 12, 31, 23, 59, tzinfo=UTC))), ["event_time"], "2000-01-01"),
    ("order", _set("event_time", ts(datetime(2000, 1, 1, tzinfo=UTC))), [], ""),
    ("order", _set("event_time", ts(NOW + timedelta(minutes=6))), ["event_time"], "future"),
    ("order", _set("event_time", ts(NOW + timedelta(minutes=4))), [], ""),
    ("order", _set("event_time.seconds", 10**12), ["event_time"], "valid timestamp"),
    ("order", _clear("order"), ["body"], "must be set"),
    # order
    ("order", _set("order.role", 0), ["order.role"], "must be set"),
    ("order", _set("order.role", 99), ["order.role"], "unknown"),
    ("order", _set("order.outcome", 0), ["order.outcome"], "must be set"),
    ("order", _set("order.outcome", 42), ["order.outcome"], "unknown"),
    ("order", _set("order.amount.currency_code", "usd"), ["order.amount.currency_code"], "upper-case"),
    ("order", _set("order.amount.currency_code", "USDT"), ["order.amount.currency_code"], "upper-case"),
    ("order", _set("order.amount.minor_units", -1), ["order.amount.minor_units"], "negative"),
    ("order", _clear("order.amount"), [], ""),
    ("order", _clear("order.placed_time"), ["order.placed_time"], "must be set"),
    ("order", _set("order.fulfilment_time", ts(NOW - 11 * DAY)), ["order.fulfilment_time"], "placed_time"),
    ("order", _set("order.fulfilment_time", ts(NOW - 10 * DAY)), [], ""),
    ("order", _clear("order.fulfilment_time"), [], ""),
    # rating
    ("rating", _set("rating.rated_role", 0), ["rating.rated_role"], "must be set"),
    ("rating", _set("rating.stars", 0), ["rating.stars"], "1 to 5"),
    ("rating", _set("rating.stars", 6), ["rating.stars"], "1 to 5"),
    ("rating", _set("rating.stars", 1), [], ""),
    ("rating", _set("rating.stars", 5), [], ""),
    # bill
    ("bill", _set("bill.category", 0), ["bill.category"], "must be set"),
    ("bill", _set("bill.category", 7), ["bill.category"], "unknown"),
    ("bill", _clear("bill.amount_due"), ["bill.amount_due"], "must be set"),
    ("bill", _set("bill.amount_due.currency_code", "US"), ["bill.amount_due.currency_code"], "upper-case"),
    ("bill", _set("bill.amount_due.minor_units", -5), ["bill.amount_due.minor_units"], "negative"),
    ("bill", _clear("bill.issue_time"), ["bill.issue_time"], "must be set"),
    ("bill", _clear("bill.due_time"), ["bill.due_time"], "must be set"),
    ("bill", _set("bill.due_time", ts(NOW - 31 * DAY)), ["bill.due_time"], "issue_time"),
    ("bill", _set("bill.paid_time", ts(NOW - 31 * DAY)), ["bill.paid_time"], "issue_time"),
    ("bill", _set("bill.paid_time", ts(NOW - 2 * DAY)), [], ""),  # paid late is a fact, not an error
    ("bill", _clear("bill.amount_paid"), ["bill.amount_paid"], "paid_time"),
    ("bill", lambda rec: (rec.bill.ClearField("amount_paid"), rec.bill.ClearField("paid_time")), [], ""),
    ("bill", _set("bill.amount_paid.currency_code", "EUR"), ["bill.amount_paid.currency_code"], "amount_due"),
    ("bill", _set("bill.amount_paid.minor_units", -1), ["bill.amount_paid.minor_units"], "negative"),
    ("bill", _set("bill.amount_paid.currency_code", "usd"), ["bill.amount_paid.currency_code"], "upper-case"),
    # identity
    ("identity", lambda rec: rec.identity.Clear(), ["identity"], "at least one"),
    ("identity", _set("identity.residence_since_time", ts(NOW + DAY)), ["identity.residence_since_time"], "future"),
    ("identity", _set("identity.phone_since_time", ts(NOW + DAY)), ["identity.phone_since_time"], "future"),
    ("identity", lambda rec: rec.identity.CopyFrom(r.IdentityTenure(identity_verified=False)), [], ""),
    ("identity", lambda rec: rec.identity.CopyFrom(
        r.IdentityTenure(phone_since_time=ts(NOW - DAY))), [], ""),
    # external
    ("external", _set("external.kind", 0), ["external.kind"], "must be set"),
    ("external", _set("external.institution_type", 0), ["external.institution_type"], "must be set"),
    ("external", _set("external.status", 0), ["external.status"], "must be set"),
    ("external", _set("external.status", 77), ["external.status"], "unknown"),
    ("external", _set("external.amount.minor_units", -1), ["external.amount.minor_units"], "negative"),
    ("external", _clear("external.open_time"), ["external.open_time"], "must be set"),
    ("external", _set("external.close_time", ts(NOW - 401 * DAY)), ["external.close_time"], "open_time"),
    ("external", _clear("external.close_time"), [], ""),
    # loan outcome
    ("loan_outcome", _clear("loan_outcome.application_time"), ["loan_outcome.application_time"], "must be set"),
    ("loan_outcome", _set("loan_outcome.label", 0), ["loan_outcome.label"], "must be set"),
    ("loan_outcome", _set("loan_outcome.label", 3), ["loan_outcome.label"], "unknown"),
    ("loan_outcome", _set("loan_outcome.observed_time", ts(NOW - 401 * DAY)),
     ["loan_outcome.observed_time"], "application_time"),
    ("loan_outcome", _clear("loan_outcome.observed_time"), [], ""),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "paths", "word"), CASES,
    ids=[f"{c[0]}-{i}-{'+'.join(c[2]) or 'ok'}" for i, c in enumerate(CASES)],
)
def test_record_rules(kind, mutate, paths, word):
    record = BUILDERS[kind]()
    mutate(record)
    violations = validate_record(record, NOW)
    assert [v.field for v in violations] == paths
    for v in violations:
        assert word in v.description


def test_violations_accumulate_in_field_order():
    assert [v.field for v in validate_record(r.Record(), NOW)] == ["record_id", "subject_id", "event_time", "body"]
    record = bill()
    record.subject_id = ""
    record.bill.category = 0
    record.bill.due_time.CopyFrom(ts(NOW - 40 * DAY))
    assert [v.field for v in validate_record(record, NOW)] == ["subject_id", "bill.category", "bill.due_time"]


@pytest.mark.parametrize(("kind", "source"), [
    ("order", common_pb2.DATA_SOURCE_COMMERCE),
    ("rating", common_pb2.DATA_SOURCE_COMMERCE),
    ("bill", common_pb2.DATA_SOURCE_PAYMENTS),
    ("identity", common_pb2.DATA_SOURCE_IDENTITY),
    ("external", common_pb2.DATA_SOURCE_EXTERNAL),
    ("loan_outcome", common_pb2.DATA_SOURCE_OUTCOMES),
])
def test_source_follows_from_the_body(kind, source):
    assert source_of(BUILDERS[kind]()) == source


def test_a_record_without_body_has_no_source():
    assert source_of(r.Record(record_id="x")) == common_pb2.DATA_SOURCE_UNSPECIFIED


@pytest.mark.parametrize(("request_id", "producer_id", "count", "paths"), [
    ("req-1", "market.place_1", 1, []),
    ("req-1", "p", 1000, []),
    ("", "p", 1, ["request_id"]),
    ("r" * 129, "p", 1, ["request_id"]),
    ("req-1", "", 1, ["producer_id"]),
    ("req-1", "bad producer", 1, ["producer_id"]),
    ("req-1", "p" * 65, 1, ["producer_id"]),
    ("req-1", "p", 0, ["records"]),
    ("req-1", "p", 1001, ["records"]),
    ("", "", 0, ["request_id", "producer_id", "records"]),
])
def test_batch_rules(request_id, producer_id, count, paths):
    assert [v.field for v in validate_batch(request_id, producer_id, count)] == paths


# -- what issue 4 added: revisions, retractions, past times, amounts, repayment statuses --

MORE_CASES = [
    ("bill", _set("revision", -1), ["revision"], "negative"),
    ("bill", _set("revision", 7), [], ""),
    ("bill", _set("retracted", True), ["revision", "bill"], ""),
    ("bill", _set("bill.issue_time", ts(NOW + timedelta(minutes=6))),
     ["bill.issue_time", "bill.due_time", "bill.paid_time"], ""),  # in the future, and due and paid before it
    ("bill", _set("bill.due_time", ts(NOW + 30 * DAY)), [], ""),  # due in the future is a fact
    ("bill", _set("bill.paid_time", ts(NOW + DAY)), ["bill.paid_time"], "future"),
    ("bill", _set("bill.amount_due.minor_units", 10**13), [], ""),
    ("bill", _set("bill.amount_due.minor_units", 10**13 + 1), ["bill.amount_due.minor_units"], "at most"),
    ("order", _set("order.placed_time", ts(NOW + DAY)), ["order.placed_time", "order.fulfilment_time"], ""),
    ("order", _set("order.fulfilment_time", ts(NOW + DAY)), ["order.fulfilment_time"], "future"),
    ("external", _set("external.open_time", ts(NOW + DAY)), ["external.open_time", "external.close_time"], ""),
    ("external", _set("external.close_time", ts(NOW + DAY)), ["external.close_time"], "future"),
    ("external", _set("external.status", r.EXTERNAL_STATUS_ON_TIME), ["external.status"], "repayments only"),
    ("external", lambda rec: (setattr(rec.external, "kind", r.EXTERNAL_KIND_REPAYMENT),
                              setattr(rec.external, "status", r.EXTERNAL_STATUS_OPEN)),
     ["external.status"], "ON_TIME or EXTERNAL_STATUS_LATE"),
    ("external", lambda rec: (setattr(rec.external, "kind", r.EXTERNAL_KIND_REPAYMENT),
                              setattr(rec.external, "status", r.EXTERNAL_STATUS_LATE)), [], ""),
    ("loan_outcome", _set("loan_outcome.application_time", ts(NOW + DAY)),
     ["loan_outcome.application_time", "loan_outcome.observed_time"], ""),
    ("loan_outcome", _set("loan_outcome.observed_time", ts(NOW + DAY)), ["loan_outcome.observed_time"], "future"),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "paths", "word"), MORE_CASES,
    ids=[f"{c[0]}-{i}-{'+'.join(c[2]) or 'ok'}" for i, c in enumerate(MORE_CASES)],
)
def test_more_record_rules(kind, mutate, paths, word):
    record = BUILDERS[kind]()
    mutate(record)
    violations = validate_record(record, NOW)
    assert [v.field for v in violations] == paths
    assert all(word in v.description for v in violations[:1])


def test_a_retraction_carries_a_revision_and_no_body():
    retraction = r.Record(record_id="rec-1", subject_id="subj_1", event_time=ts(NOW), revision=2, retracted=True)
    assert validate_record(retraction, NOW) == []
    retraction.revision = 0
    assert [(v.field, "at least 1" in v.description) for v in validate_record(retraction, NOW)] == [
        ("revision", True)]
    with_body = bill()
    with_body.revision, with_body.retracted = 1, True
    assert [(v.field, v.description) for v in validate_record(with_body, NOW)] == [
        ("bill", "must not be set on a retraction")]
