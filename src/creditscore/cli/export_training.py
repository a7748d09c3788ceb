"""``creditscore export-training``: the point-in-time training matrix as a Parquet
file (``creditscore.cli.training_parquet``; schema in ``docs/training-data.md``).

From the running suite (default): the ingest service's ``ExportTrainingRecords``
(records whose subjects consented to model development for their source, loan
outcomes included; a service's token in ``CREDITSCORE_TOKEN``), replayed through
the feature engine at each loan application one subject at a time as the export
streams (memory: one subject's records and one row group). Or, with ``--simulate N``, from the
simulator (``creditscore train --simulate N`` trains on the same rows). Subject ids
are pseudonymised; rows are written a row group at a time."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from creditscore.runtime import CallError

from .training_parquet import Pseudonyms, TrainingParquetWriter
from .training_source import SuiteTrainingExport, training_matrix_chunks

__all__ = ["main"]

DEFAULT_ROWS_PER_GROUP = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="creditscore export-training",
        description="Write the point-in-time training matrix (features, outcome, as-of time, pseudonymous "
        "subject key) as a Parquet file, from the running suite or the simulator.",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the Parquet file to write, e.g. training.parquet")
    parser.add_argument("--ingest", default="localhost:50052", metavar="HOST:PORT",
                        help="the ingest service to export from (default localhost:50052)")
    parser.add_argument("--simulate", type=int, metavar="N", help="export N simulated subjects instead")
    parser.add_argument("--seed", type=int, default=7, help="--simulate: the simulator's seed (default 7)")
    parser.add_argument("--rows-per-group", type=int, default=DEFAULT_ROWS_PER_GROUP, metavar="N",
                        help=f"rows per Parquet row group (default {DEFAULT_ROWS_PER_GROUP})")
    parser.add_argument("--pseudonym-key-file", metavar="FILE",
                        help="subject keys under this key (at least 16 bytes), the same in every export made "
                        "with it; default: a random key per export, not kept")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the suite's export may take")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        parser.error(f"{out} exists (use --force to overwrite it)")
    if args.rows_per_group < 1:
        parser.error("--rows-per-group must be at least 1")
    if args.simulate is not None and args.simulate < 1:
        parser.error("--simulate needs at least 1 subject")
    try:
        pseudonyms = Pseudonyms.random()
        if args.pseudonym_key_file:
            pseudonyms = Pseudonyms.keyed(Path(args.pseudonym_key_file).read_bytes())
    except (OSError, ValueError) as exc:
        parser.error(f"--pseudonym-key-file: {exc}")

    try:
        if args.simulate is not None:
            written, counts = _export_simulated(args, out, pseudonyms)
        else:
            written, counts = asyncio.run(_export_suite(args, out, pseudonyms))
    except CallError as exc:
        print(f"creditscore export-training: the ingest service's export failed: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"creditscore export-training: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {written.rows} rows ({counts}), {written.row_groups} row groups")
    return 0


def _log(args: argparse.Namespace, writer: TrainingParquetWriter) -> None:
    if not args.quiet:
        print(f"  {writer.rows} rows written", file=sys.stderr, flush=True)


def _export_simulated(
    args: argparse.Namespace, out: Path, pseudonyms: Pseudonyms
) -> tuple[TrainingParquetWriter, str]:
    from creditscore.sim import simulate

    population = simulate(args.simulate, seed=args.seed)
    source = f"the creditscore simulator (creditscore.sim.simulate): {args.simulate} subjects, seed {args.seed}"
    with TrainingParquetWriter(out, source=source, pseudonyms=pseudonyms) as writer:
        for chunk in training_matrix_chunks(population.records, population.outcomes, rows=args.rows_per_group):
            writer.write(chunk)
            _log(args, writer)
    return writer, f"{len(population.records)} records, {len(population.outcomes)} loan outcomes"


async def _export_suite(
    args: argparse.Namespace, out: Path, pseudonyms: Pseudonyms
) -> tuple[TrainingParquetWriter, str]:
    export = SuiteTrainingExport(args.ingest, timeout=args.timeout)
    # The counts are known only at the end; the metadata says where the rows came from.
    source = (f"the suite: IngestService.ExportTrainingRecords at {args.ingest} "
              "(records consented to for model development only)")
    with TrainingParquetWriter(out, source=source, pseudonyms=pseudonyms) as writer:
        async for chunk in export.matrix_chunks(rows=args.rows_per_group):
            writer.write(chunk)
            _log(args, writer)
    return writer, (f"{export.records} records, {export.outcomes} loan outcomes; "
                    f"{export.skipped_without_consent} records without model-development consent left out")
