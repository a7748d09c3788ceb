"""``creditscore lookup``: one partner lookup through a running gateway (score or threshold)."""

from __future__ import annotations

import argparse
import asyncio

__all__ = ["main"]


def main(argv: list[str]) -> int:
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
    from creditscore.cli.run import lookups, threshold_checks
    from creditscore.common.v1 import common_pb2

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
