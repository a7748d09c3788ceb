"""The trainer's model files, pinned: the same data and settings must give the same
file, byte for byte in everything the trainer decides (features kept and dropped,
bins, statistics, points, coefficients, scaling, metrics, the training
distribution). The digests were taken from the trainer before it was split into
modules by concern; a change that moves one of them is a change of behaviour, not
a refactoring.

The digest is over the file ``save_model`` writes, with every number written to 12
significant digits: the stored values are rounded far coarser than that (points to
1e-4, WoE to 1e-6), and the few written unrounded (``pdo``, ``factor``, ``offset``)
would otherwise pin the last bit a particular BLAS gives."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from creditscore.features.catalog import FEATURE_NAMES, by_name
from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
from creditscore.scorecard.training import fit_logistic_detailed, save_model, train_matrix, train_table

TRAIN_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def digest(artifact: dict[str, Any], tmp_path: Path) -> str:
    """sha256 of the file ``save_model`` writes, numbers to 12 significant digits."""
    written = json.loads(save_model(artifact, tmp_path / "model.json").read_text(encoding="utf-8"))
    text = json.dumps(_canonical(written), indent=2, allow_nan=False) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def catalog_matrix(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Catalog features with a logistic ground truth in seven of them, 0-40% missing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    verified = FEATURE_NAMES.index("identity_verified")
    X[:, verified] = (X[:, verified] > -0.5).astype(np.float64)
    weights = np.zeros(len(FEATURE_NAMES))
    truth = {"pay_ontime_ratio_12m": 0.9, "pay_worst_days_late_12m": 0.6, "buyer_completion_rate_12m": 0.5,
             "identity_verified": 0.8, "history_months": 0.4, "ext_delinquencies_24m": 0.7,
             "ext_collections_60m": 0.3}
    for name, weight in truth.items():
        weights[FEATURE_NAMES.index(name)] = by_name(name).direction * weight
    logit = -2.0 - (X - X.mean(axis=0)) @ weights
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X[rng.random(X.shape) < rng.uniform(0.0, 0.4, size=len(FEATURE_NAMES))] = np.nan
    return X, y


def analyst_table(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, list[FeatureSpec]]:
    """A numeric column with special codes (one too rare for a bin), a categorical one
    with a rare category and missing values, a second numeric signal and noise."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    tenure = rng.integers(0, 120, n).astype(np.float64)
    housing = rng.choice(np.array(["own", "rent", "family", "boat"], dtype=object), n, p=[0.5, 0.3, 0.18, 0.02])
    logit = (-1.8 - 1.2 * np.log(income / 22000) - 0.01 * tenure
             + np.where(housing == "rent", 0.9, 0.0) + np.where(housing == "boat", 1.0, 0.0))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    income[rng.random(n) < 0.1] = -999.0
    income[:30] = -1.0
    tenure[rng.random(n) < 0.15] = np.nan
    housing[rng.random(n) < 0.05] = None
    columns = {"income": income, "tenure": tenure, "housing": housing, "noise": rng.normal(size=n)}
    specs = [
        FeatureSpec("income", NUMERIC, special_values=(-999, -1)),
        FeatureSpec.for_column("tenure", NUMERIC),
        FeatureSpec.for_column("housing", CATEGORICAL),
        FeatureSpec.for_column("noise", NUMERIC),
    ]
    return columns, y, specs


def test_a_table_with_categories_and_special_values_gives_the_same_model_file(tmp_path: Path) -> None:
    # 6,000 rows: the L2 penalty is chosen by cross-validation.
    columns, y, specs = analyst_table(6000, seed=17)
    result = train_table(columns, y, specs, version="4.2.0", description="golden table", seed=5,
                         train_time=TRAIN_TIME)
    assert "l2_cv" in result.artifact["training"]
    assert digest(result.artifact, tmp_path) == "8b3d1ca79c4d3b904ac572c69a03928e3d916dc6a5d52dc29ac379dbb4c0dc16"


def test_a_catalog_matrix_gives_the_same_model_file(tmp_path: Path) -> None:
    X, y = catalog_matrix(12000, seed=9)
    result = train_matrix(X, y, FEATURE_NAMES, version="0.9.0", description="golden matrix", seed=7,
                          train_time=TRAIN_TIME)
    assert digest(result.artifact, tmp_path) == "7106af61d8b200a44b82d1242e8623c58db75badaad85e66f541d3c02c19c1da"


def test_the_large_fit_path_gives_the_same_model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The path of a large fit (a warm start on a subsample, float32 curvature), on
    # a table small enough for a unit test: the threshold is lowered.
    fit_module = sys.modules[fit_logistic_detailed.__module__]
    monkeypatch.setattr(fit_module, "LARGE_FIT_ROWS", 5000)
    monkeypatch.setattr(fit_module, "WARM_START_ROWS", 3000)
    X, y = catalog_matrix(30000, seed=4)
    result = train_matrix(X, y, FEATURE_NAMES, version="1.0.0", description="golden large fit", seed=11,
                          max_bins=5, min_iv=0.01, max_correlation=0.6, train_time=TRAIN_TIME)
    assert digest(result.artifact, tmp_path) == "7a5e4da7471b4aae0b768b26a4ee7f6b2aa252160a366581f346881c3f0b18ec"


def test_features_dropped_for_correlation_and_sign_give_the_same_model_file(tmp_path: Path) -> None:
    # A drives the outcome; C is A plus a little noise (dropped: correlated with A,
    # lower IV); B is A plus more noise that pushes the other way once A is known
    # (dropped: wrong sign, then refitted); D is a weak signal of its own.
    rng = np.random.default_rng(6)
    n = 20000
    a = rng.normal(size=n)
    b = a + 0.5 * rng.normal(size=n)
    c = a + 0.1 * rng.normal(size=n)
    d = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 - 2.0 * a + 0.8 * b - 0.5 * d)))).astype(np.int8)
    X = np.column_stack([a, b, c, d])
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 2] = np.where(np.isnan(X[:, 0]), np.nan, X[:, 2])
    names = ["pay_ontime_ratio_12m", "buyer_completion_rate_12m", "seller_fulfilment_rate_12m", "history_months"]
    result = train_matrix(X, y, names, version="1", description="golden selection", max_correlation=0.85,
                          train_time=TRAIN_TIME)
    reasons = [d["reason"] for d in result.artifact["dropped"]]
    assert "WoE correlation" in reasons[0] and "wrong sign" in reasons[1]
    assert digest(result.artifact, tmp_path) == "f706bd7e701cac6166765430519e211aca7b7441762856e6cbbc2a74b943933e"
