"""A simulated population: the data of the demo, the tests and the benchmarks.

Every subject has a latent creditworthiness ``z`` (standard normal, higher is
better). It drives, through noisy per-source "behaviour" terms, everything the
producers report about the subject:

- payments (producer ``wallet``): monthly utility, telecom, rent and other bills;
  the chance of paying late, how late, and of not paying at all fall with ``z``;
- commerce (producer ``marketplace``): orders as a buyer (cancelled, disputed and
  unpaid rates fall with ``z``), and for some subjects orders as a seller (failure to
  ship, disputes, refunds) with the star ratings received;
- identity (producer ``identity-agency``): residence and phone tenure (longer with
  higher ``z``) and identity verification (likelier with higher ``z``);
- external (producer ``bureau-partner``): loan accounts with monthly repayments (late
  more often with lower ``z``), delinquencies, collections, court judgments and tax
  arrears;
- outcomes (producer ``lender``): about 85% of the subjects who are not thin files
  applied for a loan 6 to 12 months before ``as_of``; the loan went BAD with
  probability ``sigmoid(a - b*z)`` (about 17% overall), observed 6 months later.

About 8% of the subjects are thin files (one or two records, all in their last four
months) and never applied. The others are active for 3 to 60 months before ``as_of``
(their first record lands within the first month of that span), with about 120
records each on average.

A loan account is reported when opened (status OPEN) and, repeating its institution
type, open time and amount, when closed at the end of its term (status CLOSED, with
``close_time``); its repayments and delinquencies carry the loan's open time.

The separation is tuned so that a WoE scorecard trained on point-in-time features of
10,000 subjects reaches a holdout AUC of about 0.8 (the latent itself: about 0.85).
Cost: about 1.6 KB of memory per record (protobuf messages), about 120 records a
subject, so ``simulate`` (which holds them all) is for small populations; ``stream``
makes a population a chunk of subjects at a time and ``applicants`` only what
training reads (``creditscore.sim.training``), with memory flat in the size.

Every record's ``event_time`` is when its fact became known (a bill when paid, or 30
days after its due date when unpaid; an order when fulfilled or closed; ...) and is
never after ``as_of``, so a replay up to any date sees only what was known then.

The population is a pure function of its arguments, and each subject of the seed and
its own index alone: subject ``i`` draws from a PCG64 generator whose state is mixed
from ``(seed, i)`` (``_subject_rng_state``), never from the clock or from the other
subjects, so the same arguments give byte-identical records in the same order with
the same record ids, and subject ``i`` the same records whatever the population's
size and however it is chunked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2

__all__ = [
    "CURRENCY",
    "DEFAULT_AS_OF",
    "PRODUCER_BUREAU",
    "PRODUCER_IDENTITY",
    "PRODUCER_LENDER",
    "PRODUCER_MARKETPLACE",
    "PRODUCER_WALLET",
    "Applicant",
    "Population",
    "SimulatedSubject",
    "applicants",
    "producer_of",
    "simulate",
    "stream",
]

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CURRENCY = "USD"

PRODUCER_MARKETPLACE = "marketplace"
PRODUCER_WALLET = "wallet"
PRODUCER_IDENTITY = "identity-agency"
PRODUCER_BUREAU = "bureau-partner"
PRODUCER_LENDER = "lender"

_PRODUCER_BY_BODY = {
    "order": PRODUCER_MARKETPLACE,
    "rating": PRODUCER_MARKETPLACE,
    "bill": PRODUCER_WALLET,
    "identity": PRODUCER_IDENTITY,
    "external": PRODUCER_BUREAU,
    "loan_outcome": PRODUCER_LENDER,
}

# Plain module-level constants (enum wrapper attribute look-ups are slow in loops).
_S = common_pb2
_R = records_pb2

_DAY = 86_400
_MONTH = 30 * _DAY  # spacing of loan repayments and such; bills use calendar months

# Outcome model: P(BAD) = sigmoid(_BAD_A - _BAD_B * z).
_BAD_A = -2.3
_BAD_B = 1.8
# Spread of the per-source behaviour around the latent: the larger, the weaker
# each source's signal (and the lower a scorecard's AUC).
_BEHAVIOUR_NOISE = 0.6


@dataclass(frozen=True)
class SimulatedSubject:
    """One simulated person."""

    subject_id: str  # f"{id_prefix}-{i:06d}"
    latent: float  # standard normal creditworthiness (higher = better)
    first_time: datetime  # event time of the subject's first record
    sources: tuple[int, ...]  # common_pb2.DataSource values the subject has records from (OUTCOMES included)


@dataclass(frozen=True)
class Population:
    """What ``simulate`` returns."""

    as_of: datetime
    subjects: tuple[SimulatedSubject, ...]
    records: tuple[records_pb2.Record, ...]  # every record except loan outcomes, sorted by event_time
    outcomes: tuple[records_pb2.Record, ...]  # loan_outcome records, one per subject that applied

    def by_producer(self) -> dict[str, list[records_pb2.Record]]:
        """Producer id -> its records in event-time order: ``marketplace`` (orders,
        ratings), ``wallet`` (bills), ``identity-agency``, ``bureau-partner``
        (external records) and ``lender`` (loan outcomes)."""
        out: dict[str, list[records_pb2.Record]] = {
            p: [] for p in (PRODUCER_MARKETPLACE, PRODUCER_WALLET, PRODUCER_IDENTITY, PRODUCER_BUREAU)
        }
        for record in self.records:
            out[producer_of(record)].append(record)
        out[PRODUCER_LENDER] = list(self.outcomes)
        return out


def producer_of(record: records_pb2.Record) -> str:
    """The simulated producer that sends ``record`` (by its body)."""
    return _PRODUCER_BY_BODY[record.WhichOneof("body") or ""]


def simulate(
    n_subjects: int,
    *,
    seed: int,
    as_of: datetime = DEFAULT_AS_OF,
    id_prefix: str = "sim",
) -> Population:
    """A population of ``n_subjects`` whose records all became known by ``as_of``:
    the chunks of ``stream`` collected, every record and outcome sorted by event
    time (ties in subject order). Holds the whole population: for large ones,
    iterate ``stream`` (or ``applicants``, for training) instead.

    Deterministic: the same arguments give byte-identical records in the same order."""
    chunks = list(stream(n_subjects, seed=seed, as_of=as_of, id_prefix=id_prefix, chunk_size=max(1, n_subjects)))
    if not chunks:
        return Population(as_of=as_of, subjects=(), records=(), outcomes=())
    (only,) = chunks
    return only


def stream(
    n_subjects: int,
    *,
    seed: int,
    as_of: datetime = DEFAULT_AS_OF,
    id_prefix: str = "sim",
    chunk_size: int = 1000,
    start: int = 0,
) -> Iterator[Population]:
    """Subjects ``start`` to ``start + n_subjects - 1`` as consecutive chunks of at
    most ``chunk_size`` subjects, each a ``Population`` (records and outcomes sorted
    by event time within the chunk), made as they are iterated: memory holds one
    chunk. Each subject is drawn from a generator of its own, seeded by ``seed`` and
    its index alone, so subject ``i`` has the same records (ids, bytes) whatever
    ``n_subjects``, ``chunk_size`` and ``start``."""
    _check(n_subjects, as_of)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    sim = _Simulator(seed, int(as_of.timestamp()), id_prefix)
    for first in range(start, start + n_subjects, chunk_size):
        subjects: list[SimulatedSubject] = []
        records: list[records_pb2.Record] = []
        times: list[int] = []
        outcomes: list[records_pb2.Record] = []
        outcome_times: list[int] = []
        for i in range(first, min(first + chunk_size, start + n_subjects)):
            subject = sim.subject(i)
            assert subject is not None
            subjects.append(subject)
            records.extend(sim.records)
            times.extend(sim.times)
            if sim.outcome is not None:
                outcomes.append(sim.outcome)
                outcome_times.append(sim.outcome.event_time.seconds)
        yield Population(
            as_of=as_of,
            subjects=tuple(subjects),
            records=_by_time(records, times),
            outcomes=_by_time(outcomes, outcome_times),
        )


@dataclass(frozen=True)
class Applicant:
    """One subject who applied for a loan: the records known by the application
    time (in the order drawn) and the loan outcome record."""

    index: int  # the subject's index in the population
    subject_id: str
    records: tuple[records_pb2.Record, ...]
    outcome: records_pb2.Record


def applicants(
    n_subjects: int,
    *,
    seed: int,
    as_of: datetime = DEFAULT_AS_OF,
    id_prefix: str = "sim",
    start: int = 0,
) -> Iterator[Applicant]:
    """The applicants among subjects ``start`` to ``start + n_subjects - 1``, one at
    a time, each with only what training reads of them: the records they had at the
    application time and the outcome. The same records (ids, bytes) and outcomes as
    ``simulate``/``stream`` give them; the records known later are drawn but never
    built, and subjects who never applied stop after a few draws."""
    _check(n_subjects, as_of)
    sim = _Simulator(seed, int(as_of.timestamp()), id_prefix)
    for i in range(start, start + n_subjects):
        subject = sim.subject(i, applicants_only=True)
        if subject is None or sim.outcome is None:
            continue
        yield Applicant(index=i, subject_id=subject.subject_id, records=tuple(sim.records), outcome=sim.outcome)


def _check(n_subjects: int, as_of: datetime) -> None:
    if n_subjects < 0:
        raise ValueError("n_subjects must not be negative")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")


def _by_time(records: list[records_pb2.Record], times: list[int]) -> tuple[records_pb2.Record, ...]:
    """``records`` in event-time order, ties in the order given."""
    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    return tuple(records[j] for j in order.tolist())


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _subject_rng_state(seed: int, index: int) -> dict[str, Any]:
    """The PCG64 state subject ``index`` of a population seeded ``seed`` starts
    from: a function of the two alone (splitmix64-mixed, an odd increment), so
    that subjects draw from streams of their own whatever the chunking. About ten
    times cheaper than a ``SeedSequence`` per subject."""
    h = _splitmix64(_splitmix64(seed & _MASK64) ^ (index & _MASK64))
    words = [h]
    for _ in range(3):
        words.append(_splitmix64(words[-1]))
    return {
        "bit_generator": "PCG64",
        "state": {"state": (words[0] << 64) | words[1], "inc": ((words[2] << 64) | words[3]) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }


# -- internals -------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    """The logistic function of a scalar (``math``: numpy's scalar calls cost ~1 µs each)."""
    return 1.0 / (1.0 + math.exp(-x))


def _month_index(seconds: int) -> int:
    """Months since 1970-01 of a UTC epoch second."""
    return int(np.datetime64(seconds, "s").astype("datetime64[M]").astype(np.int64))


def _month_starts(months: np.ndarray) -> np.ndarray:
    """Epoch seconds of the first instant of each month index (months since 1970-01)."""
    return months.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)


def _categorical(rng: np.random.Generator, probabilities: Sequence[float], size: int) -> np.ndarray:
    """``size`` draws of indices into ``probabilities`` (normalised)."""
    p = np.asarray(probabilities, dtype=np.float64)
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(p) - 1)


_BILL_STREAMS: tuple[tuple[records_pb2.BillCategory.ValueType, float, float, float], ...] = (
    # category, probability of having the stream, median amount (USD), spread
    (_R.BILL_CATEGORY_UTILITY, 0.80, 80.0, 0.4),
    (_R.BILL_CATEGORY_TELECOM, 0.85, 45.0, 0.3),
    (_R.BILL_CATEGORY_RENT, 0.45, 900.0, 0.4),
    (_R.BILL_CATEGORY_OTHER, 0.30, 40.0, 0.6),
)

_OUTCOMES = (
    _R.ORDER_OUTCOME_COMPLETED,
    _R.ORDER_OUTCOME_CANCELLED_BY_BUYER,
    _R.ORDER_OUTCOME_CANCELLED_BY_SELLER,
    _R.ORDER_OUTCOME_REFUNDED,
    _R.ORDER_OUTCOME_DISPUTED,
    _R.ORDER_OUTCOME_UNPAID,
)


class _Simulator:
    """Draws one subject at a time, each from a generator of its own, seeded by
    ``(seed, subject index)`` alone (``_subject_rng``): subject ``i`` gets the same
    records whatever the population's size or chunking. ``limit`` (epoch seconds)
    leaves out the records that became known after it (their draws are still made,
    so the others are the same records with the same ids)."""

    def __init__(self, seed: int, as_of_s: int, id_prefix: str) -> None:
        self.seed = seed
        self.rng = np.random.Generator(np.random.PCG64(0))
        self.as_of_s = as_of_s
        self.as_of_month = _month_index(as_of_s)
        self.id_prefix = id_prefix
        self.limit = as_of_s  # records known after this are drawn but not kept
        # per subject, reset by each subject
        self.records: list[records_pb2.Record] = []
        self.times: list[int] = []
        self.outcome: records_pb2.Record | None = None
        self._first = 0
        self._sources: set[int] = set()
        self._counters: dict[str, int] = {}
        self._scratch = records_pb2.Record()

    # -- one subject -----------------------------------------------------------------

    def subject(self, i: int, *, applicants_only: bool = False) -> SimulatedSubject | None:
        """Draws subject ``i`` into ``records``, ``times`` (generation order) and
        ``outcome``. With ``applicants_only``: None, drawing nothing more, for a
        subject who never applied; else only the records known by the
        application time are kept."""
        rng = self.rng
        rng.bit_generator.state = _subject_rng_state(self.seed, i)
        sid = f"{self.id_prefix}-{i:06d}"
        u = rng.random(7)
        g = rng.standard_normal(5)
        history = int(rng.integers(3, 61))  # months
        start = self.as_of_s - history * _MONTH - int(rng.integers(0, 20 * _DAY))
        z = float(g[0])
        thin = bool(u[0] < 0.08)
        has_payments, has_buyer, has_external = bool(u[1] < 0.90), bool(u[2] < 0.60), bool(u[5] < 0.40)
        has_seller, has_identity = has_buyer and bool(u[3] < 0.25), bool(u[4] < 0.70)
        self.records = []
        self.times = []
        self._first = self.as_of_s
        self._sources = set()
        self._counters = {}
        self.limit = self.as_of_s
        outcome = self._loan_outcome(sid, z, start) if not thin and u[6] < 0.91 else None
        self.outcome = outcome
        if applicants_only:
            if outcome is None:
                return None
            self.limit = outcome.loan_outcome.application_time.seconds
        if thin:
            self._thin_file(sid, start)
        else:
            pay, com, ident, ext = (z + _BEHAVIOUR_NOISE * float(e) for e in g[1:])
            if has_payments or not has_buyer:
                self._bills(sid, pay, start)
            if has_buyer:
                self._buyer_orders(sid, com, start)
            if has_seller:
                self._seller_orders(sid, com, start)
            if has_identity:
                self._identity(sid, ident, start)
            if has_external:
                self._external(sid, ext, start)
        return SimulatedSubject(
            subject_id=sid,
            latent=z,
            first_time=datetime.fromtimestamp(self._first, UTC),
            sources=tuple(sorted(self._sources)),
        )

    def _count(self, prefix: str) -> int:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return n

    def _new(
        self, prefix: str, sid: str, event_s: int, source: int, template: bytes | None = None
    ) -> records_pb2.Record:
        """A new record ``<prefix>-<subject>-<n>`` (n counts per subject and prefix),
        parsed from ``template`` (a serialized record of the fields a series of
        records shares) when given; one known after ``limit`` is counted but not
        kept (a scratch message)."""
        n = self._count(prefix)
        if event_s > self.limit:
            return self._scratch
        if template is None:
            record = records_pb2.Record(record_id=f"{prefix}-{sid}-{n}", subject_id=sid)
        else:
            record = records_pb2.Record.FromString(template)
            record.record_id = f"{prefix}-{sid}-{n}"
        record.event_time.seconds = event_s
        self.records.append(record)
        self.times.append(event_s)
        self._sources.add(source)
        if event_s < self._first:
            self._first = event_s
        return record

    # -- payments ------------------------------------------------------------------

    def _bills(self, sid: str, behaviour: float, start: int) -> None:
        rng = self.rng
        p_unpaid = _sigmoid(-4.2 - 1.3 * behaviour)
        p_late = _sigmoid(-1.9 - 1.1 * behaviour)
        mean_late = min(max(4.0 * math.exp(-0.7 * behaviour), 1.5), 40.0)
        streams = [s for s in _BILL_STREAMS if rng.random() < s[1]] or [_BILL_STREAMS[1]]
        first_month = _month_index(start)
        months = np.arange(first_month, self.as_of_month + 1)
        for category, _, median, spread in streams:
            due_day = int(rng.integers(1, 29))
            due = _month_starts(months) + (due_day - 1) * _DAY + 17 * 3600
            due = due[due >= start]
            k = len(due)
            if k == 0:
                continue
            base = median * math.exp(spread * rng.standard_normal())
            amounts = np.maximum(100, np.round(base * np.exp(0.1 * rng.standard_normal(k)) * 100))
            amount_list = amounts.astype(np.int64).tolist()
            u = rng.random(k).tolist()
            days_late = (1 + rng.geometric(1.0 / mean_late, k)).tolist()
            early = rng.integers(0, 10 * _DAY, k).tolist()
            within = rng.integers(0, _DAY, k).tolist()
            p_not_on_time = p_unpaid + p_late
            # What the stream's bills share, set once: parsing it back costs less
            # than setting the fields on every message (the bills' biggest cost).
            template = records_pb2.Record(
                subject_id=sid,
                bill=records_pb2.Bill(
                    category=category,
                    amount_due=records_pb2.Money(currency_code=CURRENCY),
                    amount_paid=records_pb2.Money(currency_code=CURRENCY),
                ),
            ).SerializeToString()
            for j, due_s in enumerate(due.tolist()):
                if u[j] < p_unpaid:
                    paid_s = None
                    event = due_s + 30 * _DAY
                elif u[j] < p_not_on_time:
                    paid_s = due_s + days_late[j] * _DAY - within[j]
                    event = paid_s
                else:
                    paid_s = due_s - early[j]
                    event = paid_s
                if event > self.as_of_s:
                    continue
                if event > self.limit:
                    self._count("bill")  # known after the limit: its id is still taken
                    continue
                record = self._new("bill", sid, event, _S.DATA_SOURCE_PAYMENTS, template)
                bill = record.bill
                amount = amount_list[j]
                bill.amount_due.minor_units = amount
                bill.issue_time.seconds = due_s - 14 * _DAY
                bill.due_time.seconds = due_s
                if paid_s is not None:
                    bill.amount_paid.minor_units = amount
                    bill.paid_time.seconds = paid_s

    # -- commerce ------------------------------------------------------------------

    def _order_times(self, rate_per_month: float, start: int) -> np.ndarray:
        """Placement times of a Poisson stream of orders from ``start`` to as_of."""
        months = (self.as_of_s - start) / _MONTH
        k = int(self.rng.poisson(rate_per_month * months))
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        return np.sort(self.rng.integers(start, self.as_of_s, k))

    def _orders(
        self, sid: str, role: records_pb2.PartyRole.ValueType, placed: np.ndarray, probabilities: Sequence[float]
    ) -> list[tuple[int, int]]:
        """Orders in ``role`` placed at ``placed``, outcomes drawn from
        ``probabilities`` (in ``_OUTCOMES`` order). Returns ``(event_s, outcome)``
        of the fulfilled ones, which may be rated."""
        rng = self.rng
        k = len(placed)
        outcome = _categorical(rng, probabilities, k)
        amounts = np.maximum(100, np.round(np.exp(3.3 + 0.8 * rng.standard_normal(k)) * 100)).astype(np.int64)
        ship = rng.integers(_DAY, 7 * _DAY, k).tolist()
        after = rng.integers(2 * _DAY, 20 * _DAY, k).tolist()
        cancel = rng.integers(3600, 3 * _DAY, k).tolist()
        amount_list = amounts.tolist()
        kinds = [_OUTCOMES[o] for o in outcome.tolist()]
        fulfilled: list[tuple[int, int]] = []
        for j, placed_s in enumerate(placed.tolist()):
            kind = kinds[j]
            fulfil_s: int | None = None
            if kind == _R.ORDER_OUTCOME_COMPLETED:
                fulfil_s = placed_s + ship[j]
                event = fulfil_s
            elif kind in (_R.ORDER_OUTCOME_DISPUTED, _R.ORDER_OUTCOME_REFUNDED):
                fulfil_s = placed_s + ship[j]
                event = fulfil_s + after[j]
            elif kind == _R.ORDER_OUTCOME_UNPAID:
                event = placed_s + 7 * _DAY
            else:  # cancelled by the buyer or the seller
                event = placed_s + cancel[j]
            if event > self.as_of_s:
                continue
            if event > self.limit:  # known after the limit: its id is taken, it may still be rated
                self._count("order")
                if fulfil_s is not None:
                    fulfilled.append((event, kind))
                continue
            record = self._new("order", sid, event, _S.DATA_SOURCE_COMMERCE)
            order = record.order
            order.role = role
            order.amount.currency_code = CURRENCY
            order.amount.minor_units = amount_list[j]
            order.placed_time.seconds = placed_s
            order.outcome = kind
            if fulfil_s is not None:
                order.fulfilment_time.seconds = fulfil_s
                fulfilled.append((event, kind))
        return fulfilled

    def _buyer_orders(self, sid: str, behaviour: float, start: int) -> None:
        rate = math.exp(0.4 + 0.6 * self.rng.standard_normal())
        rate = min(rate, 8.0)
        p_cancel = _sigmoid(-2.7 - 0.8 * behaviour)
        p_dispute = _sigmoid(-3.7 - 0.8 * behaviour)
        p_unpaid = _sigmoid(-3.7 - 1.0 * behaviour)
        p_seller_cancel, p_refund = 0.03, 0.03
        p_completed = max(0.05, 1.0 - p_cancel - p_dispute - p_unpaid - p_seller_cancel - p_refund)
        self._orders(
            sid,
            _R.PARTY_ROLE_BUYER,
            self._order_times(rate, start),
            (p_completed, p_cancel, p_seller_cancel, p_refund, p_dispute, p_unpaid),
        )

    def _seller_orders(self, sid: str, behaviour: float, start: int) -> None:
        rng = self.rng
        rate = min(math.exp(0.8 + 0.7 * rng.standard_normal()), 12.0)
        p_fail = _sigmoid(-3.0 - 1.0 * behaviour)  # cancelled by the seller: never shipped
        p_dispute = _sigmoid(-3.4 - 0.8 * behaviour)
        p_refund = _sigmoid(-3.2 - 0.6 * behaviour)
        p_buyer_cancel, p_unpaid = 0.04, 0.02
        p_completed = max(0.05, 1.0 - p_fail - p_dispute - p_refund - p_buyer_cancel - p_unpaid)
        fulfilled = self._orders(
            sid,
            _R.PARTY_ROLE_SELLER,
            self._order_times(rate, start),
            (p_completed, p_buyer_cancel, p_fail, p_refund, p_dispute, p_unpaid),
        )
        k = len(fulfilled)
        rated = rng.random(k) < 0.45
        happy = np.clip(np.rint(rng.normal(4.2 + 0.35 * behaviour, 0.8, k)), 1, 5)
        unhappy = np.clip(np.rint(rng.normal(2.0, 1.0, k)), 1, 5)
        delay = rng.integers(_DAY, 10 * _DAY, k)
        for j, (closed_s, kind) in enumerate(fulfilled):
            event = closed_s + int(delay[j])
            if not rated[j] or event > self.as_of_s:
                continue
            record = self._new("rating", sid, event, _S.DATA_SOURCE_COMMERCE)
            record.rating.rated_role = _R.PARTY_ROLE_SELLER
            stars = happy[j] if kind == _R.ORDER_OUTCOME_COMPLETED else unhappy[j]
            record.rating.stars = int(stars)

    # -- identity ------------------------------------------------------------------

    def _identity(self, sid: str, behaviour: float, start: int) -> None:
        rng = self.rng
        span = self.as_of_s - start
        first = start + int(rng.integers(0, max(1, span // 2)))
        residence_months = rng.exponential(20.0 * math.exp(0.45 * behaviour))
        phone_months = rng.exponential(28.0 * math.exp(0.45 * behaviour))
        verified = bool(rng.random() < _sigmoid(0.6 + 1.0 * behaviour))
        record = self._new("identity", sid, first, _S.DATA_SOURCE_IDENTITY)
        tenure = record.identity
        tenure.residence_since_time.seconds = first - int(residence_months * _MONTH)
        tenure.phone_since_time.seconds = first - int(phone_months * _MONTH)
        tenure.identity_verified = verified
        if rng.random() >= 0.35:
            return
        # A later update: a move (likelier with lower z) or a verification.
        later = first + int(rng.integers(_DAY, max(2 * _DAY, self.as_of_s - first)))
        moves = rng.random() < _sigmoid(-0.3 - 0.5 * behaviour)
        later = min(later, self.as_of_s)
        update = self._new("identity", sid, later, _S.DATA_SOURCE_IDENTITY).identity
        if moves:
            update.residence_since_time.seconds = later - int(rng.integers(0, 30 * _DAY))
        else:
            update.identity_verified = True

    # -- external ------------------------------------------------------------------

    def _external(self, sid: str, behaviour: float, start: int) -> None:
        rng = self.rng
        years = (self.as_of_s - start) / (365 * _DAY)
        p_late = _sigmoid(-2.6 - 1.2 * behaviour)
        bad = _sigmoid(-1.5 - 1.5 * behaviour)
        n_loans = int(rng.poisson(0.9 + 1.2 * _sigmoid(-behaviour)))
        for _ in range(n_loans):
            self._loan(sid, start, p_late)
        events = (
            (_R.EXTERNAL_KIND_COLLECTION, 0.8 * bad, _R.INSTITUTION_TYPE_MERCHANT),
            (_R.EXTERNAL_KIND_DELINQUENCY, 0.8 * bad, _R.INSTITUTION_TYPE_MERCHANT),
            (_R.EXTERNAL_KIND_COURT_JUDGMENT, 0.25 * bad, _R.INSTITUTION_TYPE_PUBLIC_AGENCY),
            (_R.EXTERNAL_KIND_TAX_ARREARS, 0.25 * bad, _R.INSTITUTION_TYPE_PUBLIC_AGENCY),
        )
        for kind, per_year, institution in events:
            k = int(rng.poisson(per_year * years))
            times = rng.integers(start, self.as_of_s, k) if k else ()
            amounts = np.round(np.exp(5.5 + rng.standard_normal(k)) * 100).astype(np.int64) if k else ()
            for j in range(k):
                t = int(times[j])
                ext = self._new("ext", sid, t, _S.DATA_SOURCE_EXTERNAL).external
                ext.kind = kind
                ext.institution_type = institution
                ext.amount.currency_code = CURRENCY
                ext.amount.minor_units = int(amounts[j])
                ext.open_time.seconds = t
                ext.status = _R.EXTERNAL_STATUS_OPEN

    def _loan(self, sid: str, start: int, p_late: float) -> None:
        """One loan account: opened, repaid monthly (on time or late, some late
        ones reported as delinquencies), and closed at the end of its term."""
        rng = self.rng
        opened = int(rng.integers(start, self.as_of_s))
        term = int(rng.integers(6, 37))
        principal = round(math.exp(7.5 + 0.7 * rng.standard_normal())) * 100
        instalment = max(100, principal // term)
        institution = _R.INSTITUTION_TYPE_FINANCIAL_INSTITUTION
        ext = self._new("ext", sid, opened, _S.DATA_SOURCE_EXTERNAL).external
        ext.kind = _R.EXTERNAL_KIND_LOAN_ACCOUNT
        ext.institution_type = institution
        ext.amount.currency_code = CURRENCY
        ext.amount.minor_units = principal
        ext.open_time.seconds = opened
        ext.status = _R.EXTERNAL_STATUS_OPEN
        late = rng.random(term) < p_late
        reported = rng.random(term) < 0.35
        for k in range(1, term + 1):
            due = opened + k * _MONTH
            if due > self.as_of_s:
                return
            rep = self._new("ext", sid, due, _S.DATA_SOURCE_EXTERNAL).external
            rep.kind = _R.EXTERNAL_KIND_REPAYMENT
            rep.institution_type = institution
            rep.amount.currency_code = CURRENCY
            rep.amount.minor_units = instalment
            rep.open_time.seconds = opened
            rep.status = _R.EXTERNAL_STATUS_LATE if late[k - 1] else _R.EXTERNAL_STATUS_ON_TIME
            if late[k - 1] and reported[k - 1] and due + 30 * _DAY <= self.as_of_s:
                dq = self._new("ext", sid, due + 30 * _DAY, _S.DATA_SOURCE_EXTERNAL).external
                dq.kind = _R.EXTERNAL_KIND_DELINQUENCY
                dq.institution_type = institution
                dq.amount.currency_code = CURRENCY
                dq.amount.minor_units = instalment
                dq.open_time.seconds = due
                dq.status = _R.EXTERNAL_STATUS_OPEN
        closed = opened + term * _MONTH + _DAY
        if closed > self.as_of_s:
            return
        end = self._new("ext", sid, closed, _S.DATA_SOURCE_EXTERNAL).external
        end.kind = _R.EXTERNAL_KIND_LOAN_ACCOUNT
        end.institution_type = institution
        end.amount.currency_code = CURRENCY
        end.amount.minor_units = principal
        end.open_time.seconds = opened
        end.close_time.seconds = closed
        end.status = _R.EXTERNAL_STATUS_CLOSED

    # -- thin files and outcomes ---------------------------------------------------

    def _thin_file(self, sid: str, start: int) -> None:
        """One or two records from one source, all in the last months."""
        rng = self.rng
        kind = int(rng.integers(0, 3))
        count = int(rng.integers(1, 3))
        recent = max(start, self.as_of_s - 4 * _MONTH)
        for _ in range(count):
            t = int(rng.integers(recent, self.as_of_s))
            if kind == 0:
                record = self._new("bill", sid, t, _S.DATA_SOURCE_PAYMENTS)
                bill = record.bill
                bill.category = _R.BILL_CATEGORY_TELECOM
                bill.amount_due.currency_code = CURRENCY
                bill.amount_due.minor_units = 3000
                bill.issue_time.seconds = t - 20 * _DAY
                bill.due_time.seconds = t + int(rng.integers(0, 5 * _DAY))
                bill.amount_paid.currency_code = CURRENCY
                bill.amount_paid.minor_units = 3000
                bill.paid_time.seconds = t
            elif kind == 1:
                record = self._new("order", sid, t, _S.DATA_SOURCE_COMMERCE)
                order = record.order
                order.role = _R.PARTY_ROLE_BUYER
                order.amount.currency_code = CURRENCY
                order.amount.minor_units = 2500
                order.placed_time.seconds = t - 2 * _DAY
                order.outcome = _R.ORDER_OUTCOME_COMPLETED
                order.fulfilment_time.seconds = t
            else:
                record = self._new("identity", sid, t, _S.DATA_SOURCE_IDENTITY)
                record.identity.phone_since_time.seconds = t - int(rng.integers(0, 24 * _MONTH))

    def _loan_outcome(self, sid: str, z: float, start: int) -> records_pb2.Record | None:
        """A loan applied for 6-12 months before as_of (and at least a month after
        the history began), BAD with probability sigmoid(a - b*z), observed 6 months on."""
        rng = self.rng
        latest = self.as_of_s - 183 * _DAY
        earliest = max(self.as_of_s - 365 * _DAY, start + _MONTH)
        if earliest >= latest:
            return None  # too short a history to have applied in the window
        applied = int(rng.integers(earliest, latest))
        observed = applied + 183 * _DAY
        bad = bool(rng.random() < _sigmoid(_BAD_A - _BAD_B * z))
        record = records_pb2.Record(record_id=f"outcome-{sid}", subject_id=sid)
        record.event_time.seconds = observed
        outcome = record.loan_outcome
        outcome.application_time.seconds = applied
        outcome.observed_time.seconds = observed
        outcome.label = _R.LOAN_OUTCOME_LABEL_BAD if bad else _R.LOAN_OUTCOME_LABEL_GOOD
        self._sources.add(_S.DATA_SOURCE_OUTCOMES)
        return record
