"""Which binned features go into the regression: those with enough information value,
and of each correlated pair the one with the higher IV. Pure numpy: the binnings
and the training columns in, the kept features, their WoE columns and the reason
for every feature left out.

Steps: features with IV below ``min_iv`` are dropped; then, in decreasing IV order
(input order on a tie), a feature whose WoE column correlates (Pearson, training
rows) above ``max_correlation`` in absolute value with an already kept one is
dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .binning import Binning
from .errors import Problem, raise_problems

__all__ = ["Selection", "correlations", "select_features"]

Floats = npt.NDArray[np.float64]


@dataclass
class Selection:
    """The features kept (input order), the WoE matrix of their training rows
    (column-major, one column per kept feature), the training rows' bins of every
    informative feature, and what was dropped and why (``dropped`` entries as the
    model file writes them)."""

    kept: list[str]
    woe: Floats
    bins: dict[str, npt.NDArray[np.int64]]
    dropped: list[dict[str, Any]]


def correlations(Z: Floats) -> Floats:
    """Pearson correlations of the columns of ``Z``; 0 for a constant column (from
    the Gram matrix: no centred copy of ``Z``)."""
    n = Z.shape[0]
    mean = Z.mean(axis=0)
    cov = (Z.T @ Z) / n - np.outer(mean, mean)
    var = np.clip(np.diag(cov).copy(), 0.0, None)
    sd = np.sqrt(var)
    constant = sd <= 1e-12 * (1.0 + np.abs(mean))
    safe = np.where(constant, 1.0, sd)
    corr: Floats = np.clip(cov / np.outer(safe, safe), -1.0, 1.0)
    corr[:, constant] = 0.0
    corr[constant, :] = 0.0
    return corr


def _informative(
    names: Sequence[str], iv: Mapping[str, float], min_iv: float, dropped: list[dict[str, Any]]
) -> list[str]:
    informative = []
    for name in names:
        if iv[name] < min_iv:
            dropped.append({"name": name, "reason": f"information value below {min_iv}", "iv": round(iv[name], 6)})
        else:
            informative.append(name)
    if not informative:
        raise_problems([Problem("columns", f"no feature carries information (every IV is below {min_iv})")])
    return informative


def _uncorrelated(
    woe: Floats, informative: Sequence[str], iv: Mapping[str, float], max_correlation: float,
    dropped: list[dict[str, Any]],
) -> set[str]:
    """The informative features kept by the correlation filter."""
    column_of = {name: j for j, name in enumerate(informative)}
    by_iv = sorted(informative, key=lambda name: -iv[name])  # stable: input order on a tie
    corr = correlations(woe)[np.ix_([column_of[n] for n in by_iv], [column_of[n] for n in by_iv])]
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
    return {by_iv[j] for j in kept_by_iv}


def select_features(
    names: Sequence[str],
    binnings: Mapping[str, Binning],
    train: Mapping[str, npt.NDArray[Any]],
    *,
    min_iv: float,
    max_correlation: float,
) -> Selection:
    """The features of ``names`` (input order) kept by IV and correlation
    (module docstring); ``TrainingError`` when none carries information."""
    iv = {name: binnings[name].iv for name in names}
    dropped: list[dict[str, Any]] = []
    informative = _informative(names, iv, min_iv, dropped)
    bins = {name: binnings[name].transform(train[name]) for name in informative}
    # One matrix, filled once; column-major, so that filling a column is contiguous.
    n_rows = len(next(iter(bins.values())))
    woe_all = np.empty((n_rows, len(informative)), dtype=np.float64, order="F")
    for j, name in enumerate(informative):
        woe_all[:, j] = np.asarray(binnings[name].woe)[bins[name]]
    chosen = _uncorrelated(woe_all, informative, iv, max_correlation, dropped)
    kept = [name for name in names if name in chosen]  # input order
    column_of = {name: j for j, name in enumerate(informative)}
    woe = woe_all if kept == informative else woe_all[:, [column_of[name] for name in kept]]
    return Selection(kept, woe, bins, dropped)
