"""unapply_record is the exact inverse of apply_record: taking a record out (and
repairing what it names from the remaining records) gives, byte for byte, the
state of never having applied it, on the same horizon."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from creditscore.features.engine import (
    Repairs,
    SubjectState,
    advance_horizon,
    apply_record,
    feature_vector,
    repair,
    unapply_record,
)
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import simulate

SUBJECT = "subj-1"


def at(y: int, m: int, d: int, h: int = 12) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def s(value: datetime) -> int:
    return int(value.timestamp())


def state_of(records: list[R.Record]) -> SubjectState:
    state = SubjectState()
    for record in records:
        apply_record(state, record)
    return state


def without(records: list[R.Record], x: R.Record) -> list[R.Record]:
    rest = list(records)
    rest.remove(x)
    return rest


def take_out(state: SubjectState, records: list[R.Record], x: R.Record) -> None:
    """What the service does: unapply the version it applied, then repair from
    the subject's remaining records."""
    needs = unapply_record(state, x)
    repair(state, needs, without(records, x))


def assert_inverse(records: list[R.Record], x: R.Record, *, when: datetime) -> None:
    full = state_of(records)
    take_out(full, records, x)
    expected = state_of(without(records, x))
    assert full.last_month is not None
    advance_horizon(expected, full.last_month)
    assert full.to_json() == expected.to_json()
    assert feature_vector(full, when) == feature_vector(expected, when)


# -- a random history of every kind of record ---------------------------------------------


class History:
    """Random records of every kind over ``years`` years ending in 2026, with
    shared loan identities, several late bills per month and repeated identity
    reports, so that maxima, multisets, folding and pruning are all exercised."""

    def __init__(self, seed: int, *, years: int = 9) -> None:
        self.rng = random.Random(seed)
        self.start = s(at(2026 - years, 1, 1))
        self.end = s(at(2026, 6, 30))
        self.n = 0

    def time(self) -> int:
        return self.rng.randrange(self.start, self.end)

    def record(self, t: int) -> R.Record:
        self.n += 1
        record = R.Record(record_id=f"r{self.n}", subject_id=SUBJECT)
        record.event_time.seconds = t
        return record

    def bill(self) -> R.Record:
        due = self.time()
        r = self.record(due)
        b = r.bill
        b.category = self.rng.choice([R.BILL_CATEGORY_UTILITY, R.BILL_CATEGORY_TELECOM, R.BILL_CATEGORY_RENT])
        b.amount_due.currency_code = "USD"
        b.amount_due.minor_units = self.rng.choice([1000, 2500])
        b.due_time.seconds = due
        if self.rng.random() < 0.8:
            paid = due + self.rng.choice([-86_400, 0, 3600, 3 * 86_400, 10 * 86_400, 40 * 86_400])
            b.paid_time.seconds = paid
            b.amount_paid.minor_units = b.amount_due.minor_units
            r.event_time.seconds = max(due, paid)
        return r

    def order(self) -> R.Record:
        placed = self.time()
        r = self.record(placed + 86_400)
        o = r.order
        o.role = self.rng.choice([R.PARTY_ROLE_BUYER, R.PARTY_ROLE_SELLER])
        o.outcome = self.rng.randrange(1, 7)
        o.placed_time.seconds = placed
        if self.rng.random() < 0.6:
            o.fulfilment_time.seconds = placed + 86_400
        return r

    def rating(self) -> R.Record:
        r = self.record(self.time())
        r.rating.rated_role = self.rng.choice([R.PARTY_ROLE_BUYER, R.PARTY_ROLE_SELLER])
        r.rating.stars = self.rng.randrange(1, 6)
        return r

    def identity(self) -> R.Record:
        t = self.time()
        r = self.record(t)
        r.identity.SetInParent()
        if self.rng.random() < 0.6:
            r.identity.residence_since_time.seconds = t - self.rng.randrange(0, 3) * 86_400 * 365
        if self.rng.random() < 0.6:
            r.identity.phone_since_time.seconds = t - self.rng.randrange(0, 5) * 86_400 * 200
        if self.rng.random() < 0.5:
            r.identity.identity_verified = self.rng.random() < 0.5
        return r

    def external(self, loans: list[tuple[int, int]]) -> R.Record:
        t = self.time()
        r = self.record(t)
        e = r.external
        e.institution_type = R.INSTITUTION_TYPE_FINANCIAL_INSTITUTION
        e.amount.currency_code = "USD"
        kind = self.rng.choice([
            R.EXTERNAL_KIND_LOAN_ACCOUNT, R.EXTERNAL_KIND_LOAN_ACCOUNT, R.EXTERNAL_KIND_REPAYMENT,
            R.EXTERNAL_KIND_DELINQUENCY, R.EXTERNAL_KIND_COLLECTION, R.EXTERNAL_KIND_COURT_JUDGMENT,
            R.EXTERNAL_KIND_OTHER,
        ])
        e.kind = kind
        if kind == R.EXTERNAL_KIND_LOAN_ACCOUNT:
            if loans and self.rng.random() < 0.6:
                opened, amount = self.rng.choice(loans)  # another report of a known loan
            else:
                opened, amount = t - self.rng.randrange(0, 400) * 86_400, self.rng.randrange(1, 4) * 10_000
                loans.append((opened, amount))
            e.open_time.seconds = opened
            e.amount.minor_units = amount
            e.status = self.rng.choice([R.EXTERNAL_STATUS_OPEN, R.EXTERNAL_STATUS_CLOSED, R.EXTERNAL_STATUS_SETTLED])
            if e.status != R.EXTERNAL_STATUS_OPEN and self.rng.random() < 0.5:
                e.close_time.seconds = max(opened, t - self.rng.randrange(0, 30) * 86_400)
        elif kind == R.EXTERNAL_KIND_REPAYMENT:
            e.status = self.rng.choice([R.EXTERNAL_STATUS_ON_TIME, R.EXTERNAL_STATUS_LATE])
        else:
            e.status = R.EXTERNAL_STATUS_OPEN
        return r

    def records(self, count: int) -> list[R.Record]:
        loans: list[tuple[int, int]] = []
        makers = [self.bill, self.bill, self.bill, self.order, self.rating, self.identity,
                  lambda: self.external(loans)]
        out = [self.rng.choice(makers)() for _ in range(count)]
        if self.rng.random() < 0.3:  # an outcome among them: ignored both ways
            outcome = self.record(self.time())
            outcome.loan_outcome.label = R.LOAN_OUTCOME_LABEL_BAD
            outcome.loan_outcome.application_time.seconds = self.time()
            out.append(outcome)
        self.rng.shuffle(out)
        return out


@pytest.mark.parametrize("seed", range(60))
def test_taking_any_record_out_of_a_random_history_is_exact(seed):
    history = History(seed)
    records = history.records(40)
    rng = random.Random(seed)
    for x in rng.sample(records, 12):
        assert_inverse(records, x, when=at(2026, 7, 1))


@pytest.mark.parametrize("seed", range(20))
def test_taking_out_several_records_one_after_another_is_exact(seed):
    records = History(1000 + seed).records(50)
    state = state_of(records)
    remaining = list(records)
    for x in random.Random(seed).sample(records, 25):
        needs = unapply_record(state, x)
        remaining.remove(x)
        repair(state, needs, remaining)
    expected = state_of(remaining)
    assert state.last_month is not None
    advance_horizon(expected, state.last_month)
    assert state == expected


def test_taking_out_every_record_leaves_the_empty_state_on_the_same_horizon():
    records = History(7).records(60)
    state = state_of(records)
    for i, x in enumerate(records):
        repair(state, unapply_record(state, x), records[i + 1:])
    empty = SubjectState()
    assert state.last_month is not None
    advance_horizon(empty, state.last_month)
    assert state == empty
    assert all(value is None for value in feature_vector(state, at(2026, 7, 1)).values())


def test_simulated_histories_come_back_exactly():
    population = simulate(30, seed=11)
    by_subject: dict[str, list[R.Record]] = {}
    for record in population.records:
        by_subject.setdefault(record.subject_id, []).append(record)
    rng = random.Random(3)
    checked = 0
    for records in list(by_subject.values())[:15]:
        for x in rng.sample(records, min(6, len(records))):
            assert_inverse(records, x, when=population.as_of)
            checked += 1
    assert checked > 50


# -- what each inverse restores, by hand ----------------------------------------------------


def bill(record_id: str, due: datetime, paid: datetime | None, amount: int = 1000) -> R.Record:
    r = R.Record(record_id=record_id, subject_id=SUBJECT)
    r.event_time.seconds = s(paid or due)
    r.bill.category = R.BILL_CATEGORY_UTILITY
    r.bill.amount_due.currency_code = "USD"
    r.bill.amount_due.minor_units = amount
    r.bill.due_time.seconds = s(due)
    if paid is not None:
        r.bill.paid_time.seconds = s(paid)
        r.bill.amount_paid.minor_units = amount
    return r


def test_worst_days_late_comes_back_from_the_month_multiset():
    due = at(2026, 3, 10)
    ten, three, three_again = (bill("a", due, due + timedelta(days=10)), bill("b", due, due + timedelta(days=3)),
                               bill("c", due, due + timedelta(days=3)))
    records = [ten, three, three_again, bill("d", due, due)]
    state = state_of(records)
    assert feature_vector(state, at(2026, 4, 1))["pay_worst_days_late_12m"] == 10.0
    take_out(state, records, ten)
    assert feature_vector(state, at(2026, 4, 1))["pay_worst_days_late_12m"] == 3.0
    records.remove(ten)
    take_out(state, records, three)
    assert feature_vector(state, at(2026, 4, 1))["pay_worst_days_late_12m"] == 3.0  # the other 3-day bill
    records.remove(three)
    take_out(state, records, three_again)
    v = feature_vector(state, at(2026, 4, 1))
    assert (v["pay_worst_days_late_12m"], v["pay_ontime_ratio_12m"]) == (0.0, 1.0)


def test_a_bill_corrected_to_paid_moves_from_unpaid_to_on_time():
    due = at(2026, 3, 10)
    unpaid = bill("b1", due, None, amount=12_345)
    unpaid.event_time.seconds = s(at(2026, 4, 9))
    state = state_of([unpaid])
    before = feature_vector(state, at(2026, 4, 20))
    assert (before["pay_unpaid_past_due_amount"], before["pay_bills_paid_count"]) == (123.45, 0.0)
    paid = bill("b1", due, due - timedelta(days=1), amount=12_345)
    paid.revision = 1
    repair(state, unapply_record(state, unpaid), [])
    apply_record(state, paid)
    after = feature_vector(state, at(2026, 4, 20))
    assert (after["pay_unpaid_past_due_amount"], after["pay_bills_paid_count"]) == (0.0, 1.0)
    assert (after["pay_ontime_ratio_12m"], after["pay_worst_days_late_12m"]) == (1.0, 0.0)
    expected = state_of([paid])
    advance_horizon(expected, state.last_month)  # the anchor stays where the unpaid version put it
    assert state == expected


def test_an_unpaid_bill_folded_beyond_the_horizon_comes_out_of_the_folded_amount():
    old = bill("old", at(2016, 1, 10), None, amount=700)
    new = bill("new", at(2026, 1, 10), at(2026, 1, 9))
    records = [old, new]
    state = state_of(records)
    assert state.unpaid == [] and state.unpaid_folded == 700
    take_out(state, records, old)
    assert state.unpaid_folded == 0 and feature_vector(state, at(2026, 2, 1))["pay_unpaid_past_due_amount"] == 0.0


def test_retracting_the_close_of_an_old_loan_reopens_it():
    def loan(record_id: str, t: datetime, closed: datetime | None) -> R.Record:
        r = R.Record(record_id=record_id, subject_id=SUBJECT)
        r.event_time.seconds = s(t)
        e = r.external
        e.kind, e.institution_type = R.EXTERNAL_KIND_LOAN_ACCOUNT, R.INSTITUTION_TYPE_FINANCIAL_INSTITUTION
        e.amount.currency_code, e.amount.minor_units = "USD", 50_000
        e.open_time.seconds = s(at(2012, 5, 1))
        e.status = R.EXTERNAL_STATUS_OPEN if closed is None else R.EXTERNAL_STATUS_CLOSED
        if closed is not None:
            e.close_time.seconds = s(closed)
        return r

    opened, closed = loan("l1", at(2012, 5, 1), None), loan("l2", at(2013, 5, 1), at(2013, 5, 1))
    records = [opened, closed, bill("b", at(2026, 1, 10), at(2026, 1, 9))]  # the horizon moves far past 2013
    state = state_of(records)
    assert feature_vector(state, at(2026, 2, 1))["ext_open_loans"] == 0.0
    take_out(state, records, closed)
    assert feature_vector(state, at(2026, 2, 1))["ext_open_loans"] == 1.0


def test_retracting_the_winning_identity_report_brings_back_the_one_before():
    def identity(record_id: str, t: datetime, residence: datetime) -> R.Record:
        r = R.Record(record_id=record_id, subject_id=SUBJECT)
        r.event_time.seconds = s(t)
        r.identity.residence_since_time.seconds = s(residence)
        return r

    first, moved = identity("i1", at(2025, 1, 1), at(2020, 1, 1)), identity("i2", at(2026, 1, 10), at(2026, 1, 1))
    records = [first, moved]
    state = state_of(records)
    assert feature_vector(state, at(2026, 3, 1))["identity_months_at_residence"] == 2.0
    needs = unapply_record(state, moved)
    assert needs.identity == frozenset({"residence"}) and not needs.first_time
    repair(state, needs, [first])
    assert feature_vector(state, at(2026, 3, 1))["identity_months_at_residence"] == 74.0
    # Taking out a report that had lost needs no identity repair (only the first
    # record time, as it was the earliest record).
    state = state_of(records)
    assert unapply_record(state, first) == Repairs(first_time=True)


def test_retracting_the_earliest_record_moves_the_history_start():
    early, later = bill("e", at(2024, 1, 10), at(2024, 1, 10)), bill("l", at(2025, 6, 10), at(2025, 6, 10))
    records = [early, later]
    state = state_of(records)
    assert feature_vector(state, at(2026, 1, 10))["history_months"] == 24.0
    needs = unapply_record(state, early)
    assert needs.first_time
    repair(state, needs, [later])
    assert feature_vector(state, at(2026, 1, 10))["history_months"] == 7.0
