"""What each hop of a lookup costs, alone: the CPU a downstream service spends on
one call of the lookup's batched RPCs, at 1, 8 and 32 items, against a health
check through the same server.

``python -m bench.lookup_hops [--quick]``

The suite runs as ``creditscore run`` runs it (``creditscore.cli.run``): five
processes on SQLite files in a temporary folder, authentication required. A
simulated population (``--subjects``, default 100) is loaded and a partner
authorized, as ``bench.lookup`` does. Then, one call at a time from this process,
with the gateway's own service token:

- ``Health/Check`` on each service (the floor of a call through that server:
  its interceptors, no work);
- ``FeatureService.GetCurrentScores`` (the lookup's first call: the subjects'
  materialized scores), ``FeatureService.GetFeatureVectors`` and
  ``ScoringService.ScoreBatch`` (the two calls it replaced, still made for a
  lookup whose sources lost consent), and ``ConsentService.RecordAccesses`` (the
  lookup's second call), with 1, 8 and 32 items (subjects in turn; new
  transaction ids, so every access is written);
- ``CreditScoreService.GetCreditScore`` as the partner (a whole lookup of one).

For each: wall time per call and the CPU time of the called service's process
per call (from ``/proc``; it includes whatever the process does meanwhile in the
background, which is little once the population is applied). A call of n items
costs about ``fixed + n * per_item``; both are printed, from the 1- and 32-item
calls.

Ends with one ``RESULT lookup_hops ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench._common import BENCH_ENV, code_version, describe_machine, result_line
from bench.lookup import _cpu_seconds, tracing_state

SIZES = (1, 8, 32)


async def _measure(call: Callable[[int], Awaitable[object]], pid: int, calls: int) -> tuple[float, float]:
    """(wall ms per call, CPU ms of ``pid`` per call) over ``calls`` sequential calls,
    after a warm-up."""
    for i in range(min(20, calls)):
        await call(-1 - i)
    cpu0 = _cpu_seconds([pid])
    t0 = time.perf_counter()
    for i in range(calls):
        await call(i)
    wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds([pid])
    if cpu0 is None or cpu1 is None:
        return wall / calls * 1000, float("nan")
    return wall / calls * 1000, (cpu1[pid] - cpu0[pid]) / calls * 1000


async def run(args: argparse.Namespace) -> dict[str, object]:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from creditscore.cli import run as demo
    from creditscore.common.v1 import common_pb2
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
    from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
    from creditscore.runtime import tool_channel
    from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

    print(describe_machine())
    print(code_version())
    print(f"tracing: {tracing_state()}; {args.calls} sequential calls per line, one client process")
    workdir = Path(tempfile.mkdtemp(prefix="bench-hops-"))
    figures: dict[str, object] = {"subjects": args.subjects, "calls": args.calls, "tracing": tracing_state()}
    # One partner drives the whole load: its lookup limit (PARTNER_LOOKUP_RATE, 500/s
    # by default) is raised out of the way, and still checked on every lookup.
    suite = demo.start_suite(workdir / "suite", 0, env=BENCH_ENV)
    channels = []
    try:
        await demo.wait_serving(suite)
        population, report = await demo.load_population(suite, args.subjects, args.seed)
        await demo.wait_features(suite, population, report.accepted_for_features)
        ids = [s.subject_id for s in population.subjects]
        partner = await demo.register_partner(suite, ids)
        assert suite.auth is not None
        token = await demo.issue_token(suite.addr("consent_service"), "gateway", suite.auth.secrets["gateway"])
        pid = {name: proc.pid for name, proc in suite.procs.items()}
        run_id = uuid.uuid4().hex[:8]

        def channel(package: str, with_token: str):
            ch = tool_channel(suite.addr(package), with_token)
            channels.append(ch)
            return ch

        def line(what: str, service: str, wall: float, cpu: float) -> None:
            print(f"  {what:<34} wall {wall:6.2f} ms/call   {service} CPU {cpu:6.2f} ms/call")

        print("health check through each server (the floor of a call):")
        for service in ("gateway", "consent_service", "feature_service", "scoring_service"):
            health = health_pb2_grpc.HealthStub(channel(service, token))
            request = health_pb2.HealthCheckRequest()
            wall, cpu = await _measure(lambda _i, h=health, r=request: h.Check(r, timeout=10),
                                       pid[service], args.calls)
            line(f"Health/Check on {service}", service, wall, cpu)
            figures[f"health_cpu_ms_{service.removesuffix('_service')}"] = cpu

        features = feature_pb2_grpc.FeatureServiceStub(channel("feature_service", token))
        scoring = scoring_pb2_grpc.ScoringServiceStub(channel("scoring_service", token))
        consent = consent_pb2_grpc.ConsentServiceStub(channel("consent_service", token))
        vectors = (await features.GetFeatureVectors(
            feature_pb2.GetFeatureVectorsRequest(subject_ids=ids[:max(SIZES)]), timeout=10)).feature_vectors
        answer = consent_pb2.AccessAnswer(threshold=consent_pb2.ThresholdAnswer(
            threshold=600, decision=common_pb2.THRESHOLD_DECISION_MEETS))

        print("the lookup's batched calls, by items per call:")
        for n in SIZES:
            def get_scores(i: int, n: int = n):
                return features.GetCurrentScores(feature_pb2.GetCurrentScoresRequest(
                    subject_ids=[ids[(i * n + j) % len(ids)] for j in range(n)]), timeout=10)

            def get_vectors(i: int, n: int = n):
                return features.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(
                    subject_ids=[ids[(i * n + j) % len(ids)] for j in range(n)]), timeout=10)

            score_request = scoring_pb2.ScoreBatchRequest(items=[
                scoring_pb2.ScoreFeaturesRequest(subject_id=v.subject_id, features=v.features)
                for v in (vectors[j % len(vectors)] for j in range(n))
            ])

            def score(_i: int, request=score_request):
                return scoring.ScoreBatch(request, timeout=10)

            def record(i: int, n: int = n):
                return consent.RecordAccesses(consent_pb2.RecordAccessesRequest(accesses=[
                    consent_pb2.AccessToRecord(
                        subject_id=ids[(i * n + j) % len(ids)], partner_id=partner.partner_id,
                        purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                        transaction_id=f"hops-{run_id}-{n}-{i}-{j}", answer=answer, response=b"\0" * 64,
                        sources_used=[common_pb2.DATA_SOURCE_PAYMENTS])
                    for j in range(n)]), timeout=10)

            for rpc, service, call in (("GetCurrentScores", "feature_service", get_scores),
                                       ("GetFeatureVectors", "feature_service", get_vectors),
                                       ("ScoreBatch", "scoring_service", score),
                                       ("RecordAccesses", "consent_service", record)):
                wall, cpu = await _measure(call, pid[service], args.calls)
                line(f"{rpc} of {n}", service, wall, cpu)
                figures[f"{rpc}_cpu_ms_{n}"] = cpu
        for rpc, service in (("GetCurrentScores", "feature"), ("GetFeatureVectors", "feature"),
                             ("ScoreBatch", "scoring"),
                             ("RecordAccesses", "consent")):
            one, many = figures[f"{rpc}_cpu_ms_1"], figures[f"{rpc}_cpu_ms_{max(SIZES)}"]
            per_item = (many - one) / (max(SIZES) - 1)  # type: ignore[operator]
            fixed = one - per_item  # type: ignore[operator]
            print(f"  {rpc}: about {fixed:.2f} ms fixed + {per_item:.3f} ms per item "
                  f"(health check {figures[f'health_cpu_ms_{service}']:.2f} ms)")
            figures[f"{rpc}_fixed_ms"] = fixed
            figures[f"{rpc}_per_item_ms"] = per_item

        gateway = gateway_pb2_grpc.CreditScoreServiceStub(channel("gateway", partner.token))

        def lookup(i: int):
            return gateway.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                subject_id=ids[i % len(ids)], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                transaction_id=f"hops-{run_id}-g-{i}"), timeout=10)

        cpu0 = _cpu_seconds(list(pid.values()))
        wall, gateway_cpu = await _measure(lookup, pid["gateway"], args.calls)
        cpu1 = _cpu_seconds(list(pid.values()))
        print("a whole lookup, one at a time:")
        line("GetCreditScore (1 in flight)", "gateway", wall, gateway_cpu)
        figures["lookup_wall_ms"] = wall
        figures["lookup_gateway_cpu_ms"] = gateway_cpu
        if cpu0 and cpu1:
            total = sum(cpu1.values()) - sum(cpu0.values())
            # The warm-up's calls are inside the window too: count them.
            per_lookup = total / (args.calls + min(20, args.calls)) * 1000
            print(f"  all five services: {per_lookup:.2f} ms CPU per lookup")
            figures["lookup_cpu_ms"] = per_lookup
    finally:
        for ch in channels:
            await ch.close()
        suite.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lookup_hops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 subjects, 100 calls per line")
    parser.add_argument("--subjects", type=int, default=None, help="simulated subjects (default 100; quick 60)")
    parser.add_argument("--calls", type=int, default=None, help="calls per line (default 500; quick 100)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.subjects = args.subjects or (60 if args.quick else 100)
    args.calls = args.calls or (100 if args.quick else 500)
    figures = asyncio.run(run(args))
    print(result_line("lookup_hops", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
