"""``creditscore simulate``: a simulated population, summarized or written as JSON lines.

The population is made and written a chunk of subjects at a time (``creditscore.sim.stream``),
so memory stays flat however many subjects are asked for."""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="creditscore simulate",
                                     description="Simulate a population, deterministic by seed.")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=500, metavar="N",
                        help="subjects made and written at a time (default 500; the records do not depend on it)")
    parser.add_argument("--out", help="write every record and outcome as JSON lines to this file: chunk after "
                                      "chunk of subjects, within a chunk by producer, then event time")
    args = parser.parse_args(argv)
    if args.subjects < 0 or args.chunk < 1:
        parser.error("--subjects must not be negative and --chunk must be at least 1")
    import contextlib
    from collections import Counter

    from google.protobuf import json_format

    from creditscore.records.v1 import records_pb2
    from creditscore.sim import DEFAULT_AS_OF, stream

    kinds: Counter[str] = Counter()
    outcomes = bad = 0
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open(args.out, "w")) if args.out else None
        for chunk in stream(args.subjects, seed=args.seed, chunk_size=args.chunk):
            kinds.update(r.WhichOneof("body") or "" for r in chunk.records)
            outcomes += len(chunk.outcomes)
            bad += sum(1 for o in chunk.outcomes if o.loan_outcome.label == records_pb2.LOAN_OUTCOME_LABEL_BAD)
            if fh is not None:
                for producer, records in sorted(chunk.by_producer().items()):
                    for record in records:
                        body = json_format.MessageToJson(record, indent=None)
                        fh.write(f'{{"producer_id": "{producer}", "record": {body}}}\n')
            del chunk  # else it lives on while the next one is made: two chunks at once
    print(f"{args.subjects} subjects as of {DEFAULT_AS_OF:%Y-%m-%d}, seed {args.seed}")
    print("records: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if outcomes:
        print(f"loan outcomes: {outcomes}, bad rate {bad / outcomes:.1%}")
    if args.out:
        print(f"wrote {args.out}")
    return 0
