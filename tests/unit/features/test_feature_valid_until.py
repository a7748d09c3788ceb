"""``vector_valid_until``: the first instant at which a vector may change with no
record applied, never later than the values really change, and ``next_month_step``
against ``months_between``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from creditscore.features.engine import (
    SubjectState,
    feature_values,
    month_index,
    months_between,
    next_month_start,
    next_month_step,
    vector_valid_until,
)
from creditscore.records.v1 import records_pb2 as R
from tests.unit.features.test_feature_aggregates import (
    at,
    bill,
    external,
    identity,
    order,
    rating,
    s,
    state_of,
)

DAY = 86_400
# Records are reported on the first of a month at midnight in the unit cases, so
# that the first record's tenure steps at month starts only.
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


def moment(y: int, m: int, d: int, h: int = 0, minute: int = 0, second: int = 0) -> int:
    return s(datetime(y, m, d, h, minute, second, tzinfo=UTC))


def assert_valid(state: SubjectState, as_of: int, expected: int, *, tight: bool = True) -> None:
    """``vector_valid_until`` is ``expected``; the values are the same at its last
    second, and (``tight``) differ at it."""
    until = vector_valid_until(state, as_of)
    assert datetime.fromtimestamp(until, UTC) == datetime.fromtimestamp(expected, UTC)
    before = feature_values(state, as_of)
    assert feature_values(state, until - 1) == before
    if tight:
        assert feature_values(state, until) != before


# -- one time input at a time -------------------------------------------------------


def test_nothing_ahead_but_the_month_boundary():
    assert vector_valid_until(SubjectState(), moment(2026, 3, 5, 12)) == moment(2026, 4, 1)
    assert vector_valid_until(SubjectState(), moment(2026, 12, 31, 23, 59, 59)) == moment(2027, 1, 1)
    assert vector_valid_until(SubjectState(), moment(2026, 3, 1)) == moment(2026, 4, 1)
    assert next_month_start(moment(2024, 2, 29, 23, 59, 59)) == moment(2024, 3, 1)
    # A bill paid on time, due in March 2026, leaves the 12-month window as March 2027 begins.
    state = state_of(bill(at(2026, 3, 10), at(2026, 3, 9), event=at(2026, 3, 9)))
    assert_valid(state, moment(2026, 3, 20), moment(2026, 4, 1), tight=False)
    assert_valid(state, moment(2027, 2, 20, 5), moment(2027, 3, 1))
    assert feature_values(state, moment(2027, 2, 28, 23, 59, 59))[0] == 1.0
    assert feature_values(state, moment(2027, 3, 1))[0] is None


def test_an_unpaid_bill_coming_due():
    state = state_of(bill(at(2026, 3, 10), event=JAN_1))
    assert_valid(state, moment(2026, 3, 5, 8), s(at(2026, 3, 10)))
    assert_valid(state, s(at(2026, 3, 10)) - 1, s(at(2026, 3, 10)))
    # Due in a later month: the month boundary comes first.
    assert_valid(state, moment(2026, 2, 5), moment(2026, 3, 1), tight=False)


def test_days_late_step_one_second_after_each_whole_day():
    due = s(at(2026, 3, 10))  # 12:00
    state = state_of(bill(at(2026, 3, 10), event=JAN_1))
    assert_valid(state, due, due + 1)  # due now: 0 days late, 1 a second later
    assert_valid(state, due + 1, due + DAY + 1)
    assert_valid(state, due + 2 * DAY + 3600, due + 3 * DAY + 1)
    assert_valid(state, due + 3 * DAY, due + 3 * DAY + 1)
    # Late through the end of the month: the month boundary is sooner than the next day.
    assert_valid(state, moment(2026, 3, 31, 13), moment(2026, 4, 1), tight=False)


def test_days_late_matter_only_past_the_worst_of_the_window():
    due = s(at(2026, 3, 10))
    state = state_of(
        bill(at(2026, 3, 10), event=JAN_1),
        bill(at(2026, 2, 2), at(2026, 2, 7), event=JAN_1),  # paid 5 days late
    )
    assert_valid(state, due + 3600, due + 5 * DAY + 1)
    assert_valid(state, due + 5 * DAY, due + 5 * DAY + 1)
    assert_valid(state, due + 5 * DAY + 1, due + 6 * DAY + 1)
    # Two unpaid bills: only the one due first (the latest) counts.
    state = state_of(bill(at(2026, 3, 10), event=JAN_1), bill(at(2026, 3, 12, 18), event=JAN_1))
    assert_valid(state, s(at(2026, 3, 13)), due + 3 * DAY + 1)


def test_an_unpaid_bill_out_of_the_window_does_not_grow_later():
    state = state_of(bill(at(2025, 2, 10), event=JAN_1))
    assert feature_values(state, moment(2026, 3, 5))[1] is None  # no bill due in the window
    assert_valid(state, moment(2026, 3, 5), moment(2026, 4, 1), tight=False)


def test_a_loan_opening_and_closing():
    state = state_of(external(
        R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=at(2026, 3, 5, 9), closed=at(2026, 4, 20, 15),
        status=R.EXTERNAL_STATUS_CLOSED))
    assert_valid(state, moment(2026, 3, 1, 6), s(at(2026, 3, 5, 9)))
    assert_valid(state, moment(2026, 3, 8), moment(2026, 4, 1), tight=False)
    assert_valid(state, moment(2026, 4, 8), s(at(2026, 4, 20, 15)))
    assert_valid(state, s(at(2026, 4, 20, 15)), moment(2026, 5, 1), tight=False)
    # Closed at or before it opened: never open, so neither time counts.
    never = state_of(external(
        R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=at(2026, 3, 5, 9), closed=at(2026, 3, 5, 9),
        status=R.EXTERNAL_STATUS_CLOSED))
    assert_valid(never, moment(2026, 3, 1), moment(2026, 4, 1), tight=False)


def test_a_loan_closed_by_its_earliest_report():
    opened = at(2026, 2, 3)
    state = state_of(
        external(R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=opened),
        external(R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=opened, closed=at(2026, 3, 25),
                 status=R.EXTERNAL_STATUS_SETTLED),
        external(R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=opened, closed=at(2026, 3, 9),
                 status=R.EXTERNAL_STATUS_CLOSED),
    )
    assert_valid(state, moment(2026, 3, 2), s(at(2026, 3, 9)))


def test_a_residence_tenure_completing_a_month():
    state = state_of(identity(JAN_1, residence=at(2024, 6, 17, 8, 30)))
    assert_valid(state, moment(2026, 3, 2), s(at(2026, 3, 17, 8, 30)))
    assert_valid(state, s(at(2026, 3, 17, 8, 30)) - 1, s(at(2026, 3, 17, 8, 30)))
    assert_valid(state, s(at(2026, 3, 17, 8, 30)), moment(2026, 4, 1), tight=False)
    # The phone tenure the same way; the sooner of the two counts.
    both = state_of(identity(JAN_1, residence=at(2024, 6, 17, 8, 30), phone=at(2020, 1, 9, 23)))
    assert_valid(both, moment(2026, 3, 2), s(at(2026, 3, 9, 23)))


def test_month_end_tenures():
    jan_31 = state_of(identity(JAN_1, residence=at(2025, 1, 31, 18)))
    # No February 31: the month completes on March 1 at midnight, with the month boundary.
    assert_valid(jan_31, moment(2026, 2, 10), moment(2026, 3, 1))
    assert feature_values(jan_31, moment(2026, 2, 28, 23, 59, 59))[11] == 12.0
    assert feature_values(jan_31, moment(2026, 3, 1))[11] == 13.0
    assert_valid(jan_31, moment(2026, 3, 1), s(at(2026, 3, 31, 18)))
    assert_valid(jan_31, moment(2026, 4, 3), moment(2026, 5, 1))  # April 30 < 31: on May 1
    assert_valid(jan_31, moment(2026, 5, 3), s(at(2026, 5, 31, 18)))
    leap = state_of(identity(JAN_1, residence=at(2024, 2, 29, 6)))
    assert_valid(leap, moment(2024, 3, 2), s(at(2024, 3, 29, 6)))
    assert_valid(leap, moment(2025, 2, 2), moment(2025, 3, 1))
    assert_valid(leap, moment(2028, 2, 2), s(at(2028, 2, 29, 6)))
    # Less than a month of residence: the first anniversary of its start.
    recent = state_of(identity(JAN_1, residence=at(2026, 5, 10, 6)))
    assert_valid(recent, moment(2026, 6, 2), s(at(2026, 6, 10, 6)))


def test_the_first_record_tenure():
    state = state_of(rating(4, at(2025, 11, 21, 7)))
    assert_valid(state, moment(2026, 3, 4), s(at(2026, 3, 21, 7)))
    # Before the first record: 0 months until a month after it.
    assert_valid(state, moment(2025, 11, 2), moment(2025, 12, 1), tight=False)
    assert_valid(state, moment(2025, 12, 2), s(at(2025, 12, 21, 7)))


def test_the_soonest_input_wins():
    state = state_of(
        bill(at(2026, 3, 20), event=JAN_1),
        external(R.EXTERNAL_KIND_LOAN_ACCOUNT, JAN_1, opened=at(2026, 3, 15)),
        identity(JAN_1, residence=at(2022, 7, 12)),
    )
    assert_valid(state, moment(2026, 3, 3), s(at(2026, 3, 12)))
    assert_valid(state, s(at(2026, 3, 12)), s(at(2026, 3, 15)))
    assert_valid(state, s(at(2026, 3, 15)), s(at(2026, 3, 20)))
    assert_valid(state, s(at(2026, 3, 20)), s(at(2026, 3, 20)) + 1)


# -- next_month_step against months_between ------------------------------------------------


def brute_next_step(start: int, after: int) -> int:
    """The first second after ``after`` at which ``months_between`` grows, found by
    walking forward a day, then a minute, then a second at a time."""
    n = months_between(start, after)
    t = after
    for stride in (DAY, 60, 1):
        while months_between(start, t + stride) == n:
            t += stride
    return t + 1


STARTS = [
    moment(2025, 1, 31, 12),
    moment(2025, 1, 31, 23, 59, 59),
    moment(2024, 2, 29),
    moment(2024, 2, 29, 18, 45, 7),
    moment(2025, 2, 28, 10),
    moment(2024, 3, 31, 0, 0, 1),
    moment(2024, 4, 30, 23),
    moment(2024, 8, 31, 5),
    moment(2024, 12, 31, 23, 59, 59),
    moment(2025, 1, 1),
    moment(2024, 6, 15, 13, 14, 15),
    moment(2024, 10, 30, 12),
]


def test_next_month_step_examples():
    jan_31 = moment(2026, 1, 31, 12)
    assert next_month_step(jan_31, jan_31) == moment(2026, 3, 1)
    assert next_month_step(jan_31, moment(2026, 2, 28, 23, 59, 59)) == moment(2026, 3, 1)
    assert next_month_step(jan_31, moment(2026, 3, 1)) == moment(2026, 3, 31, 12)
    assert next_month_step(jan_31, moment(2026, 3, 31, 12)) == moment(2026, 5, 1)
    assert next_month_step(jan_31, moment(2025, 6, 3)) == moment(2026, 3, 1)  # before the start
    leap = moment(2024, 2, 29, 6)
    assert next_month_step(leap, moment(2025, 2, 10)) == moment(2025, 3, 1)
    assert next_month_step(leap, moment(2025, 3, 1)) == moment(2025, 3, 29, 6)
    assert next_month_step(leap, moment(2028, 2, 1)) == moment(2028, 2, 29, 6)


def test_next_month_step_is_where_months_between_grows():
    rng = random.Random(11)
    for start in STARTS:
        # Before the start, at it, and across 26 months after it: random seconds
        # and the seconds around each step.
        afters = [start - 40 * DAY, start - 1, start, start + 1]
        afters += [start + rng.randrange(-30 * DAY, 790 * DAY) for _ in range(14)]
        t = start
        for _ in range(26):
            t = next_month_step(start, t)
            afters += [t - 1, t]
        for after in afters:
            step = next_month_step(start, after)
            assert step == brute_next_step(start, after), (start, after)


# -- random states: never later than the values change ------------------------------


LO = moment(2024, 1, 1)
HI = moment(2026, 12, 31)


@st.composite
def epoch_seconds(draw: st.DrawFn) -> int:
    """A second from 2024 to 2026, often on a month's last days or first second,
    or on a whole hour."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.integers(LO, HI))
    month = draw(st.integers(month_index(LO), month_index(HI) - 1))
    start = datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)
    if kind == 1:  # the month's first second, or one of the last days
        days_back = draw(st.sampled_from([0, 1, 2, 3]))
        when = start - timedelta(days=days_back)
        if days_back:
            when += timedelta(hours=draw(st.sampled_from([0, 12, 23])))
        return s(when) + draw(st.sampled_from([0, 0, 1, -1]))
    return s(start) + draw(st.integers(0, 27)) * DAY + draw(st.integers(0, 23)) * 3600


def dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@st.composite
def records(draw: st.DrawFn) -> R.Record:
    kind = draw(st.sampled_from(["bill", "bill", "bill", "loan", "loan", "identity", "order", "rating", "ext"]))
    when = draw(epoch_seconds())
    if kind == "bill":
        paid = None
        if draw(st.booleans()):
            paid = when + draw(st.sampled_from([-DAY, 0, 1, 3600, DAY, DAY + 1, 3 * DAY, 40 * DAY]))
        amount = draw(st.sampled_from([0, 1000]))
        event = dt(max(when, paid or when) + draw(st.sampled_from([0, 3 * DAY, 60 * DAY])))
        return bill(dt(when), None if paid is None else dt(paid), amount=amount, event=event)
    if kind == "loan":
        closed = None
        if draw(st.integers(0, 2)):
            closed = dt(when + draw(st.sampled_from([-DAY, 0, 1, 3 * DAY, 20 * DAY, 75 * DAY])))
        status = R.EXTERNAL_STATUS_OPEN if closed is None else R.EXTERNAL_STATUS_CLOSED
        return external(R.EXTERNAL_KIND_LOAN_ACCOUNT, dt(draw(epoch_seconds())), opened=dt(when),
                        closed=closed, status=status, amount=draw(st.sampled_from([10_000, 20_000])))
    if kind == "identity":
        residence = dt(draw(epoch_seconds())) if draw(st.booleans()) else None
        phone = dt(draw(epoch_seconds())) if draw(st.booleans()) else None
        return identity(dt(when), residence=residence, phone=phone, verified=draw(st.booleans()))
    if kind == "order":
        return order(draw(st.sampled_from([R.PARTY_ROLE_BUYER, R.PARTY_ROLE_SELLER])),
                     draw(st.integers(1, 6)), dt(when))
    if kind == "rating":
        return rating(draw(st.integers(1, 5)), dt(when))
    return external(draw(st.sampled_from([R.EXTERNAL_KIND_DELINQUENCY, R.EXTERNAL_KIND_COLLECTION,
                                          R.EXTERNAL_KIND_REPAYMENT])), dt(when),
                    status=draw(st.sampled_from([R.EXTERNAL_STATUS_ON_TIME, R.EXTERNAL_STATUS_LATE])))


def edges(state: SubjectState, as_of: int, until: int) -> set[int]:
    """Seconds in ``[as_of, until)`` where a mistake would show: around each due
    time and each whole day after it, each loan time, each tenure's day and time
    of day in the months of the range, and the month's last second."""
    out = {until - 1, next_month_start(as_of) - 1}
    for due, _ in state.unpaid:
        first = max(0, (as_of - due) // DAY - 1)
        last = (until - due) // DAY + 1
        for k in range(first, last + 1):
            out.update((due + k * DAY - 1, due + k * DAY, due + k * DAY + 1))
    for opened, _, closes in state.loans.values():
        for t in (opened, *closes[:1]):
            out.update((t - 1, t, t + 1))
    starts = [f[0] for f in (state.residence, state.phone) if f is not None]
    if state.first_time is not None:
        starts.append(state.first_time)
    for start in starts:
        a = dt(start)
        for month in (month_index(as_of), month_index(until)):
            try:
                day = datetime(month // 12, month % 12 + 1, a.day, a.hour, a.minute, a.second, tzinfo=UTC)
            except ValueError:
                continue  # a short month: its step is at a month start
            out.update((s(day) - 1, s(day), s(day) + 1))
    return {t for t in out if as_of <= t < until}


@settings(max_examples=200, deadline=None)
@given(st.lists(records(), max_size=10), epoch_seconds(), st.data())
def test_the_values_stay_the_same_until_valid_until(recs, as_of, data):
    state = state_of(*recs)
    # An as-of time on the state's own edges (bills' or loans') as often as a random one.
    bills = [due + k * DAY + d for due, _ in state.unpaid for k in (0, 1, 2) for d in (-1, 0, 1)]
    loans = [t + d for opened, _, closes in state.loans.values() for t in (opened, *closes[:1])
             for d in (-1, 0, 1)]
    near = [points for points in (bills, loans) if points]
    if near and data.draw(st.booleans()):
        as_of = data.draw(st.sampled_from(data.draw(st.sampled_from(near))))
    until = vector_valid_until(state, as_of)
    assert as_of < until <= next_month_start(as_of)
    points = {as_of, *edges(state, as_of, until)}
    points.update(data.draw(st.lists(st.integers(as_of, until - 1), min_size=3, max_size=3)))
    expected = feature_values(state, as_of)
    for t in sorted(points):
        assert feature_values(state, t) == expected, (as_of, t, until)
