"""Hostile input, with credentials: generated requests to every RPC of every
service of the running suite, and what came back.

``python -m bench.hostile [--quick] [--requests N] [--seed S] [--db sqlite|postgres]``

The five services run as ``creditscore run`` runs them (``creditscore.cli.run``):
separate processes, authentication required everywhere, each with its own store
(a SQLite file in a temporary folder, or with ``--db postgres`` a database of its
own on the server ``--postgres-url`` names, default ``$TEST_POSTGRES_URL``,
dropped afterwards). The limits that would answer in place of the handlers are
raised out of the way (a partner's lookups, IssueToken per peer and per client);
the limiters still run. A simulated population (``--subjects``, 40 by default) is
signed up and ingested as the demo does it, the demo partner registered and
authorized, and tokens of every kind obtained: the operator's (a service token),
each producer's, the partner's, a dozen subjects' own.

Then (``bench._hostile``):

1. ``--requests`` generated requests (100,000 by default, ``--quick`` 10,000),
   round robin over every method of every service the contracts declare (client
   and server streaming included), ``--in-flight`` at a time, each with a
   deadline of ``--deadline`` seconds; three in four with a token of a kind the
   method's policy allows, the rest with another kind, no token or a forged one.
   A token that a request revoked (hostile requests revoke tokens, rotate
   secrets, close accounts) is renewed, or its caller replaced, and the run goes on;
2. per method, one request beyond the servers' largest message
   (``GRPC_MAX_MESSAGE_BYTES``, 8 MiB): RESOURCE_EXHAUSTED expected;
3. per repeated field of each request type, one request with 10,000 items;
4. deep nesting: the message types that can contain themselves (none today:
   printed), and on the wire a request carrying an unknown field of 200 nested
   groups and one of 100,000 nested groups: refused or ignored, not a crash.

Every answer is classified by status code per method. The run fails (exit 1,
no RESULT line) on any INTERNAL or UNKNOWN, any call that did not end within
its deadline plus ``--margin`` seconds (a hang), any service process that
exited, or any service not SERVING on the health service at the end. Ends with
``RESULT hostile requests=N rpcs=K internal=0 unknown=0 crashes=0 hangs=0 ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from bench._common import BENCH_ENV, code_version, describe_machine, result_line
from bench._hostile import (
    Campaign,
    Generator,
    Identity,
    Outcome,
    Rpc,
    Tally,
    every_rpc,
    oversized_request,
    prepare_world,
    recursive_types,
    wide_request,
)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
WIDE_ITEMS = 10_000
#: Limits raised so that generated requests reach the handlers, not the limiter.
ENV = {**BENCH_ENV, "TOKEN_RATE_PER_PEER": "1000000", "TOKEN_BURST_PER_PEER": "1000000",
       "TOKEN_RATE_PER_CLIENT": "1000000", "TOKEN_BURST_PER_CLIENT": "1000000"}


class Failed(RuntimeError):
    """The run found an INTERNAL, UNKNOWN, hang or crash: no figure."""


def nested_groups(depth: int) -> bytes:
    """An unknown field (number 1000) of ``depth`` nested groups, on the wire."""
    start = bytes([0xC3, 0x3E])  # (1000 << 3) | 3, varint
    end = bytes([0xC4, 0x3E])  # (1000 << 3) | 4
    return start * depth + end * depth


def open_channel(addr: str) -> grpc.aio.Channel:
    """A channel that sends and receives any size (the servers' limit is what is tested)."""
    return grpc.aio.insecure_channel(addr, options=[
        ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
        ("grpc.so_reuseport", 0)])


async def probes(campaign: Campaign, rpcs: list[Rpc], gen: Generator, tally: Tally) -> dict[str, Counter[str]]:
    """Oversized, 10k-item and deeply nested requests, each with a right-kind token."""
    seen: dict[str, Counter[str]] = {"oversized": Counter(), "wide": Counter(), "nested": Counter()}

    def record(what: str, outcome: Outcome, note: str) -> None:
        outcome.note = note
        tally.add(outcome)
        seen[what][outcome.code] += 1

    for rpc in rpcs:
        identity: Identity = campaign.right_identity(gen.rng, rpc)
        big = oversized_request(rpc.input, MAX_MESSAGE_BYTES)
        if big is not None:
            record("oversized", await campaign.call(rpc, [big] if rpc.client_streaming else big, identity,
                                                    deadline=10.0), f"{len(big)} bytes")
        for name, wide in wide_request(gen, rpc.input, WIDE_ITEMS):
            record("wide", await campaign.call(rpc, [wide] if rpc.client_streaming else wide, identity,
                                               deadline=10.0), f"{name}: {WIDE_ITEMS} items, {len(wide)} bytes")
        for depth in (200, 100_000):
            base = gen.plausible(rpc.input).SerializeToString() + nested_groups(depth)
            record("nested", await campaign.call(rpc, [base] if rpc.client_streaming else base, identity,
                                                 deadline=10.0), f"{depth} nested groups")
    return seen


async def all_serving(suite: Any) -> list[str]:
    """The services that do not answer SERVING for their own service name."""
    from creditscore.cli.run import READY_SERVICE
    from creditscore.runtime import health_status

    bad = []
    for package, name in READY_SERVICE.items():
        async with grpc.aio.insecure_channel(suite.addr(package)) as channel:
            try:
                if not await health_status(channel, name, timeout=5.0):
                    bad.append(package)
            except grpc.aio.AioRpcError as exc:
                bad.append(f"{package} ({exc.code().name})")
    return bad


async def main_async(args: argparse.Namespace) -> int:
    from bench.population import create_pg_databases, drop_pg_databases
    from creditscore.cli.run import start_suite, wait_serving

    if args.db == "postgres" and not args.postgres_url:
        print("--db postgres needs --postgres-url (or TEST_POSTGRES_URL)", file=sys.stderr)
        return 2
    print(describe_machine())
    print(code_version())
    rpcs = every_rpc()
    services = sorted({r.method.containing_service.full_name for r in rpcs})
    streaming = [r.short for r in rpcs if r.client_streaming or r.server_streaming]
    print(f"{len(rpcs)} RPCs of {len(services)} services, from the contracts' descriptors "
          f"(streaming: {', '.join(streaming) or 'none'})")
    recursive = recursive_types(rpcs)
    print("message types that can contain themselves: " + (", ".join(recursive) or
          "none (no request can nest deeper than its schema; deep nesting is sent as unknown groups)"))

    data_dir = Path(tempfile.mkdtemp(prefix="hostile-"))
    tag = uuid.uuid4().hex[:8]
    urls: dict[str, str] = {}
    if args.db == "postgres":
        urls = await create_pg_databases(args.postgres_url, tag)
    database_urls = {s: u.replace("postgresql://", "postgresql+asyncpg://", 1) for s, u in urls.items()}
    suite = start_suite(data_dir, 0, env=ENV, database_urls=database_urls or None)
    channels: dict[str, grpc.aio.Channel] = {}
    failed: str | None = None
    crashed: list[str] = []

    def alive() -> None:
        for name, proc in suite.procs.items():
            if proc.poll() is not None and name not in crashed:
                crashed.append(name)
        if crashed:
            raise Failed(f"service process(es) exited: {', '.join(crashed)} (logs in {data_dir / 'logs'})")

    try:
        await wait_serving(suite, timeout=120)
        t0 = time.perf_counter()
        world = await prepare_world(suite, args.subjects, args.seed)
        print(f"suite SERVING on {args.db}; {world.subjects} subjects and {world.records} records loaded, "
              f"tokens: {', '.join(f'{k} x{len(v)}' for k, v in sorted(world.credentials.by_kind.items()))} "
              f"({time.perf_counter() - t0:.1f} s)")
        channels = {package: open_channel(suite.addr(package)) for package in suite.ports}
        campaign = Campaign(channels, world.credentials, world.policy, deadline=args.deadline,
                            margin=args.margin, seeds=world.seeds)
        gen = Generator(random.Random(args.seed), world.pools)
        tally = Tally()
        t0 = time.perf_counter()
        await campaign.run(rpcs, args.requests, gen, tally, in_flight=args.in_flight, alive=alive,
                           progress=lambda n: print(f"  {n:,} sent ({time.perf_counter() - t0:.0f} s)",
                                                    flush=True) if n % 10_000 == 0 else None)
        seconds = time.perf_counter() - t0
        generated = tally.sent
        alive()

        t1 = time.perf_counter()
        seen = await probes(campaign, rpcs, gen, tally)
        probe_seconds = time.perf_counter() - t1
        alive()
        not_serving = await all_serving(suite)

        total = tally.total
        print(f"\n{generated:,} generated requests in {seconds:.1f} s ({generated / seconds:,.0f}/s), "
              f"{args.in_flight} in flight, deadline {args.deadline:g} s each (+{args.margin:g} s before a call "
              f"counts as a hang); slowest call {tally.slowest:.2f} s; the sending loop at most "
              f"{tally.loop_lag:.2f} s late; "
              f"tokens renewed {world.credentials.renewed}"
              f" (renewals that failed: {len(world.credentials.renew_failures)}"
              f"{': ' + ', '.join(world.credentials.renew_failures[:5]) if world.credentials.renew_failures else ''})")
        print("status codes, all calls: " + ", ".join(f"{k} {v:,}" for k, v in total.most_common()))
        print("by token kind: " + "; ".join(
            f"{kind}: " + ", ".join(f"{code} {n:,}" for (k, code), n in sorted(tally.by_kind.items()) if k == kind)
            for kind in world.credentials.kinds))
        print(f"\nper RPC ({len(tally.codes)} reached), calls past authentication / all, and the codes:")
        for rpc in rpcs:
            codes = tally.codes.get(rpc.short, Counter())
            print(f"  {rpc.short:<48} {tally.past_auth[rpc.short]:>6,} / {sum(codes.values()):>6,}  "
                  + ", ".join(f"{k} {v}" for k, v in codes.most_common()))
        print(f"\nprobes ({probe_seconds:.1f} s): oversized (> {MAX_MESSAGE_BYTES:,} bytes) "
              f"{dict(seen['oversized'])}; {WIDE_ITEMS:,}-item repeated fields {dict(seen['wide'])}; "
              f"nested unknown groups {dict(seen['nested'])}")
        unreached = [r.short for r in rpcs if tally.past_auth[r.short] == 0]
        if unreached:
            print(f"RPCs never past authentication: {', '.join(unreached)}")
        print(f"services SERVING at the end: {len(suite.ports) - len(not_serving)} of {len(suite.ports)}")

        renew_errors = Counter(world.credentials.renew_errors)
        internal = tally.count("INTERNAL") + renew_errors["INTERNAL"]
        unknown = tally.count("UNKNOWN") + renew_errors["UNKNOWN"]
        problems = []
        if internal or unknown or tally.hangs:
            problems.append(f"INTERNAL {internal}, UNKNOWN {unknown}, hangs {tally.hangs}")
            for outcome in tally.failures[:30]:
                print(f"  FAIL {outcome.rpc} [{outcome.kind}] {outcome.code} {outcome.reason} "
                      f"{outcome.seconds:.2f} s: {outcome.note}")
        if not_serving:
            problems.append(f"not SERVING at the end: {', '.join(not_serving)}")
        if problems:
            raise Failed("; ".join(problems) + f" (service logs in {data_dir / 'logs'})")
        print(result_line("hostile", {
            "requests": generated, "rpcs": len(rpcs), "internal": internal, "unknown": unknown,
            "crashes": len(crashed), "hangs": tally.hangs, "probes": sum(sum(c.values()) for c in seen.values()),
            "ok": total["OK"], "invalid_argument": total["INVALID_ARGUMENT"],
            "past_auth": sum(tally.past_auth.values()), "per_s": generated / seconds,
            "slowest_s": tally.slowest, "loop_lag_s": tally.loop_lag, "db": args.db,
        }))
        return 0
    except Failed as exc:
        failed = str(exc)
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        for channel in channels.values():
            await channel.close()
        suite.stop()
        if urls:
            await drop_pg_databases(args.postgres_url, urls)
        if failed is None and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 requests instead of 100,000")
    parser.add_argument("--requests", type=int, default=None, help="generated requests (default 100,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--deadline", type=float, default=3.0, help="seconds, each call's deadline")
    parser.add_argument("--margin", type=float, default=5.0,
                        help="seconds past the deadline after which a call counts as a hang")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", ""))
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs, stores)")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 10_000 if args.quick else 100_000
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
