"""The simulated population: deterministic by seed, realistic enough to train on."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import DEFAULT_AS_OF, Population, producer_of, simulate

_SOURCE_OF_BODY = {
    "order": common_pb2.DATA_SOURCE_COMMERCE,
    "rating": common_pb2.DATA_SOURCE_COMMERCE,
    "bill": common_pb2.DATA_SOURCE_PAYMENTS,
    "identity": common_pb2.DATA_SOURCE_IDENTITY,
    "external": common_pb2.DATA_SOURCE_EXTERNAL,
    "loan_outcome": common_pb2.DATA_SOURCE_OUTCOMES,
}


@pytest.fixture(scope="module")
def population() -> Population:
    return simulate(1500, seed=42)


def _serialized(population: Population) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in (*population.records, *population.outcomes)]


def test_same_seed_same_bytes_different_seed_different():
    a, b = simulate(120, seed=9), simulate(120, seed=9)
    assert _serialized(a) == _serialized(b)
    assert a.subjects == b.subjects
    c = simulate(120, seed=10)
    assert _serialized(c) != _serialized(a)
    assert [s.latent for s in c.subjects] != [s.latent for s in a.subjects]


def test_ids_times_and_order(population: Population):
    assert population.as_of == DEFAULT_AS_OF
    assert [s.subject_id for s in population.subjects[:2]] == ["sim-000000", "sim-000001"]
    assert simulate(3, seed=1, id_prefix="demo").subjects[2].subject_id == "demo-000002"
    keys = [(producer_of(r), r.record_id) for r in (*population.records, *population.outcomes)]
    assert len(keys) == len(set(keys))  # record ids unique per producer
    as_of = int(population.as_of.timestamp())
    times = [r.event_time.seconds for r in population.records]
    assert times == sorted(times) and times[-1] <= as_of
    assert all(r.WhichOneof("body") != "loan_outcome" for r in population.records)


def test_every_kind_of_record_is_produced(population: Population):
    kinds = Counter(r.WhichOneof("body") for r in population.records)
    assert set(kinds) == {"order", "rating", "bill", "identity", "external"}
    bills = {r.bill.category for r in population.records if r.HasField("bill")}
    assert {R.BILL_CATEGORY_UTILITY, R.BILL_CATEGORY_TELECOM, R.BILL_CATEGORY_RENT, R.BILL_CATEGORY_OTHER} <= bills
    assert any(not r.bill.HasField("paid_time") for r in population.records if r.HasField("bill"))
    outcomes = {(r.order.role, r.order.outcome) for r in population.records if r.HasField("order")}
    for role in (R.PARTY_ROLE_BUYER, R.PARTY_ROLE_SELLER):
        assert {o for rl, o in outcomes if rl == role} == set(range(1, 7))
    stars = {r.rating.stars for r in population.records if r.HasField("rating")}
    assert stars == {1, 2, 3, 4, 5}
    external = {(r.external.kind, r.external.status) for r in population.records if r.HasField("external")}
    kinds_seen = {k for k, _ in external}
    assert {R.EXTERNAL_KIND_LOAN_ACCOUNT, R.EXTERNAL_KIND_REPAYMENT, R.EXTERNAL_KIND_DELINQUENCY,
            R.EXTERNAL_KIND_COLLECTION, R.EXTERNAL_KIND_COURT_JUDGMENT, R.EXTERNAL_KIND_TAX_ARREARS} <= kinds_seen
    assert {(R.EXTERNAL_KIND_REPAYMENT, R.EXTERNAL_STATUS_ON_TIME),
            (R.EXTERNAL_KIND_REPAYMENT, R.EXTERNAL_STATUS_LATE)} <= external
    currencies = {r.bill.amount_due.currency_code for r in population.records if r.HasField("bill")}
    assert currencies == {"USD"}


def test_sources_first_time_and_producers_match_the_records(population: Population):
    sources: dict[str, set[int]] = {s.subject_id: set() for s in population.subjects}
    first: dict[str, int] = {}
    for r in population.records:
        sources[r.subject_id].add(_SOURCE_OF_BODY[r.WhichOneof("body")])
        first.setdefault(r.subject_id, r.event_time.seconds)
    for r in population.outcomes:
        sources[r.subject_id].add(common_pb2.DATA_SOURCE_OUTCOMES)
    for s in population.subjects:
        assert s.sources == tuple(sorted(sources[s.subject_id]))
        assert s.first_time == datetime.fromtimestamp(first[s.subject_id], UTC)
    groups = population.by_producer()
    assert set(groups) == {"marketplace", "wallet", "identity-agency", "bureau-partner", "lender"}
    assert sum(len(v) for k, v in groups.items() if k != "lender") == len(population.records)
    assert groups["lender"] == list(population.outcomes)
    assert {r.WhichOneof("body") for r in groups["marketplace"]} == {"order", "rating"}


def test_population_mix_thin_files_and_history_lengths(population: Population):
    n = len(population.subjects)
    counts = Counter(r.subject_id for r in population.records)
    thin = {s.subject_id for s in population.subjects if counts[s.subject_id] <= 2}
    assert 0.05 <= len(thin) / n <= 0.11
    with_source = Counter(x for s in population.subjects for x in s.sources)
    assert with_source[common_pb2.DATA_SOURCE_PAYMENTS] / n > 0.8
    assert 0.45 <= with_source[common_pb2.DATA_SOURCE_COMMERCE] / n <= 0.7
    assert 0.55 <= with_source[common_pb2.DATA_SOURCE_IDENTITY] / n <= 0.8
    assert 0.3 <= with_source[common_pb2.DATA_SOURCE_EXTERNAL] / n <= 0.5
    # Activity spans 3 to 60 months; the first record lands within its first month.
    months = [(population.as_of - s.first_time).days / 30.4 for s in population.subjects if s.subject_id not in thin]
    assert 1.5 <= min(months) <= 3.5 and 58 <= max(months) <= 62


def test_loan_outcomes_timing_rate_and_separation(population: Population):
    counts = Counter(r.subject_id for r in population.records)
    applicants = [r.subject_id for r in population.outcomes]
    assert len(applicants) == len(set(applicants))
    assert all(counts[s] > 2 for s in applicants)  # thin files never applied
    non_thin = sum(1 for s in population.subjects if counts[s.subject_id] > 2)
    assert 0.78 <= len(applicants) / non_thin <= 0.9
    for r in population.outcomes:
        o = r.loan_outcome
        applied = o.application_time.ToDatetime(tzinfo=UTC)
        assert timedelta(days=180) <= population.as_of - applied <= timedelta(days=366)
        assert o.observed_time.seconds == o.application_time.seconds + 183 * 86_400 == r.event_time.seconds
        assert o.observed_time.ToDatetime(tzinfo=UTC) <= population.as_of
    latent = {s.subject_id: s.latent for s in population.subjects}
    bad = np.array([r.loan_outcome.label == R.LOAN_OUTCOME_LABEL_BAD for r in population.outcomes])
    assert 0.13 <= bad.mean() <= 0.22
    z = np.array([latent[r.subject_id] for r in population.outcomes])
    # Rank AUC of the latent itself: well separated, yet far from perfect.
    ranks = np.argsort(np.argsort(-z)) + 1
    auc = (ranks[bad].sum() - bad.sum() * (bad.sum() + 1) / 2) / (bad.sum() * (~bad).sum())
    assert 0.78 <= auc <= 0.92


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        simulate(-1, seed=1)
    with pytest.raises(ValueError):
        simulate(1, seed=1, as_of=datetime(2026, 1, 1))
    assert simulate(0, seed=1).records == ()
