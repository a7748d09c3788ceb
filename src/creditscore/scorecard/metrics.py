"""How well a scorecard ranks and calibrates: AUC, KS, bad rate by band, calibration
by score decile, and the holdout metrics the trainer writes in a model file. Pure
numpy: outcomes (1 = bad) and risks or scores in, numbers out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import Problem, raise_problems
from .model import BANDS, BatchScores

__all__ = [
    "auc_score",
    "bad_rate_by_band",
    "band_warnings",
    "calibration_by_decile",
    "holdout_metrics",
    "ks_score",
]

Floats = npt.NDArray[np.float64]


def _sorted_by_outcome(y: npt.ArrayLike, risk: npt.ArrayLike) -> tuple[Floats, Floats]:
    outcome = np.asarray(y).astype(bool)
    values = np.asarray(risk, dtype=np.float64)
    if outcome.shape != values.shape:
        raise ValueError("one risk per outcome")
    if np.isnan(values).any():
        raise ValueError("risk must not hold NaN")
    return np.sort(values[outcome]), np.sort(values[~outcome])


def auc_score(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
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


def ks_score(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Largest gap between the cumulative distributions of ``risk`` among bads
    and among goods (thresholds at distinct values, so ties never split)."""
    bad, good = _sorted_by_outcome(y, risk)
    thresholds = np.sort(np.concatenate([bad, good]))
    bad_cdf = np.searchsorted(bad, thresholds, side="right") / max(len(bad), 1)
    good_cdf = np.searchsorted(good, thresholds, side="right") / max(len(good), 1)
    return float(np.max(np.abs(bad_cdf - good_cdf))) if len(thresholds) else 0.0


def bad_rate_by_band(y: npt.NDArray[Any], scores: npt.NDArray[Any]) -> list[dict[str, Any]]:
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


def calibration_by_decile(
    y: npt.NDArray[Any], pd: npt.NDArray[Any], scores: npt.NDArray[Any], groups: int = 10
) -> list[dict[str, Any]]:
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


def band_warnings(by_band: list[dict[str, Any]]) -> list[str]:
    """A warning when the bad rate does not fall as the band rises (bands with rows)."""
    filled = [b for b in by_band if b["n"] > 0]
    for lower, higher in zip(filled, filled[1:], strict=False):
        if higher["bad_rate"] >= lower["bad_rate"]:
            return [
                "holdout bad rate does not fall as the band rises: "
                f"{lower['band']} {lower['bad_rate']:.4f} -> {higher['band']} {higher['bad_rate']:.4f}"
            ]
    return []


def holdout_metrics(
    y_train: npt.NDArray[np.int64],
    y_holdout: npt.NDArray[np.int64],
    held: BatchScores,
    trained: BatchScores,
    iv: Mapping[str, float],
) -> dict[str, Any]:
    """The ``metrics`` of a model file: the holdout (``held``: its rows scored by
    the model as written) ranked and calibrated, the training rows' AUC
    (``trained``), the sample sizes and bad rates, and the IV of every feature,
    highest first. ``TrainingError`` when the scored holdout lacks bads or goods."""
    ok = ~held.insufficient
    if y_holdout[ok].min(initial=1) == y_holdout[ok].max(initial=0):
        raise_problems([Problem("y", "the scored holdout needs both bads and goods")])
    auc = round(auc_score(y_holdout[ok], held.pd[ok]), 6)
    by_band = bad_rate_by_band(y_holdout[ok], held.scores[ok])
    train_ok = ~trained.insufficient
    train_auc = (
        round(auc_score(y_train[train_ok], trained.pd[train_ok]), 6)
        if 0 < y_train[train_ok].sum() < train_ok.sum()
        else None
    )
    return {
        "auc": auc,
        "ks": round(ks_score(y_holdout[ok], held.pd[ok]), 6),
        "gini": round(2 * auc - 1, 6),  # of the rounded AUC, so that the two always agree
        "train_auc": train_auc,
        "n_train": int(len(y_train)),
        "n_holdout": int(len(y_holdout)),
        "n_holdout_scored": int(ok.sum()),
        "bad_rate": round(float(y_holdout.mean()), 6),
        "train_bad_rate": round(float(y_train.mean()), 6),
        "bad_rate_by_band": by_band,
        "calibration": calibration_by_decile(y_holdout[ok], held.pd[ok], held.scores[ok]),
        "iv": {name: round(value, 6) for name, value in sorted(iv.items(), key=lambda item: -item[1])},
        "warnings": band_warnings(by_band),
    }
