"""``creditscore token``: a token for client credentials, from the consent service or the
gateway's public relay."""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
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
            reply: subject_pb2.IssueTokenResponse | consent_pb2.IssueTokenResponse
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
