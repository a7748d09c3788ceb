"""Training time: our trainer against optbinning on 1M rows x 20 features.

``python -m bench.train_speed [--quick]``

The data: a synthetic population (``bench._common.synthetic_population``) of 1M
rows (``--quick``: 100k) x the 20 catalog features, with a logistic ground truth
in each feature's catalog direction, some counts with many ties, some binary
features, 0-30% of each feature missing (NaN), seeded.

Ours: ``creditscore.scorecard.training.train_matrix`` (the trainer behind
``creditscore train``) on the whole matrix, timed from the call to the finished
artifact: the seeded 70/30 split, binning, WoE/IV,
selection, the logistic regression, scaling, and the holdout metrics and the
training distribution (work a peer's ``fit`` does not do).

optbinning: as its scorecard tutorial does it, ``BinningProcess`` (the 20
variables, IV selection 0.02-1) and ``Scorecard`` with scikit-learn's
``LogisticRegression`` (lbfgs), ``fit`` on exactly our 70% training rows; the
clock covers ``fit`` only (binning, selection, regression, scaling). Its
scores on our holdout give its AUC, so that the two are compared on equal work
and the speed is not bought with accuracy.

Ours is run ``--repeat`` times (default 3) and the median is reported; the peer
once (it takes minutes). With ``--peer-rows N`` the peer is trained on the first
N training rows only and its time scaled by rows (said so in the output).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings

import numpy as np

from bench._common import code_version, describe_machine, require_peers, result_line, synthetic_population, timed
from creditscore.features.catalog import CATALOG, FEATURE_NAMES
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.training import TrainResult, auc_score, ks_score, stratified_split, train_matrix


def _ours(X: np.ndarray, y: np.ndarray, seed: int) -> TrainResult:
    config = TrainingConfig(
        version="bench", seed=seed, description="synthetic logistic population for the training speed benchmark"
    )
    return train_matrix(X, y, FEATURE_NAMES, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 1M; quick 100k)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of our trainer")
    parser.add_argument("--peer-rows", type=int, default=None,
                        help="train the peer on this many of the training rows and scale its time by rows")
    parser.add_argument("--seed", type=int, default=20261101)
    args = parser.parse_args(argv)
    peers = require_peers(["optbinning", "sklearn", "pandas"])
    pandas = peers["pandas"]
    from optbinning import BinningProcess
    from optbinning import Scorecard as PeerScorecard
    from sklearn.linear_model import LogisticRegression

    n = args.rows or (100_000 if args.quick else 1_000_000)
    print(describe_machine())
    print(code_version())
    print(f"optbinning {peers['optbinning'].__version__}, scikit-learn {peers['sklearn'].__version__}, "
          f"pandas {pandas.__version__}")
    X, y = synthetic_population(n, FEATURE_NAMES, [f.direction for f in CATALOG], args.seed)
    print(f"data: {n:,} rows x {X.shape[1]} features, bad rate {y.mean():.3f}, "
          f"{np.isnan(X).mean():.1%} of values missing")

    times = []
    results: list[TrainResult] = []
    for _ in range(args.repeat):
        result, seconds = timed(lambda: _ours(X, y, args.seed))
        times.append(seconds)
        results.append(result)
    ours = statistics.median(times)
    artifact = results[0].artifact
    m = artifact["metrics"]
    print(f"ours: train_matrix median {ours:.2f} s over {args.repeat} runs "
          f"(best {min(times):.2f}, worst {max(times):.2f}); {len(artifact['features'])} features kept; "
          f"holdout AUC {m['auc']:.4f} KS {m['ks']:.4f}")
    steps = results[times.index(min(times))].seconds  # the trainer's own clock, per step
    print("ours, per step (fastest run): " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()))

    train_rows, holdout_rows = stratified_split(y, 0.3, args.seed)
    peer_rows = train_rows if args.peer_rows is None else train_rows[: args.peer_rows]
    frame = pandas.DataFrame(X[peer_rows], columns=list(FEATURE_NAMES))
    process = BinningProcess(list(FEATURE_NAMES), selection_criteria={"iv": {"min": 0.02, "max": 1}})
    peer = PeerScorecard(binning_process=process, estimator=LogisticRegression(solver="lbfgs"),
                         scaling_method="min_max", scaling_method_params={"min": 350, "max": 950})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, peer_time = timed(lambda: peer.fit(frame, y[peer_rows]))
        holdout = pandas.DataFrame(X[holdout_rows], columns=list(FEATURE_NAMES))
        peer_pd = peer.predict_proba(holdout)[:, 1]
    scale = len(train_rows) / len(peer_rows)
    peer_auc = auc_score(y[holdout_rows], peer_pd)
    peer_ks = ks_score(y[holdout_rows], peer_pd)
    scaled = (
        " (scaled by rows from the subsample; binning is not linear in rows, so this is rough)" if scale > 1 else ""
    )
    print(f"optbinning: BinningProcess + Scorecard(LogisticRegression).fit on {len(peer_rows):,} training rows "
          f"{peer_time:.2f} s{scaled}; holdout AUC {peer_auc:.4f} KS {peer_ks:.4f}")
    peer_full = peer_time * scale
    ratio = peer_full / ours
    print(f"ratio: optbinning / ours = {ratio:.1f}x (aim: >= 5x)")
    print(result_line("train_speed", {
        "rows": n, "features": X.shape[1], "ours_s": ours, "optbinning_s": peer_full,
        "optbinning_extrapolated": "yes" if scale > 1 else "no", "speedup": ratio,
        "ours_auc": m["auc"], "optbinning_auc": peer_auc, "aim_5x": "met" if ratio >= 5 else "unmet",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
