"""The feature engine against small histories computed by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import (
    MONTHS_KEPT,
    SubjectState,
    apply_record,
    feature_vector,
    month_index,
    months_between,
)
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import simulate

SUBJECT = "subj-1"
_ids = iter(range(1, 1_000_000))


def at(y: int, m: int, d: int, h: int = 12, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=UTC)


def s(value: datetime) -> int:
    return int(value.timestamp())


def _record(event: datetime) -> R.Record:
    record = R.Record(record_id=f"r-{next(_ids)}", subject_id=SUBJECT)
    record.event_time.seconds = s(event)
    return record


def bill(due: datetime, paid: datetime | None = None, *, amount: int = 1000,
         category: int = R.BILL_CATEGORY_UTILITY, event: datetime | None = None) -> R.Record:
    record = _record(event or paid or due)
    b = record.bill
    b.category = category
    b.amount_due.currency_code = "USD"
    b.amount_due.minor_units = amount
    b.due_time.seconds = s(due)
    b.amount_paid.currency_code = "USD"
    if paid is not None:
        b.amount_paid.minor_units = amount
        b.paid_time.seconds = s(paid)
    return record


def order(role: int, outcome: int, placed: datetime, *, fulfilled: datetime | None = None,
          event: datetime | None = None) -> R.Record:
    record = _record(event or fulfilled or placed)
    o = record.order
    o.role = role
    o.outcome = outcome
    o.amount.currency_code = "USD"
    o.amount.minor_units = 2000
    o.placed_time.seconds = s(placed)
    if fulfilled is not None:
        o.fulfilment_time.seconds = s(fulfilled)
    return record


def rating(stars: int, when: datetime, role: int = R.PARTY_ROLE_SELLER) -> R.Record:
    record = _record(when)
    record.rating.rated_role = role
    record.rating.stars = stars
    return record


def identity(when: datetime, *, residence: datetime | None = None, phone: datetime | None = None,
             verified: bool | None = None) -> R.Record:
    record = _record(when)
    record.identity.SetInParent()
    if residence is not None:
        record.identity.residence_since_time.seconds = s(residence)
    if phone is not None:
        record.identity.phone_since_time.seconds = s(phone)
    if verified is not None:
        record.identity.identity_verified = verified
    return record


def external(kind: int, when: datetime, *, status: int = R.EXTERNAL_STATUS_OPEN,
             opened: datetime | None = None, closed: datetime | None = None, amount: int = 50_000,
             institution: int = R.INSTITUTION_TYPE_FINANCIAL_INSTITUTION) -> R.Record:
    record = _record(when)
    e = record.external
    e.kind = kind
    e.status = status
    e.institution_type = institution
    e.amount.currency_code = "USD"
    e.amount.minor_units = amount
    if opened is not None:
        e.open_time.seconds = s(opened)
    if closed is not None:
        e.close_time.seconds = s(closed)
    return record


def state_of(*records: R.Record) -> SubjectState:
    state = SubjectState()
    for record in records:
        apply_record(state, record)
    return state


def vec(state: SubjectState, when: datetime) -> dict[str, float | None]:
    return feature_vector(state, when)


# -- basics ------------------------------------------------------------------------


def test_no_records_means_every_feature_missing_in_catalog_order():
    v = vec(SubjectState(), at(2026, 5, 1))
    assert list(v) == list(FEATURE_NAMES)
    assert all(value is None for value in v.values())


def test_month_arithmetic():
    assert month_index(s(at(2026, 1, 31, 23, 59))) + 1 == month_index(s(at(2026, 2, 1, 0, 0)))
    assert months_between(s(at(2026, 1, 31)), s(at(2026, 2, 28))) == 0
    assert months_between(s(at(2026, 1, 31)), s(at(2026, 3, 1))) == 1
    assert months_between(s(at(2020, 3, 15)), s(at(2026, 3, 15))) == 72
    assert months_between(s(at(2026, 3, 15)), s(at(2020, 3, 15))) == 0  # never negative


# -- payments ----------------------------------------------------------------------


def test_bills_on_time_ratio_worst_days_late_and_paid_count():
    state = state_of(
        bill(at(2026, 1, 10), at(2026, 1, 8)),  # on time
        bill(at(2026, 2, 10), at(2026, 2, 12, 13)),  # 2 days 1 hour late -> 3 days
        bill(at(2026, 3, 10), at(2026, 3, 20, 12)),  # exactly 10 days late
        bill(at(2026, 3, 25), at(2026, 3, 25), category=R.BILL_CATEGORY_RENT),  # on time, to the second
    )
    v = vec(state, at(2026, 4, 15))
    assert v["pay_ontime_ratio_12m"] == pytest.approx(2 / 4)
    assert v["pay_worst_days_late_12m"] == 10.0
    assert v["pay_bills_paid_count"] == 4.0
    assert v["pay_unpaid_past_due_amount"] == 0.0
    assert v["pay_utility_telecom_months_12m"] == 3.0  # Jan, Feb, Mar; rent does not count


def test_bill_window_edges_by_due_month():
    state = state_of(
        bill(at(2025, 4, 30), at(2025, 5, 3)),  # due April 2025, 3 days late
        bill(at(2025, 5, 1), at(2025, 5, 1)),  # due May 2025, on time
    )
    # As of 2026-03-31 the 12 months are April 2025 to March 2026: both bills.
    v = vec(state, at(2026, 3, 31))
    assert (v["pay_ontime_ratio_12m"], v["pay_worst_days_late_12m"]) == (0.5, 3.0)
    # From 2026-04-01 April 2025 has left the window.
    v = vec(state, at(2026, 4, 1))
    assert (v["pay_ontime_ratio_12m"], v["pay_worst_days_late_12m"]) == (1.0, 0.0)
    # From 2026-05-01 no bill is due in the window: no data, but the paid count stays.
    v = vec(state, at(2026, 5, 1))
    assert v["pay_ontime_ratio_12m"] is None and v["pay_worst_days_late_12m"] is None
    assert v["pay_bills_paid_count"] == 2.0
    assert v["pay_utility_telecom_months_12m"] == 0.0


def test_an_unpaid_bill_grows_late_as_of_later_dates():
    state = state_of(bill(at(2026, 3, 10), None, amount=12_345, event=at(2026, 4, 9)))
    before_due = vec(state, at(2026, 3, 5))
    assert before_due["pay_unpaid_past_due_amount"] == 0.0
    assert before_due["pay_ontime_ratio_12m"] is None and before_due["pay_worst_days_late_12m"] is None
    assert before_due["pay_bills_paid_count"] == 0.0  # has bills, none paid: 0, not missing

    v = vec(state, at(2026, 3, 20))
    assert v["pay_unpaid_past_due_amount"] == pytest.approx(123.45)
    assert (v["pay_ontime_ratio_12m"], v["pay_worst_days_late_12m"]) == (0.0, 10.0)
    assert vec(state, at(2026, 5, 10))["pay_worst_days_late_12m"] == 61.0

    # Once its due month leaves the 12-month window it no longer counts as "due in
    # the last 12 months", but it is still unpaid.
    v = vec(state, at(2027, 3, 11))
    assert v["pay_worst_days_late_12m"] is None
    assert v["pay_unpaid_past_due_amount"] == pytest.approx(123.45)


def test_utility_and_telecom_months_count_each_paid_month_once():
    state = state_of(
        bill(at(2026, 1, 6), at(2026, 1, 5)),
        bill(at(2026, 1, 25), at(2026, 1, 20), category=R.BILL_CATEGORY_TELECOM),
        bill(at(2026, 2, 2), at(2026, 2, 1), category=R.BILL_CATEGORY_RENT),
        bill(at(2026, 3, 1), at(2026, 3, 1), category=R.BILL_CATEGORY_OTHER),
        bill(at(2025, 1, 31), at(2025, 1, 31)),  # January 2025: outside the window
        bill(at(2025, 12, 10), at(2026, 1, 2), category=R.BILL_CATEGORY_TELECOM),  # paid in January 2026
    )
    assert vec(state, at(2026, 1, 31))["pay_utility_telecom_months_12m"] == 1.0
    assert vec(state, at(2026, 12, 31))["pay_utility_telecom_months_12m"] == 1.0
    assert vec(state, at(2027, 1, 1))["pay_utility_telecom_months_12m"] == 0.0


# -- commerce ----------------------------------------------------------------------


def test_buyer_rates_and_count():
    B = R.PARTY_ROLE_BUYER
    placed = at(2026, 2, 1)
    state = state_of(
        order(B, R.ORDER_OUTCOME_COMPLETED, placed, fulfilled=at(2026, 2, 3)),
        order(B, R.ORDER_OUTCOME_COMPLETED, placed, fulfilled=at(2026, 2, 4)),
        order(B, R.ORDER_OUTCOME_CANCELLED_BY_BUYER, placed),
        order(B, R.ORDER_OUTCOME_DISPUTED, placed, fulfilled=at(2026, 2, 3), event=at(2026, 2, 20)),
        order(B, R.ORDER_OUTCOME_UNPAID, placed, event=at(2026, 2, 8)),
        order(B, R.ORDER_OUTCOME_CANCELLED_BY_SELLER, placed),  # not the buyer's doing
        order(B, R.ORDER_OUTCOME_REFUNDED, placed, fulfilled=at(2026, 2, 3)),
        # placed in January 2025, closed in February 2025: outside the window as of 2026-02
        order(B, R.ORDER_OUTCOME_COMPLETED, at(2025, 1, 31), event=at(2025, 2, 2)),
    )
    v = vec(state, at(2026, 2, 28))
    assert v["buyer_order_count_12m"] == 7.0
    assert v["buyer_completion_rate_12m"] == pytest.approx(2 / 7)
    assert v["buyer_cancel_dispute_rate_12m"] == pytest.approx(3 / 7)
    # Two years on: still a buyer (count 0, not missing), no rate to compute.
    later = vec(state, at(2028, 3, 1))
    assert later["buyer_order_count_12m"] == 0.0
    assert later["buyer_completion_rate_12m"] is None and later["buyer_cancel_dispute_rate_12m"] is None
    # No seller data at all.
    assert v["seller_fulfilment_rate_12m"] is None and v["seller_dispute_rate_12m"] is None


def test_seller_fulfilment_dispute_rates_and_ratings():
    S = R.PARTY_ROLE_SELLER
    placed = at(2026, 6, 1)
    shipped = at(2026, 6, 3)
    state = state_of(
        order(S, R.ORDER_OUTCOME_COMPLETED, placed, fulfilled=shipped),
        order(S, R.ORDER_OUTCOME_DISPUTED, placed, fulfilled=shipped, event=at(2026, 6, 20)),
        order(S, R.ORDER_OUTCOME_REFUNDED, placed, fulfilled=shipped, event=at(2026, 6, 20)),
        order(S, R.ORDER_OUTCOME_CANCELLED_BY_SELLER, placed),  # never shipped
        order(S, R.ORDER_OUTCOME_CANCELLED_BY_BUYER, placed),  # nothing to ship
        order(S, R.ORDER_OUTCOME_UNPAID, placed, event=at(2026, 6, 8)),  # nothing to ship
        rating(5, at(2026, 6, 10)),
        rating(3, at(2024, 7, 1)),  # 24 months as of June 2026: July 2024 .. June 2026
        rating(1, at(2024, 6, 30)),  # 25th month back: outside
        rating(1, at(2026, 6, 10), role=R.PARTY_ROLE_BUYER),  # rated as a buyer: not a seller rating
    )
    v = vec(state, at(2026, 6, 30))
    assert v["seller_fulfilment_rate_12m"] == pytest.approx(3 / 4)
    assert v["seller_dispute_rate_12m"] == pytest.approx(2 / 6)
    assert v["seller_avg_rating_24m"] == pytest.approx(4.0)
    assert v["buyer_order_count_12m"] is None  # never a buyer
    assert vec(state, at(2026, 7, 1))["seller_avg_rating_24m"] == pytest.approx(5.0)
    assert vec(state, at(2028, 7, 1))["seller_avg_rating_24m"] is None


# -- identity and history ----------------------------------------------------------


def test_identity_tenure_latest_report_wins_per_fact():
    state = state_of(
        identity(at(2025, 1, 1), residence=at(2020, 3, 15), phone=at(2019, 1, 1), verified=False),
        identity(at(2025, 6, 1), verified=True),  # only verification: tenure facts stay
        identity(at(2024, 1, 1), residence=at(2010, 1, 1), verified=False),  # older report, arrives late
    )
    v = vec(state, at(2026, 3, 14))
    assert v["identity_months_at_residence"] == 71.0
    assert vec(state, at(2026, 3, 15))["identity_months_at_residence"] == 72.0
    assert v["identity_months_with_phone"] == 86.0
    assert v["identity_verified"] == 1.0

    moved = state_of(identity(at(2025, 1, 1), residence=at(2020, 1, 1)),
                     identity(at(2026, 1, 10), residence=at(2026, 1, 1)))
    v = vec(moved, at(2026, 3, 1))
    assert v["identity_months_at_residence"] == 2.0
    assert v["identity_months_with_phone"] is None and v["identity_verified"] is None


def test_history_months_counts_from_the_earliest_record_whatever_the_arrival_order():
    state = state_of(bill(at(2025, 3, 1), at(2025, 3, 1)), rating(4, at(2025, 1, 10)))
    assert vec(state, at(2026, 1, 9))["history_months"] == 11.0
    assert vec(state, at(2026, 1, 10))["history_months"] == 12.0


# -- external ----------------------------------------------------------------------


def test_external_counts_and_their_windows():
    K = R
    state = state_of(
        external(K.EXTERNAL_KIND_DELINQUENCY, at(2024, 7, 1)),  # 24 months as of June 2026: in
        external(K.EXTERNAL_KIND_DELINQUENCY, at(2024, 6, 30)),  # out
        external(K.EXTERNAL_KIND_COURT_JUDGMENT, at(2021, 7, 1), institution=K.INSTITUTION_TYPE_PUBLIC_AGENCY),
        external(K.EXTERNAL_KIND_TAX_ARREARS, at(2026, 1, 1), institution=K.INSTITUTION_TYPE_PUBLIC_AGENCY),
        external(K.EXTERNAL_KIND_TAX_ARREARS, at(2021, 6, 30), institution=K.INSTITUTION_TYPE_PUBLIC_AGENCY),
        external(K.EXTERNAL_KIND_COLLECTION, at(2023, 1, 1), institution=K.INSTITUTION_TYPE_MERCHANT),
        external(K.EXTERNAL_KIND_REPAYMENT, at(2026, 5, 1), status=K.EXTERNAL_STATUS_ON_TIME),
        external(K.EXTERNAL_KIND_REPAYMENT, at(2026, 4, 1), status=K.EXTERNAL_STATUS_ON_TIME),
        external(K.EXTERNAL_KIND_REPAYMENT, at(2025, 4, 1), status=K.EXTERNAL_STATUS_LATE),
        external(K.EXTERNAL_KIND_REPAYMENT, at(2024, 1, 1), status=K.EXTERNAL_STATUS_LATE),  # out of 24m
        external(K.EXTERNAL_KIND_OTHER, at(2026, 1, 1)),
    )
    v = vec(state, at(2026, 6, 15))
    assert v["ext_delinquencies_24m"] == 1.0
    assert v["ext_judgments_arrears_60m"] == 2.0  # July 2021 .. June 2026
    assert v["ext_collections_60m"] == 1.0
    assert v["ext_repayment_ontime_ratio_24m"] == pytest.approx(2 / 3)
    assert v["ext_open_loans"] == 0.0


def test_external_source_with_only_other_records_counts_zero_not_missing():
    v = vec(state_of(external(R.EXTERNAL_KIND_OTHER, at(2026, 1, 1))), at(2026, 2, 1))
    assert (v["ext_delinquencies_24m"], v["ext_open_loans"], v["ext_collections_60m"]) == (0.0, 0.0, 0.0)
    assert v["ext_repayment_ontime_ratio_24m"] is None


def test_open_loans_are_matched_by_identity_and_closed_as_of_their_close_time():
    L = R.EXTERNAL_KIND_LOAN_ACCOUNT
    opened = at(2025, 1, 15)
    state = state_of(
        external(L, opened, opened=opened, amount=100_000),
        external(L, at(2025, 3, 1), opened=at(2025, 3, 1), amount=20_000),
        # the first loan, closed: same institution, open time and amount
        external(L, at(2026, 1, 16), status=R.EXTERNAL_STATUS_CLOSED, opened=opened,
                 closed=at(2026, 1, 16), amount=100_000),
        # a loan written off, no close time: closed when reported
        external(L, at(2025, 9, 1), status=R.EXTERNAL_STATUS_WRITTEN_OFF, opened=at(2025, 3, 1), amount=20_000),
    )
    assert vec(state, at(2025, 2, 1))["ext_open_loans"] == 1.0
    assert vec(state, at(2025, 6, 1))["ext_open_loans"] == 2.0
    assert vec(state, at(2025, 10, 1))["ext_open_loans"] == 1.0
    assert vec(state, at(2026, 2, 1))["ext_open_loans"] == 0.0


# -- loan outcomes, state, bounds --------------------------------------------------


def test_loan_outcomes_never_feed_features():
    record = _record(at(2026, 1, 1))
    record.loan_outcome.label = R.LOAN_OUTCOME_LABEL_BAD
    record.loan_outcome.application_time.seconds = s(at(2025, 7, 1))
    state = state_of(record)
    assert state.to_json() == SubjectState().to_json()
    assert all(value is None for value in vec(state, at(2026, 2, 1)).values())


def test_state_round_trips_through_json():
    population = simulate(40, seed=3)
    subject = max(population.subjects, key=lambda x: len(x.sources)).subject_id
    state = SubjectState()
    for record in population.records:
        if record.subject_id == subject:
            apply_record(state, record)
    text = state.to_json()
    back = SubjectState.from_json(text)
    assert back.to_json() == text and back == state
    for when in (at(2025, 1, 1), at(2026, 6, 15), population.as_of):
        assert feature_vector(back, when) == feature_vector(state, when)
    # the copy keeps working incrementally like the original
    extra = bill(at(2026, 10, 1), None, amount=5_000, event=at(2026, 10, 31))
    apply_record(state, extra)
    apply_record(back, extra)
    assert back == state


def test_state_json_from_another_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        SubjectState.from_json('{"v": 99}')


def test_state_stays_bounded_after_ten_years_of_monthly_records():
    state = SubjectState()
    total_unpaid = 0
    for month in range(120):
        year, m = 2016 + month // 12, month % 12 + 1
        due = at(year, m, 10)
        apply_record(state, bill(due, at(year, m, 9)))
        apply_record(state, bill(due, None, amount=100, event=at(year, m, 28)))  # unpaid
        total_unpaid += 100
        apply_record(state, order(R.PARTY_ROLE_BUYER, R.ORDER_OUTCOME_COMPLETED, due, fulfilled=at(year, m, 12)))
        apply_record(state, rating(5, at(year, m, 15)))
        apply_record(state, external(R.EXTERNAL_KIND_REPAYMENT, at(year, m, 20), status=R.EXTERNAL_STATUS_ON_TIME))
        closes = at(year, m, 25)
        apply_record(state, external(R.EXTERNAL_KIND_LOAN_ACCOUNT, due, opened=due, amount=1000 + month))
        apply_record(state, external(R.EXTERNAL_KIND_LOAN_ACCOUNT, closes, status=R.EXTERNAL_STATUS_CLOSED,
                                     opened=due, closed=closes, amount=1000 + month))
    assert state.record_count == 120 * 7
    assert state.bucket_count() == MONTHS_KEPT
    assert len(state.unpaid) == MONTHS_KEPT  # older unpaid bills folded into one amount
    # One small entry per loan account, closed ones too: a correction of an old close
    # can reopen a loan, so its entry is what undoing the close needs.
    assert len(state.loans) == 120 and all(n == 2 and len(closes) == 1 for _, n, closes in state.loans.values())
    v = vec(state, at(2025, 12, 31))
    assert v["pay_unpaid_past_due_amount"] == pytest.approx(total_unpaid / 100)
    assert v["pay_bills_paid_count"] == 120.0
    assert v["buyer_order_count_12m"] == 12.0
    assert v["seller_avg_rating_24m"] == 5.0


def test_arrival_order_does_not_change_the_vector():
    population = simulate(60, seed=8)
    by_subject: dict[str, list[R.Record]] = {}
    for record in population.records:
        by_subject.setdefault(record.subject_id, []).append(record)
    shuffler = random.Random(1)
    for records in list(by_subject.values())[:20]:
        in_order = state_of(*records)
        shuffled = list(records)
        shuffler.shuffle(shuffled)
        assert state_of(*shuffled) == in_order
        for when in (at(2025, 6, 1), population.as_of):
            assert vec(state_of(*shuffled), when) == vec(in_order, when)
