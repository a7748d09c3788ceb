"""The trainer's settings: one frozen ``TrainingConfig`` of every option, in place of
long parameter lists. ``TrainingConfig.default`` is the usual; a model needs its own
``version`` and ``description`` on top of it::

    config = TrainingConfig(version="2.0.0", description="20,000 simulated subjects, seed 7")
    result = train_table(columns, y, specs, config)
    config.replace(max_bins=6, l2=1.0)   # another config, checked when it is used

``problems()`` lists every bad setting (one ``Problem`` per field, named as the
field); the trainer reports them with the problems of its input in one
``TrainingError``, and ``validate()`` raises them alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, TypedDict, Unpack

from .binning import MAX_PREBINS
from .errors import Problem, TrainingError
from .fit import L2_CV_FOLDS, L2_CV_MAX_ROWS, L2_GRID
from .model import is_valid_version

__all__ = ["MATRIX_MAX_BINS", "TABLE_MAX_BINS", "TrainingConfig", "TrainingSettings"]

#: Bins per feature when ``max_bins`` is not given: an analyst's table (any column,
#: categories included) and a matrix of catalog features.
TABLE_MAX_BINS = 8
MATRIX_MAX_BINS = 6


@dataclass(frozen=True)
class TrainingConfig:
    """Every option of a training run (``creditscore.scorecard.training``: the steps)."""

    #: The model's version (1-64 of A-Z a-z 0-9 . _ -) and what it was trained on.
    version: str = "1.0.0"
    description: str = ""
    #: Seeds the stratified holdout split and the folds that choose the L2 penalty.
    seed: int = 7
    holdout_fraction: float = 0.3
    #: Bins per feature at most; None: ``TABLE_MAX_BINS`` for a table,
    #: ``MATRIX_MAX_BINS`` for a matrix of catalog features.
    max_bins: int | None = None
    #: Every bin holds at least this share of the rows (missing ones included).
    min_bin_share: float = 0.05
    #: Quantile pre-bins of a numeric feature, grouped into the bins.
    max_prebins: int = MAX_PREBINS
    #: Features whose information value is below this are dropped.
    min_iv: float = 0.02
    #: Of two features whose WoE columns correlate above this, the lower IV is dropped.
    max_correlation: float = 0.75
    #: Below this share of the model's features with data, a row gets no score.
    min_coverage: float = 0.25
    #: The L2 penalty of the regression; None: chosen from ``l2_grid`` by
    #: ``l2_folds``-fold cross-validation on up to ``l2_cv_max_rows`` training rows
    #: (above that, ``L2_DEFAULT``).
    l2: float | None = None
    l2_grid: tuple[float, ...] = L2_GRID
    l2_folds: int = L2_CV_FOLDS
    l2_cv_max_rows: int = L2_CV_MAX_ROWS
    #: Numeric codes (e.g. -999) that get a bin of their own in every numeric
    #: feature, besides the feature's own (``FeatureSpec.special_values``).
    special_values: tuple[float, ...] = ()
    #: When the model was trained (written in the artifact); None: now.
    train_time: datetime | None = None

    default: ClassVar[TrainingConfig]

    def __post_init__(self) -> None:
        # Sequences given as lists are kept as tuples: the config stays immutable.
        object.__setattr__(self, "l2_grid", tuple(self.l2_grid))
        object.__setattr__(self, "special_values", tuple(self.special_values))

    def replace(self, **changes: Unpack[TrainingSettings]) -> TrainingConfig:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def problems(self) -> list[Problem]:
        """One ``Problem`` per bad setting, named as the field (empty when all are good)."""
        checks = [
            (is_valid_version(self.version), "version", f"{self.version!r} is not valid (1-64 of A-Z a-z 0-9 . _ -)"),
            (bool(self.description.strip()), "description", "must say what the model was trained on"),
            (0.0 < self.holdout_fraction < 1.0, "holdout_fraction", "must be within (0, 1)"),
            (self.max_bins is None or self.max_bins >= 1, "max_bins", "must be at least 1"),
            (0.0 < self.min_bin_share < 0.5, "min_bin_share", "must be within (0, 0.5)"),
            (self.min_iv >= 0.0, "min_iv", "must not be negative"),
            (0.0 < self.max_correlation <= 1.0, "max_correlation", "must be within (0, 1]"),
            (self.l2 is None or self.l2 >= 0.0, "l2", "must not be negative (None: chosen by cross-validation)"),
            (0.0 <= self.min_coverage <= 1.0, "min_coverage", "must be within [0, 1]"),
            (self.max_prebins >= 2, "max_prebins", "must be at least 2"),
            (bool(self.l2_grid) and all(math.isfinite(v) and v >= 0.0 for v in self.l2_grid),
             "l2_grid", "must hold penalties, none negative"),
            (self.l2_folds >= 2, "l2_folds", "must be at least 2"),
            (self.l2_cv_max_rows >= 0, "l2_cv_max_rows", "must not be negative"),
            (all(math.isfinite(v) for v in self.special_values)
             and len(set(self.special_values)) == len(self.special_values),
             "special_values", "must be finite and distinct"),
        ]
        return [Problem(field, text) for ok, field, text in checks if not ok]

    def validate(self) -> TrainingConfig:
        """The config itself; ``TrainingError`` names every bad setting."""
        problems = self.problems()
        if problems:
            detail = "; ".join(f"{p.field}: {p.description}" for p in problems)
            raise TrainingError(f"bad training settings: {detail}", problems)
        return self

    def max_bins_or(self, default: int) -> int:
        """``max_bins``, or ``default`` when it is not given."""
        return default if self.max_bins is None else self.max_bins


TrainingConfig.default = TrainingConfig()


class TrainingSettings(TypedDict, total=False):
    """``TrainingConfig``'s fields as keyword arguments: what the trainers took
    before the config, and still take (each one replaces the config's)."""

    version: str
    description: str
    seed: int
    holdout_fraction: float
    max_bins: int | None
    min_bin_share: float
    max_prebins: int
    min_iv: float
    max_correlation: float
    min_coverage: float
    l2: float | None
    l2_grid: tuple[float, ...]
    l2_folds: int
    l2_cv_max_rows: int
    special_values: tuple[float, ...]
    train_time: datetime | None

