"""The scorecard trainer: from named columns (numeric and categorical) and outcomes,
or from a point-in-time feature matrix of catalog features, to a scorecard artifact
(format in ``creditscore.scorecard.model``) and its holdout metrics.

The steps (``train_table``; ``train_scorecard`` and ``train_matrix`` are the same on a
matrix of catalog features):

1. A fixed, seeded, stratified holdout (``stratified_split``): the same seed gives
   the same split; bads and goods are held out in the same proportion. Everything
   below is fitted on the training rows only.
2. Binning per feature (``creditscore.scorecard.binning``): quantile pre-bins, then the
   IV-optimal partition into at most ``max_bins`` bins of at least ``min_bin_share``
   of the rows each, with a monotone bad rate in the feature's direction (or the
   better trend when it is not known), found exactly by dynamic programming;
   categories grouped in bad-rate order, rare ones pooled; a bin of its own for
   missing values and for each frequent special value. WoE and IV with +0.5
   smoothing per cell (``woe_iv``).
3. Selection: features with IV below ``min_iv`` are dropped; then, in decreasing IV
   order, a feature whose WoE column correlates (Pearson, training rows) above
   ``max_correlation`` in absolute value with an already kept one is dropped: of a
   correlated pair the higher IV stays.
4. Logistic regression of P(bad) on the WoE columns by Newton/IRLS with an L2
   penalty ``l2 / 2 * |beta|^2`` on the coefficients (``fit_logistic``), with step
   halving so that every step lowers the penalized loss, a convergence test and an
   iteration cap: it never returns NaN, separable data included. Unless ``l2`` is
   given, the penalty is chosen by 5-fold cross-validation on the training rows
   when there are at most ``L2_CV_MAX_ROWS`` of them (``choose_l2``), else 1.0. As
   WoE grows with the good:bad odds, every coefficient must be negative; while one
   is not, the most positive is dropped and the model refitted.
5. Scaling anchored on the training population: ``factor`` and ``offset`` put the
   1st and 99th percentiles of the training ln(good:bad odds) (rows with enough
   coverage) at 420 and 880, so that scores spread over 350-950 without piling up
   at either end; PDO = factor * ln 2 is recorded. Points per bin:
   ``-factor * beta * WoE + (offset - factor * alpha) / n_features``.
6. Holdout metrics of the scorecard *as written* (points rounded as stored): AUC
   (rank based, ties counted half), Gini, KS, bad rate by band (with a warning when
   it does not fall as the band rises), calibration (mean predicted probability of
   bad against the observed bad rate per score decile), IV per feature; and the
   training population's score and bin distributions for PSI (the training rows'
   bins are the binnings' own: they are not located a second time).

On a million rows the work is a few passes over each column: a matrix is split
and transposed into contiguous columns in one pass (``train_matrix``), values
are located in their bins by comparisons (``binning.regular_bins``), and the
regression starts from a fit on a subsample and takes its curvature in float32
(``fit_logistic_detailed``); the result is what the straightforward computation
gives, to the stored precision.

Command line (``creditscore train``; the simulator, the point-in-time builder and
the CSV reader are imported on use)::

    creditscore train --simulate 20000 --seed 20261101 --version 2.0.0 \\
        --out scoring_service/models/scorecard-2.0.0.json
    creditscore train --csv applications.csv --target default --out scorecard-1.0.0.json \\
        [--bad-value yes] [--special-values -999,-1] [--report model.html]
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from creditscore.features.catalog import FEATURE_NAMES, by_name
from .errors import InputError
from .errors import Problem as FieldViolation

from .binning import NUMERIC, Binning, FeatureSpec, fit_binning, woe_iv
from .model import (
    ARTIFACT_FORMAT,
    BANDS,
    SCORE_MAX,
    SCORE_MIN,
    Scaling,
    Scorecard,
    is_valid_version,
)

__all__ = [
    "L2_CV_MAX_ROWS",
    "L2_DEFAULT",
    "L2_GRID",
    "LARGE_FIT_ROWS",
    "FeatureBins",
    "LogisticFit",
    "Progress",
    "TrainResult",
    "TrainingError",
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

ANCHOR_LOW = (1.0, 420.0)  # (percentile of training ln odds, score)
ANCHOR_HIGH = (99.0, 880.0)
SCORE_HISTOGRAM_STEP = 25
ARTIFACT_MODE = 0o644  # an artifact is read by services running as other users

Progress = Callable[[str, float], None]
"""``progress(message, fraction done 0-1)``: called as long work advances."""


class TrainingError(InputError):
    """Training input that cannot give a scorecard (malformed columns or outcomes,
    bad settings, no informative feature); one violation per bad field. A
    ``ValueError``, as every ``InputError``."""

    reason = "TRAINING_INPUT_INVALID"


def _fail(problems: Sequence[FieldViolation]) -> None:
    if problems:
        detail = "; ".join(f"{p.field}: {p.description}" for p in problems)
        raise TrainingError(f"cannot train: {detail}", problems)


# ---------------------------------------------------------------- holdout


def stratified_split(y: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(train, holdout)``: ``holdout_fraction`` of the bads and
    of the goods (rounded) go to the holdout, chosen by a generator seeded with ``seed``."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    holdout: list[np.ndarray] = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        rows = rows[rng.permutation(len(rows))]
        holdout.append(rows[: int(round(holdout_fraction * len(rows)))])
    held = np.zeros(len(y), dtype=bool)
    held[np.concatenate(holdout)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


# ---------------------------------------------------------------- binning (matrix API)


@dataclass(frozen=True)
class FeatureBins:
    """One numeric feature's bins on the training rows: numeric bins
    ``[edges[i-1], edges[i])`` (``edges`` are the inner edges, so there are
    ``len(edges) + 1`` numeric bins), then the missing bin."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]  # rows per numeric bin
    bads: tuple[int, ...]  # bads per numeric bin
    missing_count: int
    missing_bads: int

    def all_counts(self) -> np.ndarray:
        return np.array([*self.counts, self.missing_count], dtype=np.int64)

    def all_bads(self) -> np.ndarray:
        return np.array([*self.bads, self.missing_bads], dtype=np.int64)

    def index(self, values: np.ndarray) -> np.ndarray:
        """The bin of every value (NaN: the missing bin, last)."""
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), values, side="right")
        index[np.isnan(values)] = len(self.edges) + 1
        return index


def bin_feature(
    values: np.ndarray,
    y: np.ndarray,
    *,
    direction: int,
    max_bins: int = 6,
    min_bin_share: float = 0.05,
    n_candidates: int = 50,
) -> FeatureBins:
    """Bins one numeric column (NaN = no data) against outcomes ``y`` (1 = bad):
    the IV-optimal partition of up to ``n_candidates`` quantile pre-bins into at most
    ``max_bins`` bins, each with at least ``min_bin_share`` of *all* rows (missing
    included), the bad rate strictly monotone in ``direction`` (+1: falls as the
    value grows; -1: rises; 0: no constraint). ``creditscore.scorecard.binning`` has the
    general form (categories, special values, the auto trend)."""
    binning = fit_binning(
        values, y, FeatureSpec("feature", NUMERIC, direction=direction),
        max_bins=max_bins, min_bin_share=min_bin_share, max_prebins=n_candidates, monotone=direction != 0,
    )
    return FeatureBins(
        binning.edges, binning.counts[:-1], binning.bads[:-1], binning.counts[-1], binning.bads[-1]
    )


# ---------------------------------------------------------------- regression


#: Above this many rows the Newton iterations take the curvature (the weighted Gram
#: matrix, most of an iteration's work) in float32 and start from a fit on a
#: strided subsample (``fit_logistic_detailed``). Below it everything is float64
#: from a cold start (small fits are fast anyway).
LARGE_FIT_ROWS = 100_000
WARM_START_ROWS = 50_000  # about this many rows for the warm start of a large fit
_WARM_START_TOL = 1e-4
_KEEP_CURVATURE_BELOW = 1e-3  # after a step moving no weight more than this, keep the curvature


class _Predictor:
    """The linear predictor ``z = alpha + Z beta``, the probabilities ``p =
    sigmoid(z)`` and the unpenalized loss ``sum(log(1 + e^z) - y z)`` at given
    weights, into buffers allocated once (fresh arrays of a million rows cost
    more in page faults than the arithmetic on them)."""

    def __init__(self, Z: np.ndarray, y: np.ndarray) -> None:
        self.Z, self.y = Z, y
        self._scratch = np.empty(len(y))

    def evaluate(self, alpha: float, beta: np.ndarray, z: np.ndarray, p: np.ndarray) -> float:
        """Fills ``z`` and ``p``; returns the loss (``log(1 + e^z)`` as
        ``max(z, 0) + log1p(e^-|z|)``: no overflow)."""
        if self.Z.shape[1]:
            np.matmul(self.Z, beta, out=z)
        else:
            z.fill(0.0)
        z += alpha
        t = self._scratch
        np.abs(z, out=t)
        sum_abs = float(t.sum())
        np.negative(t, out=t)
        np.exp(t, out=t)
        np.log1p(t, out=t)
        loss = 0.5 * (float(z.sum()) + sum_abs) + float(t.sum()) - float(self.y @ z)
        # sigmoid(z) = (1 + tanh(z / 2)) / 2: exact to a few 1e-16 in absolute terms,
        # which is all the gradient y - p and the weights p (1 - p) need.
        np.multiply(z, 0.5, out=p)
        np.tanh(p, out=p)
        p += 1.0
        p *= 0.5
        return loss


def _weighted_gram(A: np.ndarray, weights: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    """``A.T @ diag(weights) @ A`` (float64), in row chunks: no n x k temporary. A
    float32 ``A`` is multiplied in float32 chunk by chunk (twice the speed) and the
    chunks are summed in float64."""
    out = np.zeros((A.shape[1], A.shape[1]))
    w = weights.astype(A.dtype, copy=False)
    for start in range(0, A.shape[0], chunk):
        block = A[start : start + chunk]
        out += (block * w[start : start + chunk, None]).T @ block
    return out


class LogisticFit(NamedTuple):
    """``P(y=1) = sigmoid(alpha + Z beta)``; how the fit went."""

    alpha: float
    beta: np.ndarray
    iterations: int  # Newton steps on all the rows (a warm start's are not counted)
    converged: bool
    loss: float  # penalized negative log-likelihood at the solution


def fit_logistic_detailed(
    Z: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-8,
    start: tuple[float, np.ndarray] | None = None,
) -> LogisticFit:
    """Newton/IRLS minimizing ``-loglik + l2 / 2 * |beta|^2`` (the intercept is not
    penalized).

    Each iteration takes the exact (float64) gradient and the Newton step for it.
    When the largest component of that step is at most ``tol`` the step is taken
    and the fit has converged: near the optimum Newton's error is about the square
    of its step, so the weights are then far closer to the optimum than ``tol``
    (and the points the trainer derives from them, stored to 1e-4, equal an exact
    fit's: ``test_the_fast_fit_gives_the_points_an_exact_fit_gives``). A larger
    step is halved until the loss does not rise; the fit also stops, converged,
    when the loss stops falling (relative change below 1e-15) or no step lowers
    it. A tiny ridge keeps the curvature invertible when the data are separable and
    ``l2`` is 0: the weights then grow for ``max_iter`` iterations but stay finite.

    Where the work goes (a million rows): the curvature (a weighted Gram matrix)
    is recomputed only while the weights still move by more than 1e-3 (after
    such a small move the last one is as good: the step it gives is off by about
    the move times the step); on more than ``LARGE_FIT_ROWS`` rows it is computed
    in float32 (the gradient, which alone decides where the fit stops, stays
    float64) and, unless ``start`` gives ``(alpha, beta)``, the fit starts from a
    loose fit on a strided subsample of about ``WARM_START_ROWS`` rows, so that
    three or four iterations over all the rows are enough."""
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = Z.shape
    l2 = float(l2)
    large = n > LARGE_FIT_ROWS
    alpha = 0.0
    beta = np.zeros(k)
    if start is not None:
        alpha, beta = float(start[0]), np.array(start[1], dtype=np.float64)
    elif large and k:
        stride = max(2, n // WARM_START_ROWS)
        warm = fit_logistic_detailed(
            np.asfortranarray(Z[::stride]), y[::stride], l2=l2 / stride, max_iter=max_iter, tol=_WARM_START_TOL
        )
        if np.isfinite(warm.alpha) and np.isfinite(warm.beta).all():
            alpha, beta = warm.alpha, warm.beta
    else:
        mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if n else 0.5
        alpha = math.log(mean / (1 - mean))
    curvature_rows = Z.astype(np.float32) if large else Z
    y_sum = float(y.sum())
    model = _Predictor(Z, y)
    z, p = np.empty(n), np.empty(n)
    new_z, new_p = np.empty(n), np.empty(n)
    work = np.empty(n)
    loss = model.evaluate(alpha, beta, z, p) + 0.5 * l2 * float(beta @ beta)
    converged = False
    iterations = 0
    hessian = np.zeros((k + 1, k + 1))
    moved = math.inf  # the largest change of a weight in the last step
    for iterations in range(1, max_iter + 1):
        gradient = np.empty(k + 1)  # the direction that lowers the loss
        gradient[0] = y_sum - float(p.sum())
        np.subtract(y, p, out=work)
        gradient[1:] = Z.T @ work - l2 * beta
        if moved > _KEEP_CURVATURE_BELOW:
            # The curvature changes with the weights about as much as they moved:
            # after a step this small the last one is as good (the error it leaves
            # in the next step is that step times the move, far below ``tol``).
            np.subtract(1.0, p, out=work)
            work *= p  # the IRLS weights p (1 - p)
            hessian[0, 0] = work.sum()
            hessian[0, 1:] = hessian[1:, 0] = Z.T @ work
            hessian[1:, 1:] = _weighted_gram(curvature_rows, work)
            hessian[1:, 1:][np.diag_indices(k)] += l2
            hessian[np.diag_indices_from(hessian)] += 1e-10 * (1.0 + np.trace(hessian) / (k + 1))
        step = np.linalg.solve(hessian, gradient)
        if not np.isfinite(step).all():
            break
        if float(np.max(np.abs(step))) <= tol:
            alpha, beta = alpha + float(step[0]), beta + step[1:]
            loss = model.evaluate(alpha, beta, z, p) + 0.5 * l2 * float(beta @ beta)
            converged = True
            break
        scale = 1.0
        accepted = False
        while scale >= 1e-12:
            new_alpha, new_beta = alpha + scale * float(step[0]), beta + scale * step[1:]
            if math.isfinite(new_alpha) and np.isfinite(new_beta).all():
                with np.errstate(over="ignore", invalid="ignore"):
                    new_loss = model.evaluate(new_alpha, new_beta, new_z, new_p) + 0.5 * l2 * float(new_beta @ new_beta)
                if math.isfinite(new_loss) and new_loss <= loss + 1e-12 * max(1.0, abs(loss)):
                    accepted = True
                    break
            scale /= 2.0
        if not accepted:  # no step lowers the loss: this is as low as it goes
            converged = True
            break
        improvement = loss - new_loss
        moved = scale * float(np.max(np.abs(step)))
        alpha, beta, loss = new_alpha, new_beta, new_loss
        z, new_z = new_z, z
        p, new_p = new_p, p
        if improvement <= 1e-15 * max(1.0, abs(loss)):
            converged = True
            break
    return LogisticFit(float(alpha), np.array(beta, dtype=np.float64), iterations, converged, float(loss))


def fit_logistic(
    Z: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-8
) -> tuple[float, np.ndarray]:
    """``(alpha, beta)`` of ``P(y=1) = sigmoid(alpha + Z beta)`` (see
    ``fit_logistic_detailed``)."""
    fit = fit_logistic_detailed(Z, y, l2=l2, max_iter=max_iter, tol=tol)
    return fit.alpha, fit.beta


#: The L2 penalties ``choose_l2`` tries, and how it tries them.
L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
L2_CV_FOLDS = 5
#: Above this many training rows the penalty is not cross-validated: against so
#: much data any penalty of the grid is negligible, and ``L2_DEFAULT`` is used.
L2_CV_MAX_ROWS = 20_000
L2_DEFAULT = 1.0


def choose_l2(
    Z: np.ndarray, y: np.ndarray, *, seed: int, grid: Sequence[float] = L2_GRID, folds: int = L2_CV_FOLDS
) -> tuple[float, dict[str, Any]]:
    """The L2 penalty of ``grid`` whose fits predict held-out rows best, and how it
    was chosen: ``folds``-fold cross-validation (folds stratified by outcome,
    seeded by ``seed``) on these rows only, the mean held-out log-loss per
    penalty, the lowest wins (the smaller penalty on a tie). A fold's fit has
    ``(folds - 1) / folds`` of the rows, so its penalty is scaled by that share:
    the same strength per row as the final fit's. Above ``L2_CV_MAX_ROWS`` rows,
    ``L2_DEFAULT`` without cross-validation.

    On small tables the penalty matters (on the German credit data's 700 training
    rows this picks 3 more often than 1; docs/benchmarks.md); on large ones it
    does not."""
    n = len(y)
    if n > L2_CV_MAX_ROWS or folds < 2 or n < 2 * folds:
        return L2_DEFAULT, {}
    rng = np.random.default_rng(seed)
    fold = np.empty(n, dtype=np.int64)
    for label in (0.0, 1.0):
        rows = np.flatnonzero(y == label)
        fold[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % folds
    losses = {float(penalty): 0.0 for penalty in sorted(grid)}
    for f in range(folds):
        fit_rows, held = fold != f, fold == f
        share = float(fit_rows.sum()) / n
        Z_fit, y_fit = Z[fit_rows], y[fit_rows]
        start: tuple[float, np.ndarray] | None = None
        for penalty in losses:  # each fit starts where the next smaller penalty's ended
            fit = fit_logistic_detailed(Z_fit, y_fit, l2=penalty * share, start=start)
            start = (fit.alpha, fit.beta)
            z = fit.alpha + Z[held] @ fit.beta
            losses[penalty] += float(np.sum(np.logaddexp(0.0, z) - y[held] * z))
    mean = {penalty: loss / n for penalty, loss in losses.items()}
    best = min(mean, key=lambda penalty: (round(mean[penalty], 12), penalty))
    return best, {
        "method": f"{folds}-fold cross-validation on the training rows, mean held-out log-loss",
        "log_loss": {format(penalty, "g"): round(value, 6) for penalty, value in mean.items()},
    }


# ---------------------------------------------------------------- metrics


def _sorted_by_outcome(y: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool)
    risk = np.asarray(risk, dtype=np.float64)
    if y.shape != risk.shape:
        raise ValueError("one risk per outcome")
    if np.isnan(risk).any():
        raise ValueError("risk must not hold NaN")
    return np.sort(risk[y]), np.sort(risk[~y])


def auc_score(y: np.ndarray, risk: np.ndarray) -> float:
    """Probability that a random bad has a higher ``risk`` than a random good (ties
    count one half): the Mann-Whitney statistic, counted exactly (integers) from
    the sorted risks of the bads and of the goods in O(n log n)."""
    bad, good = _sorted_by_outcome(y, risk)
    n_bad, n_good = len(bad), len(good)
    if n_bad == 0 or n_good == 0:
        raise ValueError("AUC needs both bads and goods")
    below = np.searchsorted(good, bad, side="left")  # goods with a lower risk, per bad
    tied = np.searchsorted(good, bad, side="right") - below
    return float((int(below.sum()) + 0.5 * int(tied.sum())) / (n_bad * n_good))


def ks_score(y: np.ndarray, risk: np.ndarray) -> float:
    """Largest gap between the cumulative distributions of ``risk`` among bads
    and among goods (thresholds at distinct values, so ties never split)."""
    bad, good = _sorted_by_outcome(y, risk)
    thresholds = np.sort(np.concatenate([bad, good]))
    bad_cdf = np.searchsorted(bad, thresholds, side="right") / max(len(bad), 1)
    good_cdf = np.searchsorted(good, thresholds, side="right") / max(len(good), 1)
    return float(np.max(np.abs(bad_cdf - good_cdf))) if len(thresholds) else 0.0


def bad_rate_by_band(y: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Rows and bad rate (null where empty) per band, lowest band first."""
    out = []
    for band, lo, hi in BANDS:
        rows = (scores >= lo) & (scores <= hi)
        n = int(rows.sum())
        out.append(
            {
                "band": band.value,
                "lo": lo,
                "hi": hi,
                "n": n,
                "bad_rate": round(float(y[rows].mean()), 6) if n else None,
            }
        )
    return out


def calibration_by_decile(y: np.ndarray, pd: np.ndarray, scores: np.ndarray, groups: int = 10) -> list[dict[str, Any]]:
    """Rows ordered by score (lowest first, a stable sort) and cut into ``groups``
    groups of (nearly) equal size; per group its score range, the mean predicted
    probability of bad and the observed bad rate."""
    keys = np.asarray(scores)
    if keys.dtype.kind in "iu" and keys.size and keys.min() >= 0 and keys.max() < 2**15:
        keys = keys.astype(np.int16)  # numpy's stable sort of 16-bit integers is a radix sort
    order = np.argsort(keys, kind="stable")
    out = []
    for i, rows in enumerate(np.array_split(order, groups)):
        if rows.size == 0:
            continue
        out.append(
            {
                "decile": i + 1,
                "n": int(rows.size),
                "score_lo": int(scores[rows].min()),
                "score_hi": int(scores[rows].max()),
                "predicted": round(float(pd[rows].mean()), 6),
                "observed": round(float(y[rows].mean()), 6),
            }
        )
    return out


def _band_warnings(by_band: list[dict[str, Any]]) -> list[str]:
    filled = [b for b in by_band if b["n"] > 0]
    for lower, higher in zip(filled, filled[1:]):
        if higher["bad_rate"] >= lower["bad_rate"]:
            return [
                "holdout bad rate does not fall as the band rises: "
                f"{lower['band']} {lower['bad_rate']:.4f} -> {higher['band']} {higher['bad_rate']:.4f}"
            ]
    return []


# ---------------------------------------------------------------- training


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
    y_holdout: np.ndarray
    score_holdout: np.ndarray
    pd_holdout: np.ndarray
    iv: dict[str, float]
    binnings: dict[str, Binning]
    seconds: dict[str, float]

    @property
    def scorecard(self) -> Scorecard:
        return Scorecard.from_dict(self.artifact)


def _check_settings(
    problems: list[FieldViolation], *, version: str, description: str, holdout_fraction: float, max_bins: int,
    min_bin_share: float, min_iv: float, max_correlation: float, l2: float | None, min_coverage: float,
) -> None:
    def check(ok: bool, name: str, text: str) -> None:
        if not ok:
            problems.append(FieldViolation(name, text))

    check(is_valid_version(version), "version", f"{version!r} is not valid (1-64 of A-Z a-z 0-9 . _ -)")
    check(bool(description.strip()), "description", "must say what the model was trained on")
    check(0.0 < holdout_fraction < 1.0, "holdout_fraction", "must be within (0, 1)")
    check(max_bins >= 1, "max_bins", "must be at least 1")
    check(0.0 < min_bin_share < 0.5, "min_bin_share", "must be within (0, 0.5)")
    check(min_iv >= 0.0, "min_iv", "must not be negative")
    check(0.0 < max_correlation <= 1.0, "max_correlation", "must be within (0, 1]")
    check(l2 is None or l2 >= 0.0, "l2", "must not be negative (None: chosen by cross-validation)")
    check(0.0 <= min_coverage <= 1.0, "min_coverage", "must be within [0, 1]")


def _prepare_outcomes(y: Any, problems: list[FieldViolation]) -> np.ndarray:
    """``y`` as int64 0/1; its problems appended."""
    y_array = np.asarray(y)
    if y_array.ndim != 1:
        problems.append(FieldViolation("y", "must be one-dimensional"))
        y_array = y_array.reshape(-1)
    if not ((y_array == 0) | (y_array == 1)).all():
        problems.append(FieldViolation("y", "must hold 0 (good) and 1 (bad) only"))
        return np.zeros(len(y_array), dtype=np.int64)
    if y_array.size and (y_array.min() == y_array.max()):
        problems.append(FieldViolation("y", "needs both bads (1) and goods (0)"))
    return y_array.astype(np.int64)


def _prepare_columns(
    columns: Mapping[str, Any], y: Any, specs: Sequence[FeatureSpec], problems: list[FieldViolation]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    y_array = _prepare_outcomes(y, problems)
    n = len(y_array)
    if not specs:
        problems.append(FieldViolation("specs", "at least one feature is needed"))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        problems.append(FieldViolation("specs", "feature names must be unique"))
    prepared: dict[str, np.ndarray] = {}
    for spec in specs:
        where = f"columns[{spec.name!r}]"
        if spec.name not in columns:
            problems.append(FieldViolation(where, "no such column"))
            continue
        raw = columns[spec.name]
        if spec.kind == NUMERIC:
            try:
                column = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                problems.append(FieldViolation(where, "numeric: float64 values expected (NaN = missing)"))
                continue
            if column.ndim == 1 and np.isinf(column).any():
                problems.append(FieldViolation(where, "must not hold infinities (NaN means no data)"))
        else:
            column = np.asarray(raw, dtype=object)
        if column.ndim != 1 or len(column) != n:
            problems.append(FieldViolation(where, f"must be one value per outcome ({n})"))
            continue
        prepared[spec.name] = column
    return prepared, y_array


def _correlations(Z: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``Z``; 0 for a constant column (from
    the Gram matrix: no centred copy of ``Z``)."""
    n = Z.shape[0]
    mean = Z.mean(axis=0)
    cov = (Z.T @ Z) / n - np.outer(mean, mean)
    var = np.clip(np.diag(cov).copy(), 0.0, None)
    sd = np.sqrt(var)
    constant = sd <= 1e-12 * (1.0 + np.abs(mean))
    safe = np.where(constant, 1.0, sd)
    corr = np.clip(cov / np.outer(safe, safe), -1.0, 1.0)
    corr[:, constant] = 0.0
    corr[constant, :] = 0.0
    return corr


def _stats(count: int, bads: int, woe: float, iv: float, points: float) -> dict[str, Any]:
    return {
        "count": count,
        "bads": bads,
        "bad_rate": round(bads / count, 6) if count else None,
        "woe": round(woe, 6),
        "iv": round(iv, 6),
        "points": round(points, 4),
    }


def _edge_json(edge: float) -> float | None:
    return None if math.isinf(edge) else edge


def _feature_json(binning: Binning, coefficient: float, points: np.ndarray) -> dict[str, Any]:
    spec = binning.spec
    stats = [
        _stats(c, b, w, v, float(p))
        for c, b, w, v, p in zip(binning.counts, binning.bads, binning.woe, binning.iv_bins, points)
    ]
    out: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "direction": binning.direction,
    }
    if spec.kind == NUMERIC:
        out["value_type"] = binning.value_type
    out.update(
        {
            "label": spec.label,
            "reason_code": spec.reason_code,
            "reason_text": spec.reason_text,
            "missing_reason_code": spec.missing_reason_code,
            "missing_text": spec.missing_text,
            "actionable": spec.actionable,
            "improve_hint": spec.improve_hint,
            "coefficient": round(coefficient, 6),
            "iv": round(binning.iv, 6),
        }
    )
    r = binning.n_regular
    if spec.kind == NUMERIC:
        los = [-math.inf, *binning.edges]
        his = [*binning.edges, math.inf]
        out["bins"] = [{"lo": _edge_json(los[i]), "hi": _edge_json(his[i]), **stats[i]} for i in range(r)]
    else:
        out["bins"] = [
            {"categories": list(group), **({"other": True} if i == binning.other_bin else {}), **stats[i]}
            for i, group in enumerate(binning.groups)
        ]
    if binning.specials:
        out["special"] = [{"value": v, **stats[r + k]} for k, v in enumerate(binning.specials)]
    out["missing"] = stats[-1]
    if binning.pooled_specials:
        out["missing"]["special_values"] = list(binning.pooled_specials)
    return out


def train_table(
    columns: Mapping[str, Any],
    y: Any,
    specs: Sequence[FeatureSpec],
    *,
    version: str,
    description: str,
    seed: int = 7,
    holdout_fraction: float = 0.3,
    max_bins: int = 8,
    min_bin_share: float = 0.05,
    min_iv: float = 0.02,
    max_correlation: float = 0.75,
    l2: float | None = None,
    min_coverage: float = 0.25,
    train_time: datetime | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Trains a scorecard (module docstring: the steps) on ``columns`` (name ->
    one value per row: float64 with NaN for missing for numeric features, str with
    None or "" for missing for categorical ones) and ``y`` (1 = bad, 0 = good), one
    feature per spec. ``TrainingError`` (an ``InvalidArgument`` and a
    ``ValueError``) names every bad input, or says why no scorecard could be built."""
    started = time.perf_counter()
    problems: list[FieldViolation] = []
    _check_settings(
        problems, version=version, description=description, holdout_fraction=holdout_fraction,
        max_bins=max_bins, min_bin_share=min_bin_share, min_iv=min_iv, max_correlation=max_correlation,
        l2=l2, min_coverage=min_coverage,
    )
    data, y_all = _prepare_columns(columns, y, specs, problems)
    _fail(problems)
    train_rows, holdout_rows = stratified_split(y_all, holdout_fraction, seed)
    train = {name: column[train_rows] for name, column in data.items()}
    holdout = {name: column[holdout_rows] for name, column in data.items()}
    return _train_split(
        train, holdout, y_all[train_rows], y_all[holdout_rows], specs,
        version=version, description=description, seed=seed, holdout_fraction=holdout_fraction,
        max_bins=max_bins, min_bin_share=min_bin_share, min_iv=min_iv, max_correlation=max_correlation,
        l2=l2, min_coverage=min_coverage, train_time=train_time, progress=progress, started=started,
    )


def _train_split(
    train: Mapping[str, np.ndarray],
    holdout: Mapping[str, np.ndarray],
    yt: np.ndarray,
    yh: np.ndarray,
    specs: Sequence[FeatureSpec],
    *,
    version: str,
    description: str,
    seed: int,
    holdout_fraction: float,
    max_bins: int,
    min_bin_share: float,
    min_iv: float,
    max_correlation: float,
    l2: float | None,
    min_coverage: float,
    train_time: datetime | None,
    progress: Progress | None,
    started: float,
) -> TrainResult:
    """``train_table`` from its checked columns, already split (steps 2-6)."""
    report = progress or (lambda message, fraction: None)
    clock = time.perf_counter
    seconds: dict[str, float] = {}
    if yt.min() == yt.max() or yh.min() == yh.max():
        _fail([FieldViolation("y", "both the training and the holdout sample need bads and goods")])
    seconds["split"] = clock() - started

    # Bins, WoE and IV per feature on the training rows.
    step = clock()
    binnings: dict[str, Binning] = {}
    yt_bad = yt.astype(bool)
    for i, spec in enumerate(specs):
        report(f"binning {spec.name} ({i + 1}/{len(specs)})", 0.6 * i / len(specs))
        binnings[spec.name] = fit_binning(train[spec.name], yt_bad, spec, max_bins=max_bins, min_bin_share=min_bin_share)
    iv = {name: b.iv for name, b in binnings.items()}
    seconds["binning"] = clock() - step

    # Selection: IV, then correlation of the WoE columns.
    step = clock()
    report("selecting features by information value and correlation", 0.6)
    dropped: list[dict[str, Any]] = []
    informative = []
    for spec in specs:
        if iv[spec.name] < min_iv:
            dropped.append({"name": spec.name, "reason": f"information value below {min_iv}", "iv": round(iv[spec.name], 6)})
        else:
            informative.append(spec.name)
    if not informative:
        _fail([FieldViolation("columns", f"no feature carries information (every IV is below {min_iv})")])
    bins_train = {name: binnings[name].transform(train[name]) for name in informative}
    # One matrix, filled once; column-major, so that filling a column is contiguous.
    woe_all = np.empty((len(yt), len(informative)), dtype=np.float64, order="F")
    for j, name in enumerate(informative):
        woe_all[:, j] = np.asarray(binnings[name].woe)[bins_train[name]]
    column_of = {name: j for j, name in enumerate(informative)}
    by_iv = sorted(informative, key=lambda name: -iv[name])  # stable: input order on a tie
    corr = _correlations(woe_all)[np.ix_([column_of[n] for n in by_iv], [column_of[n] for n in by_iv])]
    kept_by_iv: list[int] = []
    for j, name in enumerate(by_iv):
        clash = next((k for k in kept_by_iv if abs(corr[j, k]) > max_correlation), None)
        if clash is None:
            kept_by_iv.append(j)
        else:
            dropped.append(
                {"name": name, "reason": f"WoE correlation {corr[j, clash]:+.3f} with {by_iv[clash]} "
                 f"(higher IV) is above {max_correlation}", "iv": round(iv[name], 6)}
            )
    chosen = {by_iv[j] for j in kept_by_iv}
    kept = [spec.name for spec in specs if spec.name in chosen]  # input order
    seconds["selection"] = clock() - step

    # Logistic regression; every coefficient must be negative.
    step = clock()
    yt_float = yt.astype(np.float64)
    Z = woe_all if kept == informative else woe_all[:, [column_of[name] for name in kept]]
    l2_choice: dict[str, Any] = {}
    if l2 is None:
        report(f"choosing the L2 penalty by {L2_CV_FOLDS}-fold cross-validation", 0.65)
        l2, l2_choice = choose_l2(Z, yt_float, seed=seed)
    while True:
        report(f"fitting the logistic regression on {len(kept)} features", 0.7)
        fit = fit_logistic_detailed(Z, yt_float, l2=l2)
        worst = int(np.argmax(fit.beta))
        if fit.beta[worst] < 0:
            break
        name = kept.pop(worst)
        dropped.append(
            {"name": name, "reason": "coefficient had the wrong sign (refitted without it)", "iv": round(iv[name], 6)}
        )
        Z = np.delete(Z, worst, axis=1)
        if not kept:
            _fail([FieldViolation("columns", "no feature keeps a coefficient of the right sign")])
    alpha, beta = fit.alpha, fit.beta
    seconds["regression"] = clock() - step

    # Scaling anchored on the training population that gets a score.
    step = clock()
    report("scaling and writing the scorecard", 0.8)
    log_odds_good = -(alpha + Z @ beta)
    present = np.zeros(len(yt), dtype=np.int64)
    for name in kept:
        present += bins_train[name] != binnings[name].missing_index
    scored = present / len(kept) >= min_coverage
    anchor_pool = log_odds_good[scored] if scored.any() else log_odds_good
    low, high = (float(v) for v in np.percentile(anchor_pool, [ANCHOR_LOW[0], ANCHOR_HIGH[0]]))
    if not high > low:
        _fail([FieldViolation("columns", "the model does not separate the training population (flat log odds)")])
    factor = (ANCHOR_HIGH[1] - ANCHOR_LOW[1]) / (high - low)
    offset = ANCHOR_LOW[1] - factor * low
    scaling = Scaling(pdo=factor * math.log(2), factor=factor, offset=offset)
    shared = (offset - factor * alpha) / len(kept)
    features = [
        _feature_json(binnings[name], float(b), -factor * float(b) * np.asarray(binnings[name].woe) + shared)
        for name, b in zip(kept, beta)
    ]
    when = (train_time or datetime.now(UTC)).astimezone(UTC)
    artifact: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "version": version,
        "description": description,
        "train_time": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "scaling": {
            "pdo": scaling.pdo,
            "factor": scaling.factor,
            "offset": scaling.offset,
            "clamp": [SCORE_MIN, SCORE_MAX],
            "anchors": {
                "method": "percentiles of the training ln(good:bad odds)",
                "low": {"percentile": ANCHOR_LOW[0], "log_odds": round(low, 6), "score": ANCHOR_LOW[1]},
                "high": {"percentile": ANCHOR_HIGH[0], "log_odds": round(high, 6), "score": ANCHOR_HIGH[1]},
            },
        },
        "min_coverage": min_coverage,
        "intercept_points": 0.0,
        "features": features,
        "dropped": dropped,
        "metrics": {"auc": 0.0, "ks": 0.0, "gini": 0.0},
        "training": {
            "seed": seed,
            "holdout_fraction": holdout_fraction,
            "max_bins": max_bins,
            "min_bin_share": min_bin_share,
            "min_iv": min_iv,
            "max_correlation": max_correlation,
            "l2": l2,
            **({"l2_cv": l2_choice} if l2_choice else {}),
            "intercept": round(alpha, 6),
            "iterations": fit.iterations,
            "converged": fit.converged,
        },
    }
    card = Scorecard.from_dict(artifact)
    seconds["scaling"] = clock() - step

    # Metrics of the scorecard exactly as written (rounded points).
    step = clock()
    report("scoring the holdout", 0.9)
    held = card.score_columns({name: holdout[name] for name in kept}, reasons=False)
    # The training rows' bins are the binnings' own (the artifact's bins are
    # theirs, written out): no second pass over the training columns.
    trained = card.score_bins([bins_train[name] for name in kept])
    metrics = _metrics(yt, yh, held, trained, iv)
    artifact["metrics"] = metrics
    artifact["training_distribution"] = _distribution([binnings[name] for name in kept], trained)
    Scorecard.from_dict(artifact)  # the finished artifact is valid
    seconds["metrics"] = clock() - step
    seconds["total"] = clock() - started
    report("done", 1.0)
    return TrainResult(
        artifact=artifact,
        metrics=metrics,
        y_holdout=yh,
        score_holdout=held.scores,
        pd_holdout=held.pd,
        iv=iv,
        binnings=binnings,
        seconds=seconds,
    )


def _metrics(yt: np.ndarray, yh: np.ndarray, held: Any, trained: Any, iv: Mapping[str, float]) -> dict[str, Any]:
    ok = ~held.insufficient
    if yh[ok].min(initial=1) == yh[ok].max(initial=0):
        _fail([FieldViolation("y", "the scored holdout needs both bads and goods")])
    auc = round(auc_score(yh[ok], held.pd[ok]), 6)
    by_band = bad_rate_by_band(yh[ok], held.scores[ok])
    train_ok = ~trained.insufficient
    return {
        "auc": auc,
        "ks": round(ks_score(yh[ok], held.pd[ok]), 6),
        "gini": round(2 * auc - 1, 6),  # of the rounded AUC, so that the two always agree
        "train_auc": round(auc_score(yt[train_ok], trained.pd[train_ok]), 6) if 0 < yt[train_ok].sum() < train_ok.sum() else None,
        "n_train": int(len(yt)),
        "n_holdout": int(len(yh)),
        "n_holdout_scored": int(ok.sum()),
        "bad_rate": round(float(yh.mean()), 6),
        "train_bad_rate": round(float(yt.mean()), 6),
        "bad_rate_by_band": by_band,
        "calibration": calibration_by_decile(yh[ok], held.pd[ok], held.scores[ok]),
        "iv": {name: round(value, 6) for name, value in sorted(iv.items(), key=lambda item: -item[1])},
        "warnings": _band_warnings(by_band),
    }


def _distribution(binnings: Sequence[Binning], trained: Any) -> dict[str, Any]:
    """The training population for PSI: the shares of the scored training rows per
    25-point score bin, and per model feature the share of the training rows in
    each of its bins (the binning's counts: they are the training rows' bins)."""
    edges = list(range(SCORE_MIN, SCORE_MAX + 1, SCORE_HISTOGRAM_STEP))
    counts, _ = np.histogram(trained.scores[~trained.insufficient], bins=edges)
    scored = max(int((~trained.insufficient).sum()), 1)
    features = {}
    for binning in binnings:
        n = max(sum(binning.counts), 1)
        shares = [c / n for c in binning.counts]
        r = binning.n_regular
        entry: dict[str, Any] = {"bins": [round(s, 6) for s in shares[:r]]}
        if binning.specials:
            entry["special"] = [round(s, 6) for s in shares[r:-1]]
        entry["missing"] = round(shares[-1], 6)
        features[binning.name] = entry
    return {
        "score": {
            "edges": edges,
            "shares": [round(float(c) / scored, 6) for c in counts],
            "insufficient_share": round(float(trained.insufficient.mean()), 6),
        },
        "features": features,
    }


def _check_matrix(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]) -> None:
    problems = []
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        problems.append(FieldViolation("X", f"must be (n, {len(feature_names)}), not {X.shape}"))
    elif y.shape != (X.shape[0],):
        problems.append(FieldViolation("y", f"must be ({X.shape[0]},), not {y.shape}"))
    unknown = [name for name in feature_names if name not in FEATURE_NAMES]
    if unknown:
        problems.append(FieldViolation("feature_names", f"not catalog features: {', '.join(unknown)}"))
    _fail(problems)


def _split_columns(
    X: np.ndarray, holdout_rows: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """The training and the holdout rows of the row-major matrix ``X`` as
    contiguous columns (``(features, rows)`` arrays, rows in their original order),
    in one pass over ``X``: a block of rows at a time is split and transposed while
    it is in the CPU cache (about twice as fast as transposing the whole matrix and
    then selecting the rows of every column)."""
    n, k = X.shape
    held = np.zeros(n, dtype=bool)
    held[holdout_rows] = True
    train = np.empty((k, n - len(holdout_rows)), dtype=np.float64)
    holdout = np.empty((k, len(holdout_rows)), dtype=np.float64)
    t = h = 0
    for start in range(0, n, block):
        rows = X[start : start + block]
        mask = held[start : start + block]
        to_holdout, to_train = rows[mask], rows[~mask]
        holdout[:, h : h + len(to_holdout)] = to_holdout.T
        train[:, t : t + len(to_train)] = to_train.T
        h += len(to_holdout)
        t += len(to_train)
    return train, holdout


def train_matrix(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    version: str,
    description: str,
    seed: int = 7,
    holdout_fraction: float = 0.3,
    max_bins: int = 6,
    min_bin_share: float = 0.05,
    min_iv: float = 0.02,
    max_correlation: float = 0.75,
    min_coverage: float = 0.25,
    l2: float | None = None,
    train_time: datetime | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """``train_table`` on a matrix ``X`` (n x features, NaN = no data) of catalog
    features named by ``feature_names``: numeric, monotone in the catalog's
    direction, with the catalog's codes and texts."""
    started = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    names = list(feature_names)
    _check_matrix(X, y, names)
    problems: list[FieldViolation] = []
    _check_settings(
        problems, version=version, description=description, holdout_fraction=holdout_fraction,
        max_bins=max_bins, min_bin_share=min_bin_share, min_iv=min_iv, max_correlation=max_correlation,
        l2=l2, min_coverage=min_coverage,
    )
    if len(set(names)) != len(names):
        problems.append(FieldViolation("specs", "feature names must be unique"))
    y_all = _prepare_outcomes(y, problems)
    _fail(problems)
    train_rows, holdout_rows = stratified_split(y_all, holdout_fraction, seed)
    train, holdout = _split_columns(np.ascontiguousarray(X), holdout_rows)
    infinite = [name for j, name in enumerate(names) if np.isinf(train[j]).any() or np.isinf(holdout[j]).any()]
    _fail([FieldViolation(f"columns[{name!r}]", "must not hold infinities (NaN means no data)") for name in infinite])
    return _train_split(
        {name: train[j] for j, name in enumerate(names)},
        {name: holdout[j] for j, name in enumerate(names)},
        y_all[train_rows], y_all[holdout_rows],
        [FeatureSpec.from_catalog(by_name(name)) for name in names],
        version=version, description=description, seed=seed, holdout_fraction=holdout_fraction,
        max_bins=max_bins, min_bin_share=min_bin_share, min_iv=min_iv, max_correlation=max_correlation,
        l2=l2, min_coverage=min_coverage, train_time=train_time, progress=progress, started=started,
    )


def train_scorecard(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    version: str,
    description: str,
    seed: int = 7,
    holdout_fraction: float = 0.3,
    max_bins: int = 6,
    min_bin_share: float = 0.05,
    min_iv: float = 0.02,
    max_correlation: float = 0.75,
    min_coverage: float = 0.25,
    l2: float | None = None,
    train_time: datetime | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The artifact (a dict) of ``train_matrix`` on ``X`` and ``y`` (1 = bad),
    columns named by catalog ``feature_names``. Raises ``TrainingError`` (a
    ``ValueError``) on malformed input or when no feature carries information."""
    return train_matrix(
        X, y, feature_names, version=version, description=description, seed=seed,
        holdout_fraction=holdout_fraction, max_bins=max_bins, min_bin_share=min_bin_share, min_iv=min_iv,
        max_correlation=max_correlation, min_coverage=min_coverage, l2=l2, train_time=train_time,
        progress=progress,
    ).artifact


# ---------------------------------------------------------------- files and CLI


def save_model(artifact: Mapping[str, Any], path: str | Path) -> Path:
    """Validates ``artifact`` and writes it as indented JSON to ``path`` atomically
    (a temporary file renamed into place), readable by all. Returns the path."""
    Scorecard.from_dict(artifact)
    path = Path(path)
    text = json.dumps(artifact, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, ARTIFACT_MODE)  # mkstemp makes it owner-only; services must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def format_report(artifact: Mapping[str, Any]) -> str:
    """The metrics of an artifact as a short text report."""
    m = artifact["metrics"]
    s = artifact["scaling"]
    train_auc = m.get("train_auc")
    lines = [
        f"scorecard {artifact['version']}: {artifact['description']}",
        f"holdout  AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Gini {m['gini']:.4f}"
        + (f"  (train AUC {train_auc:.4f})" if isinstance(train_auc, (int, float)) else ""),
        f"rows     train {m['n_train']}  holdout {m['n_holdout']} (scored {m.get('n_holdout_scored', '?')})"
        f"  bad rate {m['bad_rate']:.4f}",
        f"scaling  PDO {s['pdo']:.2f}  factor {s['factor']:.3f}  offset {s['offset']:.2f}",
        "bad rate by band (holdout):",
    ]
    for b in m.get("bad_rate_by_band", []):
        rate = "   -  " if b["bad_rate"] is None else f"{b['bad_rate']:.4f}"
        lines.append(f"  {b['band']:<10} {b['lo']}-{b['hi']}  n {b['n']:>6}  bad rate {rate}")
    calibration = m.get("calibration", [])
    if calibration:
        lines.append("calibration by score decile (holdout): predicted / observed bad rate")
        lines.append("  " + "  ".join(f"{g['predicted']:.3f}/{g['observed']:.3f}" for g in calibration))
    lines.append("features:")
    for f in artifact["features"]:
        extra = f"  special {len(f['special'])}" if f.get("special") else ""
        lines.append(
            f"  {f['name']:<32} {f.get('kind', NUMERIC):<11} IV {f.get('iv', float('nan')):.3f}"
            f"  coef {f['coefficient']:+.3f}  bins {len(f['bins'])}{extra}"
        )
    for d in artifact.get("dropped", []):
        lines.append(f"  dropped {d['name']}: {d['reason']}")
    for w in m.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)
