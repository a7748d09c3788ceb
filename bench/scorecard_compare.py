"""Accuracy and training time against scorecardpy and optbinning on the German
credit data.

``python -m bench.scorecard_compare [--quick]``

The data: the German credit data (1,000 applicants, 20 attributes: 7 numeric, 13
categorical; 30% bad) as it ships inside the scorecardpy package
(``scorecardpy.germancredit()``), target ``creditability``, bad = "bad".

The split: for each seed, one stratified 70/30 split
(``creditscore.scorecard.training.stratified_split(y, 0.3, seed)``) that every model
uses: each trains on the same 700 rows and is measured on the same 300. The
first seed is the headline; then ``--seeds`` consecutive seeds (default 20;
``--quick``: 3) give the mean, the standard deviation, and how often ours is at
least as good as each peer.

The models, each used as its documentation shows:

- ours: the data frame is written to a CSV file once, then trained from that file
  through the product's CSV path (``creditscore.scorecard.training.train_table``)
  exactly as an analyst would with ``creditscore train --csv``; the clock covers
  reading the CSV and the whole training (split, binning, selection, regression,
  scaling, holdout metrics);
- scorecardpy: ``var_filter`` and ``woebin`` on the training rows (its README runs
  them on all rows; that would let the holdout leak into the bins, so they see the
  training rows only), ``woebin_ply``, scikit-learn ``LogisticRegression`` (L1,
  C=0.9, saga, as in its README) and ``scorecard``;
- optbinning: ``BinningProcess`` (the 13 categorical attributes declared, IV
  selection 0.02-1 as in its scorecard tutorial) and ``Scorecard`` with
  ``LogisticRegression`` (lbfgs), once with the tutorial's default binning and once
  with ``monotonic_trend="auto_asc_desc"`` for the numeric attributes.

AUC and KS are computed by the same functions (``auc_score``, ``ks_score``) for
every model, from its probability of bad on the 300 holdout rows. Training
time: the median over the seeds (the peers' clocks start from the data frame in
memory; ours includes parsing the CSV).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import code_version, describe_machine, require_peers, result_line, timed
from creditscore.scorecard.training import auc_score, ks_score, stratified_split

TARGET = "creditability"
PEERS = ("scorecardpy", "optbinning", "optbinning_mono")


@dataclass(frozen=True)
class Run:
    """One model on one split: holdout AUC and KS, training seconds."""

    auc: float
    ks: float
    seconds: float


@dataclass(frozen=True)
class German:
    """The German credit data: the attributes (a pandas frame), y (1 = bad), and
    which attributes are categorical."""

    frame: Any
    y: np.ndarray
    names: list[str]
    categorical: list[str]


def load_german(pandas: Any, scorecardpy: Any) -> German:
    data = scorecardpy.germancredit()
    y = (data[TARGET].astype(str) == "bad").to_numpy().astype(np.int64)
    frame = data.drop(columns=TARGET)
    names = list(frame.columns)
    categorical = [c for c in names if not pandas.api.types.is_numeric_dtype(frame[c])]
    for column in categorical:  # plain strings, as a CSV file would hold them
        frame[column] = frame[column].astype(str)
    return German(frame, y, names, categorical)


# ---------------------------------------------------------------- the models


def run_scorecardpy(data: German, train: np.ndarray, holdout: np.ndarray, sc: Any, LogisticRegression: Any) -> Run:
    frame = data.frame.copy()
    frame[TARGET] = data.y
    rows_train = frame.iloc[train].reset_index(drop=True)
    rows_holdout = frame.iloc[holdout].reset_index(drop=True)

    def fit() -> tuple[Any, Any, list[str]]:
        kept = sc.var_filter(rows_train, y=TARGET)
        bins = sc.woebin(kept, y=TARGET)
        woe = sc.woebin_ply(kept, bins)
        columns = [c for c in woe.columns if c != TARGET]
        model = LogisticRegression(penalty="l1", C=0.9, solver="saga")
        model.fit(woe[columns], woe[TARGET])
        sc.scorecard(bins, model, columns)  # the points table is part of the work
        return bins, model, columns

    (bins, model, columns), seconds = timed(fit)
    woe_holdout = sc.woebin_ply(rows_holdout[[c.removesuffix("_woe") for c in columns] + [TARGET]], bins)
    pd = model.predict_proba(woe_holdout[columns])[:, 1]
    return Run(auc_score(data.y[holdout], pd), ks_score(data.y[holdout], pd), seconds)


def run_optbinning(
    data: German, train: np.ndarray, holdout: np.ndarray, monotone: bool, optbinning: Any, LogisticRegression: Any
) -> Run:
    params = (
        {c: {"monotonic_trend": "auto_asc_desc"} for c in data.names if c not in data.categorical}
        if monotone else None
    )

    def fit() -> Any:
        process = optbinning.BinningProcess(
            data.names, categorical_variables=data.categorical,
            selection_criteria={"iv": {"min": 0.02, "max": 1}}, binning_fit_params=params,
        )
        card = optbinning.Scorecard(
            binning_process=process, estimator=LogisticRegression(solver="lbfgs"),
            scaling_method="min_max", scaling_method_params={"min": 350, "max": 950},
        )
        return card.fit(data.frame.iloc[train], data.y[train])

    card, seconds = timed(fit)
    pd = card.predict_proba(data.frame.iloc[holdout])[:, 1]
    return Run(auc_score(data.y[holdout], pd), ks_score(data.y[holdout], pd), seconds)


def write_csv(data: German, path: Path) -> Path:
    """The data as an analyst's CSV file: the attributes, then the target with its
    original labels ("good" / "bad")."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*data.names, TARGET])
        values = data.frame.to_numpy(dtype=object)
        for row, bad in zip(values, data.y, strict=True):
            writer.writerow([*row, "bad" if bad else "good"])
    return path


def run_ours(data: German, csv_path: Path, seed: int, holdout: np.ndarray) -> Run:
    """Trains from the CSV as ``creditscore train --csv FILE --target creditability
    --bad-value bad --seed SEED`` does (``read_csv``, ``training_table``,
    ``train_table`` with the command's CSV defaults), and takes the probability of
    bad of the holdout rows the peers are measured on. The trainer splits with
    ``stratified_split(y, 0.3, seed)`` on the file's rows, so its holdout is the
    peers' holdout: checked, not assumed."""
    from creditscore.scorecard.config import TrainingConfig
    from creditscore.scorecard.tabular import read_csv, training_table
    from creditscore.scorecard.training import train_table

    config = TrainingConfig(
        version="bench", seed=seed, max_bins=8, description=f"German credit (scorecardpy), seed {seed}"
    )

    def fit() -> Any:
        table = training_table(read_csv(csv_path), target=TARGET, bad_value="bad")
        return train_table(table.columns, table.y, table.specs, config)

    result, seconds = timed(fit)
    if result.metrics["n_holdout"] != len(holdout) or not np.array_equal(result.y_holdout, data.y[holdout]):
        sys.exit("our trainer's holdout is not the peers' holdout: the comparison would not be fair")
    pd = np.asarray(result.pd_holdout, dtype=np.float64)
    if np.isnan(pd).any():  # INSUFFICIENT_DATA; the German data has no missing values
        sys.exit(f"{int(np.isnan(pd).sum())} holdout rows were not scored")
    return Run(auc_score(data.y[holdout], pd), ks_score(data.y[holdout], pd), seconds)


# ---------------------------------------------------------------- summary


def _summary(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def _paired(deltas: list[float]) -> str:
    """Mean of paired differences ± its standard error (the splits share rows, so
    the error understates the uncertainty somewhat: read it as a floor)."""
    se = statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else 0.0
    return f"{statistics.mean(deltas):+.4f} ± {se:.4f} (s.e.)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scorecard_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds")
    parser.add_argument("--seeds", type=int, default=None, help="repeated splits (default 20; quick 3)")
    parser.add_argument("--seed", type=int, default=20261101, help="the first (headline) split's seed")
    args = parser.parse_args(argv)
    seeds = [args.seed + i for i in range(args.seeds or (3 if args.quick else 20))]
    peers = require_peers(["scorecardpy", "optbinning", "sklearn", "pandas"])
    from sklearn.linear_model import LogisticRegression

    print(describe_machine())
    print(code_version())
    print("peers: " + ", ".join(f"{name} {getattr(peers[name], '__version__', '?')}" for name in peers))
    data = load_german(peers["pandas"], peers["scorecardpy"])
    print(f"data: German credit from scorecardpy, {len(data.y)} rows, {len(data.names)} attributes "
          f"({len(data.categorical)} categorical), bad rate {data.y.mean():.3f}")

    runs: dict[str, list[Run]] = {name: [] for name in ("ours", *PEERS)}
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_csv(data, Path(tmp) / "german_credit.csv")
        print(f"{'seed':>10}  " + "  ".join(f"{name:>22}" for name in runs))
        for seed in seeds:
            train, holdout = stratified_split(data.y, 0.3, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs["ours"].append(run_ours(data, csv_path, seed, holdout))
                runs["scorecardpy"].append(
                    run_scorecardpy(data, train, holdout, peers["scorecardpy"], LogisticRegression))
                runs["optbinning"].append(
                    run_optbinning(data, train, holdout, False, peers["optbinning"], LogisticRegression))
                runs["optbinning_mono"].append(
                    run_optbinning(data, train, holdout, True, peers["optbinning"], LogisticRegression))
            print(f"{seed:>10}  " + "  ".join(
                f"AUC {r[-1].auc:.4f} KS {r[-1].ks:.3f}".rjust(22) for r in runs.values()))

    figures: dict[str, Any] = {"seeds": len(seeds)}
    head = {name: r[0] for name, r in runs.items()}
    print(f"\nheadline split (seed {seeds[0]}):")
    for name, run in head.items():
        print(f"  {name:<16} AUC {run.auc:.4f}  KS {run.ks:.4f}  train {run.seconds * 1000:.0f} ms")
    print(f"over {len(seeds)} splits (mean ± sd; median training time):")
    for name, r in runs.items():
        aucs, kss = [x.auc for x in r], [x.ks for x in r]
        seconds = statistics.median(x.seconds for x in r)
        print(f"  {name:<16} AUC {_summary(aucs)}  KS {_summary(kss)}  train {seconds * 1000:.0f} ms")
        figures[f"{name}_auc"] = statistics.mean(aucs)
        figures[f"{name}_ks"] = statistics.mean(kss)
        figures[f"{name}_ms"] = seconds * 1000
    ours = runs["ours"]
    for name in PEERS:
        auc_ge = sum(o.auc >= p.auc for o, p in zip(ours, runs[name], strict=True)) / len(seeds)
        ks_ge = sum(o.ks >= p.ks for o, p in zip(ours, runs[name], strict=True)) / len(seeds)
        auc_delta = [o.auc - p.auc for o, p in zip(ours, runs[name], strict=True)]
        ks_delta = [o.ks - p.ks for o, p in zip(ours, runs[name], strict=True)]
        speed = statistics.median(x.seconds for x in runs[name]) / statistics.median(x.seconds for x in ours)
        print(f"  ours vs {name:<16} AUC >= in {auc_ge:.0%} of splits, difference {_paired(auc_delta)}; "
              f"KS >= in {ks_ge:.0%}, difference {_paired(ks_delta)}; training {speed:.1f}x faster")
        figures[f"auc_diff_{name}"] = statistics.mean(auc_delta)
        figures[f"auc_ge_{name}"] = auc_ge
        figures[f"ks_ge_{name}"] = ks_ge
        figures[f"speedup_{name}"] = speed
    print(result_line("scorecard_compare", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
