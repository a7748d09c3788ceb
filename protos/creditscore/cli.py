"""The ``creditscore`` command.

    creditscore run        the whole suite on SQLite with a simulated population,
                           ending in score lookups through the gateway; serves until Ctrl-C
    creditscore simulate   a simulated population: summary, or records as JSON lines
    creditscore train      train a scorecard (see ``creditscore train --help``)
    creditscore score      score every row of a CSV with a scorecard (``--help``)
    creditscore lookup     one partner lookup through a running gateway (score or threshold)
    creditscore token      a token for client credentials, from the consent service
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
    parser = argparse.ArgumentParser(
        prog="creditscore lookup",
        description="Look one subject up through the gateway, as a partner: its token in "
                    "CREDITSCORE_TOKEN (or --token), within the subject's authorization.")
    parser.add_argument("subject_id")
    parser.add_argument("--gateway", default="127.0.0.1:50050")
    parser.add_argument("--purpose", default="CREDIT_APPLICATION",
                        help="ACCESS_PURPOSE_... without the prefix (default CREDIT_APPLICATION)")
    parser.add_argument("--threshold", type=int, default=None,
                        help="ask only whether the score meets this threshold (350-950)")
    parser.add_argument("--transaction-id", default="", help="default: a fresh one")
    parser.add_argument("--token", default=None, help="the partner's token (default CREDITSCORE_TOKEN)")
    args = parser.parse_args(argv)
    from creditscore.common.v1 import common_pb2
    from creditscore.demo import lookups, threshold_checks

    name = "ACCESS_PURPOSE_" + args.purpose.upper().removeprefix("ACCESS_PURPOSE_")
    if name not in common_pb2.AccessPurpose.keys():
        parser.error(f"unknown purpose {args.purpose!r}")
    purpose = common_pb2.AccessPurpose.Value(name)
    if args.threshold is not None:
        answers = asyncio.run(threshold_checks(args.gateway, [args.subject_id], args.threshold,
                                               token=args.token, purpose=purpose))
        return 0 if answers else 1
    results = asyncio.run(lookups(args.gateway, [args.subject_id], token=args.token, purpose=purpose,
                                  transaction_ids=[args.transaction_id] if args.transaction_id else None))
    return 0 if results else 1


def _token(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="creditscore token",
        description="Print a token for client credentials (a partner's, a producer's or a "
                    "service's), from the consent service's IssueToken: "
                    "export CREDITSCORE_TOKEN=$(creditscore token --client-id ... --client-secret ...)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", default=None,
                        help="default: the CREDITSCORE_CLIENT_SECRET environment variable")
    parser.add_argument("--consent", default="127.0.0.1:50051", help="consent service host:port")
    args = parser.parse_args(argv)
    import os

    import grpc

    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.runtime import CallError, TlsSettings, create_channel, from_env

    secret = args.client_secret or os.environ.get("CREDITSCORE_CLIENT_SECRET", "")

    async def issue() -> int:
        # IssueToken takes no token: the credentials are the request.
        async with create_channel(args.consent, tls=from_env(TlsSettings)) as channel:
            try:
                reply = await consent_pb2_grpc.ConsentServiceStub(channel).IssueToken(
                    consent_pb2.IssueTokenRequest(client_id=args.client_id, client_secret=secret), timeout=10)
            except grpc.aio.AioRpcError as exc:
                print(f"creditscore token: {CallError.from_rpc_error(exc)}", file=sys.stderr)
                return 1
        print(reply.token)
        return 0

    return asyncio.run(issue())


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
    if command == "token":
        return _token(rest)
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
