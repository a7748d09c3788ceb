"""Training on a simulated population chunk by chunk gives the model the
all-in-memory path gives: the same matrix, bit for bit, and the same model file."""

from __future__ import annotations

import json

import pytest

from creditscore.features.engine import point_in_time_matrix
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.training import train_matrix
from creditscore.sim import simulate
from creditscore.sim.training import simulated_training_matrix


@pytest.fixture(scope="module")
def reference():
    """Today's path: the whole population in memory, every record replayed at once."""
    population = simulate(700, seed=19)
    return point_in_time_matrix(population.records, population.outcomes)


@pytest.mark.parametrize(("chunk_subjects", "workers"), [(700, 1), (61, 1), (80, 2)])
def test_the_chunked_matrix_is_the_all_in_memory_one(reference, chunk_subjects, workers):
    seen: list[int] = []
    chunked = simulated_training_matrix(700, seed=19, chunk_subjects=chunk_subjects, workers=workers,
                                        progress=seen.append)
    assert seen[-1] == 700 and seen == sorted(seen)
    assert chunked.X.tobytes() == reference.X.tobytes()
    assert chunked.y.tolist() == reference.y.tolist()
    assert chunked.subject_ids == reference.subject_ids
    assert chunked.application_times == reference.application_times


def test_the_same_model_file_coefficients_and_scores(reference):
    chunked = simulated_training_matrix(700, seed=19, chunk_subjects=97)
    config = TrainingConfig(version="1.0.0", description="equality", seed=19)
    old = train_matrix(reference.X, reference.y, list(reference.feature_names), config)
    new = train_matrix(chunked.X, chunked.y, list(chunked.feature_names), config)
    # Every field of the model file but when it was written.
    assert old.artifact.pop("train_time") and new.artifact.pop("train_time")
    old_file = json.dumps(old.artifact, sort_keys=True)
    assert json.dumps(new.artifact, sort_keys=True) == old_file
    assert new.artifact["features"]  # a real model, with features
    assert new.score_holdout.tolist() == old.score_holdout.tolist()
    assert 0.6 < new.metrics["auc"] < 0.95


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        simulated_training_matrix(-1, seed=1)
    with pytest.raises(ValueError):
        simulated_training_matrix(10, seed=1, chunk_subjects=0)
    with pytest.raises(ValueError):
        simulated_training_matrix(10, seed=1, workers=0)
