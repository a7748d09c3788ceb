"""What the model lifecycle costs: shadow scoring a challenger, measuring drift,
keeping replicas in step.

``python -m bench.lifecycle [--quick]``

On a fresh SQLite file (WAL), with the scorecard shipped in the package as champion
and the same scorecard under another version as challenger, through the scoring
domain (``Scorer``; no gRPC, whose hop costs about 0.5 ms on its own):

- ``Scorer.score`` one request at a time without a challenger and with one (two
  rows in one transaction instead of one), in alternating blocks: median per
  request over ``--scores`` requests each (default 2,000; quick 500);
- ``Scorer.drift`` over a window of ``--drift-rows`` stored scores (default
  100,000; quick 20,000), inserted beforehand in bulk, read as the service reads
  it (at most ``DRIFT_MAX_SCORES`` = 20,000 of them, a sample spread over a larger
  window): the whole call (count, read, bin, PSI of the score and every feature),
  best of 3, and the longest the event loop was held up meanwhile (a 5 ms ticker);
- ``Lifecycle.refresh`` when nothing changed (what every replica does every
  ``MODEL_REFRESH_SECONDS``): median of 200.

The feature vectors are the synthetic population of ``bench._common`` (catalog
features, logistic ground truth, up to 30% missing per feature).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from creditscore.features.catalog import CATALOG, FEATURE_NAMES
from creditscore.runtime import make_engine
from scoring_service.config import DEFAULT_MODEL_DIR
from scoring_service.lifecycle import Lifecycle
from scoring_service.registry import ModelRegistry
from scoring_service.scoring import Scorer
from scoring_service.store import ModelEventStore, ScoreRecord, ScoreStore, score_history

from ._common import code_version, describe_machine, result_line, synthetic_population


def _models(folder: Path) -> ModelRegistry:
    """The shipped champion, and a copy of it under another version as challenger."""
    shipped = ModelRegistry.load(DEFAULT_MODEL_DIR).initial
    for version in (shipped.version, "0.0.1-challenger"):
        artifact = {**shipped.to_dict(), "version": version}
        (folder / f"scorecard-{version}.json").write_text(json.dumps(artifact))
    return ModelRegistry.load(folder, shipped.version)


async def _per_request(scorer: Scorer, vectors: list[dict[str, float | None]], prefix: str) -> list[float]:
    """Each request a subject never scored before: its score is a change, stored."""
    times = []
    for i, vector in enumerate(vectors):
        start = time.perf_counter()
        await scorer.score(f"{prefix}-{i}", list(vector.items()))
        times.append(time.perf_counter() - start)
    return times


async def _longest_stall(out: list[float], tick: float = 0.005) -> None:
    """Appends, until cancelled, how late each ``tick``-second sleep woke up."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(tick)
        out.append(time.perf_counter() - start - tick)


async def _alone_and_shadowed(
    scorer: Scorer, lifecycle: Lifecycle, vectors: list[dict[str, float | None]], blocks: int = 4
) -> tuple[float, float]:
    """Median seconds per request without and with a challenger, measured in
    alternating blocks so that a busy moment of the machine hits both alike."""
    alone: list[float] = []
    shadowed: list[float] = []
    size = max(1, len(vectors) // blocks)
    for b in range(blocks):
        chunk = vectors[b * size:(b + 1) * size]
        await lifecycle.set_challenger(f"bench-clear-{b}", "")
        alone += await _per_request(scorer, chunk, f"alone-{b}")
        await lifecycle.set_challenger(f"bench-set-{b}", "0.0.1-challenger")
        shadowed += await _per_request(scorer, chunk, f"shadowed-{b}")
    return statistics.median(alone), statistics.median(shadowed)


async def run(args: argparse.Namespace) -> int:
    directions = [f.direction for f in CATALOG]
    n_vectors = max(args.scores, args.drift_rows)
    X, _ = synthetic_population(n_vectors, FEATURE_NAMES, directions, seed=17)
    vectors = [
        {name: (None if x != x else float(x)) for name, x in zip(FEATURE_NAMES, row, strict=True)}
        for row in X.tolist()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        registry = _models(folder)
        engine = make_engine(f"sqlite:///{tmp}/scoring.db")
        try:
            store = ScoreStore(engine)
            await store.create_schema()
            lifecycle = await Lifecycle.open(registry, ModelEventStore(engine))
            scorer = Scorer(lifecycle, store)  # the service's DRIFT_MAX_SCORES
            champion = lifecycle.active

            alone, shadowed = await _alone_and_shadowed(scorer, lifecycle, vectors[: args.scores])
            print(f"ScoreFeatures (domain, SQLite): median {alone * 1e3:.3f} ms per request alone, "
                  f"{shadowed * 1e3:.3f} ms with a challenger shadow-scored "
                  f"(+{(shadowed - alone) * 1e3:.3f} ms), {args.scores:,} requests each, in alternating blocks")

            # Bulk rows for drift, scored by the champion, a minute apart, long ago.
            t0 = datetime(2020, 1, 1, tzinfo=UTC)
            rows: list[dict[str, Any]] = []
            for i, vector in enumerate(vectors[: args.drift_rows]):
                record = ScoreRecord.from_result(
                    f"d-{i}", champion.score_one(vector), vector, t0 + timedelta(minutes=i)
                )
                rows.append({
                    "subject_id": record.subject_id, "model_version": record.model_version,
                    "state": record.state.value, "score": record.score, "band": record.band.value,
                    "probability_of_bad": record.probability_of_bad, "coverage": record.coverage,
                    "reasons": [], "features": dict(record.features), "score_time": record.score_time,
                    "role": record.role.value, "improvements": [],
                })
            async with engine.begin() as conn:
                await conn.execute(score_history.insert(), rows)
            until = t0 + timedelta(minutes=args.drift_rows)
            drift_times = []
            stalls: list[float] = []
            for _ in range(3):
                ticker = asyncio.create_task(_longest_stall(stalls))
                start = time.perf_counter()
                result = await scorer.drift("", t0, until, 0)
                drift_times.append(time.perf_counter() - start)
                ticker.cancel()
            report = result.report
            best = min(drift_times)
            print(f"GetDrift (domain) over a window of {result.in_window:,} stored scores "
                  f"({report.scores_used:,} used{', sampled' if result.sampled else ''}) x {len(champion.features)} "
                  f"features: best {best:.2f} s of 3 (worst {max(drift_times):.2f} s); score PSI "
                  f"{report.score_psi:.4f} {report.status.value} (the synthetic population is not the "
                  "simulator's, on which the model was trained: a shift is the right answer)")
            stall = max(stalls)
            print(f"  the event loop (which serves the scoring requests) was held up at most {stall * 1e3:.0f} ms "
                  "at a time meanwhile (a 5 ms ticker's longest gap beyond its sleep)")

            refresh = []
            for _ in range(200):
                start = time.perf_counter()
                await lifecycle.refresh()
                refresh.append(time.perf_counter() - start)
            refresh_ms = statistics.median(refresh) * 1e3
            print(f"refresh with nothing new (one indexed read): median {refresh_ms:.3f} ms")
        finally:
            await engine.dispose()

    print(result_line("lifecycle", {
        "score_ms": alone * 1e3,
        "score_with_challenger_ms": shadowed * 1e3,
        "drift_window": result.in_window,
        "drift_used": report.scores_used,
        "drift_s": best,
        "drift_loop_stall_ms": stall * 1e3,
        "refresh_ms": refresh_ms,
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rows")
    parser.add_argument("--scores", type=int, default=None)
    parser.add_argument("--drift-rows", type=int, default=None)
    args = parser.parse_args(argv)
    args.scores = args.scores or (500 if args.quick else 2000)
    args.drift_rows = args.drift_rows or (20_000 if args.quick else 100_000)
    print(describe_machine())
    print(code_version())
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
