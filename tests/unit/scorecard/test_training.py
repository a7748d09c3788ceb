"""The trainer: WoE/IV by hand, the holdout split, monotone binning, the regression,
the metrics against brute force, and a whole training run on a synthetic population
with a known logistic ground truth."""

from __future__ import annotations

import json
import math
import sys
import types
from itertools import product

import numpy as np
import pytest

from creditscore.cli.train import main
from creditscore.features.catalog import FEATURE_NAMES, by_name
from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
from creditscore.scorecard.errors import InputError
from creditscore.scorecard.model import Scorecard, ScoreState
from creditscore.scorecard.training import (
    L2_CV_MAX_ROWS,
    L2_GRID,
    LARGE_FIT_ROWS,
    LogisticFit,
    TrainingError,
    auc_score,
    bin_feature,
    choose_l2,
    fit_logistic,
    fit_logistic_detailed,
    ks_score,
    stratified_split,
    train_matrix,
    train_scorecard,
    train_table,
    woe_iv,
)

# Ground truth: P(bad) = sigmoid(-2 - sum(direction * weight * x)). Seven catalog
# features carry signal; the others are noise the trainer should drop.
TRUTH = {
    "pay_ontime_ratio_12m": 0.9,
    "pay_worst_days_late_12m": 0.6,
    "buyer_completion_rate_12m": 0.5,
    "identity_verified": 0.8,
    "history_months": 0.4,
    "ext_delinquencies_24m": 0.7,
    "ext_collections_60m": 0.3,
}


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, observed_logit)``: standard normal features (one binary), 0-40%
    missing per feature. ``observed_logit`` is the ground truth with each missing
    value replaced by its mean: the best a model that sees only ``X`` can know."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    verified = FEATURE_NAMES.index("identity_verified")
    X[:, verified] = (X[:, verified] > -0.5).astype(np.float64)
    means = X.mean(axis=0)
    weights = np.zeros(len(FEATURE_NAMES))
    for name, weight in TRUTH.items():
        weights[FEATURE_NAMES.index(name)] = by_name(name).direction * weight
    logit = -2.0 - (X - means) @ weights
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    rates = rng.uniform(0.0, 0.4, size=len(FEATURE_NAMES))
    X[rng.random(X.shape) < rates] = np.nan
    observed_logit = -2.0 - np.nan_to_num(X - means) @ weights
    return X, y, observed_logit


def test_woe_and_iv_of_a_small_table_by_hand():
    # bins: [10 rows, 5 bad] [20 rows, 2 bad] [missing: 10 rows, 3 bad]
    # goods 5, 18, 7 (G = 30); bads 5, 2, 3 (B = 10); k = 3 bins, +0.5 each:
    # good shares 5.5/31.5, 18.5/31.5, 7.5/31.5; bad shares 5.5/11.5, 2.5/11.5, 3.5/11.5
    woe, iv = woe_iv(np.array([10, 20, 10]), np.array([5, 2, 3]))
    expected = [math.log(11.5 / 31.5), math.log((18.5 / 31.5) / (2.5 / 11.5)), math.log((7.5 / 31.5) / (3.5 / 11.5))]
    assert woe.tolist() == pytest.approx(expected)
    assert woe.tolist() == pytest.approx([-1.007641, 0.993839, -0.245500], abs=1e-6)
    # IV = sum((good share - bad share) * WoE)
    assert iv == pytest.approx(0.689874, abs=1e-6)
    # An empty bin (no missing rows in training): WoE 0, and smoothing over the
    # two filled bins only: 5.5/24 vs 5.5/8, 18.5/24 vs 2.5/8.
    woe, iv = woe_iv(np.array([10, 20, 0]), np.array([5, 2, 0]))
    assert woe.tolist() == pytest.approx([math.log(8 / 24), math.log((18.5 / 24) / (2.5 / 8)), 0.0])
    assert iv == pytest.approx((5.5 / 24 - 5.5 / 8) * woe[0] + (18.5 / 24 - 2.5 / 8) * woe[1])


def test_holdout_is_stratified_disjoint_and_fixed_by_the_seed():
    y = np.array([1] * 100 + [0] * 900)
    train, holdout = stratified_split(y, 0.3, seed=7)
    assert len(np.intersect1d(train, holdout)) == 0 and len(train) + len(holdout) == 1000
    assert (y[holdout].sum(), len(holdout)) == (30, 300)
    again = stratified_split(y, 0.3, seed=7)
    assert np.array_equal(again[1], holdout)
    assert not np.array_equal(stratified_split(y, 0.3, seed=8)[1], holdout)


def test_bins_are_monotone_in_the_direction_when_asked():
    # A U-shaped bad rate: high at both ends of the value range.
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 20000)
    y = (rng.random(20000) < 0.05 + 0.4 * (x - 0.5) ** 2 * 4).astype(np.int8)
    x[:1000] = np.nan

    def rates(bins):
        return [b / c for b, c in zip(bins.bads, bins.counts, strict=True)]

    free = bin_feature(x, y, direction=0, max_bins=6, min_bin_share=0.05)
    diffs = np.diff(rates(free))
    assert (diffs < 0).any() and (diffs > 0).any()  # the U shape survives unconstrained
    for direction in (+1, -1):
        bins = bin_feature(x, y, direction=direction, max_bins=6, min_bin_share=0.05)
        steps = np.diff(rates(bins))
        assert (steps * direction < 0).all()  # strictly falling (+1) or rising (-1)
        assert bins.missing_count == 1000 and sum(bins.counts) == 19000
    assert len(free.counts) <= 6 and min(free.counts) >= 0.05 * 20000
    assert list(free.edges) == sorted(free.edges)


def test_bin_feature_splits_a_binary_feature_between_its_values():
    x = np.array([0.0] * 300 + [1.0] * 700)
    y = np.array([1] * 90 + [0] * 210 + [1] * 35 + [0] * 665)
    bins = bin_feature(x, y, direction=+1)
    assert bins.edges == (0.5,) and bins.counts == (300, 700) and bins.bads == (90, 35)
    constant = bin_feature(np.full(100, 3.0), np.zeros(100), direction=+1)
    assert constant.edges == () and constant.counts == (100,)


def test_logistic_regression_recovers_known_coefficients():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(50000, 2))
    y = (rng.random(50000) < 1 / (1 + np.exp(-(-1.0 + 0.8 * Z[:, 0] - 0.5 * Z[:, 1])))).astype(float)
    alpha, beta = fit_logistic(Z, y, l2=1.0)
    assert alpha == pytest.approx(-1.0, abs=0.05)
    assert beta.tolist() == pytest.approx([0.8, -0.5], abs=0.05)


def test_auc_and_ks_match_brute_force_with_ties():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    risk = rng.integers(0, 12, 300).astype(float) + y  # many ties
    bads, goods = risk[y == 1], risk[y == 0]
    pairs = [(b > g) + 0.5 * (b == g) for b, g in product(bads, goods)]
    assert auc_score(y, risk) == pytest.approx(sum(pairs) / len(pairs))
    gaps = [abs((bads <= t).mean() - (goods <= t).mean()) for t in np.unique(risk)]
    assert ks_score(y, risk) == pytest.approx(max(gaps))
    assert auc_score([0, 1], [0.2, 0.9]) == 1.0 and auc_score([0, 1], [0.5, 0.5]) == 0.5


@pytest.fixture(scope="module")
def trained():
    X, y, logit = synthetic(12000, seed=9)
    artifact = train_scorecard(
        X, y, FEATURE_NAMES, version="0.9.0", description="synthetic logistic population, seed 9", seed=7
    )
    return X, y, logit, artifact


def test_trainer_reaches_a_sensible_holdout_auc(trained):
    X, y, logit, artifact = trained
    _, holdout = stratified_split(y.astype(np.int64), 0.3, seed=7)
    oracle = auc_score(y[holdout], logit[holdout])
    metrics = artifact["metrics"]
    assert metrics["auc"] > 0.72
    assert metrics["auc"] >= oracle - 0.03  # close to the ground truth's own AUC
    assert metrics["gini"] == pytest.approx(2 * metrics["auc"] - 1, abs=1e-6)
    assert 0.3 < metrics["ks"] < 1.0
    assert (metrics["n_train"], metrics["n_holdout"]) == (8400, 3600)


def test_trainer_bad_rate_falls_by_band(trained):
    metrics = trained[3]["metrics"]
    rates = [b["bad_rate"] for b in metrics["bad_rate_by_band"] if b["n"] >= 100]
    assert len(rates) >= 4
    assert all(hi < lo for lo, hi in zip(rates, rates[1:], strict=False))
    assert metrics["warnings"] == []


def test_trainer_keeps_the_signal_and_drops_the_noise(trained):
    artifact = trained[3]
    kept = {f["name"] for f in artifact["features"]}
    assert set(TRUTH) <= kept
    dropped = {d["name"]: d["reason"] for d in artifact["dropped"]}
    assert set(dropped) == set(FEATURE_NAMES) - kept
    assert all("information value" in r for r in dropped.values())
    for f in artifact["features"]:
        assert f["coefficient"] < 0 and f["iv"] >= 0.02
        assert len(f["bins"]) <= 6
        # Points follow the catalog direction: monotone across the numeric bins.
        points = [b["points"] for b in f["bins"]]
        assert all(by_name(f["name"]).direction * (b - a) > 0 for a, b in zip(points, points[1:], strict=False))


def test_trainer_scaling_is_anchored_on_the_training_population(trained):
    X, y, _, artifact = trained
    scaling = artifact["scaling"]
    assert scaling["factor"] == pytest.approx(scaling["pdo"] / math.log(2))
    assert scaling["clamp"] == [350, 950]
    card = Scorecard.from_dict(artifact)
    train, _ = stratified_split(y.astype(np.int64), 0.3, seed=7)
    scores, _, _, insufficient = card.score_batch(X[train])
    low, high = np.percentile(scores[~insufficient], [1, 99])
    assert abs(low - 420) <= 10 and abs(high - 880) <= 10
    distribution = artifact["training_distribution"]
    assert sum(distribution["score"]["shares"]) == pytest.approx(1.0, abs=1e-4)
    for f in artifact["features"]:
        shares = distribution["features"][f["name"]]
        assert sum(shares["bins"]) + shares["missing"] == pytest.approx(1.0, abs=1e-4)


def test_trained_artifact_scores_and_explains(trained):
    X, _, _, artifact = trained
    card = Scorecard.from_dict(json.loads(json.dumps(artifact)))
    row = {n: (None if np.isnan(v) else float(v)) for n, v in zip(FEATURE_NAMES, X[0], strict=True)}
    result = card.score_one(row)
    assert result.state is ScoreState.SCORED and 350 <= result.score <= 950
    assert 0 < len(result.reasons) <= 4
    assert all(r.feature in card.features and r.points_lost > 0 for r in result.reasons)


def test_a_coefficient_of_the_wrong_sign_is_dropped_and_the_model_refitted():
    # y depends on A; B is A plus noise but pushes the other way once A is known:
    # alone B looks good (its IV passes), in the model its coefficient turns positive.
    rng = np.random.default_rng(6)
    n = 20000
    a = rng.normal(size=n)
    b = a + 0.5 * rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 - 2.0 * a + 0.8 * b)))).astype(np.int8)
    X = np.column_stack([a, b])
    names = ["pay_ontime_ratio_12m", "buyer_completion_rate_12m"]  # both +1: higher is better
    # The two WoE columns correlate (0.84): the correlation filter alone would drop B;
    # it is switched off here so that the sign check is what drops it.
    artifact = train_scorecard(X, y, names, version="0.1.0", description="wrong-sign test", max_correlation=1.0)
    assert [f["name"] for f in artifact["features"]] == ["pay_ontime_ratio_12m"]
    assert artifact["dropped"][0]["name"] == "buyer_completion_rate_12m"
    assert "wrong sign" in artifact["dropped"][0]["reason"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(feature_names=["nope"] + list(FEATURE_NAMES[1:])), "nope"),
        (dict(y=np.full(500, 2)), "0 \\(good\\) and 1"),
        (dict(version="a b"), "version"),
        (dict(description=""), "description"),
    ],
)
def test_trainer_refuses_bad_input(change, message):
    X, y, _ = synthetic(500, seed=1)
    kwargs = dict(X=X, y=y, feature_names=list(FEATURE_NAMES), version="1.0.0", description="x")
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        train_scorecard(**kwargs)


def test_main_trains_on_the_simulator_and_writes_the_artifact(tmp_path, monkeypatch, capsys):
    X, y, _ = synthetic(3000, seed=11)
    seen: dict[str, object] = {}

    def simulated_training_matrix(n_subjects: int, *, seed: int, workers: int, progress: object) -> object:
        seen["matrix"] = (n_subjects, seed, workers)
        return types.SimpleNamespace(X=X, y=y, feature_names=FEATURE_NAMES)

    training = types.ModuleType("creditscore.sim.training")
    training.simulated_training_matrix = simulated_training_matrix  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "creditscore.sim.training", training)

    out = tmp_path / "scorecard-1.0.0.json"
    argv = ["--simulate", "3000", "--seed", "42", "--version", "1.0.0", "--out", str(out), "--workers", "2"]
    assert main(argv) == 0
    assert seen == {"matrix": (3000, 42, 2)}
    card = Scorecard.load(out)
    assert card.version == "1.0.0"
    assert "simulator" in card.description and "seed 42" in card.description and "3000" in card.description
    printed = capsys.readouterr().out
    assert "AUC" in printed and "KS" in printed and str(out) in printed
    # A version is never overwritten silently.
    with pytest.raises(SystemExit):
        main(argv)
    assert "exists" in capsys.readouterr().err


def test_of_two_correlated_features_the_one_with_the_higher_iv_stays():
    rng = np.random.default_rng(12)
    n = 20000
    a = rng.normal(size=n)
    b = a + 0.3 * rng.normal(size=n)  # almost the same signal, a little noisier
    c = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(2.0 + 1.2 * a + 0.8 * c))).astype(np.int8)
    names = ["buyer_completion_rate_12m", "pay_ontime_ratio_12m", "history_months"]
    artifact = train_scorecard(np.column_stack([b, a, c]), y, names, version="0.1.0", description="correlation test")
    assert [f["name"] for f in artifact["features"]] == ["pay_ontime_ratio_12m", "history_months"]
    (drop,) = artifact["dropped"]
    assert drop["name"] == "buyer_completion_rate_12m"
    assert "correlation" in drop["reason"] and "pay_ontime_ratio_12m" in drop["reason"]
    ivs = artifact["metrics"]["iv"]
    assert ivs["pay_ontime_ratio_12m"] > ivs["buyer_completion_rate_12m"] > 0.02


def test_logistic_regression_on_separable_data_stays_finite():
    z = np.linspace(-3, 3, 400)[:, None]
    y = (z[:, 0] > 0).astype(float)  # perfectly separable
    for l2 in (1.0, 0.0):
        fit = fit_logistic_detailed(z, y, l2=l2, max_iter=60)
        assert np.isfinite(fit.alpha) and np.isfinite(fit.beta).all() and np.isfinite(fit.loss)
        assert fit.beta[0] > 3  # steep, in the right direction
    # Without a penalty there is no optimum: the slope grows until the iteration cap.
    unpenalized = fit_logistic_detailed(z, y, l2=0.0, max_iter=60)
    assert not unpenalized.converged and unpenalized.iterations == 60 and unpenalized.beta[0] > 100
    penalized = fit_logistic_detailed(z, y, l2=1.0)
    assert penalized.converged and penalized.iterations < 60
    # With a penalty the optimum is unique: the gradient vanishes there.
    p = 1 / (1 + np.exp(-(penalized.alpha + z[:, 0] * penalized.beta[0])))
    assert abs(np.sum(y - p)) < 1e-6
    assert abs(z[:, 0] @ (y - p) - 1.0 * penalized.beta[0]) < 1e-6


def test_scaling_puts_pdo_points_per_doubling_of_the_odds(trained):
    X, y, _, artifact = trained
    card = Scorecard.from_dict(artifact)
    s = card.scaling
    assert s.factor == pytest.approx(s.pdo / math.log(2))
    low = artifact["scaling"]["anchors"]["low"]
    high = artifact["scaling"]["anchors"]["high"]
    # The anchors: offset + factor * ln(odds) gives 420 and 880 at the 1st and 99th percentiles.
    assert s.offset + s.factor * low["log_odds"] == pytest.approx(420.0, abs=1e-3)
    assert s.offset + s.factor * high["log_odds"] == pytest.approx(880.0, abs=1e-3)
    # The points reproduce the regression: for a training row, raw points =
    # offset + factor * ln(good:bad odds) of the fitted model (up to the rounding of points).
    alpha = artifact["training"]["intercept"]
    row = {n: (None if np.isnan(v) else float(v)) for n, v in zip(FEATURE_NAMES, X[3], strict=True)}
    result = card.score_one(row)
    woe = 0.0
    for f in artifact["features"]:
        value = row[f["name"]]
        if value is None:
            chosen = f["missing"]
        else:
            chosen = next(b for b in f["bins"]
                          if (b["lo"] is None or value >= b["lo"]) and (b["hi"] is None or value < b["hi"]))
        woe += f["coefficient"] * chosen["woe"]
    log_odds_good = -(alpha + woe)
    assert 1 - result.probability_of_bad == pytest.approx(1 / (1 + math.exp(-log_odds_good)), rel=1e-3)


def categorical_table(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A numeric column with a special code, a categorical column with a rare
    category and missing values, and a noise column."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    housing = rng.choice(np.array(["own", "rent", "family", "boat"], dtype=object), n, p=[0.5, 0.3, 0.18, 0.02])
    logit = (-1.8 - 1.2 * np.log(income / 22000)
             + np.where(housing == "rent", 0.9, 0.0) + np.where(housing == "boat", 1.0, 0.0))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    income[rng.random(n) < 0.1] = -999.0
    housing[rng.random(n) < 0.05] = None
    return {"income": income, "housing": housing, "noise": rng.normal(size=n)}, y


def test_train_table_with_categories_and_special_values():
    columns, y = categorical_table(8000, seed=3)
    specs = [
        FeatureSpec("income", NUMERIC, special_values=(-999,)),
        FeatureSpec.for_column("housing", CATEGORICAL),
        FeatureSpec.for_column("noise", NUMERIC),
    ]
    seen: list[tuple[str, float]] = []
    result = train_table(columns, y, specs, version="3.1.0", description="table test",
                         progress=lambda message, fraction: seen.append((message, fraction)))
    artifact = result.artifact
    assert artifact["format"] == "creditscore.scorecard/2"
    by_name_ = {f["name"]: f for f in artifact["features"]}
    assert set(by_name_) == {"income", "housing"}
    assert artifact["dropped"][0]["name"] == "noise" and "information value" in artifact["dropped"][0]["reason"]
    income, housing = by_name_["income"], by_name_["housing"]
    assert income["direction"] == 1 and income["special"][0]["value"] == -999.0
    assert housing["kind"] == "categorical" and any(b.get("other") for b in housing["bins"])
    assert housing["reason_code"] == "HOUSING" and housing["missing_text"] == "housing: no data"
    # The holdout arrays are the holdout scored by the artifact as written.
    _, holdout = stratified_split(y.astype(np.int64), 0.3, seed=7)
    assert np.array_equal(result.y_holdout, y[holdout])
    batch = result.scorecard.score_columns({k: v[holdout] for k, v in columns.items()}, reasons=False)
    assert np.array_equal(result.score_holdout, batch.scores)
    assert np.allclose(result.pd_holdout, batch.pd, equal_nan=True)
    m = result.metrics
    assert m["auc"] == pytest.approx(auc_score(y[holdout], batch.pd), abs=1e-6) and m["auc"] > 0.65
    assert len(m["calibration"]) == 10 and sum(g["n"] for g in m["calibration"]) == len(holdout)
    assert set(result.iv) == {"income", "housing", "noise"} and result.iv["noise"] < 0.02
    assert m["iv"] == {k: round(v, 6) for k, v in sorted(result.iv.items(), key=lambda kv: -kv[1])}
    distribution = artifact["training_distribution"]["features"]["income"]
    total = sum(distribution["bins"]) + sum(distribution["special"]) + distribution["missing"]
    assert total == pytest.approx(1.0, abs=1e-4)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any("binning housing" in s for s, _ in seen)


def test_training_errors_name_every_bad_field():
    columns, y = categorical_table(500, seed=1)
    with pytest.raises(TrainingError) as info:
        train_table({**columns, "income": np.full(500, np.inf)}, y,
                    [FeatureSpec("income", NUMERIC), FeatureSpec("missing_column", NUMERIC)],
                    version="a b", description="", min_bin_share=0.7)
    fields = {v.field for v in info.value.violations}
    assert fields == {"version", "description", "min_bin_share", "columns['income']", "columns['missing_column']"}
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    with pytest.raises(TrainingError, match="bads"):
        train_table(columns, np.zeros(500), [FeatureSpec("income", NUMERIC)], version="1", description="x")


def reference_fit(Z: np.ndarray, y: np.ndarray, *, l2: float = 1.0, **_: object) -> LogisticFit:
    """Textbook Newton in float64 on the whole design matrix, step halving, run
    until a step moves no weight by 1e-13: the exact optimum, slowly."""
    n, k = Z.shape
    A = np.column_stack([np.ones(n), Z])
    penalty = np.r_[0.0, np.full(k, l2)]
    w = np.zeros(k + 1)

    def loss(weights: np.ndarray) -> float:
        z = A @ weights
        return float(np.logaddexp(0.0, z).sum() - y @ z + 0.5 * penalty @ weights**2)

    for iteration in range(1, 200):  # noqa: B007 - the count is returned after the loop
        p = 1.0 / (1.0 + np.exp(-(A @ w)))
        step = np.linalg.solve((A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty), A.T @ (y - p) - penalty * w)
        scale = 1.0
        while loss(w + scale * step) > loss(w) and scale > 1e-6:
            scale /= 2
        w = w + scale * step
        if np.max(np.abs(step)) < 1e-13:
            break
    return LogisticFit(float(w[0]), w[1:], iteration, True, loss(w))


def test_the_fast_fit_gives_the_points_an_exact_fit_gives(monkeypatch):
    # Enough training rows for the large-fit path: a warm start on a subsample,
    # float32 curvature, the curvature kept once the steps are small.
    X, y, _ = synthetic(220_000, seed=21)
    assert 0.7 * len(y) > LARGE_FIT_ROWS
    fast = train_matrix(X, y, FEATURE_NAMES, version="1", description="fast fit", seed=3)
    assert fast.artifact["training"]["converged"]
    monkeypatch.setattr("creditscore.scorecard.training.fit_logistic_detailed", reference_fit)
    exact = train_matrix(X, y, FEATURE_NAMES, version="1", description="exact fit", seed=3)
    a, b = fast.artifact, exact.artifact
    assert [f["name"] for f in a["features"]] == [f["name"] for f in b["features"]]
    assert a["training"]["intercept"] == b["training"]["intercept"]
    for fa, fb in zip(a["features"], b["features"], strict=True):
        assert fa["coefficient"] == fb["coefficient"]
        rows_a = [*fa["bins"], *fa.get("special", []), fa["missing"]]
        rows_b = [*fb["bins"], *fb.get("special", []), fb["missing"]]
        # Points are stored to 1e-4: equal as stored.
        assert [r["points"] for r in rows_a] == [r["points"] for r in rows_b]
    # Unrounded, the scaling agrees far below what the stored points can show.
    for key in ("factor", "offset"):
        assert a["scaling"][key] == pytest.approx(b["scaling"][key], rel=1e-9)
    assert a["metrics"] == b["metrics"] and a["training_distribution"] == b["training_distribution"]


def test_the_training_rows_bins_are_the_artifacts_bins():
    columns, y = categorical_table(6000, seed=8)
    columns["income"][:40] = -1.0  # a special code too rare for a bin of its own: pooled with no data
    specs = [
        FeatureSpec("income", NUMERIC, special_values=(-999, -1)),
        FeatureSpec.for_column("housing", CATEGORICAL),
        FeatureSpec.for_column("noise", NUMERIC),
    ]
    result = train_table(columns, y, specs, version="1", description="bins", min_iv=0.0)
    card = result.scorecard
    train, _ = stratified_split(y.astype(np.int64), 0.3, seed=7)
    rows = {name: column[train] for name, column in columns.items()}
    index = card.bin_index(rows)
    recorded = result.artifact["training_distribution"]["features"]
    for k, name in enumerate(card.features):
        binning = result.binnings[name]
        assert np.array_equal(binning.transform(rows[name]), index[:, k])
        shares = np.bincount(index[:, k], minlength=binning.n_bins) / len(train)
        entry = recorded[name]
        flat = [*entry["bins"], *entry.get("special", []), entry["missing"]]
        assert flat == [round(float(s), 6) for s in shares]
    assert result.binnings["income"].pooled_specials == (-1.0,)
    assert "special" in recorded["income"] and any(b.get("other") for b in result.artifact["features"][1]["bins"])


def test_the_l2_penalty_of_a_small_table_is_chosen_by_cross_validation():
    rng = np.random.default_rng(1)
    n = 300
    Z = rng.normal(size=(n, 16)) * 0.5  # one real signal, fifteen noise columns: a fit that overfits
    y = (rng.random(n) < 1 / (1 + np.exp(1 + Z[:, 0]))).astype(float)
    chosen, how = choose_l2(Z, y, seed=3)
    losses = {float(k): v for k, v in how["log_loss"].items()}
    assert set(losses) == set(L2_GRID) and chosen == min(losses, key=losses.__getitem__)
    assert chosen >= 10.0 and losses[chosen] < losses[1.0]  # more penalty than the default predicts better
    assert choose_l2(Z, y, seed=3) == (chosen, how)  # the folds are seeded
    big = np.zeros((L2_CV_MAX_ROWS + 1, 1))
    assert choose_l2(big, np.r_[np.zeros(L2_CV_MAX_ROWS), 1.0], seed=3) == (1.0, {})

    columns, y_table = categorical_table(4000, seed=5)
    specs = [FeatureSpec("income", NUMERIC, special_values=(-999,)), FeatureSpec.for_column("housing", CATEGORICAL)]
    auto = train_table(columns, y_table, specs, version="1", description="auto l2").artifact["training"]
    assert auto["l2"] in L2_GRID and auto["l2_cv"]["log_loss"]
    fixed = train_table(columns, y_table, specs, version="1", description="l2 1", l2=1.0).artifact["training"]
    assert fixed["l2"] == 1.0 and "l2_cv" not in fixed
