"""The feature engine: per-subject aggregates kept up to date record by record, and
the 20 catalog features computed from them as of any time.

Pure: no gRPC, no SQL. The service stores a ``SubjectState`` as JSON per subject;
training replays records through the same code (``point_in_time_matrix``), so
that a model is trained on exactly the features it is later served.

Why the cost of a lookup does not grow with a subject's history
---------------------------------------------------------------
Windowed facts are counted into one bucket per calendar month (bills due and paid
on time, worst days late, orders by role and outcome, ratings, external counts).
Buckets older than the longest window (60 months) plus a margin (12 months) before
the horizon anchor (the latest event month applied) are dropped, so a state holds
at most ``MONTHS_KEPT`` buckets and a vector sums at most 60 of them. Everything
else is a few scalars (bills seen and paid, first record time, identity tenure)
or small collections: bills still unpaid within the horizon (due time and
amount, so that "days late" and "unpaid past due" grow with the lookup time; the
older ones folded into one amount) and one entry per loan account.

Corrections: ``unapply_record`` is the exact inverse of ``apply_record``
-------------------------------------------------------------------------
A producer may correct or retract a record already applied; the feature service
then takes the old version out (``unapply_record``) and puts the new one in.
Everything a record adds is kept in a form it can be taken out of again:

- counters (per month and all-time) are sums: the record's share is subtracted;
  a bucket left all zero is dropped, as if never made;
- "worst days late" is a maximum, which a subtraction cannot undo: each month
  keeps the multiset of days late of its late bills (``late``), and the bucket's
  maximum is recomputed from it;
- an unpaid bill is taken out of the list, or out of the folded amount when its
  due month is beyond the horizon (where pruning put it);
- a loan account keeps how many records named it and the multiset of close
  times they reported; it is closed at the earliest, and dropped when no record
  names it any more. Loan accounts are never pruned: a close beyond the horizon
  can still be corrected, and would reopen the loan;
- the horizon anchor only moves forward: taking a record out never needs a
  bucket that pruning dropped. A record's share of a month beyond the horizon
  went (or never came) with that month, both when applied and when taken out.

Two facts are extremes over all time: the first record time (a minimum) and each
identity fact (the latest report wins). Keeping every candidate would make the
state grow with the history, so ``unapply_record`` instead says, in a
``Repairs``, when the record it took out was the extreme; the caller then hands
``repair`` the subject's remaining records (the service reads them from its
store; a correction of the earliest record or of the latest identity report is
rare) and the fact is recomputed from them.

So for records ``A`` and a record ``x`` applied among them, in any order,
``apply(A + x); unapply(x); repair(A)`` equals ``apply(A)`` with its horizon
advanced to the same anchor (``advance_horizon``): state for state, byte for byte
of its JSON. (The tests check this on simulated histories and on every kind of
record.)

Conventions
-----------
- Times are UTC epoch seconds; a month is a calendar month (UTC), and "the last N
  months" as of T are the N calendar months ending with T's month.
- Bills are counted in the month they were due, orders in the month they were
  placed, ratings, repayments and external events in the month they were reported
  (the record's ``event_time``), utility/telecom months in the month paid.
- A bill is paid when its ``paid_time`` is set; it is on time when paid no later
  than its due time; days late are whole days, rounded up. A record states one
  bill; a later state of the bill (paid after all) comes as a correction of it.
- A loan account is identified by (institution type, open time, amount): a later
  LOAN_ACCOUNT record with the same identity (e.g. with ``close_time`` set, or a
  CLOSED / SETTLED / WRITTEN_OFF status) closes it.
- Amounts are summed in minor units of whatever currency they carry (one currency
  per deployment) and reported in major units (minor / 100).
- Missing ("no data", ``None``): a rate or average whose denominator is zero in its
  window; a count of a source the subject has no record from at all (a subject with
  bills but none paid has a paid count of 0, one with no bill at all has None);
  identity facts never reported.
- Loan outcome records, and retractions (no body), are ignored: labels never
  feed features, and a retraction only takes its record out.
- A vector as of an earlier time than some applied records still counts those
  records' all-time effects (counts, first record); only time windows, tenure and
  open loans move with ``as_of``. Exact point-in-time vectors come from replaying
  records up to the date, as ``point_in_time_matrix`` does.

How long a vector stays the same: ``vector_valid_until``
--------------------------------------------------------
With no record applied or taken out, a vector changes only when time reaches one
of these instants, and ``vector_valid_until`` is the earliest of them after the
as-of second (never later than the first):

- the start of the next calendar month: every window (12, 24, 60 months) moves,
  and with the 12-month window the unpaid bills it holds (counted in their due
  month) can leave it;
- an unpaid bill's due time, when still ahead: it starts counting as due and
  past due;
- the second at which "worst days late" grows: of the unpaid bills due within
  the 12-month window, the one due first is the most days late, and days late
  are rounded up, so its count passes the worst of the window one second after
  a whole number of days from its due time;
- a loan account's open time and its (earliest reported) close time, when ahead
  and the loan is open for some time between them;
- the second at which a tenure (residence, phone, first record) completes a
  month (``next_month_step``): the anniversary of its start in a month with that
  day, else the first second of the month after (a tenure started on January 31
  completes its first month on March 1 at 00:00:00, as ``months_between``
  counts).

Until that instant every value is exactly the one as of the as-of second. The
bound reads what ``feature_values`` reads (at most 12 buckets, the unpaid bills,
the loan accounts, three tenures), never the history. Some of its instants change
nothing (a bill of zero amount coming due may leave every ratio as it was): it may
come early, never late.
"""

from __future__ import annotations

import calendar
import json
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.records.v1 import records_pb2 as _R

__all__ = [
    "IDENTITY_FACTS",
    "MONTHS_KEPT",
    "NO_REPAIRS",
    "PointInTimeMatrix",
    "Repairs",
    "SubjectState",
    "advance_horizon",
    "apply_record",
    "epoch_seconds",
    "feature_values",
    "feature_vector",
    "month_index",
    "months_between",
    "next_month_start",
    "next_month_step",
    "point_in_time_matrix",
    "rebuild_state",
    "repair",
    "unapply_record",
    "vector_valid_until",
]

#: Monthly buckets kept: the longest window (60 months) plus a 12-month margin.
MONTHS_KEPT = 72
_STATE_VERSION = 2
_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Counters of one monthly bucket (a list of ints, indexed by these).
_BILLS_DUE = 0  # paid bills due this month
_BILLS_ON_TIME = 1  # ... of which paid by their due time
_BILLS_WORST_LATE = 2  # most days late among them (a maximum, kept from ``late``)
_UT_PAID = 3  # utility or telecom bills paid this month
_BUY_ORDERS = 4  # orders placed as a buyer
_BUY_COMPLETED = 5
_BUY_BAD = 6  # cancelled by the buyer, disputed or unpaid
_SELL_ORDERS = 7  # orders sold
_SELL_EXPECTED = 8  # orders sold the seller had to ship (not cancelled by the buyer, not unpaid)
_SELL_FULFILLED = 9  # ... of which shipped (fulfilment time set)
_SELL_DISPUTED = 10  # orders sold that were disputed or refunded
_RATING_SUM = 11  # stars received as a seller
_RATING_COUNT = 12
_EXT_DELINQUENCIES = 13
_EXT_JUDGMENTS_ARREARS = 14
_EXT_COLLECTIONS = 15
_EXT_REPAID_ON_TIME = 16
_EXT_REPAID_LATE = 17
_FIELDS = 18

#: The identity facts, each replaced by a later report of it.
IDENTITY_FACTS = ("residence", "phone", "verified")

_UTILITY_TELECOM = frozenset((_R.BILL_CATEGORY_UTILITY, _R.BILL_CATEGORY_TELECOM))
_BUYER_BAD = frozenset(
    (_R.ORDER_OUTCOME_CANCELLED_BY_BUYER, _R.ORDER_OUTCOME_DISPUTED, _R.ORDER_OUTCOME_UNPAID)
)
_SELLER_NOT_EXPECTED = frozenset((_R.ORDER_OUTCOME_CANCELLED_BY_BUYER, _R.ORDER_OUTCOME_UNPAID))
_SELLER_DISPUTED = frozenset((_R.ORDER_OUTCOME_DISPUTED, _R.ORDER_OUTCOME_REFUNDED))
_LOAN_CLOSED = frozenset(
    (_R.EXTERNAL_STATUS_CLOSED, _R.EXTERNAL_STATUS_SETTLED, _R.EXTERNAL_STATUS_WRITTEN_OFF)
)
_EXT_COUNTER = {
    _R.EXTERNAL_KIND_DELINQUENCY: _EXT_DELINQUENCIES,
    _R.EXTERNAL_KIND_COURT_JUDGMENT: _EXT_JUDGMENTS_ARREARS,
    _R.EXTERNAL_KIND_TAX_ARREARS: _EXT_JUDGMENTS_ARREARS,
    _R.EXTERNAL_KIND_COLLECTION: _EXT_COLLECTIONS,
}


@lru_cache(maxsize=1 << 16)
def _month_of_day(day: int) -> int:
    d = date.fromordinal(day + _EPOCH_ORDINAL)
    return d.year * 12 + d.month - 1


def month_index(seconds: int) -> int:
    """The calendar month (UTC) of an epoch second, as ``year * 12 + month - 1``."""
    return _month_of_day(seconds // _DAY)


def months_between(earlier: int, later: int) -> int:
    """Whole calendar months from ``earlier`` to ``later`` (epoch seconds), never
    negative: 2026-01-31 to 2026-02-28 is 0, to 2026-03-01 is 1."""
    a = datetime.fromtimestamp(earlier, UTC)
    b = datetime.fromtimestamp(later, UTC)
    months = (b.year - a.year) * 12 + (b.month - a.month)
    if (b.day, b.hour, b.minute, b.second) < (a.day, a.hour, a.minute, a.second):
        months -= 1
    return max(0, months)


def _month_start(month: int) -> int:
    """The first second (UTC epoch) of the month ``month`` (as ``month_index`` gives)."""
    year, month0 = divmod(month, 12)
    return (date(year, month0 + 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY


def next_month_start(seconds: int) -> int:
    """The first second of the calendar month (UTC) after the one of ``seconds``."""
    return _month_start(month_index(seconds) + 1)


def next_month_step(start: int, after: int) -> int:
    """The earliest second later than ``after`` at which ``months_between(start, t)``
    grows (it never falls as ``t`` grows): the day of ``start`` at its time of day,
    in the month after ``months_between(start, after)`` whole months; in a month
    too short for that day, the first second of the month after it. From
    2026-01-31 12:00 the first step is 2026-03-01 00:00:00, the next 2026-03-31 12:00."""
    a = datetime.fromtimestamp(start, UTC)
    target = a.year * 12 + a.month - 1 + months_between(start, after) + 1
    year, month0 = divmod(target, 12)
    if a.day > calendar.monthrange(year, month0 + 1)[1]:
        return _month_start(target + 1)
    day = date(year, month0 + 1, a.day).toordinal() - _EPOCH_ORDINAL
    return day * _DAY + a.hour * 3600 + a.minute * 60 + a.second


def _days_late(due: int, paid: int) -> int:
    """Whole days (rounded up) from ``due`` to ``paid``; 0 when paid by the due time."""
    return -((due - paid) // _DAY) if paid > due else 0


class SubjectState:
    """One subject's aggregates. Mutated by ``apply_record`` / ``unapply_record``;
    read by ``feature_vector``; stored as JSON (``to_json`` / ``from_json``)."""

    __slots__ = (
        "record_count",
        "first_time",
        "last_month",
        "months",
        "late",
        "bills_seen",
        "bills_paid",
        "unpaid",
        "unpaid_folded",
        "buyer_orders",
        "seller_orders",
        "external_seen",
        "residence",
        "phone",
        "verified",
        "loans",
    )

    def __init__(self) -> None:
        self.record_count = 0  # records applied (loan outcomes not counted)
        self.first_time: int | None = None  # earliest event time
        # The horizon anchor: the latest event month ever applied. Never moves back.
        self.last_month: int | None = None
        self.months: dict[int, list[int]] = {}  # month index -> bucket counters
        self.late: dict[int, dict[int, int]] = {}  # due month -> {days late: bills}, late bills only
        self.bills_seen = 0
        self.bills_paid = 0
        self.unpaid: list[list[int]] = []  # sorted [due_time, outstanding minor units] of unpaid bills
        self.unpaid_folded = 0  # outstanding minor units of unpaid bills beyond the horizon
        self.buyer_orders = 0  # all time
        self.seller_orders = 0  # all time
        self.external_seen = 0  # external records, all time
        self.residence: list[int] | None = None  # [since, reported at]
        self.phone: list[int] | None = None  # [since, reported at]
        self.verified: list[int] | None = None  # [0 or 1, reported at]
        # loan identity -> [open_time, records naming it, sorted close times reported]
        self.loans: dict[str, list[Any]] = {}

    def bucket_count(self) -> int:
        """Monthly buckets held (at most ``MONTHS_KEPT``)."""
        return len(self.months)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _STATE_VERSION,
                "record_count": self.record_count,
                "first_time": self.first_time,
                "last_month": self.last_month,
                "months": {str(m): b for m, b in sorted(self.months.items())},
                "late": {
                    str(m): {str(d): n for d, n in sorted(days.items())}
                    for m, days in sorted(self.late.items())
                },
                "bills": [self.bills_seen, self.bills_paid],
                "unpaid": self.unpaid,
                "unpaid_folded": self.unpaid_folded,
                "orders": [self.buyer_orders, self.seller_orders],
                "external_seen": self.external_seen,
                "residence": self.residence,
                "phone": self.phone,
                "verified": self.verified,
                "loans": self.loans,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> SubjectState:
        data: dict[str, Any] = json.loads(text)
        if data.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported subject state version {data.get('v')!r}")
        state = cls()
        state.record_count = data["record_count"]
        state.first_time = data["first_time"]
        state.last_month = data["last_month"]
        # Written by to_json only: the lists come back as lists of ints as they were.
        state.months = {int(m): b for m, b in data["months"].items()}
        state.late = {int(m): {int(d): n for d, n in days.items()} for m, days in data["late"].items()}
        state.bills_seen, state.bills_paid = data["bills"]
        state.unpaid = data["unpaid"]
        state.unpaid_folded = data["unpaid_folded"]
        state.buyer_orders, state.seller_orders = data["orders"]
        state.external_seen = data["external_seen"]
        state.residence = data["residence"]
        state.phone = data["phone"]
        state.verified = data["verified"]
        state.loans = data["loans"]
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubjectState):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SubjectState(record_count={self.record_count}, buckets={len(self.months)})"


# -- applying and taking out records ------------------------------------------------


@dataclass(frozen=True)
class Repairs:
    """What ``unapply_record`` could not restore alone: the first record time, and
    the identity facts whose winning report it took out. ``repair`` recomputes
    them from the subject's remaining records."""

    first_time: bool = False
    identity: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.first_time or bool(self.identity)

    def __or__(self, other: Repairs) -> Repairs:
        return Repairs(self.first_time or other.first_time, self.identity | other.identity)


NO_REPAIRS = Repairs()
"""Nothing to repair."""


def apply_record(state: SubjectState, record: _R.Record) -> None:
    """Adds one record's effects to ``state``. Loan outcomes, retractions (and
    records without a body) are ignored. Records may arrive in any order: the
    resulting state is the same, except between identity reports with equal
    event times (the later applied wins) and for facts already beyond the
    horizon when they arrive."""
    _change(state, record, +1)


def unapply_record(state: SubjectState, record: _R.Record) -> Repairs:
    """Takes out the effects of ``record``, which must have been applied to
    ``state`` (the service keeps the version it applied, and passes that). The
    exact inverse of ``apply_record`` but for what the returned ``Repairs`` name:
    hand those to ``repair`` with the subject's remaining records."""
    return _change(state, record, -1)


def advance_horizon(state: SubjectState, month: int) -> None:
    """Moves the horizon anchor forward to ``month`` (never back), dropping what
    falls beyond it, as applying a record of that month would."""
    if state.last_month is None or month > state.last_month:
        state.last_month = month
        _prune(state)


def repair(state: SubjectState, needs: Repairs, remaining: Iterable[_R.Record]) -> None:
    """Recomputes what ``needs`` names from ``remaining``: every record still
    applied to the subject (others are ignored: loan outcomes, retractions). The
    first record time becomes their earliest event time; each named identity fact
    the latest report of it (ties broken by record id, then producer order)."""
    if not needs:
        return
    reports = [r for r in remaining if r.WhichOneof("body") not in (None, "loan_outcome")]
    if needs.first_time:
        times = [r.event_time.seconds for r in reports]
        state.first_time = min(times) if times else None
    if needs.identity:
        for fact in needs.identity:
            setattr(state, fact, None)
        identity = [r for r in reports if r.WhichOneof("body") == "identity"]
        identity.sort(key=lambda r: (r.event_time.seconds, r.record_id))
        for r in identity:
            _apply_identity(state, r.identity, r.event_time.seconds, needs.identity)


def rebuild_state(records: Iterable[_R.Record]) -> SubjectState:
    """A subject's state made afresh from ``records``, applied in event time order
    (ties by record id): what the service keeps after forgetting one source of a
    subject, the same as if only these records had ever been applied in that order."""
    state = SubjectState()
    for record in sorted(records, key=lambda r: (r.event_time.seconds, r.event_time.nanos, r.record_id)):
        apply_record(state, record)
    return state


def _change(state: SubjectState, record: _R.Record, sign: int) -> Repairs:
    body = record.WhichOneof("body")
    if body is None or body == "loan_outcome":
        return NO_REPAIRS
    t = record.event_time.seconds
    event_month = month_index(t)
    repairs = NO_REPAIRS
    if sign > 0:
        state.record_count += 1
        if state.first_time is None or t < state.first_time:
            state.first_time = t
        advance_horizon(state, event_month)
    else:
        state.record_count -= 1
        if state.record_count == 0:
            state.first_time = None
        elif t == state.first_time:
            repairs = Repairs(first_time=True)
    if body == "bill":
        _change_bill(state, record.bill, sign)
    elif body == "order":
        _change_order(state, record.order, t, sign)
    elif body == "rating":
        rating = record.rating
        if rating.rated_role == _R.PARTY_ROLE_SELLER and 1 <= rating.stars <= 5:
            bucket = _bucket(state, event_month, sign)
            if bucket is not None:
                bucket[_RATING_SUM] += sign * rating.stars
                bucket[_RATING_COUNT] += sign
                _drop_if_empty(state, event_month, sign)
    elif body == "identity":
        if sign > 0:
            _apply_identity(state, record.identity, t, IDENTITY_FACTS)
        else:
            repairs = repairs | _unapply_identity(state, record.identity, t)
    elif body == "external":
        _change_external(state, record.external, t, event_month, sign)
    return repairs


def _horizon(state: SubjectState) -> int:
    """The oldest month still kept."""
    assert state.last_month is not None
    return state.last_month - MONTHS_KEPT + 1


def _bucket(state: SubjectState, month: int, sign: int) -> list[int] | None:
    """The bucket of ``month``; None if it is beyond the horizon (its records'
    share went with it). Applying creates it on first use; taking out finds it
    (it exists: it was made when the record was applied and is pruned only
    beyond the horizon)."""
    bucket = state.months.get(month)
    if bucket is None:
        if sign < 0 or (state.last_month is not None and month < _horizon(state)):
            return None
        bucket = state.months[month] = [0] * _FIELDS
    return bucket


def _drop_if_empty(state: SubjectState, month: int, sign: int) -> None:
    """After taking a record out: a bucket with nothing left goes, as if never made."""
    if sign < 0:
        bucket = state.months.get(month)
        if bucket is not None and not any(bucket):
            del state.months[month]


def _prune(state: SubjectState) -> None:
    """Drops what fell beyond the horizon: old buckets and their late-bill
    multisets; folds old unpaid bills into one amount. Loan accounts stay."""
    horizon = _horizon(state)
    for month in [m for m in state.months if m < horizon]:
        del state.months[month]
    for month in [m for m in state.late if m < horizon]:
        del state.late[month]
    if state.unpaid:
        keep = []
        for due, amount in state.unpaid:
            if month_index(due) < horizon:
                state.unpaid_folded += amount
            else:
                keep.append([due, amount])
        state.unpaid = keep


def _change_bill(state: SubjectState, bill: _R.Bill, sign: int) -> None:
    state.bills_seen += sign
    due = bill.due_time.seconds
    if not bill.HasField("paid_time"):
        outstanding = max(0, bill.amount_due.minor_units - bill.amount_paid.minor_units)
        if state.last_month is not None and month_index(due) < _horizon(state):
            state.unpaid_folded += sign * outstanding
        elif sign > 0:
            insort(state.unpaid, [due, outstanding])  # sorted: the state does not depend on arrival order
        else:
            del state.unpaid[bisect_left(state.unpaid, [due, outstanding])]
        return
    paid = bill.paid_time.seconds
    state.bills_paid += sign
    due_month = month_index(due)
    bucket = _bucket(state, due_month, sign)
    if bucket is not None:
        late = _days_late(due, paid)
        bucket[_BILLS_DUE] += sign
        if late == 0:
            bucket[_BILLS_ON_TIME] += sign
        else:
            days = state.late.setdefault(due_month, {})
            count = days.get(late, 0) + sign
            if count:
                days[late] = count
            else:
                del days[late]
            if not days:
                del state.late[due_month]
            bucket[_BILLS_WORST_LATE] = max(days, default=0)
        _drop_if_empty(state, due_month, sign)
    if bill.category in _UTILITY_TELECOM:
        paid_month = month_index(paid)
        paid_bucket = _bucket(state, paid_month, sign)
        if paid_bucket is not None:
            paid_bucket[_UT_PAID] += sign
            _drop_if_empty(state, paid_month, sign)


def _change_order(state: SubjectState, order: _R.Order, t: int, sign: int) -> None:
    placed = order.placed_time.seconds if order.HasField("placed_time") else t
    outcome = order.outcome
    month = month_index(placed)
    if order.role == _R.PARTY_ROLE_BUYER:
        state.buyer_orders += sign
        bucket = _bucket(state, month, sign)
        if bucket is None:
            return
        bucket[_BUY_ORDERS] += sign
        if outcome == _R.ORDER_OUTCOME_COMPLETED:
            bucket[_BUY_COMPLETED] += sign
        elif outcome in _BUYER_BAD:
            bucket[_BUY_BAD] += sign
    elif order.role == _R.PARTY_ROLE_SELLER:
        state.seller_orders += sign
        bucket = _bucket(state, month, sign)
        if bucket is None:
            return
        bucket[_SELL_ORDERS] += sign
        if outcome not in _SELLER_NOT_EXPECTED:
            bucket[_SELL_EXPECTED] += sign
            if order.HasField("fulfilment_time"):
                bucket[_SELL_FULFILLED] += sign
        if outcome in _SELLER_DISPUTED:
            bucket[_SELL_DISPUTED] += sign
    else:
        return
    _drop_if_empty(state, month, sign)


def _identity_reports(identity: _R.IdentityTenure) -> dict[str, int]:
    """The facts one identity record reports, by name."""
    out: dict[str, int] = {}
    if identity.HasField("residence_since_time"):
        out["residence"] = identity.residence_since_time.seconds
    if identity.HasField("phone_since_time"):
        out["phone"] = identity.phone_since_time.seconds
    if identity.HasField("identity_verified"):
        out["verified"] = int(identity.identity_verified)
    return out


def _apply_identity(
    state: SubjectState, identity: _R.IdentityTenure, t: int, facts: Iterable[str]
) -> None:
    """Each of ``facts`` set in the record replaces an older report of it (by event time)."""
    reported = _identity_reports(identity)
    for fact in facts:
        value = reported.get(fact)
        if value is None:
            continue
        known: list[int] | None = getattr(state, fact)
        if known is None or t >= known[1]:
            setattr(state, fact, [value, t])


def _unapply_identity(state: SubjectState, identity: _R.IdentityTenure, t: int) -> Repairs:
    """Taking out a report that lost changes nothing; taking out the winning one
    needs the runner-up, which only the remaining records know."""
    stale = frozenset(
        fact for fact, value in _identity_reports(identity).items() if getattr(state, fact) == [value, t]
    )
    return Repairs(identity=stale) if stale else NO_REPAIRS


def _change_external(
    state: SubjectState, ext: _R.ExternalRecord, t: int, event_month: int, sign: int
) -> None:
    state.external_seen += sign
    kind = ext.kind
    if kind == _R.EXTERNAL_KIND_LOAN_ACCOUNT:
        opened = ext.open_time.seconds if ext.HasField("open_time") else t
        closed: int | None = None
        if ext.HasField("close_time"):
            closed = ext.close_time.seconds
        elif ext.status in _LOAN_CLOSED:
            closed = t
        key = _loan_key(ext, opened)
        if sign > 0:
            loan = state.loans.setdefault(key, [opened, 0, []])
            loan[1] += 1
            if closed is not None:
                insort(loan[2], closed)
            return
        loan = state.loans[key]
        loan[1] -= 1
        if closed is not None:
            del loan[2][bisect_left(loan[2], closed)]
        if loan[1] == 0:
            del state.loans[key]
        return
    if kind == _R.EXTERNAL_KIND_REPAYMENT:
        status = ext.status
        if status == _R.EXTERNAL_STATUS_ON_TIME:
            field = _EXT_REPAID_ON_TIME
        elif status == _R.EXTERNAL_STATUS_LATE:
            field = _EXT_REPAID_LATE
        else:
            return
    else:
        found = _EXT_COUNTER.get(kind)
        if found is None:
            return
        field = found
    bucket = _bucket(state, event_month, sign)
    if bucket is not None:
        bucket[field] += sign
        _drop_if_empty(state, event_month, sign)


def _loan_key(ext: _R.ExternalRecord, opened: int) -> str:
    return f"{ext.institution_type}:{opened}:{ext.amount.minor_units}"


# -- feature vectors ---------------------------------------------------------------


def feature_values(state: SubjectState, as_of_seconds: int) -> list[float | None]:
    """The 20 features in catalog order as of ``as_of_seconds`` (epoch); None = no data.

    Reads at most 60 monthly buckets, the unpaid bills and the loan accounts,
    all bounded by the horizon, never the history itself."""
    now = as_of_seconds
    this_month = month_index(now)
    months = state.months
    bills_due = bills_on_time = worst_late = ut_months = 0
    buy_orders = buy_completed = buy_bad = 0
    sell_orders = sell_expected = sell_fulfilled = sell_disputed = 0
    rating_sum = rating_count = delinquencies = repaid_on_time = repaid_late = 0
    judgments = collections = 0
    for age in range(60):
        bucket = months.get(this_month - age)
        if bucket is None:
            continue
        if age < 12:
            bills_due += bucket[_BILLS_DUE]
            bills_on_time += bucket[_BILLS_ON_TIME]
            if bucket[_BILLS_WORST_LATE] > worst_late:
                worst_late = bucket[_BILLS_WORST_LATE]
            if bucket[_UT_PAID]:
                ut_months += 1
            buy_orders += bucket[_BUY_ORDERS]
            buy_completed += bucket[_BUY_COMPLETED]
            buy_bad += bucket[_BUY_BAD]
            sell_orders += bucket[_SELL_ORDERS]
            sell_expected += bucket[_SELL_EXPECTED]
            sell_fulfilled += bucket[_SELL_FULFILLED]
            sell_disputed += bucket[_SELL_DISPUTED]
        if age < 24:
            rating_sum += bucket[_RATING_SUM]
            rating_count += bucket[_RATING_COUNT]
            delinquencies += bucket[_EXT_DELINQUENCIES]
            repaid_on_time += bucket[_EXT_REPAID_ON_TIME]
            repaid_late += bucket[_EXT_REPAID_LATE]
        judgments += bucket[_EXT_JUDGMENTS_ARREARS]
        collections += bucket[_EXT_COLLECTIONS]

    past_due = state.unpaid_folded
    first_window_month = this_month - 11
    for due, amount in state.unpaid:
        if due > now:
            continue  # not yet due
        past_due += amount
        if first_window_month <= month_index(due):
            bills_due += 1
            late = _days_late(due, now)
            if late > worst_late:
                worst_late = late

    has_bills = state.bills_seen > 0
    has_external = state.external_seen > 0
    open_loans = sum(
        1
        for opened, _, closes in state.loans.values()
        if opened <= now and (not closes or closes[0] > now)
    )
    repayments = repaid_on_time + repaid_late

    def ratio(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    def tenure(fact: list[int] | None) -> float | None:
        return float(months_between(fact[0], now)) if fact is not None else None

    values: list[float | None] = [
        ratio(bills_on_time, bills_due),
        float(worst_late) if bills_due else None,
        float(state.bills_paid) if has_bills else None,
        float(ut_months) if has_bills else None,
        past_due / 100.0 if has_bills else None,
        ratio(buy_completed, buy_orders),
        ratio(buy_bad, buy_orders),
        float(buy_orders) if state.buyer_orders else None,
        ratio(sell_fulfilled, sell_expected),
        ratio(rating_sum, rating_count),
        ratio(sell_disputed, sell_orders),
        tenure(state.residence),
        tenure(state.phone),
        float(state.verified[0]) if state.verified is not None else None,
        float(months_between(state.first_time, now)) if state.first_time is not None else None,
        float(delinquencies) if has_external else None,
        float(judgments) if has_external else None,
        float(open_loans) if has_external else None,
        ratio(repaid_on_time, repayments),
        float(collections) if has_external else None,
    ]
    return values


def vector_valid_until(state: SubjectState, as_of_seconds: int) -> int:
    """The earliest epoch second after ``as_of_seconds`` at which
    ``feature_values(state, t)`` may differ from its value as of ``as_of_seconds``
    with no record applied or taken out; for every ``t`` before it (and not before
    ``as_of_seconds``) the values are the same. At the latest the start of the
    next calendar month. Which instants count: see the module docstring."""
    now = as_of_seconds
    this_month = month_index(now)
    until = _month_start(this_month + 1)

    # Bills: the first coming due, and the one due first within the window, whose
    # days late (the most of any unpaid bill) may pass the worst of the paid ones.
    first_window_month = this_month - 11
    worst_paid = 0
    for age in range(12):
        bucket = state.months.get(this_month - age)
        if bucket is not None and bucket[_BILLS_WORST_LATE] > worst_paid:
            worst_paid = bucket[_BILLS_WORST_LATE]
    earliest_due: int | None = None
    for due, _ in state.unpaid:  # sorted by due time
        if due > now:
            until = min(until, due)
            break
        if earliest_due is None and first_window_month <= month_index(due):
            earliest_due = due
    if earliest_due is not None:
        worst = max(worst_paid, _days_late(earliest_due, now))
        until = min(until, earliest_due + worst * _DAY + 1)

    # Loans open from their open time until their earliest close time.
    for opened, _, closes in state.loans.values():
        closed = closes[0] if closes else None
        if closed is not None and closed <= opened:
            continue  # never open
        if opened > now:
            until = min(until, opened)
        elif closed is not None and closed > now:
            until = min(until, closed)

    # Tenures: a step is after the start, so a start at or past ``until`` cannot come sooner.
    starts = [fact[0] for fact in (state.residence, state.phone) if fact is not None]
    if state.first_time is not None:
        starts.append(state.first_time)
    for start in starts:
        if start < until:
            until = min(until, next_month_step(start, now))
    return until


def feature_vector(state: SubjectState, as_of: datetime) -> dict[str, float | None]:
    """Feature name -> value (None = no data) as of ``as_of``, in catalog order."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return dict(zip(FEATURE_NAMES, feature_values(state, epoch_seconds(as_of)), strict=True))


def epoch_seconds(value: datetime) -> int:
    """Epoch seconds of an aware datetime, rounded down."""
    return int(value.timestamp() // 1)


# -- point-in-time matrices --------------------------------------------------------


@dataclass(frozen=True)
class PointInTimeMatrix:
    """Training rows: the features each applicant had at their application time."""

    X: np.ndarray  # float64 (n, 20); NaN = no data
    y: np.ndarray  # int8 (n,); 1 = BAD, 0 = GOOD
    subject_ids: tuple[str, ...]
    application_times: tuple[datetime, ...]
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])


def point_in_time_matrix(
    records: Iterable[_R.Record], outcomes: Iterable[_R.Record]
) -> PointInTimeMatrix:
    """One row per loan outcome (in the order given): the applicant's features as of
    the application time, computed only from records whose ``event_time`` is at or
    before it, and the label. Each subject's records are replayed once in event-time
    order, snapshotting at each of its applications.

    Raises ValueError for an outcome without an application time or a label."""
    rows: list[tuple[str, int, int]] = []
    for outcome in outcomes:
        body = outcome.loan_outcome
        if outcome.WhichOneof("body") != "loan_outcome" or not body.HasField("application_time"):
            raise ValueError(f"outcome {outcome.record_id!r} has no loan_outcome application_time")
        if body.label == _R.LOAN_OUTCOME_LABEL_BAD:
            label = 1
        elif body.label == _R.LOAN_OUTCOME_LABEL_GOOD:
            label = 0
        else:
            raise ValueError(f"outcome {outcome.record_id!r} has no label")
        rows.append((outcome.subject_id, body.application_time.seconds, label))

    wanted: dict[str, list[tuple[int, int]]] = defaultdict(list)  # subject -> [(application, row)]
    for row, (subject_id, applied, _) in enumerate(rows):
        wanted[subject_id].append((applied, row))
    history: dict[str, list[_R.Record]] = {s: [] for s in wanted}
    for record in records:
        found = history.get(record.subject_id)
        if found is not None:
            found.append(record)

    X = np.full((len(rows), len(FEATURE_NAMES)), np.nan, dtype=np.float64)
    for subject_id, applications in wanted.items():
        replay = history[subject_id]
        replay.sort(key=_event_seconds)
        applications.sort()
        state = SubjectState()
        position = 0
        for applied, row in applications:
            while position < len(replay) and replay[position].event_time.seconds <= applied:
                apply_record(state, replay[position])
                position += 1
            X[row] = [np.nan if v is None else v for v in feature_values(state, applied)]

    return PointInTimeMatrix(
        X=X,
        y=np.array([label for _, _, label in rows], dtype=np.int8),
        subject_ids=tuple(subject_id for subject_id, _, _ in rows),
        application_times=tuple(datetime.fromtimestamp(applied, UTC) for _, applied, _ in rows),
        feature_names=FEATURE_NAMES,
    )


def _event_seconds(record: _R.Record) -> int:
    return record.event_time.seconds
