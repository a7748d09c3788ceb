"""PSI against hand-computed cases, the binning it rests on, and the drift of a
scorecard's scores against the training population its artifact records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from creditscore.scorecard.drift import (
    DEFAULT_MIN_SCORES,
    DriftStatus,
    NoTrainingDistribution,
    compute_drift,
    histogram_shares,
    merge_histogram,
    psi,
    status_for,
    training_distribution,
)
from creditscore.scorecard.model import Scorecard
from scoring_service.config import DEFAULT_MODEL_DIR
from scoring_service.registry import ModelRegistry


def test_identical_distributions_have_zero_psi():
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert psi([20, 30, 50], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-15)  # counts are normalised
    assert psi([0.0, 0.4, 0.6], [0.0, 0.4, 0.6]) == 0.0  # an empty bin in both: epsilon on both sides


def test_a_known_shift():
    # Two bins, 50/50 in training, 70/30 now:
    # (0.7 - 0.5) ln(0.7/0.5) + (0.3 - 0.5) ln(0.3/0.5) = 0.2 * 0.336472 + 0.2 * 0.510826
    assert psi([0.7, 0.3], [0.5, 0.5]) == pytest.approx(0.1694596, abs=1e-7)
    assert psi([70, 30], [5, 5]) == pytest.approx(0.1694596, abs=1e-7)
    # An empty bin counts as epsilon = 1e-4:
    # (1 - 0.5) ln(1/0.5) + (0.0001 - 0.5) ln(0.0001/0.5) = 0.346574 + 0.4999 * 8.517193
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(4.6043185, abs=1e-6)
    # Symmetric in which side moved.
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(psi([0.7, 0.3], [0.5, 0.5]))


def test_psi_refuses_mismatched_or_empty_inputs():
    for actual, expected in (([0.5, 0.5], [1.0]), ([], []), ([0.0, 0.0], [0.5, 0.5]), ([-0.1, 1.1], [0.5, 0.5])):
        with pytest.raises(ValueError):
            psi(actual, expected)


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, DriftStatus.STABLE), (0.0999, DriftStatus.STABLE), (0.1, DriftStatus.MONITOR),
     (0.2499, DriftStatus.MONITOR), (0.25, DriftStatus.SHIFTED), (3.0, DriftStatus.SHIFTED)],
)
def test_the_usual_thresholds(value, status):
    assert status_for(value) is status


def test_histogram_bins_are_merged_until_each_holds_a_tenth():
    edges, shares = merge_histogram([350, 375, 400, 425, 450, 475], [0.05, 0.05, 0.3, 0.55, 0.05])
    # 0.05 + 0.05 close the first bin at 400; 0.3 and 0.55 stand alone; the top
    # 0.05 is too small and joins the bin below it.
    assert edges == [350, 400, 425, 475]
    assert shares == pytest.approx([0.1, 0.3, 0.6])
    assert merge_histogram([0, 1, 2], [0.5, 0.5]) == ([0, 1, 2], [0.5, 0.5])
    assert merge_histogram([0, 1, 2], [0.02, 0.98]) == ([0, 2], pytest.approx([1.0]))
    with pytest.raises(ValueError):
        merge_histogram([0, 1], [0.5, 0.5])


def test_scores_fall_in_right_open_bins_and_950_in_the_top_one():
    assert histogram_shares(np.array([350, 374.9, 375, 950]), [350, 375, 950]).tolist() == [2, 2]


def card(training: dict[str, Any] | None) -> Scorecard:
    def feature(name: str, inner: list[float]) -> dict[str, Any]:
        edges = [None, *inner, None]
        return {
            "name": name,
            "coefficient": -1.0,
            "bins": [{"lo": edges[i], "hi": edges[i + 1], "points": 100.0 + 10 * i} for i in range(len(inner) + 1)],
            "missing": {"points": 100.0},
        }

    artifact: dict[str, Any] = {
        "format": "creditscore.scorecard/1",
        "version": "3.0.0",
        "description": "hand-built for the drift tests",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.0,
        "features": [
            feature("pay_ontime_ratio_12m", [0.8]),
            feature("identity_verified", [0.5]),
            feature("ext_delinquencies_24m", [1.0]),  # no training entry: left out
            feature("pay_bills_paid_count", [5.0, 10.0]),  # recorded for other bins: left out
        ],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
    }
    if training is not None:
        artifact["training_distribution"] = training
    return Scorecard.from_dict(artifact)


TRAINING = {
    "score": {"edges": [350, 500, 650, 800, 950], "shares": [0.25, 0.25, 0.25, 0.25], "insufficient_share": 0.1},
    "features": {
        # the trainer's layout: numeric bins, then "missing"
        "pay_ontime_ratio_12m": {"bins": [0.5, 0.5], "missing": 0.0},
        # the other layout: the "no data" share last in "bins"
        "identity_verified": {"bins": [0.25, 0.25, 0.5]},
        "pay_bills_paid_count": {"bins": [0.5, 0.5], "missing": 0.0},
    },
}


def test_drift_against_the_recorded_training_population():
    model = card(TRAINING)
    vectors = (
        [{"pay_ontime_ratio_12m": 0.5, "identity_verified": 0.0}] * 2
        + [{"pay_ontime_ratio_12m": 0.5}] * 2  # identity_verified absent: no data
        + [{"pay_ontime_ratio_12m": 0.9, "identity_verified": 1.0}] * 2
        + [{"pay_ontime_ratio_12m": 0.9, "identity_verified": None}] * 2
    )
    # One score in each quarter, twice over: the training shape exactly.
    same = compute_drift(model, [400, 600, 700, 900] * 2, vectors, min_scores=8)
    assert (same.status, same.score_psi, same.scores_used) == (DriftStatus.STABLE, 0.0, 8)
    assert [(f.feature, f.psi, f.status) for f in same.features] == [
        ("pay_ontime_ratio_12m", 0.0, DriftStatus.STABLE),
        ("identity_verified", 0.0, DriftStatus.STABLE),
    ]
    assert (same.insufficient_share, same.training_insufficient_share) == (0.0, 0.1)

    # Seven of eight at the top, one at the bottom, none between; half of the
    # vectors INSUFFICIENT_DATA (no score) do not count in the score PSI.
    scores: list[int | None] = [900] * 7 + [400] + [None] * 8
    shifted = compute_drift(model, scores, vectors * 2, min_scores=8)
    expected = (
        (0.125 - 0.25) * math.log(0.125 / 0.25)
        + 2 * (1e-4 - 0.25) * math.log(1e-4 / 0.25)
        + (0.875 - 0.25) * math.log(0.875 / 0.25)
    )
    assert shifted.score_psi == pytest.approx(expected)  # 4.7800785
    assert shifted.status is DriftStatus.SHIFTED
    assert (shifted.scores_used, shifted.insufficient_share) == (16, 0.5)

    # A feature moving: everyone under 0.8 against 50/50.
    low = compute_drift(model, [400, 600, 700, 900] * 2, [{"pay_ontime_ratio_12m": 0.1}] * 8, min_scores=8)
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert low.features[0].psi == pytest.approx(expected)
    assert low.features[0].status is DriftStatus.SHIFTED


def test_too_few_scores_give_insufficient_data_and_no_psi():
    model = card(TRAINING)
    vectors = [{"pay_ontime_ratio_12m": 0.5}] * 99
    report = compute_drift(model, [600] * 99, vectors)  # the default min_scores
    assert DEFAULT_MIN_SCORES == 100
    assert (report.status, report.score_psi) == (DriftStatus.INSUFFICIENT_DATA, None)
    assert {(f.psi, f.status) for f in report.features} == {(None, DriftStatus.INSUFFICIENT_DATA)}
    assert compute_drift(model, [600] * 100, vectors + vectors[:1]).status is not DriftStatus.INSUFFICIENT_DATA
    # Enough vectors but too few of them scored: the features get a PSI, the score does not.
    mixed = compute_drift(model, [600] * 50 + [None] * 50, vectors + vectors[:1])
    assert mixed.status is DriftStatus.INSUFFICIENT_DATA and mixed.score_psi is None
    assert all(f.psi is not None for f in mixed.features)
    empty = compute_drift(model, [], [])
    assert (empty.status, empty.scores_used, empty.insufficient_share) == (DriftStatus.INSUFFICIENT_DATA, 0, 0.0)


def test_a_scorecard_without_a_training_population_cannot_drift():
    with pytest.raises(NoTrainingDistribution, match="no training score distribution"):
        training_distribution(card(None))
    with pytest.raises(NoTrainingDistribution, match="increasing edges"):
        training_distribution(card({"score": {"edges": [350, 950, 650], "shares": [0.5, 0.5]}}))
    with pytest.raises(NoTrainingDistribution):
        training_distribution(card({"score": {"edges": [350, 950], "shares": ["x"]}}))


def test_the_shipped_scorecard_drifts_only_when_its_population_moves():
    model = ModelRegistry.load(DEFAULT_MODEL_DIR).initial
    dist = training_distribution(model)
    # Every model feature has its training shares; score bins hold a tenth or more.
    assert set(dist.features) == set(model.features)
    assert all(s >= 0.1 - 1e-9 for s in dist.score_shares) and sum(dist.score_shares) == pytest.approx(1.0)
    assert len(dist.score_shares) <= 10

    # Scores drawn from the training histogram itself (uniformly within its 25-point bins).
    recorded = model.artifact["training_distribution"]["score"]
    edges, shares = np.array(recorded["edges"], float), np.array(recorded["shares"], float)
    rng = np.random.default_rng(5)
    n = 3000
    bins = rng.choice(len(shares), size=n, p=shares / shares.sum())
    drawn = np.floor(edges[bins] + rng.random(n) * 25)
    vectors: list[dict[str, float | None]] = [{} for _ in range(n)]
    like_training = compute_drift(model, drawn.tolist(), vectors, distribution=dist)
    assert like_training.status is DriftStatus.STABLE and like_training.score_psi < 0.05
    # The same people 80 points better off.
    moved = compute_drift(model, np.minimum(drawn + 80, 950).tolist(), vectors, distribution=dist)
    assert moved.status is DriftStatus.SHIFTED
    # Nobody has any data any more: every feature's "no data" bin fills up.
    assert all(f.status is DriftStatus.SHIFTED for f in moved.features)


def test_special_values_and_categories_are_binned_as_the_model_bins_them():
    def texts(code: str) -> dict[str, Any]:
        return {"reason_code": code, "reason_text": "t", "missing_reason_code": f"{code}_NO_DATA", "missing_text": "m"}

    model = Scorecard.from_dict({
        "format": "creditscore.scorecard/2",
        "version": "4.0.0",
        "description": "format 2: a special value and a categorical feature",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.0,
        "features": [
            {"name": "bills_paid", "kind": "numeric", **texts("BILLS_PAID"), "coefficient": -1.0,
             "bins": [{"lo": None, "hi": 5, "points": 10.0}, {"lo": 5, "hi": None, "points": 20.0}],
             "special": [{"value": -999, "points": 5.0}], "missing": {"points": 8.0}},
            {"name": "housing", "kind": "categorical", **texts("HOUSING"), "coefficient": -1.0,
             "bins": [{"categories": ["rent"], "points": 5.0},
                      {"categories": ["own"], "other": True, "points": 9.0}],
             "missing": {"points": 4.0}},
        ],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
        "training_distribution": {
            "score": {"edges": [350, 950], "shares": [1.0]},
            "features": {
                "bills_paid": {"bins": [0.4, 0.4], "special": [0.1], "missing": 0.1},
                "housing": {"bins": [0.5, 0.5], "missing": 0.0},
            },
        },
    })
    # 4 under 5, 4 from 5, one special code, one without data; 5 renting, 3 owning
    # and 2 with a category never seen in training (the "other" bin: owning's).
    vectors = (
        [{"bills_paid": 2.0, "housing": "rent"}] * 4
        + [{"bills_paid": 7.0, "housing": "own"}] * 3
        + [{"bills_paid": 7.0, "housing": "rent"}]
        + [{"bills_paid": -999.0, "housing": "boat"}, {"bills_paid": None, "housing": "boat"}]
    )
    same = compute_drift(model, [600] * 10, vectors, min_scores=10)
    assert [(f.feature, f.psi) for f in same.features] == [("bills_paid", 0.0), ("housing", 0.0)]

    special = compute_drift(model, [600] * 10, [{"bills_paid": -999.0}] * 10, min_scores=10)
    expected = (
        2 * (1e-4 - 0.4) * math.log(1e-4 / 0.4)
        + (1.0 - 0.1) * math.log(1.0 / 0.1)
        + (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    )
    assert special.features[0].psi == pytest.approx(expected)
    # Housing absent everywhere: all in its "no data" bin, which training never saw.
    expected = 2 * (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 1e-4) * math.log(1.0 / 1e-4)
    assert special.features[1].psi == pytest.approx(expected)


def test_every_kind_of_bin_of_a_trained_model_drifts():
    """A model trained on a table with a categorical feature (a rare category
    pooled into "other"), a numeric one with a special code with a bin of its own
    and one pooled with "no data", and missing values: every feature gets a PSI,
    about 0 on the training population itself, and the one that moves shifts."""
    from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
    from creditscore.scorecard.training import stratified_split, train_table

    rng = np.random.default_rng(12)
    n = 20_000
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.1] = -999.0
    income[:50] = -1.0  # too rare for a bin: scored as no data
    income[rng.random(n) < 0.05] = np.nan
    housing = rng.choice(np.array(["own", "rent", "family", "boat"], dtype=object), n, p=[0.5, 0.3, 0.18, 0.02])
    housing[rng.random(n) < 0.05] = None
    logit = -1.5 - np.log(np.where(income > 0, income, 22000) / 22000) + np.where(housing == "rent", 0.9, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    result = train_table(
        {"income": income, "housing": housing}, y,
        [FeatureSpec("income", NUMERIC, special_values=(-999, -1)), FeatureSpec("housing", CATEGORICAL)],
        version="5.0.0", description="drift of every bin kind", min_iv=0.0, seed=3,
    )
    card = result.scorecard
    binning = result.binnings["income"]
    assert binning.specials == (-999.0,) and binning.pooled_specials == (-1.0,)
    assert result.binnings["housing"].other_bin is not None
    dist = training_distribution(card)
    assert set(dist.features) == {"income", "housing"} and dist.unmeasured == {}

    train, _ = stratified_split(y, 0.3, seed=3)

    def vector(i: int, moved: bool = False) -> dict[str, Any]:
        value = float(income[i])
        return {
            "income": None if np.isnan(value) else (-999.0 if moved else value),
            "housing": "castle" if moved else housing[i],  # unseen: the "other" bin
        }

    same = compute_drift(card, [600] * len(train), [vector(i) for i in train], distribution=dist)
    assert [f.feature for f in same.features] == list(card.features)
    assert all(f.psi is not None and f.psi < 1e-9 for f in same.features)
    moved = compute_drift(card, [600] * 2000, [vector(i, moved=True) for i in train[:2000]], distribution=dist)
    assert all(f.status is DriftStatus.SHIFTED for f in moved.features)


def test_features_that_cannot_be_measured_are_named_with_the_reason():
    report = compute_drift(card(TRAINING), [600] * 10, [{}] * 10, min_scores=10)
    assert report.unmeasured == {
        "ext_delinquencies_24m": "no training distribution recorded",
        "pay_bills_paid_count": "training distribution has 3 shares for the model's 4 bins",
    }
