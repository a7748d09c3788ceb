"""The ``creditscore`` command.

    creditscore run        the whole suite on SQLite with a simulated population,
                           ending in score lookups through the gateway; serves until Ctrl-C
    creditscore simulate   a simulated population: summary, or records as JSON lines
    creditscore train      train a scorecard (see ``creditscore train --help``)
    creditscore score      score every row of a CSV with a scorecard (``--help``)
    creditscore lookup     one score lookup through a running gateway
    creditscore models     list, show, activate, roll back scorecards; set the challenger; events
    creditscore drift      PSI of the score and each feature against the training population
"""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["main"]


def _simulate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="creditscore simulate",
                                     description="Simulate a population, deterministic by seed.")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="write every record and outcome as JSON lines to this file")
    args = parser.parse_args(argv)
    from collections import Counter

    from google.protobuf import json_format

    from creditscore.sim import simulate

    population = simulate(args.subjects, seed=args.seed)
    kinds = Counter(r.WhichOneof("body") for r in population.records)
    bad = sum(1 for o in population.outcomes if o.loan_outcome.label == 2)
    print(f"{len(population.subjects)} subjects as of {population.as_of:%Y-%m-%d}, seed {args.seed}")
    print("records: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if population.outcomes:
        print(f"loan outcomes: {len(population.outcomes)}, bad rate {bad / len(population.outcomes):.1%}")
    if args.out:
        with open(args.out, "w") as fh:
            for producer, records in sorted(population.by_producer().items()):
                for record in records:
                    fh.write('{"producer_id": "%s", "record": %s}\n' % (
                        producer, json_format.MessageToJson(record, indent=None)))
        print(f"wrote {args.out}")
    return 0


def _lookup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="creditscore lookup",
                                     description="Look one subject's score up through the gateway.")
    parser.add_argument("subject_id")
    parser.add_argument("--gateway", default="127.0.0.1:50050")
    args = parser.parse_args(argv)
    from creditscore.demo import lookups

    results = asyncio.run(lookups(args.gateway, [args.subject_id]))
    return 0 if results else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        from creditscore.demo import main as run_main

        return run_main(rest)
    if command == "simulate":
        return _simulate(rest)
    if command == "train":
        from scoring_service.training import main as train_main

        return int(train_main(rest) or 0)
    if command == "score":
        from scoring_service.tabular import main as score_main

        return int(score_main(rest) or 0)
    if command == "lookup":
        return _lookup(rest)
    if command == "models":
        from scoring_service.cli import models_main

        return models_main(rest)
    if command == "drift":
        from scoring_service.cli import drift_main

        return drift_main(rest)
    print(f"creditscore: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
