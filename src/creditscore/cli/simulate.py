"""``creditscore simulate``: a simulated population, summarized or written as JSON lines."""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(argv: list[str]) -> int:
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
                    body = json_format.MessageToJson(record, indent=None)
                    fh.write(f'{{"producer_id": "{producer}", "record": {body}}}\n')
        print(f"wrote {args.out}")
    return 0
