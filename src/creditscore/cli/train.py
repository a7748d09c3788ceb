"""``creditscore train``: a scorecard from the simulator (point-in-time features at each
loan application), from a training file of ``creditscore export-training`` (Parquet)
or from a CSV table with a target column; writes the model file and,
when asked, the HTML report (``creditscore.scorecard``). The options become one
``TrainingConfig``; the description, unless given, says where the data came from."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from creditscore.scorecard.artifact import format_report, save_model
from creditscore.scorecard.binning import CATEGORICAL, NUMERIC
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.errors import InputError
from creditscore.scorecard.model import ScorecardError, is_valid_version
from creditscore.scorecard.training import Progress, TrainResult, train_matrix, train_table

__all__ = ["main"]


def _print_progress(message: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def _special_values(text: str) -> tuple[float, ...]:
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = float(part)  # ValueError -> argparse reports the option
        if not math.isfinite(value):
            raise ValueError(part)
        values.append(value)
    return tuple(values)


def _joined_special_values(argv: list[str]) -> list[str]:
    """``--special-values -999,-1`` as ``--special-values=-999,-1``: argparse would
    take a value starting with "-" that is not a plain number for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--special-values" and i + 1 < len(argv):
            out.append(f"--special-values={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _write_report(result: TrainResult, path: str) -> bool:
    """Writes the HTML report (``creditscore.scorecard.report``)."""
    from creditscore.scorecard.report import write_report

    written = write_report(result, path)
    print(f"wrote report {written}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``creditscore train``: trains on the simulator or on a CSV and writes the
    artifact (and the report when asked); prints the metrics and the path."""
    parser = argparse.ArgumentParser(
        prog="creditscore train",
        description="Train a scorecard on point-in-time features of a simulated population or of a "
        "training file (creditscore export-training), or on a CSV table with a target column.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--simulate", type=int, metavar="N", help="simulated subjects")
    source.add_argument("--csv", metavar="FILE", help="a CSV table with a header row")
    source.add_argument("--parquet", metavar="FILE", help="a training file of creditscore export-training")
    parser.add_argument("--target", metavar="COLUMN", help="--csv: the outcome column")
    parser.add_argument("--bad-value", metavar="VALUE",
                        help="--csv: the target value that means bad (default: 1, bad, yes, true)")
    parser.add_argument("--special-values", type=_special_values, default=(), metavar="V,V",
                        help="--csv: numeric codes (e.g. -999,-1) that get a bin of their own in every numeric column")
    parser.add_argument("--seed", type=int, default=7, help="seeds the simulator and the holdout split")
    parser.add_argument("--version", default="1.0.0", help="model version (default 1.0.0)")
    parser.add_argument("--out", required=True, help="artifact path, e.g. scorecard-1.0.0.json")
    parser.add_argument("--description", default="", help="replaces the generated description")
    parser.add_argument("--report", metavar="FILE", help="also write the HTML model report")
    parser.add_argument("--max-bins", type=int, default=None, help="bins per feature (default 6 simulated, 8 CSV)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                        help="--simulate: processes simulating and replaying chunks of subjects "
                        "(default: the CPUs, at most 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--force", action="store_true", help="overwrite an existing artifact")
    args = parser.parse_args(_joined_special_values(list(sys.argv[1:] if argv is None else argv)))
    out = Path(args.out)
    if out.exists() and not args.force:
        parser.error(f"{out} exists; a version is never overwritten silently (use --force)")
    if not is_valid_version(args.version):
        parser.error(f"--version {args.version!r} is not valid (1-64 of A-Z a-z 0-9 . _ -)")
    progress = None if args.quiet else _print_progress
    config = TrainingConfig(
        version=args.version, description=args.description, seed=args.seed, max_bins=args.max_bins,
        special_values=args.special_values,
    )
    try:
        if args.simulate is not None:
            result = _train_simulated(args, config, parser, progress)
        elif args.parquet is not None:
            result = _train_parquet(args, config, parser, progress)
        else:
            result = _train_csv(args, config, parser, progress)
    except (InputError, ScorecardError) as exc:
        print(f"creditscore train: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"creditscore train: {exc}", file=sys.stderr)
        return 1
    save_model(result.artifact, out)
    print(format_report(result.artifact))
    print(f"wrote {out}")
    if args.report and not _write_report(result, args.report):
        return 1
    return 0


def _train_simulated(
    args: argparse.Namespace, config: TrainingConfig, parser: argparse.ArgumentParser, progress: Progress | None
) -> TrainResult:
    subjects: int = args.simulate
    if subjects < 100:
        parser.error("--simulate needs at least 100 subjects")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.target or args.bad_value or config.special_values:
        parser.error("--target, --bad-value and --special-values go with --csv")
    from creditscore.sim.training import simulated_training_matrix

    def done(count: int) -> None:
        if progress:
            progress(f"simulated and replayed {count} of {subjects} subjects", 0.5 * count / subjects)

    if progress:
        progress(f"simulating {subjects} subjects, {args.workers} process(es)", 0.0)
    # Chunk by chunk (memory flat in N); the same matrix as replaying simulate()'s records at once.
    matrix = simulated_training_matrix(subjects, seed=config.seed, workers=args.workers, progress=done)
    description = config.description or (
        f"Trained on the creditscore simulator (creditscore.sim.simulate): {subjects} simulated "
        f"subjects, seed {config.seed}, point-in-time features at each loan application "
        f"({len(matrix.y)} outcomes); stratified holdout with the same seed."
    )
    return train_matrix(
        matrix.X, matrix.y, list(matrix.feature_names), config.replace(description=description), progress=progress
    )


def _train_parquet(
    args: argparse.Namespace, config: TrainingConfig, parser: argparse.ArgumentParser, progress: Progress | None
) -> TrainResult:
    if args.target or args.bad_value or config.special_values:
        parser.error("--target, --bad-value and --special-values go with --csv")
    from creditscore.cli.training_parquet import read_training_matrix

    if progress:
        progress(f"reading {Path(args.parquet).name}", 0.0)
    data = read_training_matrix(args.parquet)
    description = config.description or (
        f"Trained on the training file {Path(args.parquet).name} ({len(data)} rows; from "
        f"{data.metadata.get('source', 'an unknown source')}); stratified holdout with seed {config.seed}."
    )
    return train_matrix(
        data.X, data.y, list(data.feature_names), config.replace(description=description), progress=progress
    )


def _train_csv(
    args: argparse.Namespace, config: TrainingConfig, parser: argparse.ArgumentParser, progress: Progress | None
) -> TrainResult:
    if not args.target:
        parser.error("--csv needs --target COLUMN")
    from creditscore.scorecard.tabular import read_csv, training_table

    if progress:
        progress(f"reading {Path(args.csv).name}", 0.0)
    data = training_table(read_csv(args.csv), target=args.target, bad_value=args.bad_value)
    kinds = [s.kind for s in data.specs]
    print(
        f"{Path(args.csv).name}: {len(data.y)} rows, {len(kinds)} feature columns "
        f"({kinds.count(NUMERIC)} numeric, {kinds.count(CATEGORICAL)} categorical), "
        f"target {args.target!r}: bad = {', '.join(repr(v) for v in data.bad_labels)}, "
        f"bad rate {float(np.mean(data.y)):.4f}"
        + (f"; identifiers not used: {', '.join(data.identifiers)}" if data.identifiers else "")
    )
    description = config.description or (
        f"Trained on the table {Path(args.csv).name} ({len(data.y)} rows, {len(kinds)} feature columns; "
        f"target {args.target!r}, bad = {', '.join(repr(v) for v in data.bad_labels)}); "
        f"stratified 30% holdout, seed {config.seed}."
    )
    # The special values (--special-values) go to every numeric column through the config.
    return train_table(data.columns, data.y, data.specs, config.replace(description=description), progress=progress)
