"""Lookup throughput and latency through the gateway, against a bare echo server
built from the same runtime; and whether a lookup's cost grows with the subject's
history.

``python -m bench.lookup [--quick]``

The suite runs as ``creditscore run`` runs it (``creditscore.cli.run``): the five
services as separate processes (``python -m <package>``) on SQLite files in a
temporary folder, on free ports of 127.0.0.1, authentication required
everywhere. A simulated population (``--quick``: 100 subjects; default 500) is
registered, consented, ingested through the ingest service and applied by the
feature service; a partner is registered and authorized by every subject.

Lookups: ``CreditScoreService/GetCreditScore`` as that partner (its token on
every call, purpose CREDIT_APPLICATION, a new transaction id per call, subjects
in turn), ``--calls`` calls at each of 1, 8, 32 and 64 calls in flight on one
channel from this one client process (each level also stops after
``--level-seconds``). Every call is the subject's current score (materialized by
the feature service) + the consent service's authorize-and-record (the
access-log entry committed before the answer); the gateway answers concurrent
lookups in batches (one call to each downstream per batch).

Pre-screen: ``BatchCheckCreditThreshold`` with 50 checks per call at 4 calls in
flight (200 checks in flight), reported as checks/s (each check answered, logged
and replayable as a single ``CheckCreditThreshold``).

Echo: a server built by the same ``create_server`` (the same interceptors:
metrics, tracing as configured, error mapping; no authentication, no database)
run as its own process (``python -m bench.lookup --serve-echo``), called on the
health service's ``Check`` at the same concurrencies, ``--echo-calls`` times
(default ten times ``--calls``, so that its clock runs about as long).
The ratio is lookups/s over echo calls/s at each concurrency.

History: two extra subjects, one with 10 payment records and one with 10,000,
ingested and applied like the others; their lookups one at a time, interleaved,
give a p50 each and the ratio (10,000 over 10; 1.0 = the lookup does not grow
with history).

CPU per call is the CPU time of the server processes (the five services, or
the echo server) during a level, over its calls, read from ``/proc``: it
includes whatever the services do in the background meanwhile (outbox
polling and such), which weighs most at 1 in flight; the
client's own CPU is printed too (one Python process drives every call: where
its CPU share nears 100%, the client, not the server, sets the pace).

Tracing is as the environment configures it (``OTEL_*``, read by every service
and by the echo server alike): on unless ``OTEL_SDK_DISABLED=true``.

Ends with one ``RESULT lookup ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import BENCH_ENV, code_version, describe_machine, result_line
from creditscore.runtime import ServerSettings

LEVELS = (1, 8, 32, 64)
HISTORY = (10, 10_000)
INGEST_BATCH = 1000


# -- the echo server ------------------------------------------------------------


@dataclass(frozen=True)
class EchoSettings:
    """The echo server's settings: only where it listens (``GRPC_*``)."""

    server: ServerSettings = field(default_factory=ServerSettings)


def _serve_echo() -> None:
    """``python -m bench.lookup --serve-echo``: a server from ``create_server`` with
    no service of its own; its health service (``Check``) is the echo."""
    from creditscore.runtime import create_server, run_main

    async def build(settings: EchoSettings, *, tracer_provider=None, meter_provider=None):
        return create_server([], settings.server, domain="bench.creditscore",
                             tracer_provider=tracer_provider, meter_provider=meter_provider)

    run_main("bench-echo", EchoSettings, build)


# -- measuring ------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> dict[int, float] | None:
    """User + system CPU seconds of each process of ``pids`` so far (Linux ``/proc``)."""
    out = {}
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, IndexError):
        return None
    return out


@dataclass
class Level:
    in_flight: int
    calls: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    client_cpu: float
    server_cpu: float | None
    cpu_by_pid: dict[int, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class WrongAnswer(RuntimeError):
    """A timed call failed or answered wrongly: the benchmark stops without a figure."""


async def drive(call: Callable[[int], Awaitable[object]], calls: int, in_flight: int,
                max_seconds: float, server_pids: list[int],
                check: Callable[[int, object], None] | None = None) -> Level:
    """``calls`` calls of ``call(i)``, ``in_flight`` at a time, stopping early after
    ``max_seconds``; latencies of every call. Every answer is checked with
    ``check(i, reply)`` (which raises on a wrong one); a failed call or a wrong
    answer stops the level with ``WrongAnswer``: no rate is ever computed over
    failed work."""
    import grpc

    latencies: list[float] = []
    issued = 0
    start = time.perf_counter()
    stop_at = start + max_seconds
    failure: list[str] = []

    async def worker() -> None:
        nonlocal issued
        while issued < calls and time.perf_counter() < stop_at and not failure:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                reply = await call(i)
            except grpc.aio.AioRpcError as exc:
                failure.append(f"call {i} failed: {exc.code().name} {exc.details()}")
                return
            latencies.append((time.perf_counter() - t0) * 1000)
            if check is not None:
                try:
                    check(i, reply)
                except Exception as exc:  # noqa: BLE001 - reported as the wrong answer it is
                    failure.append(f"call {i} answered wrongly: {exc}")
                    return

    cpu0, srv0 = time.process_time(), _cpu_seconds(server_pids)
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    if failure:
        raise WrongAnswer(failure[0])
    seconds = time.perf_counter() - start
    cpu1, srv1 = time.process_time(), _cpu_seconds(server_pids)
    by_pid = {pid: srv1[pid] - srv0[pid] for pid in server_pids} if srv0 and srv1 else {}
    server_cpu = sum(by_pid.values()) if by_pid else None
    return Level(in_flight, issued, seconds, latencies, 0, cpu1 - cpu0, server_cpu, by_pid)


def _describe(name: str, lv: Level) -> str:
    per_call = f"{lv.server_cpu / lv.calls * 1000:.2f} ms" if lv.server_cpu is not None else "unknown"
    return (f"  {name} {lv.in_flight:>2} in flight: {lv.calls} calls in {lv.seconds:.2f} s = {lv.rate:,.0f}/s, "
            f"p50 {lv.pct(0.5):.2f} ms, p99 {lv.pct(0.99):.2f} ms, every answer checked; "
            f"server CPU {per_call}/call, client CPU {lv.client_cpu / lv.seconds:.0%} of one core")


def tracing_state() -> str:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    return "on"


def _tracing_line() -> str:
    env = os.environ
    if tracing_state() == "off":
        return "tracing: off (OTEL_SDK_DISABLED=true): no spans, no metrics"
    exporter = env.get("OTEL_TRACES_EXPORTER") or (
        "otlp" if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        else "none")
    return (f"tracing: on (every service and the echo server record spans through the gRPC "
            f"OpenTelemetry interceptors; exporter {exporter}; set OTEL_SDK_DISABLED=true for off)")


# -- the history subjects -------------------------------------------------------


def _bills(subject_id: str, n: int, now: datetime):
    """``n`` paid-on-time monthly-style bills, one every 4 hours back from ``now``."""
    from creditscore.records.v1 import records_pb2

    out = []
    for k in range(n):
        due = now - timedelta(days=2) - timedelta(hours=4 * k)
        paid = due - timedelta(days=1)
        record = records_pb2.Record(record_id=f"hist-{subject_id}-{k}", subject_id=subject_id)
        record.event_time.FromDatetime(paid)
        bill = record.bill
        bill.category = records_pb2.BILL_CATEGORY_UTILITY
        bill.amount_due.currency_code = "USD"
        bill.amount_due.minor_units = 5_000 + (k % 7) * 100
        bill.amount_paid.currency_code = "USD"
        bill.amount_paid.minor_units = bill.amount_due.minor_units
        bill.issue_time.FromDatetime(due - timedelta(days=14))
        bill.due_time.FromDatetime(due)
        bill.paid_time.FromDatetime(paid)
        out.append(record)
    return out


async def load_history_subjects(suite, subject_ids: list[str], sizes: tuple[int, ...]) -> None:
    """Enrolls the history subjects, consents their payments to scoring, ingests
    their bills as the wallet and waits until the feature service applied them."""
    from creditscore.common.v1 import common_pb2
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
    from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc

    channel = await suite.operator_channel("consent_service")
    try:
        consent = consent_pb2_grpc.ConsentServiceStub(channel)
        for sid in subject_ids:
            await consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
                request_id=f"bench-enroll-{sid}", subject_id=sid), timeout=10)
            await consent.GrantConsent(consent_pb2.GrantConsentRequest(
                request_id=f"bench-grant-{sid}", subject_id=sid, source=common_pb2.DATA_SOURCE_PAYMENTS,
                purpose=common_pb2.PURPOSE_CREDIT_SCORING), timeout=10)
    finally:
        await channel.close()
    now = datetime.now(UTC).replace(microsecond=0)
    channel = suite.channel("ingest_service", suite.producer_token("wallet"))
    t0 = time.perf_counter()
    try:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        for sid, n in zip(subject_ids, sizes, strict=True):
            records = _bills(sid, n, now)
            for i in range(0, n, INGEST_BATCH):
                reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
                    request_id=f"bench-{sid}-{i}", producer_id="wallet", records=records[i:i + INGEST_BATCH]),
                    timeout=60)
                bad = [r for r in reply.results if r.status != ingest_pb2.RECORD_STATUS_ACCEPTED]
                if bad:
                    raise RuntimeError(f"{len(bad)} history records not accepted, e.g. {bad[0]}")
    finally:
        await channel.close()
    channel = await suite.operator_channel("feature_service")
    try:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        deadline = time.monotonic() + 600
        while True:
            counts = [(await stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id=sid),
                                                   timeout=10)).feature_vector.record_count
                      for sid in subject_ids]
            if all(c >= n for c, n in zip(counts, sizes, strict=True)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"history subjects' features incomplete: {counts} of {sizes}")
            await asyncio.sleep(0.5)
    finally:
        await channel.close()
    print(f"history subjects: {', '.join(f'{s} ({n} records)' for s, n in zip(subject_ids, sizes, strict=True))}"
          f" ingested and applied in {time.perf_counter() - t0:.1f} s")


# -- the run --------------------------------------------------------------------


async def _start_echo(workdir: Path):
    import subprocess

    from creditscore.cli.run import _free_port

    port = _free_port()
    log_path = workdir / "echo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.lookup", "--serve-echo"],
                                env={**os.environ, "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(port)},
                                stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 60
    while b"READY" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"echo server did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        await asyncio.sleep(0.05)
    return proc, port


async def run(args: argparse.Namespace) -> dict[str, object]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from creditscore.cli import run as demo
    from creditscore.common.v1 import common_pb2
    from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
    from creditscore.runtime import create_channel, tool_channel

    print(describe_machine())
    print(code_version())
    print(_tracing_line())
    print(f"{args.calls} lookups and {args.echo_calls} echo calls per level (each at most "
          f"{args.level_seconds:.0f} s), levels {args.levels}; "
          "one client process, one channel, everything on 127.0.0.1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    figures: dict[str, object] = {"subjects": args.subjects, "calls": args.calls,
                                  "echo_calls": args.echo_calls, "tracing": tracing_state()}
    # One partner drives the whole load: its lookup limit (PARTNER_LOOKUP_RATE, 500/s
    # by default) is raised out of the way, and still checked on every lookup.
    suite = demo.start_suite(workdir / "suite", 0, env=BENCH_ENV)
    echo_proc = None
    try:
        await demo.wait_serving(suite)
        print("suite SERVING (5 processes, SQLite, AUTH_MODE=required)")
        population, report = await demo.load_population(suite, args.subjects, args.seed)
        print(f"ingested {report.sent} records: "
              + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())))
        applied = await demo.wait_features(suite, population, report.accepted_for_features)
        print(f"feature service applied {applied} of {report.accepted_for_features} records")
        hist_ids = [f"hist-{n}" for n in HISTORY]
        await load_history_subjects(suite, hist_ids, HISTORY)
        ids = [s.subject_id for s in population.subjects]
        partner = await demo.register_partner(suite, ids + hist_ids)
        server_pids = [p.pid for p in suite.procs.values()]

        channel = tool_channel(suite.addr("gateway"), partner.token)
        stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
        purpose = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
        run_id = uuid.uuid4().hex[:8]

        def lookup_of(subjects: list[str], tag: str) -> Callable[[int], Awaitable[object]]:
            def call(i: int):
                return stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=subjects[i % len(subjects)], purpose=purpose,
                    transaction_id=f"bench-{run_id}-{tag}-{i}"), timeout=30)
            return call

        def scored_answer(subjects: list[str]) -> Callable[[int, object], None]:
            """A lookup's answer must be the asked subject's, SCORED, 350-950, with a model."""
            def check(i: int, reply: object) -> None:
                cs = reply.credit_score  # type: ignore[attr-defined]
                asked = subjects[i % len(subjects)]
                if cs.subject_id != asked or cs.state != common_pb2.SCORE_STATE_SCORED:
                    raise ValueError(f"{asked}: {common_pb2.ScoreState.Name(cs.state)} for {cs.subject_id!r}")
                if not 350 <= cs.score <= 950 or not cs.model_version:
                    raise ValueError(f"{asked}: score {cs.score}, model {cs.model_version!r}")
            return check

        echo_proc, echo_port = await _start_echo(workdir)
        echo_channel = create_channel(f"127.0.0.1:{echo_port}")
        health = health_pb2_grpc.HealthStub(echo_channel)
        check = health_pb2.HealthCheckRequest()

        def echo(_i: int):
            return health.Check(check, timeout=30)

        def serving(_i: int, reply: object) -> None:
            if reply.status != health_pb2.HealthCheckResponse.SERVING:  # type: ignore[attr-defined]
                raise ValueError(f"health {reply}")

        try:
            # Which subjects the population scores (thin files are INSUFFICIENT_DATA):
            # the timed lookups ask only those, and every answer must be SCORED.
            states = {}
            for sid in ids:
                reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=sid, purpose=purpose, transaction_id=f"bench-{run_id}-state-{sid}"), timeout=30)
                states[sid] = reply.credit_score.state
            scored_ids = [sid for sid, state in states.items() if state == common_pb2.SCORE_STATE_SCORED]
            print(f"{len(scored_ids)} of {len(ids)} subjects SCORED (the others INSUFFICIENT_DATA); "
                  "the timed lookups ask the SCORED ones")
            if len(scored_ids) < len(ids) // 2:
                raise WrongAnswer(f"only {len(scored_ids)} of {len(ids)} subjects are scored")
            ids = scored_ids
            # Warm-up: connections, caches, the first token verification.
            await drive(lookup_of(ids, "warm"), 100, 8, 60, server_pids, scored_answer(ids))
            await drive(echo, 100, 8, 60, [echo_proc.pid], serving)
            print("lookups (GetCreditScore as the partner) and echo (Health/Check, same runtime):")
            for n in args.levels:
                lk = await drive(lookup_of(ids, f"l{n}"), args.calls, n, args.level_seconds, server_pids,
                                 scored_answer(ids))
                ec = await drive(echo, args.echo_calls, n, args.level_seconds, [echo_proc.pid], serving)
                print(_describe("lookup", lk))
                if lk.cpu_by_pid:
                    print("    lookup server CPU by service: " + ", ".join(
                        f"{name} {lk.cpu_by_pid[proc.pid] / lk.calls * 1000:.2f} ms"
                        for name, proc in suite.procs.items()))
                print(_describe("echo  ", ec))
                ratio = lk.rate / ec.rate
                print(f"  ratio lookup/echo at {n}: {ratio:.3f}")
                figures[f"lookups_s_{n}"] = lk.rate
                figures[f"echo_s_{n}"] = ec.rate
                figures[f"ratio_{n}"] = ratio
                figures[f"p50_ms_{n}"] = lk.pct(0.5)
                figures[f"p99_ms_{n}"] = lk.pct(0.99)
                figures[f"echo_p50_ms_{n}"] = ec.pct(0.5)
                figures[f"echo_p99_ms_{n}"] = ec.pct(0.99)
                if lk.server_cpu is not None:
                    figures[f"cpu_ms_{n}"] = lk.server_cpu / lk.calls * 1000

            # Pre-screen: batches of threshold checks.
            per_call = 50

            def prescreen(i: int):
                return stub.BatchCheckCreditThreshold(gateway_pb2.BatchCheckCreditThresholdRequest(checks=[
                    gateway_pb2.CheckCreditThresholdRequest(
                        subject_id=ids[(i * per_call + j) % len(ids)], purpose=purpose, threshold=600,
                        transaction_id=f"bench-{run_id}-p{i}-{j}")
                    for j in range(per_call)]), timeout=60)

            def every_check_answered(i: int, reply: object) -> None:
                results = reply.results  # type: ignore[attr-defined]
                if len(results) != per_call:
                    raise ValueError(f"{len(results)} results for {per_call} checks")
                for j, result in enumerate(results):
                    if result.WhichOneof("result") != "response":
                        raise ValueError(f"check {j}: {result.error.reason} {result.error.message}")
                    decision = result.response.decision
                    if decision not in (common_pb2.THRESHOLD_DECISION_MEETS, common_pb2.THRESHOLD_DECISION_BELOW):
                        raise ValueError(f"check {j}: {common_pb2.ThresholdDecision.Name(decision)}")

            batch_calls = max(8, args.calls // per_call * 2)
            pb = await drive(prescreen, batch_calls, 4, args.level_seconds, server_pids, every_check_answered)
            checks_s = pb.rate * per_call
            print(f"pre-screen: {pb.calls} BatchCheckCreditThreshold calls of {per_call} checks, 4 in flight: "
                  f"{checks_s:,.0f} checks/s, p50 {pb.pct(0.5):.1f} ms, p99 {pb.pct(0.99):.1f} ms per call"
                  + (f", {pb.server_cpu / (pb.calls * per_call) * 1000:.2f} ms server CPU per check"
                     if pb.server_cpu is not None else ""))
            figures["prescreen_checks_s"] = checks_s
            figures["prescreen_p99_ms"] = pb.pct(0.99)

            # History: one at a time, the two subjects interleaved.
            for sid in hist_ids:
                reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=sid, purpose=purpose, transaction_id=f"bench-{run_id}-h-{sid}"), timeout=30)
                cs = reply.credit_score
                print(f"  {sid}: {common_pb2.ScoreState.Name(cs.state)} score {cs.score}")
                if cs.state != common_pb2.SCORE_STATE_SCORED:
                    raise WrongAnswer(f"{sid}: {common_pb2.ScoreState.Name(cs.state)}")
            times: dict[str, list[float]] = {sid: [] for sid in hist_ids}
            for i in range(args.history_calls):
                for sid in hist_ids:
                    t0 = time.perf_counter()
                    reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                        subject_id=sid, purpose=purpose, transaction_id=f"bench-{run_id}-h{i}-{sid}"), timeout=30)
                    times[sid].append((time.perf_counter() - t0) * 1000)
                    cs = reply.credit_score
                    if cs.subject_id != sid or cs.state != common_pb2.SCORE_STATE_SCORED:
                        raise WrongAnswer(f"{sid}: {cs}")
            p50 = {sid: statistics.median(v) for sid, v in times.items()}
            small, big = (p50[s] for s in hist_ids)
            print(f"history: {args.history_calls} lookups each, one at a time, interleaved: "
                  f"p50 {small:.2f} ms with {HISTORY[0]} records, {big:.2f} ms with {HISTORY[1]:,} records, "
                  f"ratio {big / small:.3f}")
            figures["history_p50_ms_10"] = small
            figures["history_p50_ms_10000"] = big
            figures["history_ratio"] = big / small
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(f"a call failed: {exc.code().name} {exc.details()}") from exc
        finally:
            await channel.close()
            await echo_channel.close()
    finally:
        if echo_proc is not None and echo_proc.poll() is None:
            echo_proc.terminate()
            try:
                echo_proc.wait(15)
            except Exception:  # noqa: BLE001
                echo_proc.kill()
        codes = suite.stop()
        if any(c not in (0, None) for c in codes.values()):
            print("services exited: " + ", ".join(f"{p} {c}" for p, c in codes.items()))
        if args.keep:
            print(f"data and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lookup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 subjects, 300 calls per level")
    parser.add_argument("--subjects", type=int, default=None, help="simulated subjects (default 500; quick 100)")
    parser.add_argument("--calls", type=int, default=None, help="calls per level (default 2000; quick 300)")
    parser.add_argument("--echo-calls", type=int, default=None,
                        help="echo calls per level (default 10 x --calls: an echo is that much faster)")
    parser.add_argument("--level-seconds", type=float, default=60.0, help="time bound of each level")
    parser.add_argument("--history-calls", type=int, default=None,
                        help="lookups of each history subject (default 200; quick 50)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the data folder and the services' logs")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)),
                        help="lookups in flight to measure at, comma-separated (default 1,8,32,64)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        _serve_echo()
        return 0
    try:
        args.levels = tuple(int(n) for n in args.levels.split(","))
    except ValueError:
        parser.error(f"--levels {args.levels!r}: comma-separated numbers of calls in flight")
    if not args.levels or min(args.levels) < 1:
        parser.error("--levels: at least one level, each at least 1")
    args.subjects = args.subjects or (100 if args.quick else 500)
    args.calls = args.calls or (300 if args.quick else 2000)
    args.echo_calls = args.echo_calls or 10 * args.calls
    args.history_calls = args.history_calls or (50 if args.quick else 200)
    try:
        figures = asyncio.run(run(args))
    except WrongAnswer as exc:
        print(f"bench.lookup: STOPPED, no figures: {exc}", file=sys.stderr)
        return 1
    print(result_line("lookup", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
