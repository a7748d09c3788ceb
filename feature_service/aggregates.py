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
the latest event are dropped, so a state holds at most ``MONTHS_KEPT`` buckets and
a vector sums at most 60 of them. Everything else is a few scalars (bills seen and
paid, first record time, identity tenure) or small collections bounded by the same
horizon: bills still unpaid (due time and amount, so that "days late" and "unpaid
past due" grow with the lookup time) and loan accounts. Unpaid bills that fall
out of the horizon are folded into one amount.

Conventions
-----------
- Times are UTC epoch seconds; a month is a calendar month (UTC), and "the last N
  months" as of T are the N calendar months ending with T's month.
- Bills are counted in the month they were due, orders in the month they were
  placed, ratings, repayments and external events in the month they were reported
  (the record's ``event_time``), utility/telecom months in the month paid.
- A bill is paid when its ``paid_time`` is set; it is on time when paid no later
  than its due time; days late are whole days, rounded up. A record states one
  bill; a bill is never updated by a later record.
- A loan account is identified by (institution type, open time, amount): a later
  LOAN_ACCOUNT record with the same identity (e.g. with ``close_time`` set, or a
  CLOSED / SETTLED / WRITTEN_OFF status) closes it.
- Amounts are summed in minor units of whatever currency they carry (one currency
  per deployment) and reported in major units (minor / 100).
- Missing ("no data", ``None``): a rate or average whose denominator is zero in its
  window; a count of a source the subject has no record from at all (a subject with
  bills but none paid has a paid count of 0, one with no bill at all has None);
  identity facts never reported.
- Loan outcome records are ignored: labels never feed features.
- A vector as of an earlier time than some applied records still counts those
  records' all-time effects (counts, first record); only time windows, tenure and
  open loans move with ``as_of``. Exact point-in-time vectors come from replaying
  records up to the date, as ``point_in_time_matrix`` does.
"""

from __future__ import annotations

import json
from bisect import insort
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from creditscore.catalog import FEATURE_NAMES
from creditscore.records.v1 import records_pb2 as _R

__all__ = [
    "MONTHS_KEPT",
    "PointInTimeMatrix",
    "SubjectState",
    "apply_record",
    "feature_values",
    "feature_vector",
    "month_index",
    "months_between",
    "point_in_time_matrix",
]

#: Monthly buckets kept: the longest window (60 months) plus a 12-month margin.
MONTHS_KEPT = 72
_STATE_VERSION = 1
_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Counters of one monthly bucket (a list of ints, indexed by these).
_BILLS_DUE = 0  # paid bills due this month
_BILLS_ON_TIME = 1  # ... of which paid by their due time
_BILLS_WORST_LATE = 2  # most days late among them (a maximum, not a sum)
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


def _days_late(due: int, paid: int) -> int:
    """Whole days (rounded up) from ``due`` to ``paid``; 0 when paid by the due time."""
    return -((due - paid) // _DAY) if paid > due else 0


class SubjectState:
    """One subject's aggregates. Mutated by ``apply_record``; read by
    ``feature_vector``; stored as JSON (``to_json`` / ``from_json``)."""

    __slots__ = (
        "record_count",
        "first_time",
        "last_month",
        "months",
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
        self.last_month: int | None = None  # month of the latest event time; anchors pruning
        self.months: dict[int, list[int]] = {}  # month index -> bucket counters
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
        self.loans: dict[str, list[int | None]] = {}  # loan identity -> [open_time, close_time or None]

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


# -- applying records --------------------------------------------------------------


def apply_record(state: SubjectState, record: _R.Record) -> None:
    """Adds one record's effects to ``state``. Loan outcomes (and records without a
    body) are ignored. Records may arrive in any order: the resulting state is the
    same, except between identity reports with equal event times (the later applied
    wins) and for facts already beyond the horizon when they arrive."""
    body = record.WhichOneof("body")
    if body is None or body == "loan_outcome":
        return
    t = record.event_time.seconds
    state.record_count += 1
    if state.first_time is None or t < state.first_time:
        state.first_time = t
    event_month = month_index(t)
    if state.last_month is None or event_month > state.last_month:
        state.last_month = event_month
        _prune(state)
    if body == "bill":
        _apply_bill(state, record.bill)
    elif body == "order":
        _apply_order(state, record.order, t)
    elif body == "rating":
        rating = record.rating
        if rating.rated_role == _R.PARTY_ROLE_SELLER and 1 <= rating.stars <= 5:
            bucket = _bucket(state, event_month)
            if bucket is not None:
                bucket[_RATING_SUM] += rating.stars
                bucket[_RATING_COUNT] += 1
    elif body == "identity":
        _apply_identity(state, record.identity, t)
    elif body == "external":
        _apply_external(state, record.external, t, event_month)


def _horizon(state: SubjectState) -> int:
    """The oldest month still kept."""
    assert state.last_month is not None
    return state.last_month - MONTHS_KEPT + 1


def _bucket(state: SubjectState, month: int) -> list[int] | None:
    """The bucket of ``month``, created on first use; None if it is beyond the horizon."""
    bucket = state.months.get(month)
    if bucket is None:
        if state.last_month is not None and month < _horizon(state):
            return None
        bucket = state.months[month] = [0] * _FIELDS
    return bucket


def _prune(state: SubjectState) -> None:
    """Drops what fell beyond the horizon: old buckets, old closed loans; folds old
    unpaid bills into one amount."""
    horizon = _horizon(state)
    for month in [m for m in state.months if m < horizon]:
        del state.months[month]
    if state.unpaid:
        keep = []
        for due, amount in state.unpaid:
            if month_index(due) < horizon:
                state.unpaid_folded += amount
            else:
                keep.append([due, amount])
        state.unpaid = keep
    for key in [k for k, (_, closed) in state.loans.items() if closed is not None and month_index(closed) < horizon]:
        del state.loans[key]


def _apply_bill(state: SubjectState, bill: _R.Bill) -> None:
    state.bills_seen += 1
    due = bill.due_time.seconds
    if not bill.HasField("paid_time"):
        outstanding = max(0, bill.amount_due.minor_units - bill.amount_paid.minor_units)
        if month_index(due) < _horizon(state):
            state.unpaid_folded += outstanding
        else:
            insort(state.unpaid, [due, outstanding])  # sorted: the state does not depend on arrival order
        return
    paid = bill.paid_time.seconds
    state.bills_paid += 1
    bucket = _bucket(state, month_index(due))
    if bucket is not None:
        late = _days_late(due, paid)
        bucket[_BILLS_DUE] += 1
        if late == 0:
            bucket[_BILLS_ON_TIME] += 1
        elif late > bucket[_BILLS_WORST_LATE]:
            bucket[_BILLS_WORST_LATE] = late
    if bill.category in _UTILITY_TELECOM:
        paid_bucket = _bucket(state, month_index(paid))
        if paid_bucket is not None:
            paid_bucket[_UT_PAID] += 1


def _apply_order(state: SubjectState, order: _R.Order, t: int) -> None:
    placed = order.placed_time.seconds if order.HasField("placed_time") else t
    outcome = order.outcome
    if order.role == _R.PARTY_ROLE_BUYER:
        state.buyer_orders += 1
        bucket = _bucket(state, month_index(placed))
        if bucket is None:
            return
        bucket[_BUY_ORDERS] += 1
        if outcome == _R.ORDER_OUTCOME_COMPLETED:
            bucket[_BUY_COMPLETED] += 1
        elif outcome in _BUYER_BAD:
            bucket[_BUY_BAD] += 1
    elif order.role == _R.PARTY_ROLE_SELLER:
        state.seller_orders += 1
        bucket = _bucket(state, month_index(placed))
        if bucket is None:
            return
        bucket[_SELL_ORDERS] += 1
        if outcome not in _SELLER_NOT_EXPECTED:
            bucket[_SELL_EXPECTED] += 1
            if order.HasField("fulfilment_time"):
                bucket[_SELL_FULFILLED] += 1
        if outcome in _SELLER_DISPUTED:
            bucket[_SELL_DISPUTED] += 1


def _apply_identity(state: SubjectState, identity: _R.IdentityTenure, t: int) -> None:
    """Each fact set in the record replaces an older report of it (by event time)."""
    if identity.HasField("residence_since_time") and (state.residence is None or t >= state.residence[1]):
        state.residence = [identity.residence_since_time.seconds, t]
    if identity.HasField("phone_since_time") and (state.phone is None or t >= state.phone[1]):
        state.phone = [identity.phone_since_time.seconds, t]
    if identity.HasField("identity_verified") and (state.verified is None or t >= state.verified[1]):
        state.verified = [int(identity.identity_verified), t]


def _apply_external(state: SubjectState, ext: _R.ExternalRecord, t: int, event_month: int) -> None:
    state.external_seen += 1
    kind = ext.kind
    if kind == _R.EXTERNAL_KIND_LOAN_ACCOUNT:
        opened = ext.open_time.seconds if ext.HasField("open_time") else t
        closed: int | None = None
        if ext.HasField("close_time"):
            closed = ext.close_time.seconds
        elif ext.status in _LOAN_CLOSED:
            closed = t
        if closed is not None and month_index(closed) < _horizon(state):
            state.loans.pop(_loan_key(ext, opened), None)
            return
        key = _loan_key(ext, opened)
        known = state.loans.get(key)
        if known is None:
            state.loans[key] = [opened, closed]
        elif closed is not None and (known[1] is None or closed < known[1]):
            known[1] = closed
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
    bucket = _bucket(state, event_month)
    if bucket is not None:
        bucket[field] += 1


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
        for opened, closed in state.loans.values()
        if opened is not None and opened <= now and (closed is None or closed > now)
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


def feature_vector(state: SubjectState, as_of: datetime) -> dict[str, float | None]:
    """Feature name -> value (None = no data) as of ``as_of``, in catalog order."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return dict(zip(FEATURE_NAMES, feature_values(state, _seconds(as_of)), strict=True))


def _seconds(value: datetime) -> int:
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
