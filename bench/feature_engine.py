"""``python -m bench.feature_engine [--quick] [--subjects N] [--seed S]``: how fast
the feature engine is on a simulated population, and how it was measured.

Measures, in this process, with ``time.perf_counter`` (wall clock, one run each):
simulating the population; building the point-in-time training matrix (every
applicant's records replayed up to the application); applying every record to
per-subject states; and, for the subject with the longest history, one vector
(``feature_values``) and one state load (``SubjectState.from_json``), the two
steps of a lookup besides the database read (medians of 2,000 runs).

Every figure is checked before it is printed: one matrix row per loan outcome with
a label of 0 or 1, every record applied to its subject's state, and the state's
JSON reading back to the same vector. A failed check stops the run without a
figure. Ends with one ``RESULT feature_engine ...`` line.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from bench._common import result_line
from creditscore.features.engine import SubjectState, apply_record, feature_values, point_in_time_matrix
from creditscore.sim import simulate


def _median_us(fn: Callable[[], object], runs: int = 2000) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


class WrongAnswer(Exception):
    """A measured step gave a wrong result: no figure is printed for it."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise WrongAnswer(what)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 subjects (unless --subjects says)")
    parser.add_argument("--subjects", type=int, default=None, help="simulated subjects (default 10,000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.subjects is None:
        args.subjects = 1_000 if args.quick else 10_000
    try:
        _run(args)
    except WrongAnswer as exc:
        raise SystemExit(f"wrong answer, no figure: {exc}") from None


def _run(args: argparse.Namespace) -> None:

    start = time.perf_counter()
    population = simulate(args.subjects, seed=args.seed)
    simulated = time.perf_counter() - start
    n_records = len(population.records)
    print(f"simulate({args.subjects}): {simulated:.1f} s, {n_records} records "
          f"({n_records / max(1, args.subjects):.0f} per subject), {len(population.outcomes)} outcomes")

    start = time.perf_counter()
    matrix = point_in_time_matrix(population.records, population.outcomes)
    pit = time.perf_counter() - start
    outcomes = len(population.outcomes)
    _check(len(matrix) == outcomes, f"{len(matrix)} matrix rows for {outcomes} outcomes")
    _check(bool(((matrix.y == 0) | (matrix.y == 1)).all()), "a label other than 0 or 1")
    print(f"point_in_time_matrix: {pit:.1f} s for {len(matrix)} rows, bad rate {matrix.y.mean():.3f}")

    states: dict[str, SubjectState] = defaultdict(SubjectState)
    start = time.perf_counter()
    for record in population.records:
        apply_record(states[record.subject_id], record)
    applied = time.perf_counter() - start
    applied_count = sum(state.record_count for state in states.values())
    _check(applied_count == n_records, f"{applied_count} records in the states, {n_records} applied")
    print(f"apply_record: {applied / max(1, n_records) * 1e6:.1f} us per record ({applied:.1f} s in all)")

    _check(bool(states), "no subject has a record")
    longest = max(states.values(), key=lambda s: s.record_count)
    text = longest.to_json()
    as_of = int(population.as_of.timestamp())
    print(f"longest history: {longest.record_count} records -> {longest.bucket_count()} monthly buckets, "
          f"{len(text)} bytes of JSON")
    _check(feature_values(SubjectState.from_json(text), as_of) == feature_values(longest, as_of),
           "the state read back from its JSON gives another vector")
    vector_us = _median_us(lambda: feature_values(longest, as_of))
    load_us = _median_us(lambda: SubjectState.from_json(text))
    print(f"  feature_values: {vector_us:.1f} us (median)")
    print(f"  from_json:      {load_us:.1f} us (median)")
    print(result_line("feature_engine", {
        "subjects": args.subjects, "records": n_records, "simulate_s": round(simulated, 3),
        "matrix_s": round(pit, 3), "apply_us_per_record": round(applied / n_records * 1e6, 2),
        "vector_us": round(vector_us, 1), "from_json_us": round(load_us, 1),
    }))


if __name__ == "__main__":
    main()
