"""The scorecard arithmetic on hand-built artifacts: points, scaling, bands, clamp,
coverage, reasons; one subject and a batch agree; the artifact round-trips."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.scorecard.model import (
    Band,
    Scaling,
    Scorecard,
    ScorecardError,
    ScoreState,
    UnknownFeatureError,
    band_for,
    version_key,
)
from creditscore.scorecard.training import save_model

Bins = list[tuple[float | None, float | None, float]]


def feature(name: str, bins: Bins, missing: float, coefficient: float = -1.0) -> dict[str, Any]:
    return {
        "name": name,
        "coefficient": coefficient,
        "bins": [{"lo": lo, "hi": hi, "count": 10, "bad_rate": 0.1, "woe": 0.0, "points": p} for lo, hi, p in bins],
        "missing": {"count": 1, "bad_rate": 0.1, "woe": 0.0, "points": missing},
    }


def artifact(
    features: list[dict[str, Any]],
    *,
    version: str = "1.0.0",
    pdo: float = 20.0,
    offset: float = 600.0,
    min_coverage: float = 0.25,
    intercept_points: float = 0.0,
) -> dict[str, Any]:
    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": "hand-built for tests",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": pdo, "factor": pdo / math.log(2), "offset": offset, "clamp": [350, 950]},
        "min_coverage": min_coverage,
        "intercept_points": intercept_points,
        "features": features,
        "metrics": {"auc": 0.8, "ks": 0.45, "gini": 0.6},
    }


# Four features; the most points are 170 + 160 + 150 + 165 = 645.
FOUR = [
    feature("pay_ontime_ratio_12m", [(None, 0.8, 100), (0.8, 0.95, 140), (0.95, None, 170)], 120),
    feature("pay_worst_days_late_12m", [(None, 5, 160), (5, 30, 130), (30, None, 90)], 125),
    feature("identity_verified", [(None, 0.5, 110), (0.5, None, 150)], 115),
    feature("ext_delinquencies_24m", [(None, 1, 165), (1, None, 95)], 140),
]


def flat(score: float) -> Scorecard:
    """A one-feature card whose every subject gets ``score`` raw points."""
    return Scorecard.from_dict(
        artifact([feature("history_months", [(None, None, 0.0)], 0.0)], intercept_points=score, min_coverage=0.0)
    )


def test_points_are_summed_from_the_subjects_bins():
    card = Scorecard.from_dict(artifact(FOUR))
    result = card.score_one(
        {"pay_ontime_ratio_12m": 0.9, "pay_worst_days_late_12m": 10.0, "identity_verified": 1.0}
    )
    # 140 + 130 + 150 + 140 (delinquencies missing) = 560: two doublings of odds
    # below the offset, so good:bad odds 1:4 and P(bad) = 0.8.
    assert result.state is ScoreState.SCORED
    assert result.score == 560 and result.band is Band.FAIR
    assert result.probability_of_bad == pytest.approx(0.8)
    assert result.coverage == 0.75
    assert result.model_version == "1.0.0"


def test_bins_are_right_open_and_nan_is_no_data():
    card = Scorecard.from_dict(artifact(FOUR, min_coverage=0.0))
    base = {"pay_worst_days_late_12m": 0.0, "identity_verified": 1.0, "ext_delinquencies_24m": 0.0}
    at_edge = card.score_one({**base, "pay_ontime_ratio_12m": 0.95})  # [0.95, inf): 170
    below = card.score_one({**base, "pay_ontime_ratio_12m": 0.9499})  # [0.8, 0.95): 140
    nan = card.score_one({**base, "pay_ontime_ratio_12m": float("nan")})  # missing: 120
    none = card.score_one({**base, "pay_ontime_ratio_12m": None})
    assert (at_edge.score, below.score, nan.score) == (645, 615, 595)
    assert none == nan and nan.coverage == 0.75


def test_scaling_pdo_points_double_the_odds():
    scaling = Scaling.from_pdo(20.0, 600.0)
    assert scaling.factor == pytest.approx(20.0 / math.log(2))

    def odds(raw: float) -> float:
        pd = scaling.probability_of_bad(raw)
        return (1 - pd) / pd

    for raw in (380.0, 600.0, 731.3):
        assert odds(raw + 20.0) == pytest.approx(2 * odds(raw))
    assert scaling.probability_of_bad(600.0) == pytest.approx(0.5)
    assert scaling.score_for_log_odds(math.log(8)) == pytest.approx(660.0)
    # Through a scorecard: 20 more points, twice the good:bad odds.
    low, high = flat(612.0).score_one({}), flat(632.0).score_one({})
    assert (1 - high.probability_of_bad) / high.probability_of_bad == pytest.approx(
        2 * (1 - low.probability_of_bad) / low.probability_of_bad
    )


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (350, Band.POOR), (549, Band.POOR), (550, Band.FAIR), (599, Band.FAIR),
        (600, Band.GOOD), (649, Band.GOOD), (650, Band.VERY_GOOD), (699, Band.VERY_GOOD),
        (700, Band.EXCELLENT), (950, Band.EXCELLENT),
    ],
)
def test_bands_at_their_edges(score: int, band: Band):
    assert band_for(score) is band
    result = flat(float(score)).score_one({})
    assert (result.score, result.band) == (score, band)


def test_scores_round_half_up():
    assert flat(600.5).score_one({}).score == 601
    assert flat(600.4999).score_one({}).score == 600
    assert flat(599.5).score_one({}).score == 600


def test_clamped_to_350_and_950_but_probability_from_the_unclamped_points():
    low, high = flat(200.0).score_one({}), flat(1200.0).score_one({})
    assert (low.score, low.band) == (350, Band.POOR)
    assert (high.score, high.band) == (950, Band.EXCELLENT)
    scaling = Scaling.from_pdo(20.0, 600.0)
    assert low.probability_of_bad == pytest.approx(scaling.probability_of_bad(200.0))
    assert low.probability_of_bad > flat(350.0).score_one({}).probability_of_bad
    assert 0.0 < high.probability_of_bad < flat(950.0).score_one({}).probability_of_bad


def test_insufficient_data_below_min_coverage():
    card = Scorecard.from_dict(artifact(FOUR, min_coverage=0.5))
    one = card.score_one({"pay_ontime_ratio_12m": 0.1})
    assert one.state is ScoreState.INSUFFICIENT_DATA
    assert (one.score, one.band, one.probability_of_bad, one.reasons) == (None, Band.UNSPECIFIED, None, ())
    assert one.coverage == 0.25
    two = card.score_one({"pay_ontime_ratio_12m": 0.1, "identity_verified": 0.0})
    assert two.state is ScoreState.SCORED and two.coverage == 0.5  # at the threshold: scored
    assert card.score_one({}).state is ScoreState.INSUFFICIENT_DATA


def test_reasons_ranked_by_points_lost_capped_at_four_ties_in_catalog_order():
    six = [
        # catalog order: pay_ontime(0) pay_worst(1) pay_bills(2) buyer_completion(5)
        # identity_verified(13) ext_delinquencies(15) ext_open_loans(17)
        feature("ext_delinquencies_24m", [(None, 1, 50), (1, None, 10)], 30),  # loses 40
        feature("pay_ontime_ratio_12m", [(None, 0.5, 0), (0.5, None, 20)], 5),  # loses 20
        feature("identity_verified", [(None, 0.5, 0), (0.5, None, 40)], 0),  # loses 40
        feature("pay_bills_paid_count", [(None, 3, 0), (3, None, 60)], 10),  # no data: loses 50
        feature("buyer_completion_rate_12m", [(None, 0.5, 0), (0.5, None, 25)], 0),  # loses 0
        feature("pay_worst_days_late_12m", [(None, 5, 30), (5, None, 0)], 10),  # loses 30
        feature("ext_open_loans", [(None, 2, 99), (2, None, 0)], 0, coefficient=0.0),  # unused
    ]
    card = Scorecard.from_dict(artifact(six, min_coverage=0.0))
    result = card.score_one(
        {
            "ext_delinquencies_24m": 3.0,
            "pay_ontime_ratio_12m": 0.2,
            "identity_verified": 0.0,
            "buyer_completion_rate_12m": 0.9,
            "pay_worst_days_late_12m": 60.0,
            "ext_open_loans": 5.0,
        }
    )
    assert [(r.feature, r.points_lost) for r in result.reasons] == [
        ("pay_bills_paid_count", 50.0),
        ("identity_verified", 40.0),  # ties with ext_delinquencies_24m: catalog order
        ("ext_delinquencies_24m", 40.0),
        ("pay_worst_days_late_12m", 30.0),
    ]
    first = result.reasons[0]
    # Its points were lost for having no data at all: the no-data code and text.
    assert (first.code, first.text) == ("PAY_BILLS_PAID_COUNT_NO_DATA", "No bill payments on record")
    assert (result.reasons[1].code, result.reasons[1].text) == ("IDENTITY_NOT_VERIFIED", "Identity not verified")
    # A subject at the top of every bin has no reasons at all.
    best = card.score_one(
        {"ext_delinquencies_24m": 0.0, "pay_ontime_ratio_12m": 1.0, "identity_verified": 1.0,
         "pay_bills_paid_count": 9.0, "buyer_completion_rate_12m": 1.0, "pay_worst_days_late_12m": 0.0}
    )
    assert best.reasons == ()


def test_unknown_names_are_an_error_unused_catalog_features_are_ignored():
    card = Scorecard.from_dict(artifact(FOUR))
    with pytest.raises(UnknownFeatureError) as info:
        card.score_one({"pay_ontime_ratio_12m": 1.0, "favourite_colour": 3.0})
    assert info.value.names == ("favourite_colour",)
    with_extra = card.score_one({"pay_ontime_ratio_12m": 1.0, "seller_avg_rating_24m": 4.5})
    assert with_extra == card.score_one({"pay_ontime_ratio_12m": 1.0})


def _random_matrix(rng: np.random.Generator, n: int) -> np.ndarray:
    X = rng.choice([0.0, 0.5, 0.8, 0.95, 1.0, 5.0, 30.0, 100.0], size=(n, len(FEATURE_NAMES)))
    X += rng.normal(scale=0.2, size=X.shape) * (rng.random(X.shape) < 0.5)
    X[rng.random(X.shape) < 0.3] = np.nan
    return X


def test_score_one_and_score_batch_agree_on_random_inputs():
    card = Scorecard.from_dict(artifact(FOUR, min_coverage=0.5, intercept_points=-20.0))
    X = _random_matrix(np.random.default_rng(3), 3000)
    scores, pd, coverage, insufficient = card.score_batch(X)
    assert scores.dtype == np.int32 and insufficient.dtype == bool
    assert insufficient.any() and not insufficient.all()
    for i in range(len(X)):
        one = card.score_one({n: (None if np.isnan(v) else float(v)) for n, v in zip(FEATURE_NAMES, X[i], strict=True)})
        assert coverage[i] == one.coverage
        if one.state is ScoreState.INSUFFICIENT_DATA:
            assert insufficient[i] and scores[i] == 0 and np.isnan(pd[i])
        else:
            assert not insufficient[i] and scores[i] == one.score
            assert pd[i] == pytest.approx(one.probability_of_bad, rel=1e-12)


def test_score_batch_takes_columns_by_name():
    card = Scorecard.from_dict(artifact(FOUR))
    names = ["identity_verified", "pay_ontime_ratio_12m"]
    scores, _, coverage, _ = card.score_batch(np.array([[1.0, 0.97], [0.0, np.nan]]), names)
    assert scores.tolist() == [170 + 125 + 150 + 140, 120 + 125 + 110 + 140]
    assert coverage.tolist() == [0.5, 0.25]
    with pytest.raises(UnknownFeatureError):
        card.score_batch(np.zeros((1, 1)), ["nope"])


def test_artifact_round_trips_through_the_file(tmp_path):
    original = artifact(FOUR, version="2.3.1", intercept_points=3.25)
    path = save_model(original, tmp_path / "scorecard-2.3.1.json")
    loaded = Scorecard.load(path)
    assert loaded.to_dict() == original and loaded.version == "2.3.1"
    X = _random_matrix(np.random.default_rng(5), 500)
    card = Scorecard.from_dict(original)
    for a, b in zip(card.score_batch(X), loaded.score_batch(X), strict=True):
        np.testing.assert_array_equal(a, b)
    row = {n: (None if np.isnan(v) else float(v)) for n, v in zip(FEATURE_NAMES, X[0], strict=True)}
    assert loaded.score_one(row) == card.score_one(row)
    assert '"lo": null' in path.read_text()  # infinities are written as null
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a service running as another user
    assert [p.name for p in tmp_path.iterdir()] == ["scorecard-2.3.1.json"]  # no temporary left


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda a: a.update(format="other/1"), "format"),
        (lambda a: a.update(version="../x"), "version"),
        (lambda a: a.update(description=" "), "description"),
        (lambda a: a["scaling"].update(factor=10.0), "factor"),
        (lambda a: a["features"][0].update(name="favourite_colour"), "not a catalog feature"),
        (lambda a: a["features"][0]["bins"][1].update(lo=0.7), "must equal"),
        (lambda a: a["features"][0]["bins"][0].update(lo=0.0), "first bin"),
        (lambda a: a["features"][0]["bins"][2].update(hi=2.0), "last bin"),
        (lambda a: a["features"][0]["missing"].pop("points"), "missing.points"),
        (lambda a: a["features"].append(copy.deepcopy(a["features"][0])), "more than once"),
        (lambda a: a.update(min_coverage=1.5), "min_coverage"),
        (lambda a: a["metrics"].pop("auc"), "metrics.auc"),
        (lambda a: a.update(train_time="2026-11-01T00:00:00"), "time zone"),
    ],
)
def test_invalid_artifacts_are_refused_with_a_clear_message(break_it, message):
    broken = artifact(copy.deepcopy(FOUR))
    break_it(broken)
    with pytest.raises(ScorecardError, match=message):
        Scorecard.from_dict(broken)


def test_versions_order_naturally():
    versions = ["1.10.0", "1.2.0", "1.9.3", "2.0.0", "1.9.10"]
    assert sorted(versions, key=version_key) == ["1.2.0", "1.9.3", "1.9.10", "1.10.0", "2.0.0"]


def test_a_reason_for_having_no_data_says_so():
    """The missing bin's reason is the catalog's no-data code and text."""
    from creditscore.features.catalog import by_name
    from creditscore.scorecard.model import Scorecard

    card = Scorecard.load(Path(__file__).resolve().parents[3] / "scoring_service/models/scorecard-1.0.0.json")
    result = card.score_one({n: None for n in card.features} | {
        "pay_ontime_ratio_12m": 1.0, "pay_worst_days_late_12m": 0.0, "pay_bills_paid_count": 40.0,
        "pay_utility_telecom_months_12m": 12.0, "pay_unpaid_past_due_amount": 0.0,
        "identity_months_at_residence": 100.0, "identity_months_with_phone": 100.0,
        "identity_verified": 1.0})
    given = {"pay_ontime_ratio_12m", "pay_worst_days_late_12m", "pay_bills_paid_count",
             "pay_utility_telecom_months_12m", "pay_unpaid_past_due_amount",
             "identity_months_at_residence", "identity_months_with_phone", "identity_verified"}
    no_data = [r for r in result.reasons if r.feature not in given]
    assert no_data, "a vector without commerce or external data loses points for it"
    for reason in result.reasons:
        entry = by_name(reason.feature)
        expected = ((entry.reason_code, entry.reason_text) if reason.feature in given
                    else (entry.missing_reason_code, entry.missing_text))
        assert (reason.code, reason.text) == expected
