"""The scorecard trainer: from named columns (numeric and categorical) and outcomes,
or from a point-in-time feature matrix of catalog features, to a scorecard artifact
(format in ``creditscore.scorecard.model``) and its holdout metrics. Every option is
a field of one ``TrainingConfig`` (``creditscore.scorecard.config``)::

    config = TrainingConfig(version="2.0.0", description="what it was trained on")
    result = train_table(columns, y, specs, config)      # or train_matrix(X, y, names, config)
    save_model(result.artifact, "scorecard-2.0.0.json")

(the options may also be given as keywords, each replacing the config's:
``train_table(columns, y, specs, version="2.0.0", description="...", l2=1.0)``).

This module runs the steps; each lives in the module of its concern:

1. A fixed, seeded, stratified holdout (``inputs.stratified_split``): the same seed
   gives the same split; bads and goods are held out in the same proportion.
   Everything below is fitted on the training rows only.
2. Binning per feature (``binning``): quantile pre-bins, then the IV-optimal
   partition into at most ``max_bins`` bins of at least ``min_bin_share`` of the
   rows each, with a monotone bad rate in the feature's direction (or the better
   trend when it is not known), found exactly by dynamic programming; categories
   grouped in bad-rate order, rare ones pooled; a bin of its own for missing
   values and for each frequent special value. WoE and IV with +0.5 smoothing per
   cell (``woe_iv``).
3. Selection (``selection``): features with IV below ``min_iv`` are dropped; then,
   in decreasing IV order, a feature whose WoE column correlates (Pearson,
   training rows) above ``max_correlation`` in absolute value with an already kept
   one is dropped: of a correlated pair the higher IV stays.
4. Logistic regression of P(bad) on the WoE columns by Newton/IRLS with an L2
   penalty ``l2 / 2 * |beta|^2`` on the coefficients (``fit``), with step halving
   so that every step lowers the penalized loss, a convergence test and an
   iteration cap: it never returns NaN, separable data included. Unless ``l2`` is
   given, the penalty is chosen by cross-validation on the training rows when
   there are at most ``l2_cv_max_rows`` of them (``choose_l2``), else 1.0. As WoE
   grows with the good:bad odds, every coefficient must be negative; while one is
   not, the most positive is dropped and the model refitted.
5. Scaling anchored on the training population, and the points per bin
   (``artifact``): the 1st and 99th percentiles of the training ln(good:bad odds)
   (rows with enough coverage) score 420 and 880.
6. Holdout metrics of the scorecard *as written* (points rounded as stored;
   ``metrics``): AUC (rank based, ties counted half), Gini, KS, bad rate by band
   (with a warning when it does not fall as the band rises), calibration (mean
   predicted probability of bad against the observed bad rate per score decile),
   IV per feature; and the training population's score and bin distributions for
   PSI (the training rows' bins are the binnings' own: they are not located a
   second time).

On a million rows the work is a few passes over each column: a matrix is split
and transposed into contiguous columns in one pass (``train_matrix``), values
are located in their bins by comparisons (``binning.regular_bins``), and the
regression starts from a fit on a subsample and takes its curvature in float32
(``fit_logistic_detailed``); the result is what the straightforward computation
gives, to the stored precision.

Command line: ``creditscore train`` (``creditscore.cli.train``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Unpack

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import by_name

from .artifact import (
    ANCHOR_HIGH,
    ANCHOR_LOW,
    AnchoredScaling,
    anchored_scaling,
    feature_entries,
    format_report,
    model_file,
    population_distribution,
    save_model,
)
from .binning import NUMERIC, Binning, FeatureBins, FeatureSpec, bin_feature, fit_binning, woe_iv
from .config import MATRIX_MAX_BINS, TABLE_MAX_BINS, TrainingConfig, TrainingSettings
from .errors import Problem, TrainingError, raise_problems
from .fit import (
    L2_CV_FOLDS,
    L2_CV_MAX_ROWS,
    L2_DEFAULT,
    L2_GRID,
    LARGE_FIT_ROWS,
    LogisticFit,
    choose_l2,
    fit_logistic,
    fit_logistic_detailed,
)
from .inputs import Split, check_matrix, prepare_columns, prepare_outcomes, split_columns, split_table, stratified_split
from .metrics import auc_score, bad_rate_by_band, calibration_by_decile, holdout_metrics, ks_score
from .model import Scorecard
from .selection import Selection, select_features

__all__ = [
    "ANCHOR_HIGH",
    "ANCHOR_LOW",
    "L2_CV_FOLDS",
    "L2_CV_MAX_ROWS",
    "L2_DEFAULT",
    "L2_GRID",
    "LARGE_FIT_ROWS",
    "MATRIX_MAX_BINS",
    "TABLE_MAX_BINS",
    "FeatureBins",
    "LogisticFit",
    "Progress",
    "TrainResult",
    "TrainingConfig",
    "TrainingError",
    "TrainingSettings",
    "auc_score",
    "bad_rate_by_band",
    "bin_feature",
    "calibration_by_decile",
    "choose_l2",
    "fit_logistic",
    "fit_logistic_detailed",
    "format_report",
    "ks_score",
    "save_model",
    "stratified_split",
    "train_matrix",
    "train_scorecard",
    "train_table",
    "woe_iv",
]

Progress = Callable[[str, float], None]
"""``progress(message, fraction done 0-1)``: called as long work advances."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainResult:
    """What training produced: the artifact, its holdout metrics and, for reports,
    the holdout scored by the artifact as written.

    ``y_holdout``, ``score_holdout`` and ``pd_holdout`` cover every holdout row in
    row order (``stratified_split``); rows with too little data (INSUFFICIENT_DATA)
    have score 0 and probability NaN, as ``Scorecard.score_batch`` marks them.
    ``iv`` holds every feature's IV on the training rows, dropped features included;
    ``seconds`` the wall-clock time of each step."""

    artifact: dict[str, Any]
    metrics: dict[str, Any]
    y_holdout: npt.NDArray[np.int64]
    score_holdout: npt.NDArray[np.int32]
    pd_holdout: Floats
    iv: dict[str, float]
    binnings: dict[str, Binning]
    seconds: dict[str, float]

    @property
    def scorecard(self) -> Scorecard:
        return Scorecard.from_dict(self.artifact)


# ---------------------------------------------------------------- the entry points


def train_table(
    columns: Mapping[str, Any],
    y: Any,
    specs: Sequence[FeatureSpec],
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
    **settings: Unpack[TrainingSettings],
) -> TrainResult:
    """Trains a scorecard (module docstring: the steps) on ``columns`` (name ->
    one value per row: float64 with NaN for missing for numeric features, str with
    None or "" for missing for categorical ones) and ``y`` (1 = bad, 0 = good), one
    feature per spec, with ``config`` (``TrainingConfig.default`` when not given;
    ``settings`` replace its fields; ``max_bins`` defaults to ``TABLE_MAX_BINS``).
    ``TrainingError`` (an ``InputError`` and a ``ValueError``) names every bad
    setting and input, or says why no scorecard could be built."""
    started = time.perf_counter()
    config = _configured(config, settings)
    problems = config.problems()
    if not problems:  # special values the config cannot hold are its problem, not the specs'
        specs = _with_special_values(specs, config.special_values)
    data, y_all = prepare_columns(columns, y, specs, problems)
    raise_problems(problems)
    split = split_table(data, y_all, config.holdout_fraction, config.seed)
    return _train_split(split, specs, _Run(config, config.max_bins_or(TABLE_MAX_BINS), progress, started))


def train_matrix(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    feature_names: Sequence[str],
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
    **settings: Unpack[TrainingSettings],
) -> TrainResult:
    """``train_table`` on a matrix ``X`` (n x features, NaN = no data) of catalog
    features named by ``feature_names``: numeric, monotone in the catalog's
    direction, with the catalog's codes and texts (``max_bins`` defaults to
    ``MATRIX_MAX_BINS``)."""
    started = time.perf_counter()
    config = _configured(config, settings)
    matrix = np.asarray(X, dtype=np.float64)
    outcomes = np.asarray(y)
    names = list(feature_names)
    shape_problems: list[Problem] = []
    check_matrix(matrix, outcomes, names, shape_problems)
    raise_problems(shape_problems)
    problems = config.problems()
    if len(set(names)) != len(names):
        problems.append(Problem("specs", "feature names must be unique"))
    y_all = prepare_outcomes(outcomes, problems)
    raise_problems(problems)
    split = _split_matrix(matrix, y_all, names, config)
    specs = _with_special_values([FeatureSpec.from_catalog(by_name(name)) for name in names], config.special_values)
    return _train_split(split, specs, _Run(config, config.max_bins_or(MATRIX_MAX_BINS), progress, started))


def train_scorecard(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    feature_names: Sequence[str],
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
    **settings: Unpack[TrainingSettings],
) -> dict[str, Any]:
    """The artifact (a dict) of ``train_matrix`` on ``X`` and ``y`` (1 = bad),
    columns named by catalog ``feature_names``. Raises ``TrainingError`` (a
    ``ValueError``) on malformed input or when no feature carries information."""
    return train_matrix(X, y, feature_names, config, progress=progress, **settings).artifact


def _configured(config: TrainingConfig | None, settings: TrainingSettings) -> TrainingConfig:
    base = TrainingConfig.default if config is None else config
    return base.replace(**settings) if settings else base


def _with_special_values(specs: Sequence[FeatureSpec], extra: tuple[float, ...]) -> Sequence[FeatureSpec]:
    """The specs, each numeric one with the config's special values added to its own."""
    if not extra:
        return specs
    return [
        replace(spec, special_values=(*spec.special_values, *(v for v in extra if v not in spec.special_values)))
        if spec.kind == NUMERIC else spec
        for spec in specs
    ]


def _split_matrix(X: Floats, y: npt.NDArray[np.int64], names: Sequence[str], config: TrainingConfig) -> Split:
    """The matrix's columns split by ``stratified_split`` in one pass; none may hold
    an infinity."""
    train_rows, holdout_rows = stratified_split(y, config.holdout_fraction, config.seed)
    train, holdout = split_columns(np.ascontiguousarray(X), holdout_rows)
    infinite = [name for j, name in enumerate(names) if np.isinf(train[j]).any() or np.isinf(holdout[j]).any()]
    raise_problems([Problem(f"columns[{name!r}]", "must not hold infinities (NaN means no data)") for name in infinite])
    return Split(
        {name: train[j] for j, name in enumerate(names)},
        {name: holdout[j] for j, name in enumerate(names)},
        y[train_rows],
        y[holdout_rows],
    )


# ---------------------------------------------------------------- the steps


class _Run:
    """One training run: its settings (``max_bins`` resolved), where it reports its
    progress, and the time each step took."""

    def __init__(self, config: TrainingConfig, max_bins: int, progress: Progress | None, started: float) -> None:
        self.config = config
        self.max_bins = max_bins
        self.report: Progress = progress or (lambda message, fraction: None)
        self.seconds: dict[str, float] = {}
        self._started = self._lap = started

    def lap(self, step: str) -> None:
        """Records the time since the last lap (or the start) as ``step``'s."""
        now = time.perf_counter()
        self.seconds[step] = now - self._lap
        self._lap = now

    def finish(self) -> dict[str, float]:
        self.seconds["total"] = time.perf_counter() - self._started
        self.report("done", 1.0)
        return self.seconds


class _Regression(NamedTuple):
    """The fit on the kept features' WoE columns ``Z``, the penalty it used (and
    how it was chosen), and the features dropped for the wrong sign."""

    fit: LogisticFit
    Z: Floats
    kept: list[str]
    l2: float
    l2_choice: dict[str, Any]
    dropped: list[dict[str, Any]]


def _train_split(split: Split, specs: Sequence[FeatureSpec], run: _Run) -> TrainResult:
    """``train_table`` from its checked columns, already split (steps 2-6)."""
    if split.y_train.min() == split.y_train.max() or split.y_holdout.min() == split.y_holdout.max():
        raise_problems([Problem("y", "both the training and the holdout sample need bads and goods")])
    run.lap("split")
    binnings = _bin_features(split, specs, run)
    run.lap("binning")
    run.report("selecting features by information value and correlation", 0.6)
    selection = select_features(
        [spec.name for spec in specs], binnings, split.train,
        min_iv=run.config.min_iv, max_correlation=run.config.max_correlation,
    )
    run.lap("selection")
    regression = _regress(selection, split.y_train, binnings, run)
    run.lap("regression")
    run.report("scaling and writing the scorecard", 0.8)
    kept = [binnings[name] for name in regression.kept]
    scaling = _anchor(regression, selection, kept, run.config.min_coverage)
    artifact = model_file(
        run.config, scaling,
        features=feature_entries(kept, regression.fit.beta, regression.fit.alpha, scaling.scaling),
        dropped=selection.dropped + regression.dropped,
        training=_training_json(run, regression),
    )
    card = Scorecard.from_dict(artifact)
    run.lap("scaling")
    return _evaluate(artifact, card, split, selection, binnings, run)


def _bin_features(split: Split, specs: Sequence[FeatureSpec], run: _Run) -> dict[str, Binning]:
    """Bins, WoE and IV per feature on the training rows."""
    binnings: dict[str, Binning] = {}
    bad = split.y_train.astype(bool)
    for i, spec in enumerate(specs):
        run.report(f"binning {spec.name} ({i + 1}/{len(specs)})", 0.6 * i / len(specs))
        binnings[spec.name] = fit_binning(
            split.train[spec.name], bad, spec, max_bins=run.max_bins, min_bin_share=run.config.min_bin_share,
            max_prebins=run.config.max_prebins,
        )
    return binnings


def _regress(
    selection: Selection, y_train: npt.NDArray[np.int64], binnings: Mapping[str, Binning], run: _Run
) -> _Regression:
    """The logistic regression on the selected WoE columns, its penalty chosen
    unless given; while a coefficient is not negative, the most positive feature
    is dropped and the model refitted."""
    config = run.config
    y = y_train.astype(np.float64)
    Z = selection.woe
    kept = list(selection.kept)
    l2_choice: dict[str, Any] = {}
    if config.l2 is None:
        run.report(f"choosing the L2 penalty by {config.l2_folds}-fold cross-validation", 0.65)
        l2, l2_choice = choose_l2(
            Z, y, seed=config.seed, grid=config.l2_grid, folds=config.l2_folds, max_rows=config.l2_cv_max_rows
        )
    else:
        l2 = config.l2
    dropped: list[dict[str, Any]] = []
    while True:
        run.report(f"fitting the logistic regression on {len(kept)} features", 0.7)
        fit = fit_logistic_detailed(Z, y, l2=l2)
        worst = int(np.argmax(fit.beta))
        if fit.beta[worst] < 0:
            return _Regression(fit, Z, kept, l2, l2_choice, dropped)
        name = kept.pop(worst)
        dropped.append({
            "name": name, "reason": "coefficient had the wrong sign (refitted without it)",
            "iv": round(binnings[name].iv, 6),
        })
        Z = np.delete(Z, worst, axis=1)
        if not kept:
            raise_problems([Problem("columns", "no feature keeps a coefficient of the right sign")])


def _anchor(
    regression: _Regression, selection: Selection, kept: Sequence[Binning], min_coverage: float
) -> AnchoredScaling:
    """The scaling anchored on the training rows that get a score (enough coverage)."""
    fit = regression.fit
    log_odds_good = -(fit.alpha + regression.Z @ fit.beta)
    present = np.zeros(len(log_odds_good), dtype=np.int64)
    for binning in kept:
        present += selection.bins[binning.name] != binning.missing_index
    scored = present / len(kept) >= min_coverage
    return anchored_scaling(log_odds_good, scored)


def _training_json(run: _Run, regression: _Regression) -> dict[str, Any]:
    """The model file's ``training``: the settings and how the regression went."""
    config, fit = run.config, regression.fit
    return {
        "seed": config.seed,
        "holdout_fraction": config.holdout_fraction,
        "max_bins": run.max_bins,
        "min_bin_share": config.min_bin_share,
        "min_iv": config.min_iv,
        "max_correlation": config.max_correlation,
        "l2": regression.l2,
        **({"l2_cv": regression.l2_choice} if regression.l2_choice else {}),
        "intercept": round(fit.alpha, 6),
        "iterations": fit.iterations,
        "converged": fit.converged,
    }


def _evaluate(
    artifact: dict[str, Any], card: Scorecard, split: Split, selection: Selection, binnings: dict[str, Binning],
    run: _Run,
) -> TrainResult:
    """The metrics of the scorecard exactly as written (rounded points) and the
    training distribution, added to the artifact; the result."""
    run.report("scoring the holdout", 0.9)
    held = card.score_columns({name: split.holdout[name] for name in card.features}, reasons=False)
    # The training rows' bins are the binnings' own (the artifact's bins are
    # theirs, written out): no second pass over the training columns.
    trained = card.score_bins([selection.bins[name] for name in card.features])
    iv = {name: b.iv for name, b in binnings.items()}
    metrics = holdout_metrics(split.y_train, split.y_holdout, held, trained, iv)
    artifact["metrics"] = metrics
    artifact["training_distribution"] = population_distribution([binnings[name] for name in card.features], trained)
    Scorecard.from_dict(artifact)  # the finished artifact is valid
    run.lap("metrics")
    return TrainResult(
        artifact=artifact,
        metrics=metrics,
        y_holdout=split.y_holdout,
        score_holdout=held.scores,
        pd_holdout=held.pd,
        iv=iv,
        binnings=binnings,
        seconds=run.finish(),
    )
