"""``python -m bench.feature_engine [--subjects N] [--seed S]``: how fast the feature
engine is on a simulated population, and how it was measured.

Measures, in this process, with ``time.perf_counter`` (wall clock, one run each):
simulating the population; building the point-in-time training matrix (every
applicant's records replayed up to the application); applying every record to
per-subject states; and, for the subject with the longest history, one vector
(``feature_values``) and one state load (``SubjectState.from_json``), the two
steps of a lookup besides the database read (medians of 2,000 runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from creditscore.features.engine import SubjectState, apply_record, feature_values, point_in_time_matrix
from creditscore.sim import simulate


def _median_us(fn: Callable[[], object], runs: int = 2000) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_engine", description=__doc__)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    population = simulate(args.subjects, seed=args.seed)
    simulated = time.perf_counter() - start
    n_records = len(population.records)
    print(f"simulate({args.subjects}): {simulated:.1f} s, {n_records} records "
          f"({n_records / max(1, args.subjects):.0f} per subject), {len(population.outcomes)} outcomes")

    start = time.perf_counter()
    matrix = point_in_time_matrix(population.records, population.outcomes)
    pit = time.perf_counter() - start
    print(f"point_in_time_matrix: {pit:.1f} s for {len(matrix)} rows, bad rate {matrix.y.mean():.3f}")

    states: dict[str, SubjectState] = defaultdict(SubjectState)
    start = time.perf_counter()
    for record in population.records:
        apply_record(states[record.subject_id], record)
    applied = time.perf_counter() - start
    print(f"apply_record: {applied / max(1, n_records) * 1e6:.1f} us per record ({applied:.1f} s in all)")

    if not states:
        return
    longest = max(states.values(), key=lambda s: s.record_count)
    text = longest.to_json()
    as_of = int(population.as_of.timestamp())
    print(f"longest history: {longest.record_count} records -> {longest.bucket_count()} monthly buckets, "
          f"{len(text)} bytes of JSON")
    print(f"  feature_values: {_median_us(lambda: feature_values(longest, as_of)):.1f} us (median)")
    print(f"  from_json:      {_median_us(lambda: SubjectState.from_json(text)):.1f} us (median)")


if __name__ == "__main__":
    main()
