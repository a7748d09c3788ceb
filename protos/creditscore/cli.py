"""The ``creditscore`` command.

    creditscore run        the whole suite on SQLite with a simulated population,
                           ending in score lookups through the gateway; serves until Ctrl-C
    creditscore simulate   a simulated population: summary, or records as JSON lines
    creditscore train      train a scorecard (see ``creditscore train --help``)
    creditscore score      score every row of a CSV with a scorecard (``--help``)
    creditscore lookup     one partner lookup through a running gateway (score or threshold)
    creditscore token      a token for client credentials (--credentials FILE), from the consent
                           service or the gateway's relay
    creditscore revoke     an operator's revocation: one token, a client's or a subject's tokens,
                           or a whole client
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
        description="Print a token for client credentials (a partner's, a producer's, a subject's or a "
                    "service's): export CREDITSCORE_TOKEN=$(creditscore token --credentials FILE). "
                    "By default from the consent service's IssueToken; with --gateway from the gateway's "
                    "public relay (TokenService), as callers outside the cluster get theirs.")
    parser.add_argument("--credentials", default=None,
                        help="a JSON file with client_id and client_secret (make run keeps them in var/demo/keys/)")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--client-secret", default=None,
                        help="default: the CREDITSCORE_CLIENT_SECRET environment variable")
    parser.add_argument("--consent", default="127.0.0.1:50051", help="consent service host:port")
    parser.add_argument("--gateway", default=None, help="ask the gateway's TokenService at host:port instead")
    args = parser.parse_args(argv)
    import json
    import os
    from pathlib import Path

    import grpc

    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.gateway.v1 import subject_pb2, subject_pb2_grpc
    from creditscore.runtime import CallError, TlsSettings, create_channel, from_env

    client_id, secret = args.client_id, args.client_secret
    if args.credentials:
        try:
            held = json.loads(Path(args.credentials).read_text())
            client_id = client_id or held["client_id"]
            secret = secret or held["client_secret"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--credentials {args.credentials}: not a JSON file with client_id and client_secret ({exc})")
    secret = secret or os.environ.get("CREDITSCORE_CLIENT_SECRET", "")
    if not client_id or not secret:
        parser.error("give --credentials FILE, or --client-id and --client-secret (or CREDITSCORE_CLIENT_SECRET)")

    async def issue() -> int:
        # IssueToken takes no token: the credentials are the request.
        target = args.gateway or args.consent
        async with create_channel(target, tls=from_env(TlsSettings)) as channel:
            try:
                if args.gateway:
                    reply = await subject_pb2_grpc.TokenServiceStub(channel).IssueToken(
                        subject_pb2.IssueTokenRequest(client_id=client_id, client_secret=secret), timeout=10)
                else:
                    reply = await consent_pb2_grpc.ConsentServiceStub(channel).IssueToken(
                        consent_pb2.IssueTokenRequest(client_id=client_id, client_secret=secret), timeout=10)
            except grpc.aio.AioRpcError as exc:
                err = CallError.from_rpc_error(exc)
                wait = f" (retry after {err.retry_after:.1f}s)" if err.retry_after else ""
                print(f"creditscore token: {err}{wait}", file=sys.stderr)
                return 1
        print(reply.token)
        return 0

    return asyncio.run(issue())


def _revoke(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="creditscore revoke",
        description="An operator's revocation, through the consent service, with a service token in "
                    "CREDITSCORE_TOKEN. Every service refuses what it revokes within about "
                    "REVOCATION_POLL_SECONDS (1 s) plus one poll.")
    parser.add_argument("what", choices=("token", "client-tokens", "subject-tokens", "client"),
                        help="token: one token by its id (jti); client-tokens / subject-tokens: every token "
                             "issued so far to a client or a subject; client: a partner or producer whose "
                             "contract ended (its tokens and any new sign-in)")
    parser.add_argument("id", help="the token id, client id or subject id")
    parser.add_argument("--note", default="", help="why (kept with the revocation)")
    parser.add_argument("--request-id", default="", help="idempotency key (default: a fresh one)")
    parser.add_argument("--consent", default="127.0.0.1:50051", help="consent service host:port")
    args = parser.parse_args(argv)
    import uuid

    import grpc

    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.runtime import CallError, tool_channel

    request_id = args.request_id or f"revoke-{uuid.uuid4().hex}"

    async def revoke() -> int:
        async with tool_channel(args.consent) as channel:
            stub = consent_pb2_grpc.ConsentServiceStub(channel)
            try:
                if args.what == "token":
                    reply = await stub.RevokeToken(consent_pb2.RevokeTokenRequest(
                        request_id=request_id, token_id=args.id, note=args.note), timeout=10)
                elif args.what == "client":
                    reply = await stub.RevokeClient(consent_pb2.RevokeClientRequest(
                        request_id=request_id, client_id=args.id, note=args.note), timeout=10)
                else:
                    whose = {"client_id": args.id} if args.what == "client-tokens" else {"subject_id": args.id}
                    reply = await stub.RevokeTokens(consent_pb2.RevokeTokensRequest(
                        request_id=request_id, note=args.note, **whose), timeout=10)
            except grpc.aio.AioRpcError as exc:
                print(f"creditscore revoke: {CallError.from_rpc_error(exc)}", file=sys.stderr)
                return 1
        r = reply.revocation
        print(f"revoked ({consent_pb2.RevocationKind.Name(r.kind)} {r.key}, sequence {r.sequence}, "
              f"generation {r.generation}); listed until {r.expire_time.ToDatetime():%Y-%m-%d %H:%M:%S} UTC")
        return 0

    return asyncio.run(revoke())


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
    if command == "revoke":
        return _revoke(rest)
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
