"""The trainer's input, checked and split: outcomes as 0/1, columns as numpy arrays
(one problem per bad column), a catalog feature matrix's shape and names, and the
seeded, stratified holdout split.

Every check appends ``Problem``\\s to a list, so that the trainer reports every bad
field (settings and input) in one ``TrainingError``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import FEATURE_NAMES

from .binning import NUMERIC, FeatureSpec
from .errors import Problem

__all__ = [
    "Split",
    "check_matrix",
    "prepare_columns",
    "prepare_outcomes",
    "split_columns",
    "split_table",
    "stratified_split",
]

Indices = npt.NDArray[np.intp]


def stratified_split(y: npt.ArrayLike, holdout_fraction: float, seed: int) -> tuple[Indices, Indices]:
    """Sorted row indices ``(train, holdout)``: ``holdout_fraction`` of the bads and
    of the goods (rounded) go to the holdout, chosen by a generator seeded with ``seed``."""
    outcomes = np.asarray(y)
    rng = np.random.default_rng(seed)
    holdout: list[Indices] = []
    for label in (0, 1):
        rows = np.flatnonzero(outcomes == label)
        rows = rows[rng.permutation(len(rows))]
        holdout.append(rows[: int(round(holdout_fraction * len(rows)))])
    held = np.zeros(len(outcomes), dtype=bool)
    held[np.concatenate(holdout)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


@dataclass(frozen=True)
class Split:
    """The training and the holdout rows of every column, and their outcomes."""

    train: Mapping[str, npt.NDArray[Any]]
    holdout: Mapping[str, npt.NDArray[Any]]
    y_train: npt.NDArray[np.int64]
    y_holdout: npt.NDArray[np.int64]


def split_table(columns: Mapping[str, npt.NDArray[Any]], y: npt.NDArray[np.int64], holdout_fraction: float,
                seed: int) -> Split:
    """Named columns split by ``stratified_split``."""
    train_rows, holdout_rows = stratified_split(y, holdout_fraction, seed)
    return Split(
        {name: column[train_rows] for name, column in columns.items()},
        {name: column[holdout_rows] for name, column in columns.items()},
        y[train_rows],
        y[holdout_rows],
    )


def split_columns(
    X: npt.NDArray[np.float64], holdout_rows: Indices, block: int = 2048
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
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


def check_matrix(
    X: npt.NDArray[np.float64], y: npt.NDArray[Any], feature_names: Sequence[str], problems: list[Problem]
) -> None:
    """A catalog feature matrix: ``(n, features)``, one outcome per row, catalog
    names (each once)."""
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        problems.append(Problem("X", f"must be (n, {len(feature_names)}), not {X.shape}"))
    elif y.shape != (X.shape[0],):
        problems.append(Problem("y", f"must be ({X.shape[0]},), not {y.shape}"))
    unknown = [name for name in feature_names if name not in FEATURE_NAMES]
    if unknown:
        problems.append(Problem("feature_names", f"not catalog features: {', '.join(unknown)}"))


def prepare_outcomes(y: Any, problems: list[Problem]) -> npt.NDArray[np.int64]:
    """``y`` as int64 0/1; its problems appended."""
    y_array = np.asarray(y)
    if y_array.ndim != 1:
        problems.append(Problem("y", "must be one-dimensional"))
        y_array = y_array.reshape(-1)
    if not ((y_array == 0) | (y_array == 1)).all():
        problems.append(Problem("y", "must hold 0 (good) and 1 (bad) only"))
        return np.zeros(len(y_array), dtype=np.int64)
    if y_array.size and (y_array.min() == y_array.max()):
        problems.append(Problem("y", "needs both bads (1) and goods (0)"))
    return y_array.astype(np.int64)


def _column(raw: Any, spec: FeatureSpec, n: int, problems: list[Problem]) -> npt.NDArray[Any] | None:
    """One feature's column as float64 (numeric) or object (categorical) array;
    None, with its problem appended, when it cannot be one."""
    where = f"columns[{spec.name!r}]"
    if spec.kind == NUMERIC:
        try:
            column = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(Problem(where, "numeric: float64 values expected (NaN = missing)"))
            return None
        if column.ndim == 1 and np.isinf(column).any():
            problems.append(Problem(where, "must not hold infinities (NaN means no data)"))
    else:
        column = np.asarray(raw, dtype=object)
    if column.ndim != 1 or len(column) != n:
        problems.append(Problem(where, f"must be one value per outcome ({n})"))
        return None
    return column


def prepare_columns(
    columns: Mapping[str, Any], y: Any, specs: Sequence[FeatureSpec], problems: list[Problem]
) -> tuple[dict[str, npt.NDArray[Any]], npt.NDArray[np.int64]]:
    """``(the specs' columns as arrays, the outcomes as 0/1)``; the problems of
    both appended."""
    y_array = prepare_outcomes(y, problems)
    n = len(y_array)
    if not specs:
        problems.append(Problem("specs", "at least one feature is needed"))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        problems.append(Problem("specs", "feature names must be unique"))
    prepared: dict[str, npt.NDArray[Any]] = {}
    for spec in specs:
        if spec.name not in columns:
            problems.append(Problem(f"columns[{spec.name!r}]", "no such column"))
            continue
        column = _column(columns[spec.name], spec, n, problems)
        if column is not None:
            prepared[spec.name] = column
    return prepared, y_array
