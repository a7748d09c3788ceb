"""The scorecard's regression: L2-penalized logistic regression by Newton/IRLS
(``fit_logistic_detailed``), and the choice of its penalty by cross-validation
(``choose_l2``). Pure numpy: a design matrix and outcomes in, weights out.

On a million rows the work is a few passes over the matrix: the regression starts
from a fit on a subsample and takes its curvature in float32 (the gradient, which
alone decides where the fit stops, stays float64); the result is what the
straightforward computation gives, to the precision a scorecard stores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "L2_CV_FOLDS",
    "L2_CV_MAX_ROWS",
    "L2_DEFAULT",
    "L2_GRID",
    "LARGE_FIT_ROWS",
    "WARM_START_ROWS",
    "LogisticFit",
    "choose_l2",
    "fit_logistic",
    "fit_logistic_detailed",
]

Floats = npt.NDArray[np.float64]

#: Above this many rows the Newton iterations take the curvature (the weighted Gram
#: matrix, most of an iteration's work) in float32 and start from a fit on a
#: strided subsample (``fit_logistic_detailed``). Below it everything is float64
#: from a cold start (small fits are fast anyway).
LARGE_FIT_ROWS = 100_000
WARM_START_ROWS = 50_000  # about this many rows for the warm start of a large fit
_WARM_START_TOL = 1e-4
_KEEP_CURVATURE_BELOW = 1e-3  # after a step moving no weight more than this, keep the curvature

#: The L2 penalties ``choose_l2`` tries, and how it tries them.
L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
L2_CV_FOLDS = 5
#: Above this many training rows the penalty is not cross-validated: against so
#: much data any penalty of the grid is negligible, and ``L2_DEFAULT`` is used.
L2_CV_MAX_ROWS = 20_000
L2_DEFAULT = 1.0


class LogisticFit(NamedTuple):
    """``P(y=1) = sigmoid(alpha + Z beta)``; how the fit went."""

    alpha: float
    beta: Floats
    iterations: int  # Newton steps on all the rows (a warm start's are not counted)
    converged: bool
    loss: float  # penalized negative log-likelihood at the solution


class _Predictor:
    """The linear predictor ``z = alpha + Z beta``, the probabilities ``p =
    sigmoid(z)`` and the unpenalized loss ``sum(log(1 + e^z) - y z)`` at given
    weights, into buffers allocated once (fresh arrays of a million rows cost
    more in page faults than the arithmetic on them)."""

    def __init__(self, Z: Floats, y: Floats) -> None:
        self.Z, self.y = Z, y
        self._scratch: Floats = np.empty(len(y))

    def evaluate(self, alpha: float, beta: Floats, z: Floats, p: Floats) -> float:
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


def _weighted_gram(A: npt.NDArray[np.floating[Any]], weights: Floats, chunk: int = 32_768) -> Floats:
    """``A.T @ diag(weights) @ A`` (float64), in row chunks: no n x k temporary. A
    float32 ``A`` is multiplied in float32 chunk by chunk (twice the speed) and the
    chunks are summed in float64."""
    out: Floats = np.zeros((A.shape[1], A.shape[1]))
    w = weights.astype(A.dtype, copy=False)
    for start in range(0, A.shape[0], chunk):
        block = A[start : start + chunk]
        out += (block * w[start : start + chunk, None]).T @ block
    return out


class _Newton:
    """The buffers and the arithmetic of one Newton/IRLS fit: the predictor at the
    current weights (``z``, ``p``) and at a trial step (``new_z``, ``new_p``), the
    curvature (``hessian``, kept between iterations while the weights barely move)."""

    def __init__(self, Z: Floats, y: Floats, l2: float, *, large: bool) -> None:
        n, k = Z.shape
        self.Z, self.y, self.l2, self.k = Z, y, l2, k
        self.curvature_rows: npt.NDArray[np.floating[Any]] = Z.astype(np.float32) if large else Z
        self.y_sum = float(y.sum())
        self.model = _Predictor(Z, y)
        self.z: Floats = np.empty(n)
        self.p: Floats = np.empty(n)
        self.new_z: Floats = np.empty(n)
        self.new_p: Floats = np.empty(n)
        self.work: Floats = np.empty(n)
        self.hessian: Floats = np.zeros((k + 1, k + 1))

    def loss(self, alpha: float, beta: Floats) -> float:
        """The penalized loss at ``(alpha, beta)``; ``z`` and ``p`` filled for them."""
        return self.model.evaluate(alpha, beta, self.z, self.p) + 0.5 * self.l2 * float(beta @ beta)

    def gradient(self, beta: Floats) -> Floats:
        """The direction that lowers the loss, at the current ``p``."""
        gradient: Floats = np.empty(self.k + 1)
        gradient[0] = self.y_sum - float(self.p.sum())
        np.subtract(self.y, self.p, out=self.work)
        gradient[1:] = self.Z.T @ self.work - self.l2 * beta
        return gradient

    def update_curvature(self) -> None:
        """The Hessian of the penalized loss at the current ``p``, plus a tiny ridge
        that keeps it invertible on separable data."""
        work, hessian, k = self.work, self.hessian, self.k
        np.subtract(1.0, self.p, out=work)
        work *= self.p  # the IRLS weights p (1 - p)
        hessian[0, 0] = work.sum()
        hessian[0, 1:] = hessian[1:, 0] = self.Z.T @ work
        hessian[1:, 1:] = _weighted_gram(self.curvature_rows, work)
        hessian[1:, 1:][np.diag_indices(k)] += self.l2
        hessian[np.diag_indices_from(hessian)] += 1e-10 * (1.0 + np.trace(hessian) / (k + 1))

    def halving_step(
        self, alpha: float, beta: Floats, step: Floats, loss: float
    ) -> tuple[float, float, Floats, float] | None:
        """``(scale, alpha, beta, loss)`` of the longest step ``scale * step`` (scale
        1, 1/2, 1/4, ...) that does not raise the loss, its predictor in ``new_z``
        and ``new_p``; None when none down to 1e-12 does."""
        scale = 1.0
        while scale >= 1e-12:
            new_alpha, new_beta = alpha + scale * float(step[0]), beta + scale * step[1:]
            if math.isfinite(new_alpha) and np.isfinite(new_beta).all():
                with np.errstate(over="ignore", invalid="ignore"):
                    new_loss = self.model.evaluate(new_alpha, new_beta, self.new_z, self.new_p) + 0.5 * self.l2 * float(
                        new_beta @ new_beta
                    )
                if math.isfinite(new_loss) and new_loss <= loss + 1e-12 * max(1.0, abs(loss)):
                    return scale, new_alpha, new_beta, new_loss
            scale /= 2.0
        return None

    def accept(self) -> None:
        """The trial step's predictor becomes the current one."""
        self.z, self.new_z = self.new_z, self.z
        self.p, self.new_p = self.new_p, self.p


def _starting_point(
    Z: Floats, y: Floats, l2: float, max_iter: int, start: tuple[float, Floats] | None
) -> tuple[float, Floats]:
    """``start`` when given; for a large fit, a loose fit on a strided subsample;
    else no weights and the intercept of the mean outcome."""
    n, k = Z.shape
    if start is not None:
        return float(start[0]), np.array(start[1], dtype=np.float64)
    beta: Floats = np.zeros(k)
    if n > LARGE_FIT_ROWS and k:
        stride = max(2, n // WARM_START_ROWS)
        warm = fit_logistic_detailed(
            np.asfortranarray(Z[::stride]), y[::stride], l2=l2 / stride, max_iter=max_iter, tol=_WARM_START_TOL
        )
        if np.isfinite(warm.alpha) and np.isfinite(warm.beta).all():
            return warm.alpha, warm.beta
        return 0.0, beta
    mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if n else 0.5
    return math.log(mean / (1 - mean)), beta


def fit_logistic_detailed(
    Z: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    l2: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-8,
    start: tuple[float, Floats] | None = None,
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
    l2 = float(l2)
    alpha, beta = _starting_point(Z, y, l2, max_iter, start)
    newton = _Newton(Z, y, l2, large=Z.shape[0] > LARGE_FIT_ROWS)
    loss = newton.loss(alpha, beta)
    converged = False
    iterations = 0
    moved = math.inf  # the largest change of a weight in the last step
    for _ in range(max_iter):
        iterations += 1
        gradient = newton.gradient(beta)
        if moved > _KEEP_CURVATURE_BELOW:
            # The curvature changes with the weights about as much as they moved:
            # after a step this small the last one is as good (the error it leaves
            # in the next step is that step times the move, far below ``tol``).
            newton.update_curvature()
        step = np.linalg.solve(newton.hessian, gradient).astype(np.float64, copy=False)
        if not np.isfinite(step).all():
            break
        if float(np.max(np.abs(step))) <= tol:
            alpha, beta = alpha + float(step[0]), beta + step[1:]
            loss = newton.loss(alpha, beta)
            converged = True
            break
        taken = newton.halving_step(alpha, beta, step, loss)
        if taken is None:  # no step lowers the loss: this is as low as it goes
            converged = True
            break
        scale, alpha, beta, new_loss = taken
        improvement = loss - new_loss
        moved = scale * float(np.max(np.abs(step)))
        loss = new_loss
        newton.accept()
        if improvement <= 1e-15 * max(1.0, abs(loss)):
            converged = True
            break
    return LogisticFit(float(alpha), np.array(beta, dtype=np.float64), iterations, converged, float(loss))


def fit_logistic(
    Z: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-8
) -> tuple[float, Floats]:
    """``(alpha, beta)`` of ``P(y=1) = sigmoid(alpha + Z beta)`` (see
    ``fit_logistic_detailed``)."""
    fit = fit_logistic_detailed(Z, y, l2=l2, max_iter=max_iter, tol=tol)
    return fit.alpha, fit.beta


def _stratified_folds(y: Floats, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """The fold (0 to ``folds - 1``) of every row: each outcome dealt round-robin
    over the folds in an order seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    fold: npt.NDArray[np.int64] = np.empty(len(y), dtype=np.int64)
    for label in (0.0, 1.0):
        rows = np.flatnonzero(y == label)
        fold[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % folds
    return fold


def choose_l2(
    Z: Floats,
    y: Floats,
    *,
    seed: int,
    grid: Sequence[float] = L2_GRID,
    folds: int = L2_CV_FOLDS,
    max_rows: int = L2_CV_MAX_ROWS,
) -> tuple[float, dict[str, Any]]:
    """The L2 penalty of ``grid`` whose fits predict held-out rows best, and how it
    was chosen: ``folds``-fold cross-validation (folds stratified by outcome,
    seeded by ``seed``) on these rows only, the mean held-out log-loss per
    penalty, the lowest wins (the smaller penalty on a tie). A fold's fit has
    ``(folds - 1) / folds`` of the rows, so its penalty is scaled by that share:
    the same strength per row as the final fit's. Above ``max_rows`` rows,
    ``L2_DEFAULT`` without cross-validation.

    On small tables the penalty matters (on the German credit data's 700 training
    rows this picks 3 more often than 1; docs/benchmarks.md); on large ones it
    does not."""
    n = len(y)
    if n > max_rows or folds < 2 or n < 2 * folds:
        return L2_DEFAULT, {}
    fold = _stratified_folds(y, folds, seed)
    losses = {float(penalty): 0.0 for penalty in sorted(grid)}
    for f in range(folds):
        fit_rows, held = fold != f, fold == f
        share = float(fit_rows.sum()) / n
        Z_fit, y_fit = Z[fit_rows], y[fit_rows]
        start: tuple[float, Floats] | None = None
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
