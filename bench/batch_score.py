"""Batch scoring rate: subjects per second through the scorecard's numpy path.

``python -m bench.batch_score [--quick]``

A 20-feature scorecard is trained (by the product's trainer) on a synthetic
population with a logistic ground truth; then 1M other subjects (``--quick``:
200k) x 20 features, NaN where there is no data, are scored:

- scores only: ``Scorecard.score_batch`` (score, probability of bad, coverage,
  INSUFFICIENT_DATA flag) on the whole float64 matrix;
- with reasons: ``Scorecard.score_columns(..., reasons=True)``, the batch path
  that also ranks up to four reasons per subject, returned as an integer array
  (indices into the scorecard's reason code table); turning every row's into
  code strings (``BatchScores.reason_codes()``, what the CSV scoring writes) is
  timed apart, as it is done only when asked;
- for comparison, ``Scorecard.score_one`` (the per-request pure-Python path:
  reasons with texts, and ways to improve) on a subsample.

Each timing is repeated (``--repeat``, default 5; quick 3) and the median is
reported with the best and the worst; the matrix is built before the clock
starts (a caller of the batch path holds it already). Before timing, the batch
scores of a sample are checked to equal ``score_one``'s, so the speed is of the
right answer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._common import code_version, describe_machine, result_line, synthetic_population, timed
from creditscore.features.catalog import CATALOG, FEATURE_NAMES
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.model import Scorecard
from creditscore.scorecard.training import train_scorecard


def _repeat(fn: Callable[[], Any], times: int) -> list[float]:
    fn()  # warm-up: first-touch page faults and caches are not the steady state
    return [timed(fn)[1] for _ in range(times)]


def _batch_reasons(card: Scorecard) -> Callable[[dict[str, np.ndarray]], Any] | None:
    """The scorecard's batch path that also ranks reasons (``score_columns`` with
    ``reasons=True``: scores, probabilities and up to four reason codes per
    subject), if this version of the scorecard has one."""
    method = getattr(card, "score_columns", None)
    if not callable(method):
        return None
    return lambda columns: method(columns, reasons=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_score", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k subjects, 3 repeats")
    parser.add_argument("--subjects", type=int, default=None, help="subjects to score (default 1M; quick 200k)")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats (default 5; quick 3)")
    parser.add_argument("--seed", type=int, default=20261101)
    args = parser.parse_args(argv)
    n = args.subjects or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (3 if args.quick else 5)
    one_n = 20_000 if args.quick else 100_000

    print(describe_machine())
    print(code_version())
    directions = [f.direction for f in CATALOG]
    X_train, y_train = synthetic_population(100_000, FEATURE_NAMES, directions, args.seed)
    config = TrainingConfig(
        version="bench", seed=args.seed, min_iv=0.0,
        description="synthetic logistic population for the batch scoring benchmark",
    )
    artifact = train_scorecard(X_train, y_train, FEATURE_NAMES, config)
    card = Scorecard.from_dict(artifact)
    bins = sum(len(f["bins"]) + 1 for f in artifact["features"])
    print(f"scorecard: {len(card.features)} features, {bins} bins (missing bins included), "
          f"trained on 100,000 synthetic rows (holdout AUC {artifact['metrics']['auc']:.3f})")
    X, _ = synthetic_population(n, FEATURE_NAMES, directions, args.seed + 1)
    print(f"subjects: {n:,} x {X.shape[1]} features, float64, {np.isnan(X).mean():.1%} of values missing")

    # The batch scores are the per-subject scores.
    scores, pd, _, insufficient = card.score_batch(X[:2000], FEATURE_NAMES)
    for i in range(2000):
        one = card.score_one({name: float(X[i, j]) for j, name in enumerate(FEATURE_NAMES)})
        expected = 0 if one.score is None else one.score
        if expected != scores[i]:
            print(f"MISMATCH at row {i}: batch {scores[i]} != score_one {one.score}", file=sys.stderr)
            return 1
    print("check: batch scores equal score_one's on 2,000 subjects")
    batch_reasons = _batch_reasons(card)
    # Contiguous columns, as the CSV path holds them (a strided column of a
    # row-major matrix would be slower to read).
    columns = {name: np.ascontiguousarray(X[:, j]) for j, name in enumerate(FEATURE_NAMES)}
    if batch_reasons is not None:
        sample = batch_reasons({name: column[:2000] for name, column in columns.items()})
        for i in range(2000):
            one = card.score_one({name: float(X[i, j]) for j, name in enumerate(FEATURE_NAMES)})
            if sample.reason_codes_of(i) != tuple(r.code for r in one.reasons):
                print(f"MISMATCH at row {i}: batch reasons {sample.reason_codes_of(i)} != score_one's "
                      f"{[r.code for r in one.reasons]}", file=sys.stderr)
                return 1
        print("check: batch reason codes equal score_one's on 2,000 subjects")

    times = _repeat(lambda: card.score_batch(X, FEATURE_NAMES), repeat)
    median = statistics.median(times)
    rate = n / median
    print(f"scores only (score_batch): median {median * 1000:.1f} ms for {n:,} subjects "
          f"(best {min(times) * 1000:.1f}, worst {max(times) * 1000:.1f} ms, {repeat} runs) "
          f"-> {rate:,.0f} subjects/s")

    figures: dict[str, Any] = {"subjects": n, "features": len(card.features), "scores_per_s": rate}
    if batch_reasons is not None:
        times_r = _repeat(lambda: batch_reasons(columns), repeat)
        median_r = statistics.median(times_r)
        figures["with_reasons_per_s"] = n / median_r
        print(f"with reasons (score_columns, reasons as integer codes): median {median_r * 1000:.1f} ms "
              f"(best {min(times_r) * 1000:.1f}, worst {max(times_r) * 1000:.1f} ms) "
              f"-> {n / median_r:,.0f} subjects/s")
        scored = batch_reasons(columns)
        times_s = _repeat(scored.reason_codes, max(1, repeat // 2))
        median_s = statistics.median(times_s)
        figures["codes_as_strings_per_s"] = n / median_s
        print(f"  and turning every row's reasons into code strings (reason_codes()): median "
              f"{median_s * 1000:.0f} ms more ({len(times_s)} runs) -> {n / (median_r + median_s):,.0f} subjects/s "
              f"with strings")
    else:
        print("with reasons (batch): NOT AVAILABLE - the scorecard has no batch path that ranks reasons")
        figures["with_reasons_per_s"] = "na"

    rows = [{name: float(X[i, j]) for j, name in enumerate(FEATURE_NAMES)} for i in range(one_n)]

    def one_at_a_time() -> None:  # as a server does: score, answer, drop the result
        for row in rows:
            card.score_one(row)

    # Best of 3: the machine is shared, and this path is single-threaded Python.
    one_times = _repeat(one_at_a_time, 3)
    one_time = min(one_times)
    figures["score_one_per_s"] = one_n / one_time
    print(f"with reasons (score_one, one subject at a time, pure Python, each result dropped): {one_n:,} "
          f"subjects in {one_time:.2f} s, best of 3 (median {statistics.median(one_times):.2f} s) -> "
          f"{one_n / one_time:,.0f} subjects/s ({one_time / one_n * 1e6:.1f} us each)")
    kept_time = min(_repeat(lambda: [card.score_one(r) for r in rows], 3))
    figures["score_one_kept_us"] = kept_time / one_n * 1e6
    print(f"  the same keeping all {one_n:,} results in a list: {kept_time / one_n * 1e6:.1f} us each, best of 3 "
          "(the garbage collector then walks the growing list of live results)")
    with_reasons = figures.get("with_reasons_per_s")
    figures["aim_1M_per_s"] = "met" if rate >= 1_000_000 else "unmet"
    figures["aim_1M_per_s_with_reasons"] = (
        "met" if isinstance(with_reasons, float) and with_reasons >= 1_000_000 else "unmet"
    )
    print(result_line("batch_score", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
