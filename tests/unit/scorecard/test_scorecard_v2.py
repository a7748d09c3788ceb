"""Format 2 scorecards on a hand-built card: special values, categories (unseen ones
included), reasons and "how to improve" by hand; score_columns agrees with
score_one; format 2 round-trips and a format 1 file scores as its format 2 twin;
scores stay within 350-950 whatever the card."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditscore.features.catalog import by_name
from creditscore.scorecard.binning import CATALOG_LABELS
from creditscore.scorecard.model import (
    Band,
    FeatureValueError,
    Improvement,
    Scorecard,
    ScorecardError,
    ScoreState,
    UnknownFeatureError,
)
from creditscore.scorecard.training import save_model

SHIPPED_V1 = Path(__file__).resolve().parents[3] / "scoring_service/models/scorecard-1.0.0.json"


def texts(code: str, **extra: Any) -> dict[str, Any]:
    return {"reason_code": code, "reason_text": f"{code.lower()} costs points",
            "missing_reason_code": f"{code}_NO_DATA", "missing_text": f"no {code.lower()} on record", **extra}


def numeric(name: str, code: str, bins: list[tuple[float | None, float | None, float]], missing: float,
            **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "numeric", "coefficient": extra.pop("coefficient", -1.0), **texts(code, **extra),
            "bins": [{"lo": lo, "hi": hi, "points": p} for lo, hi, p in bins], "missing": {"points": missing}}


CARD: list[dict[str, Any]] = [
    numeric("on time", "ONTIME", [(None, 0.8, 100), (0.8, 0.95, 140), (0.95, None, 170)], 110,
            direction=1, value_type="real", label="on-time share", actionable=True,
            improve_hint="Pay every bill by its due date"),
    numeric("late days", "LATE_DAYS", [(None, 2.5, 160), (2.5, 30, 130), (30, None, 90)], 125,
            direction=-1, value_type="integer", label="worst days late", actionable=True,
            improve_hint="Avoid paying late"),
    {"name": "housing", "kind": "categorical", "coefficient": -1.0, **texts("HOUSING"),
     "bins": [{"categories": ["own"], "points": 150}, {"categories": ["boat", "rent"], "other": True, "points": 110}],
     "missing": {"points": 115}},
    numeric("verified", "VERIFIED", [(None, 0.5, 100), (0.5, None, 140)], 105,
            direction=1, value_type="binary", actionable=True, improve_hint="Verify your identity"),
    numeric("unused", "UNUSED", [(None, None, 0.0)], 0.0, coefficient=0.0),
]
CARD[0]["special"] = [{"value": -1, "points": 120}]
CARD[0]["missing"]["special_values"] = [-2]


def artifact(features: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "format": "creditscore.scorecard/2",
        "version": top.pop("version", "2.0.0"),
        "description": "hand-built format 2 card",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.5,
        "intercept_points": 0.0,
        "features": copy.deepcopy(CARD if features is None else features),
        "metrics": {"auc": 0.8, "ks": 0.45, "gini": 0.6},
        **top,
    }


def test_points_reasons_and_improvements_by_hand():
    card = Scorecard.from_dict(artifact())
    result = card.score_one({"on time": 0.7, "late days": 10, "housing": "yacht", "verified": 0.0, "unused": 5.0})
    # 100 + 130 + 110 (an unseen category: the "other" bin) + 100 + 0 = 440:
    # 160 points = 8 doublings below the offset, so good:bad odds 1:256.
    assert (result.state, result.score, result.band) == (ScoreState.SCORED, 440, Band.POOR)
    assert result.probability_of_bad == pytest.approx(256 / 257)
    assert result.coverage == 1.0
    # Lost: on time 170-100 = 70, housing 150-110 = 40, verified 140-100 = 40 (a tie:
    # artifact order), late days 160-130 = 30; the unused feature never gives a reason.
    assert [(r.code, r.points_lost) for r in result.reasons] == [
        ("ONTIME", 70.0), ("HOUSING", 40.0), ("VERIFIED", 40.0), ("LATE_DAYS", 30.0)]
    assert result.reasons[0].text == "ontime costs points" and result.reasons[0].feature == "on time"
    # Improvements: the nearest better bin in the improving direction.
    assert result.improvements == (
        Improvement("on time", "ONTIME", "Pay every bill by its due date (on-time share at least 0.8)", 0.7, 0.8, 40.0),
        Improvement("verified", "VERIFIED", "Verify your identity", 0.0, 1.0, 40.0),
        Improvement("late days", "LATE_DAYS", "Avoid paying late (worst days late at most 2)", 10.0, 2.0, 30.0),
    )


def test_special_codes_text_values_and_no_data():
    card = Scorecard.from_dict(artifact())
    base = {"late days": 0, "housing": "own", "verified": 1}
    special = card.score_one({**base, "on time": -1})  # its own bin: 120, a value
    pooled = card.score_one({**base, "on time": -2.0})  # pooled with missing: 110, no data
    text = card.score_one({**base, "on time": " 0.97 "})  # numeric text is a number
    assert special.score == 160 + 150 + 140 + 120 and special.coverage == 0.8
    assert pooled.score == 160 + 150 + 140 + 110 and pooled.coverage == 0.6
    assert pooled.reasons[0].code == "ONTIME_NO_DATA" and pooled.reasons[0].points_lost == 60
    assert text.score == 160 + 150 + 140 + 170 and text.reasons == () and text.improvements == ()
    assert card.score_one({**base, "on time": "NA"}).coverage == 0.6
    # From the special or missing bin there is nothing to move along: no improvement.
    assert all(i.feature != "on time" for i in special.improvements + pooled.improvements)
    with pytest.raises(FeatureValueError, match="on time"):
        card.score_one({**base, "on time": "often"})
    with pytest.raises(UnknownFeatureError):
        card.score_one({**base, "favourite colour": 1.0})
    # Too little data: no score, no reasons, no improvements.
    thin = card.score_one({"verified": 0.0, "on time": -2})
    assert thin.state is ScoreState.INSUFFICIENT_DATA and thin.improvements == () and thin.coverage == 0.2


def random_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    on_time = rng.choice([-1.0, -2.0, 0.5, 0.8, 0.9, 0.95, 1.0, np.nan], n)
    late = rng.choice([0.0, 2.0, 3.0, 29.0, 30.0, 60.0, np.nan], n)
    housing = rng.choice(np.array(["own", "rent", "boat", "yacht", "", None], dtype=object), n)
    verified = rng.choice([0.0, 1.0, np.nan], n)
    return {"on time": on_time, "late days": late, "housing": housing, "verified": verified, "other column": late}


def as_row(columns: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    row = {}
    for name, column in columns.items():
        if name == "other column":
            continue
        value = column[i]
        row[name] = None if isinstance(value, float) and math.isnan(value) else value
    return row


def test_score_columns_agrees_with_score_one():
    card = Scorecard.from_dict(artifact())
    columns = random_columns(np.random.default_rng(5), 2000)
    batch = card.score_columns(columns)
    assert batch.insufficient.any() and not batch.insufficient.all()
    codes = batch.reason_codes()
    assert batch.reasons is not None and batch.reasons.shape == (2000, 4)
    for i in range(2000):
        one = card.score_one(as_row(columns, i))
        assert batch.coverage[i] == one.coverage
        if one.state is ScoreState.INSUFFICIENT_DATA:
            assert batch.insufficient[i] and batch.scores[i] == 0 and np.isnan(batch.pd[i])
            assert codes[i] == () and batch.reasons[i].tolist() == [-1] * 4
        else:
            assert batch.scores[i] == one.score and batch.pd[i] == pytest.approx(one.probability_of_bad, rel=1e-12)
            assert codes[i] == tuple(r.code for r in one.reasons) == batch.reason_codes_of(i)
    plain = card.score_columns(columns, reasons=False)
    assert plain.reasons is None and plain.reason_codes() is None and np.array_equal(plain.scores, batch.scores)
    bins = card.bin_index(columns)
    again = card.score_bins(bins, reasons=True)
    assert np.array_equal(again.scores, batch.scores) and np.array_equal(again.reasons, batch.reasons)
    per_feature = card.score_bins([bins[:, k] for k in range(bins.shape[1])], reasons=True)
    assert np.array_equal(per_feature.scores, batch.scores) and np.array_equal(per_feature.reasons, batch.reasons)


def test_a_numeric_matrix_cannot_carry_a_categorical_feature():
    card = Scorecard.from_dict(artifact())
    X = np.array([[0.9, 1.0, 0.0]])
    scores, _, coverage, _ = card.score_batch(X, ["on time", "verified", "late days"])
    assert scores.tolist() == [140 + 140 + 160 + 115] and coverage.tolist() == [0.6]
    with pytest.raises(FeatureValueError, match="categorical"):
        card.score_batch(np.zeros((1, 1)), ["housing"])


def test_format_2_round_trips_through_the_file(tmp_path):
    original = artifact(version="2.1.0")
    path = save_model(original, tmp_path / "scorecard-2.1.0.json")
    loaded = Scorecard.load(path)
    assert loaded.to_dict() == original and loaded.format == "creditscore.scorecard/2"
    columns = random_columns(np.random.default_rng(9), 300)
    first, second = Scorecard.from_dict(original).score_columns(columns), loaded.score_columns(columns)
    assert np.array_equal(first.scores, second.scores) and first.reason_codes() == second.reason_codes()
    assert loaded.kinds == {"on time": "numeric", "late days": "numeric", "housing": "categorical",
                            "verified": "numeric", "unused": "numeric"}


def as_format_2(v1: dict[str, Any]) -> dict[str, Any]:
    """A format 1 artifact written out in format 2: catalog texts copied in."""
    twin = copy.deepcopy(v1)
    twin["format"] = "creditscore.scorecard/2"
    for f in twin["features"]:
        entry = by_name(f["name"])
        label, value_type = CATALOG_LABELS[f["name"]]
        f.update(kind="numeric", direction=entry.direction, value_type=value_type, label=label,
                 reason_code=entry.reason_code, reason_text=entry.reason_text,
                 missing_reason_code=entry.missing_reason_code, missing_text=entry.missing_text,
                 actionable=entry.actionable, improve_hint=entry.improve_hint)
    return twin


def test_a_format_1_file_still_loads_and_scores_as_its_format_2_twin():
    v1 = json.loads(SHIPPED_V1.read_text())
    assert v1["format"] == "creditscore.scorecard/1"
    old, new = Scorecard.load(SHIPPED_V1), Scorecard.from_dict(as_format_2(v1))
    rng = np.random.default_rng(2)
    X = rng.choice([0.0, 0.3, 0.9, 1.0, 2.0, 5.0, 14.0, 40.0, 120.0, np.nan], size=(1500, 20))
    from creditscore.features.catalog import FEATURE_NAMES

    for a, b in zip(old.score_batch(X), new.score_batch(X), strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(200):
        row = {n: (None if np.isnan(v) else float(v)) for n, v in zip(FEATURE_NAMES, X[i], strict=True)}
        assert old.score_one(row) == new.score_one(row)
    # A format 1 card names catalog features only, and has no special bins.
    broken = copy.deepcopy(v1)
    broken["features"][0]["special"] = [{"value": -1, "points": 1.0}]
    with pytest.raises(ScorecardError, match="format"):
        Scorecard.from_dict(broken)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda a: a["features"][0].update(kind="text"), "kind"),
        (lambda a: a["features"][0].update(reason_code="late"), "UPPER_SNAKE"),
        (lambda a: a["features"][0].pop("missing_text"), "missing_text"),
        (lambda a: a["features"][0].update(direction=2), "direction"),
        (lambda a: a["features"][0].update(name=""), "name"),
        (lambda a: a["features"][0]["special"].append({"value": -1, "points": 3}), "twice"),
        (lambda a: a["features"][0]["missing"].update(special_values=[-1]), "twice"),
        (lambda a: a["features"][2]["bins"][1]["categories"].append("own"), "more than one bin"),
        (lambda a: a["features"][2]["bins"][0].update(other=True), "only one bin"),
        (lambda a: a["features"][2].update(special=[{"value": 1, "points": 0}]), "numeric features only"),
        (lambda a: a.update(format="creditscore.scorecard/3"), "format"),
    ],
)
def test_invalid_format_2_artifacts_are_refused(break_it, message):
    broken = artifact()
    break_it(broken)
    with pytest.raises(ScorecardError, match=message):
        Scorecard.from_dict(broken)


points = st.floats(min_value=-2000, max_value=3000, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    bin_points=st.lists(st.tuples(points, points, points, points), min_size=1, max_size=4),
    intercept=points,
    pdo=st.floats(min_value=1, max_value=200),
    offset=st.floats(min_value=-1000, max_value=2000),
    values=st.lists(st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)), min_size=4, max_size=4),
)
def test_scores_stay_within_350_and_950(bin_points, intercept, pdo, offset, values):
    features = [
        numeric(f"f{i}", f"F{i}", [(None, 0.0, a), (0.0, 10.0, b), (10.0, None, c)], d)
        for i, (a, b, c, d) in enumerate(bin_points)
    ]
    card = Scorecard.from_dict(
        artifact(features, intercept_points=intercept, min_coverage=0.0,
                 scaling={"pdo": pdo, "factor": pdo / math.log(2), "offset": offset, "clamp": [350, 950]})
    )
    row = {f"f{i}": values[i] for i in range(len(features))}
    result = card.score_one(row)
    assert 350 <= result.score <= 950
    assert 0.0 <= result.probability_of_bad <= 1.0
    batch = card.score_columns({k: np.array([np.nan if v is None else v]) for k, v in row.items()})
    assert batch.scores[0] == result.score


def test_batch_reasons_rank_ties_as_score_one_across_blocks():
    """Many features losing exactly the same points: the four reasons and their
    order (most points lost first, ties in catalog order, then artifact order)
    must be score_one's, row by row, across the batch kernel's row blocks."""
    from creditscore.features.catalog import FEATURE_NAMES

    rng = np.random.default_rng(11)
    catalog = list(FEATURE_NAMES[:8])
    names = ["zeta", *reversed(catalog), "alpha", "mid"]  # catalog features out of catalog order
    features = []
    for i, name in enumerate(names):
        levels = [float(v) for v in rng.choice([0.0, 10.0, 20.0, 30.0], size=3)]
        levels[-1] = 30.0  # every feature can give 30: points lost are 0, 10, 20 or 30
        code = f"F{i}"
        feature = numeric(name, code, [(None, 0.0, levels[0]), (0.0, 1.0, levels[1]), (1.0, None, levels[2])],
                          float(rng.choice([0.0, 10.0, 20.0])))
        features.append(feature)
    features[0]["special"] = [{"value": -9.0, "points": 0.0}]
    card = Scorecard.from_dict(artifact(features, min_coverage=0.3))
    n = card._BLOCK + 1234  # crosses a block boundary
    columns = {name: rng.choice([-1.0, 0.5, 2.0, np.nan, -9.0], size=n) for name in names}
    batch = card.score_columns(columns)
    codes = batch.reason_codes()
    catalog_rank = {name: FEATURE_NAMES.index(name) for name in catalog}
    tied_at_the_cut = 0
    for i in range(0, n, 7):
        row = {name: (None if np.isnan(columns[name][i]) else float(columns[name][i])) for name in names}
        one = card.score_one(row)
        if one.state is ScoreState.INSUFFICIENT_DATA:
            assert codes[i] == ()
            continue
        assert codes[i] == tuple(r.code for r in one.reasons)
        # score_one's own order, written out: most lost first, then catalog order, then artifact order.
        keys = [(-r.points_lost, catalog_rank.get(r.feature, 100 + names.index(r.feature))) for r in one.reasons]
        assert keys == sorted(keys)
        losing = sorted(
            (round(30.0 - card._features[k].points[card._features[k].locate(row.get(name))], 4), name)
            for k, name in enumerate(names)
        )
        lost_values = [lost for lost, _ in losing if lost > 0]
        if len(lost_values) > 4 and sorted(lost_values, reverse=True)[3] == sorted(lost_values, reverse=True)[4]:
            tied_at_the_cut += 1
    assert tied_at_the_cut > 100  # the ties the ranking has to break were really there
