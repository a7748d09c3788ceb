"""TrainingConfig: one frozen object of every training option, its default, the
validation that names each bad field, and the trainers taking it (or the keywords
they took before it) to the same model."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import get_type_hints

import numpy as np
import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
from creditscore.scorecard.config import MATRIX_MAX_BINS, TABLE_MAX_BINS, TrainingConfig, TrainingSettings
from creditscore.scorecard.errors import TrainingError
from creditscore.scorecard.fit import L2_CV_FOLDS, L2_CV_MAX_ROWS, L2_GRID
from creditscore.scorecard.training import train_matrix, train_scorecard, train_table

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def table(n: int = 3000, seed: int = 2) -> tuple[dict[str, np.ndarray], np.ndarray, list[FeatureSpec]]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    housing = rng.choice(np.array(["own", "rent", "family"], dtype=object), n, p=[0.5, 0.3, 0.2])
    logit = -1.8 - 1.2 * np.log(income / 22000) + np.where(housing == "rent", 0.9, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    income[rng.random(n) < 0.1] = -999.0
    specs = [FeatureSpec.for_column("income", NUMERIC), FeatureSpec.for_column("housing", CATEGORICAL)]
    return {"income": income, "housing": housing}, y, specs


def matrix(n: int = 4000, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    j = FEATURE_NAMES.index("pay_ontime_ratio_12m")
    y = (rng.random(n) < 1 / (1 + np.exp(2.0 + 1.5 * X[:, j]))).astype(np.int8)
    X[rng.random(X.shape) < 0.2] = np.nan
    return X, y


def test_the_default_is_every_option_at_its_usual_value() -> None:
    default = TrainingConfig.default
    assert default == TrainingConfig()
    assert (default.seed, default.holdout_fraction, default.max_bins, default.min_bin_share) == (7, 0.3, None, 0.05)
    assert (default.min_iv, default.max_correlation, default.min_coverage, default.l2) == (0.02, 0.75, 0.25, None)
    assert (default.l2_grid, default.l2_folds, default.l2_cv_max_rows) == (L2_GRID, L2_CV_FOLDS, L2_CV_MAX_ROWS)
    # A model needs its own description: the default says nothing of the data.
    assert [p.field for p in default.problems()] == ["description"]
    assert TrainingConfig(description="x").problems() == []


def test_a_config_is_frozen_and_replace_gives_another() -> None:
    config = TrainingConfig(version="2.0.0", description="d", l2_grid=[1.0, 3.0], special_values=[-1])  # type: ignore[arg-type]
    assert config.l2_grid == (1.0, 3.0) and config.special_values == (-1,)  # sequences kept as tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    other = config.replace(seed=3, max_bins=4)
    assert (other.seed, other.max_bins, config.seed, config.max_bins) == (3, 4, 7, None)


def test_validation_names_every_bad_field() -> None:
    config = TrainingConfig(
        version="a b", description=" ", holdout_fraction=1.0, max_bins=0, min_bin_share=0.5, min_iv=-1.0,
        max_correlation=0.0, l2=-1.0, min_coverage=2.0, max_prebins=1, l2_grid=(), l2_folds=1, l2_cv_max_rows=-1,
        special_values=(1.0, 1.0),
    )
    fields = [p.field for p in config.problems()]
    assert fields == [
        "version", "description", "holdout_fraction", "max_bins", "min_bin_share", "min_iv", "max_correlation",
        "l2", "min_coverage", "max_prebins", "l2_grid", "l2_folds", "l2_cv_max_rows", "special_values",
    ]
    with pytest.raises(TrainingError) as info:
        config.validate()
    assert [v.field for v in info.value.violations] == fields and "max_correlation" in str(info.value)
    assert TrainingConfig(description="ok").validate().description == "ok"


def test_the_keywords_name_the_config_fields() -> None:
    assert set(get_type_hints(TrainingSettings)) == {f.name for f in dataclasses.fields(TrainingConfig)}


def test_a_config_and_the_same_keywords_train_the_same_model() -> None:
    columns, y, specs = table()
    config = TrainingConfig(version="1.2.0", description="config", seed=3, min_iv=0.01, l2=1.0, train_time=WHEN)
    by_config = train_table(columns, y, specs, config).artifact
    by_keywords = train_table(columns, y, specs, version="1.2.0", description="config", seed=3, min_iv=0.01,
                              l2=1.0, train_time=WHEN).artifact
    assert by_config == by_keywords
    # Keywords given with a config replace its fields.
    assert train_table(columns, y, specs, config, seed=4).artifact["training"]["seed"] == 4


def test_max_bins_defaults_to_eight_for_a_table_and_six_for_a_catalog_matrix() -> None:
    columns, y, specs = table()
    assert train_table(columns, y, specs, description="t", l2=1.0).artifact["training"]["max_bins"] == TABLE_MAX_BINS
    X, y_m = matrix()
    artifact = train_scorecard(X, y_m, FEATURE_NAMES, TrainingConfig(description="m", l2=1.0))
    assert artifact["training"]["max_bins"] == MATRIX_MAX_BINS == 6 and TABLE_MAX_BINS == 8
    assert all(len(f["bins"]) <= 6 for f in artifact["features"])
    config = TrainingConfig(description="m", l2=1.0, max_bins=3)
    assert train_matrix(X, y_m, FEATURE_NAMES, config).artifact["training"]["max_bins"] == 3


def test_special_values_of_the_config_go_to_every_numeric_feature() -> None:
    columns, y, specs = table()
    config = TrainingConfig(description="specials", l2=1.0, train_time=WHEN, special_values=(-999.0,))
    from_config = train_table(columns, y, specs, config).artifact
    own = [dataclasses.replace(s, special_values=(-999.0,)) if s.kind == NUMERIC else s for s in specs]
    from_specs = train_table(columns, y, own, config.replace(special_values=())).artifact
    assert from_config == from_specs
    income = next(f for f in from_config["features"] if f["name"] == "income")
    assert [s["value"] for s in income["special"]] == [-999.0]


def test_bad_settings_and_bad_input_are_reported_together() -> None:
    columns, y, specs = table(500)
    with pytest.raises(TrainingError) as info:
        train_table({"housing": columns["housing"]}, y, specs, TrainingConfig(description="", l2_folds=0))
    fields = {v.field for v in info.value.violations}
    assert fields == {"description", "l2_folds", "columns['income']"}


def test_the_trainer_s_old_names_are_still_importable_from_training() -> None:
    import creditscore.scorecard.training as training

    old = [
        "L2_CV_MAX_ROWS", "L2_DEFAULT", "L2_GRID", "LARGE_FIT_ROWS", "FeatureBins", "LogisticFit", "Progress",
        "TrainResult", "TrainingError", "auc_score", "bad_rate_by_band", "bin_feature", "calibration_by_decile",
        "choose_l2", "fit_logistic", "fit_logistic_detailed", "format_report", "ks_score", "save_model",
        "stratified_split", "train_matrix", "train_scorecard", "train_table", "woe_iv",
    ]
    assert [name for name in old if not hasattr(training, name)] == []
    assert set(old) <= set(training.__all__)


def test_bad_special_values_of_the_config_are_a_setting_s_problem() -> None:
    columns, y, specs = table(500)
    with pytest.raises(TrainingError) as info:
        train_table(columns, y, specs, TrainingConfig(description="x", special_values=(float("nan"),)))
    assert [v.field for v in info.value.violations] == ["special_values"]
