"""``creditscore revoke``: an operator's revocation (one token, a client's or a subject's
tokens, a whole client), through the consent service."""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
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
            reply: consent_pb2.RevokeTokenResponse | consent_pb2.RevokeClientResponse | consent_pb2.RevokeTokensResponse
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
