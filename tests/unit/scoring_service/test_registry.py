"""The model folder: a scorecard the scoring service cannot serve (features that
are not catalog features, as a model trained on a CSV table has; a catalog feature
made categorical) is refused at load, naming the file and the features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
from creditscore.scorecard.model import Scorecard
from creditscore.scorecard.training import save_model, train_table
from scoring_service.config import DEFAULT_MODEL_DIR
from scoring_service.registry import ModelLoadError, ModelRegistry, servable_problem

SHIPPED = sorted(Path(DEFAULT_MODEL_DIR).glob("scorecard-*.json"))


def csv_model(version: str, names: tuple[str, str]) -> Scorecard:
    """A model as ``creditscore train --csv`` makes it: columns named as the table's."""
    rng = np.random.default_rng(4)
    n = 3000
    income = rng.lognormal(10, 0.5, n)
    housing = rng.choice(np.array(["own", "rent"], dtype=object), n)
    logit = -1.0 - np.log(income / 22000) + np.where(housing == "rent", 0.8, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    result = train_table(
        {names[0]: income, names[1]: housing}, y,
        [FeatureSpec(names[0], NUMERIC), FeatureSpec(names[1], CATEGORICAL)],
        version=version, description="a CSV table", min_iv=0.0,
    )
    assert set(result.scorecard.features) == set(names)
    return result.scorecard


def test_a_model_trained_on_a_csv_table_is_refused_at_load(tmp_path):
    for shipped in SHIPPED:
        shutil.copy(shipped, tmp_path / shipped.name)
    assert len(ModelRegistry.load(tmp_path)) >= 2  # the shipped models are servable
    card = csv_model("9.0.0", ("monthly income", "housing"))
    save_model(card.to_dict(), tmp_path / "scorecard-9.0.0.json")
    with pytest.raises(ModelLoadError) as info:
        ModelRegistry.load(tmp_path)
    message = str(info.value)
    assert "scorecard-9.0.0.json" in message
    assert "'monthly income'" in message and "'housing'" in message and "not catalog features" in message
    with pytest.raises(ModelLoadError, match="9.0.0 cannot be served"):
        ModelRegistry({"9.0.0": card})


def test_a_catalog_feature_made_categorical_is_refused(tmp_path):
    card = csv_model("9.1.0", ("pay_ontime_ratio_12m", "identity_verified"))
    assert servable_problem(card) == (
        "catalog feature(s) 'identity_verified' must be numeric, not categorical"
    )
    save_model(card.to_dict(), tmp_path / "scorecard-9.1.0.json")
    with pytest.raises(ModelLoadError, match=r"scorecard-9\.1\.0\.json.*'identity_verified'"):
        ModelRegistry.load(tmp_path)
    assert all(servable_problem(Scorecard.load(path)) is None for path in SHIPPED)
