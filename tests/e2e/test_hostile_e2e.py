"""A fast share of ``python -m bench.hostile`` through the whole suite in one
process: generated requests (fixed seed) to every RPC of every service, with
tokens of every kind, and the probes for undecodable requests; no answer
INTERNAL or UNKNOWN, every call ended within its deadline, every service still
SERVING."""

from __future__ import annotations

import random

import grpc

from bench._hostile import Campaign, Generator, Tally, every_rpc, prepare_world
from creditscore.cli.run import READY_SERVICE
from creditscore.runtime import health_status

REQUESTS = 1500
#: As the benchmark runs the suite: the limits that would answer in place of the
#: handlers raised out of the way.
ENV = {"PARTNER_LOOKUP_RATE": "1000000", "PARTNER_LOOKUP_BURST": "1000000", "TOKEN_RATE_PER_PEER": "1000000",
       "TOKEN_BURST_PER_PEER": "1000000", "TOKEN_RATE_PER_CLIENT": "1000000", "TOKEN_BURST_PER_CLIENT": "1000000"}
NESTED = bytes([0xC3, 0x3E]) * 200 + bytes([0xC4, 0x3E]) * 200


async def test_generated_requests_to_every_rpc_get_clear_answers_in_time(suite_factory) -> None:
    running = await suite_factory(**ENV)
    suite = running.suite
    world = await prepare_world(suite, 8, seed=3, n_subject_tokens=4)
    channels = {p: grpc.aio.insecure_channel(suite.addr(p), options=[("grpc.max_send_message_length", -1)])
                for p in suite.ports}
    try:
        campaign = Campaign(channels, world.credentials, world.policy, deadline=5.0, margin=5.0, seeds=world.seeds)
        gen = Generator(random.Random(11), world.pools, huge=1 << 16, many=50)
        rpcs = every_rpc()
        tally = Tally()
        await campaign.run(rpcs, REQUESTS, gen, tally, in_flight=8)
        for rpc in rpcs:  # a request that does not parse, with the right token
            for _ in range(3):
                # A generated request may have revoked that token (RevokeClient, RevokeTokens,
                # a secret rotated) and the revocation reached the service since: ``call``
                # renews it, and the probe goes again with a live one.
                outcome = await campaign.call(rpc, [NESTED] if rpc.client_streaming else NESTED,
                                              campaign.right_identity(gen.rng, rpc))
                if outcome.reason not in ("TOKEN_REVOKED", "TOKEN_EXPIRED"):
                    break
            assert (outcome.code, outcome.reason) == ("INVALID_ARGUMENT", "MALFORMED_REQUEST"), outcome
            tally.add(outcome)

        assert tally.sent == REQUESTS + len(rpcs)
        assert set(tally.codes) == {r.short for r in rpcs}  # every RPC was called
        # No INTERNAL, UNKNOWN or hang.
        assert not tally.failures, [(f.rpc, f.kind, f.code, f.reason, f.note[:160]) for f in tally.failures]
        assert tally.count("OK") > 0 and sum(tally.past_auth.values()) > REQUESTS // 2
        for package, name in READY_SERVICE.items():
            assert await health_status(channels[package], name, timeout=5.0), package
    finally:
        for channel in channels.values():
            await channel.close()
