"""A first, simple and honest scorecard trainer: from a point-in-time feature matrix
and outcomes to a scorecard artifact (see ``scoring_service.scorecard`` for the format).

The steps, each a small function below:

1. A fixed, seeded, stratified holdout (``stratified_split``): the same seed gives
   the same split; bads and goods are held out in the same proportion.
2. Binning per feature on the training rows (``bin_feature``): quantile candidate
   edges, then adjacent bins merged until every bin holds at least
   ``min_bin_share`` of the training rows, the bad rate is strictly monotone in the
   catalog's direction, and there are at most ``max_bins`` numeric bins. Missing
   values ("no data") have a bin of their own, never imputed.
3. Weight of evidence and information value (``woe_iv``):
   ``WoE = ln(share of goods / share of bads)`` with 0.5 added to every bin's goods
   and bads (and ``0.5 * bins`` to the totals, so the shares still sum to one); a
   bin with no training rows (a missing bin, when every training row had a value)
   gets WoE 0: no evidence either way.
   Features with IV below ``min_iv`` are dropped.
4. Logistic regression of P(bad) on the WoE columns by Newton/IRLS with a small L2
   penalty (``fit_logistic``). As WoE grows with the good:bad odds, every coefficient
   must be negative; while one is not, the most positive is dropped and the model
   refitted.
5. Scaling anchored on the training population: ``factor`` and ``offset`` put the
   1st and 99th percentiles of the training ln(good:bad odds) at 420 and 880; the
   implied PDO is recorded. Points per bin:
   ``-factor * beta * WoE + (offset - factor * alpha) / n_features``.
6. Holdout metrics of the scorecard *as written* (points rounded as stored): AUC
   (rank based, ties counted half), KS, Gini, bad rate by band (with a warning when
   it does not fall as the band rises), and the training population's score and bin
   distributions for PSI.

Command line (the simulator and the point-in-time builder are imported on use)::

    python -m scoring_service.training --simulate 20000 --seed 20261101 \\
        --version 1.0.0 --out scoring_service/models/scorecard-1.0.0.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from creditscore.catalog import FEATURE_NAMES, by_name

from .scorecard import (
    ARTIFACT_FORMAT,
    BANDS,
    SCORE_MAX,
    SCORE_MIN,
    Scaling,
    Scorecard,
    ScorecardError,
    is_valid_version,
)

__all__ = [
    "FeatureBins",
    "auc_score",
    "bad_rate_by_band",
    "bin_feature",
    "fit_logistic",
    "format_report",
    "ks_score",
    "main",
    "save_model",
    "stratified_split",
    "train_scorecard",
    "woe_iv",
]

ANCHOR_LOW = (1.0, 420.0)  # (percentile of training ln odds, score)
ANCHOR_HIGH = (99.0, 880.0)
SMOOTHING = 0.5
SCORE_HISTOGRAM_STEP = 25
ARTIFACT_MODE = 0o644  # an artifact is read by services running as other users


# ---------------------------------------------------------------- holdout


def stratified_split(y: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(train, holdout)``: ``holdout_fraction`` of the bads and
    of the goods (rounded) go to the holdout, chosen by a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    holdout: list[np.ndarray] = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        rows = rows[rng.permutation(len(rows))]
        holdout.append(rows[: int(round(holdout_fraction * len(rows)))])
    held = np.zeros(len(y), dtype=bool)
    held[np.concatenate(holdout)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


# ---------------------------------------------------------------- binning


@dataclass(frozen=True)
class FeatureBins:
    """One feature's bins on the training rows: numeric bins ``[edges[i-1], edges[i])``
    (``edges`` are the inner edges, so there are ``len(edges) + 1`` numeric bins),
    then the missing bin."""

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


def _readable_edge(below: float, above: float) -> float:
    """A short number ``e`` with ``below < e <= above``: the split between two
    consecutive distinct values, rounded as far as that stays true."""
    middle = (below + above) / 2.0
    for digits in range(0, 12):
        candidate = round(middle, digits)
        if below < candidate <= above:
            return candidate
    return middle if below < middle <= above else above


def _candidate_edges(values: np.ndarray, n_candidates: int) -> list[float]:
    """Quantile split points between distinct observed values."""
    distinct = np.unique(values)
    if len(distinct) < 2:
        return []
    levels = np.linspace(0.0, 1.0, n_candidates + 1)[1:-1]
    quantiles = np.quantile(values, levels)
    above = np.unique(np.searchsorted(distinct, quantiles, side="right"))
    above = above[(above >= 1) & (above < len(distinct))]
    return sorted({_readable_edge(float(distinct[i - 1]), float(distinct[i])) for i in above})


def _violates(direction: int, rate_left: float, rate_right: float) -> bool:
    """Whether two adjacent bins break strict monotonicity of the bad rate:
    direction +1 (higher is better) needs the bad rate to fall, -1 to rise."""
    if direction > 0:
        return rate_right >= rate_left
    if direction < 0:
        return rate_right <= rate_left
    return False


def bin_feature(
    values: np.ndarray,
    y: np.ndarray,
    *,
    direction: int,
    max_bins: int = 6,
    min_bin_share: float = 0.05,
    n_candidates: int = 20,
) -> FeatureBins:
    """Bins one feature column (NaN = no data) against outcomes ``y`` (1 = bad).

    Starts from up to ``n_candidates`` quantile bins of the present values and
    merges adjacent ones until (in this order of priority) every numeric bin holds
    at least ``min_bin_share`` of *all* rows (missing included), the bad rate is
    strictly monotone in ``direction`` (+1: falls as the value grows; -1: rises;
    0: no constraint), and at most ``max_bins`` numeric bins remain (the pair with
    the closest bad rates is merged first). A small bin merges into the neighbour
    whose bad rate is closer."""
    values = np.asarray(values, dtype=np.float64)
    y = np.asarray(y)
    present = ~np.isnan(values)
    x, yx = values[present], y[present]
    missing_count = int((~present).sum())
    missing_bads = int(y[~present].sum())
    edges = _candidate_edges(x, n_candidates)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1).tolist()
    bads = np.bincount(index, weights=yx, minlength=len(edges) + 1).astype(np.int64).tolist()
    # Drop empty candidate bins (possible only through rounding of edges).
    keep = [i for i, c in enumerate(counts) if c > 0]
    if len(keep) < len(counts):
        edges = [edges[i - 1] for i in keep[1:]]
        counts = [counts[i] for i in keep]
        bads = [bads[i] for i in keep]
    min_count = math.ceil(min_bin_share * len(values) - 1e-9)

    def merge(i: int) -> None:  # bins i and i+1 become one
        counts[i] += counts.pop(i + 1)
        bads[i] += bads.pop(i + 1)
        del edges[i]

    def rate(i: int) -> float:
        return bads[i] / counts[i]

    while len(counts) > 1:
        small = [i for i, c in enumerate(counts) if c < min_count]
        if small:
            i = min(small, key=lambda k: (counts[k], k))
            if i == 0:
                merge(0)
            elif i == len(counts) - 1:
                merge(i - 1)
            else:
                left_gap = abs(rate(i) - rate(i - 1))
                right_gap = abs(rate(i) - rate(i + 1))
                merge(i - 1 if left_gap <= right_gap else i)
            continue
        violation = next(
            (i for i in range(len(counts) - 1) if _violates(direction, rate(i), rate(i + 1))), None
        )
        if violation is not None:
            merge(violation)
            continue
        if len(counts) > max_bins:
            gaps = [abs(rate(i + 1) - rate(i)) for i in range(len(counts) - 1)]
            merge(int(np.argmin(gaps)))
            continue
        break
    return FeatureBins(tuple(edges), tuple(counts), tuple(bads), missing_count, missing_bads)


def woe_iv(counts: np.ndarray, bads: np.ndarray) -> tuple[np.ndarray, float]:
    """Weight of evidence per bin and the information value of the whole table.

    Over the ``k`` bins that hold rows,
    ``WoE_i = ln(((g_i + .5) / (G + .5 k)) / ((b_i + .5) / (B + .5 k)))`` (so the
    smoothed shares still sum to one) and ``IV = sum((good share - bad share) * WoE)``.
    A bin without rows gets WoE 0, no evidence either way, and adds nothing to the IV."""
    counts = np.asarray(counts, dtype=np.float64)
    bads = np.asarray(bads, dtype=np.float64)
    goods = counts - bads
    filled = counts > 0
    k = int(filled.sum())
    good_share = np.where(filled, (goods + SMOOTHING) / (goods.sum() + SMOOTHING * k), 1.0)
    bad_share = np.where(filled, (bads + SMOOTHING) / (bads.sum() + SMOOTHING * k), 1.0)
    woe = np.log(good_share / bad_share)
    iv = float(np.sum(np.where(filled, (good_share - bad_share) * woe, 0.0)))
    return woe, iv


# ---------------------------------------------------------------- regression


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def fit_logistic(
    Z: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-10
) -> tuple[float, np.ndarray]:
    """``(alpha, beta)`` of ``P(y=1) = sigmoid(alpha + Z beta)`` by Newton/IRLS,
    maximising the log-likelihood less ``l2 / 2 * |beta|^2`` (the intercept is
    not penalised)."""
    n, k = Z.shape
    A = np.column_stack([np.ones(n), Z])
    penalty = np.full(k + 1, float(l2))
    penalty[0] = 0.0
    w = np.zeros(k + 1)
    mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    w[0] = math.log(mean / (1 - mean))
    for _ in range(max_iter):
        p = _sigmoid(A @ w)
        gradient = A.T @ (y - p) - penalty * w
        hessian = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w += step
        if float(np.max(np.abs(step))) < tol:
            break
    return float(w[0]), w[1:].copy()


# ---------------------------------------------------------------- metrics


def auc_score(y: np.ndarray, risk: np.ndarray) -> float:
    """Probability that a random bad has a higher ``risk`` than a random good (ties
    count one half): the Mann-Whitney statistic on average ranks."""
    y = np.asarray(y).astype(bool)
    n_bad, n_good = int(y.sum()), int((~y).sum())
    if n_bad == 0 or n_good == 0:
        raise ValueError("AUC needs both bads and goods")
    _, inverse, counts = np.unique(risk, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each tie group
    average_rank = upper - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good))


def ks_score(y: np.ndarray, risk: np.ndarray) -> float:
    """Largest gap between the cumulative distributions of ``risk`` among bads
    and among goods (thresholds at distinct values, so ties never split)."""
    y = np.asarray(y).astype(bool)
    _, inverse = np.unique(risk, return_inverse=True)
    bad_cdf = np.cumsum(np.bincount(inverse, weights=y)) / max(int(y.sum()), 1)
    good_cdf = np.cumsum(np.bincount(inverse, weights=~y)) / max(int((~y).sum()), 1)
    return float(np.max(np.abs(bad_cdf - good_cdf)))


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


def _check_inputs(
    X: np.ndarray, y: np.ndarray, feature_names: Sequence[str], holdout_fraction: float,
    max_bins: int, min_bin_share: float, version: str, description: str,
) -> None:
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X must be (n, {len(feature_names)}), not {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must be ({X.shape[0]},), not {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0 (good) and 1 (bad) only")
    if np.isinf(X).any():
        raise ValueError("X must not hold infinities (NaN means no data)")
    if len(set(feature_names)) != len(feature_names):
        raise ValueError("feature names must be unique")
    unknown = [name for name in feature_names if name not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"not catalog features: {', '.join(unknown)}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError("holdout_fraction must be within (0, 1)")
    if max_bins < 1 or not 0.0 < min_bin_share < 0.5:
        raise ValueError("max_bins must be >= 1 and min_bin_share within (0, 0.5)")
    if not is_valid_version(version):
        raise ValueError(f"version {version!r} is not valid")
    if not description.strip():
        raise ValueError("description must say what the model was trained on")


def _bin_stats(count: int, bads: int, woe: float, points: float) -> dict[str, Any]:
    return {
        "count": count,
        "bad_rate": round(bads / count, 6) if count else None,
        "woe": round(woe, 6),
        "points": round(points, 4),
    }


def _edge_json(edge: float) -> float | None:
    return None if math.isinf(edge) else edge


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
    min_coverage: float = 0.25,
    l2: float = 1.0,
    train_time: datetime | None = None,
) -> dict[str, Any]:
    """Trains a scorecard on ``X`` (n x features, NaN = no data, columns named by
    catalog ``feature_names``) and ``y`` (1 = bad) and returns the artifact as a
    dict (module docstring: the steps; ``scoring_service.scorecard``: the format).
    Raises ``ValueError`` on malformed input or when no feature carries information."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    names = list(feature_names)
    _check_inputs(X, y, names, holdout_fraction, max_bins, min_bin_share, version, description)
    train_rows, holdout_rows = stratified_split(y, holdout_fraction, seed)
    Xt, yt = X[train_rows], y[train_rows]
    Xh, yh = X[holdout_rows], y[holdout_rows]
    if yt.min() == yt.max() or yh.min() == yh.max():
        raise ValueError("both the training and the holdout sample need bads and goods")

    # Bins, WoE and IV per feature; keep the informative ones.
    dropped: list[dict[str, Any]] = []
    binned: dict[str, tuple[FeatureBins, np.ndarray, float]] = {}
    for j, name in enumerate(names):
        bins = bin_feature(
            Xt[:, j], yt, direction=by_name(name).direction, max_bins=max_bins, min_bin_share=min_bin_share
        )
        woe, iv = woe_iv(bins.all_counts(), bins.all_bads())
        if iv < min_iv:
            dropped.append({"name": name, "reason": f"information value below {min_iv}", "iv": round(iv, 6)})
            continue
        binned[name] = (bins, woe, iv)
    kept = list(binned)
    if not kept:
        raise ValueError("no feature carries information (every IV is below min_iv)")
    column = {name: j for j, name in enumerate(names)}
    Z = np.column_stack([binned[n][1][binned[n][0].index(Xt[:, column[n]])] for n in kept])

    # Logistic regression; every coefficient must be negative.
    while True:
        alpha, beta = fit_logistic(Z, yt.astype(np.float64), l2=l2)
        worst = int(np.argmax(beta))
        if beta[worst] < 0:
            break
        name = kept.pop(worst)
        dropped.append(
            {"name": name, "reason": "coefficient had the wrong sign (refitted without it)",
             "iv": round(binned[name][2], 6)}
        )
        Z = np.delete(Z, worst, axis=1)
        if not kept:
            raise ValueError("no feature keeps a coefficient of the right sign")

    # Scaling anchored on the training population that gets a score.
    log_odds_good = -(alpha + Z @ beta)
    present = np.column_stack([~np.isnan(Xt[:, column[n]]) for n in kept])
    scored = present.mean(axis=1) >= min_coverage
    anchor_pool = log_odds_good[scored] if scored.any() else log_odds_good
    low, high = np.percentile(anchor_pool, [ANCHOR_LOW[0], ANCHOR_HIGH[0]])
    if not high > low:
        raise ValueError("the model does not separate the training population (flat log odds)")
    factor = (ANCHOR_HIGH[1] - ANCHOR_LOW[1]) / float(high - low)
    offset = ANCHOR_LOW[1] - factor * float(low)
    scaling = Scaling(pdo=factor * math.log(2), factor=factor, offset=offset)
    shared = (offset - factor * alpha) / len(kept)

    features = []
    for name, b in zip(kept, beta):
        bins, woe, iv = binned[name]
        points = -factor * float(b) * woe + shared
        los = [-math.inf, *bins.edges]
        his = [*bins.edges, math.inf]
        features.append(
            {
                "name": name,
                "coefficient": round(float(b), 6),
                "iv": round(iv, 6),
                "bins": [
                    {"lo": _edge_json(los[i]), "hi": _edge_json(his[i]),
                     **_bin_stats(bins.counts[i], bins.bads[i], float(woe[i]), float(points[i]))}
                    for i in range(len(bins.counts))
                ],
                "missing": _bin_stats(bins.missing_count, bins.missing_bads, float(woe[-1]), float(points[-1])),
            }
        )
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
                "low": {"percentile": ANCHOR_LOW[0], "log_odds": round(float(low), 6), "score": ANCHOR_LOW[1]},
                "high": {"percentile": ANCHOR_HIGH[0], "log_odds": round(float(high), 6), "score": ANCHOR_HIGH[1]},
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
            "l2": l2,
            "intercept": round(alpha, 6),
        },
    }

    # Metrics of the scorecard exactly as written (rounded points).
    card = Scorecard.from_dict(artifact)
    artifact["metrics"] = _metrics(card, names, Xt, yt, Xh, yh)
    artifact["training_distribution"] = _distribution(card, names, kept, binned, Xt, column)
    Scorecard.from_dict(artifact)  # the finished artifact is valid
    return artifact


def _metrics(
    card: Scorecard, names: Sequence[str], Xt: np.ndarray, yt: np.ndarray, Xh: np.ndarray, yh: np.ndarray
) -> dict[str, Any]:
    scores, pd, _, insufficient = card.score_batch(Xh, names)
    ok = ~insufficient
    if yh[ok].min(initial=1) == yh[ok].max(initial=0):
        raise ValueError("the scored holdout needs both bads and goods")
    auc = auc_score(yh[ok], pd[ok])
    train_scores, train_pd, _, train_insufficient = card.score_batch(Xt, names)
    by_band = bad_rate_by_band(yh[ok], scores[ok])
    return {
        "auc": round(auc, 6),
        "ks": round(ks_score(yh[ok], pd[ok]), 6),
        "gini": round(2 * auc - 1, 6),
        "train_auc": round(auc_score(yt[~train_insufficient], train_pd[~train_insufficient]), 6),
        "n_train": int(len(yt)),
        "n_holdout": int(len(yh)),
        "n_holdout_scored": int(ok.sum()),
        "bad_rate": round(float(yh.mean()), 6),
        "train_bad_rate": round(float(yt.mean()), 6),
        "bad_rate_by_band": by_band,
        "warnings": _band_warnings(by_band),
    }


def _distribution(
    card: Scorecard,
    names: Sequence[str],
    kept: Sequence[str],
    binned: Mapping[str, tuple[FeatureBins, np.ndarray, float]],
    Xt: np.ndarray,
    column: Mapping[str, int],
) -> dict[str, Any]:
    scores, _, _, insufficient = card.score_batch(Xt, names)
    edges = list(range(SCORE_MIN, SCORE_MAX + 1, SCORE_HISTOGRAM_STEP))
    counts, _ = np.histogram(scores[~insufficient], bins=edges)
    scored = max(int((~insufficient).sum()), 1)
    n = len(Xt)
    features = {}
    for name in kept:
        bins = binned[name][0]
        shares = np.bincount(bins.index(Xt[:, column[name]]), minlength=len(bins.counts) + 1) / n
        features[name] = {"bins": [round(float(s), 6) for s in shares[:-1]], "missing": round(float(shares[-1]), 6)}
    return {
        "score": {
            "edges": edges,
            "shares": [round(float(c) / scored, 6) for c in counts],
            "insufficient_share": round(float(insufficient.mean()), 6),
        },
        "features": features,
    }


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
    lines = [
        f"scorecard {artifact['version']}: {artifact['description']}",
        f"holdout  AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Gini {m['gini']:.4f}"
        f"  (train AUC {m.get('train_auc', float('nan')):.4f})",
        f"rows     train {m['n_train']}  holdout {m['n_holdout']} (scored {m.get('n_holdout_scored', '?')})"
        f"  bad rate {m['bad_rate']:.4f}",
        f"scaling  PDO {s['pdo']:.2f}  factor {s['factor']:.3f}  offset {s['offset']:.2f}",
        "bad rate by band (holdout):",
    ]
    for b in m.get("bad_rate_by_band", []):
        rate = "   -  " if b["bad_rate"] is None else f"{b['bad_rate']:.4f}"
        lines.append(f"  {b['band']:<10} {b['lo']}-{b['hi']}  n {b['n']:>6}  bad rate {rate}")
    lines.append("features:")
    for f in artifact["features"]:
        lines.append(f"  {f['name']:<32} IV {f.get('iv', float('nan')):.3f}  coef {f['coefficient']:+.3f}  bins {len(f['bins'])}")
    for d in artifact.get("dropped", []):
        lines.append(f"  dropped {d['name']}: {d['reason']}")
    for w in m.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scoring_service.training``: trains on the simulator and writes
    the artifact; prints the metrics and the path."""
    parser = argparse.ArgumentParser(
        prog="python -m scoring_service.training",
        description="Train a scorecard on point-in-time features of a simulated population.",
    )
    parser.add_argument("--simulate", type=int, required=True, metavar="N", help="simulated subjects")
    parser.add_argument("--seed", type=int, default=7, help="seeds the simulator and the holdout split")
    parser.add_argument("--version", required=True, help="model version, e.g. 1.0.0")
    parser.add_argument("--out", required=True, help="artifact path, e.g. scorecard-1.0.0.json")
    parser.add_argument("--description", default="", help="replaces the generated description")
    parser.add_argument("--force", action="store_true", help="overwrite an existing artifact")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        parser.error(f"{out} exists; a version is never overwritten silently (use --force)")
    if args.simulate < 100:
        parser.error("--simulate needs at least 100 subjects")

    from creditscore.sim import simulate
    from feature_service.aggregates import point_in_time_matrix

    population = simulate(args.simulate, seed=args.seed)
    matrix = point_in_time_matrix(population.records, population.outcomes)
    description = args.description or (
        f"Trained on the creditscore simulator (creditscore.sim.simulate): {args.simulate} simulated "
        f"subjects, seed {args.seed}, point-in-time features at each loan application "
        f"({len(matrix.y)} outcomes); stratified holdout with the same seed."
    )
    try:
        artifact = train_scorecard(
            matrix.X, matrix.y, list(matrix.feature_names),
            version=args.version, description=description, seed=args.seed,
        )
    except (ValueError, ScorecardError) as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    save_model(artifact, out)
    print(format_report(artifact))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
