"""``creditscore run``: the whole suite on one machine, on SQLite, with a simulated
population, ending in real score lookups through the gateway.

1. starts consent, ingest, feature, scoring and the gateway as five separate
   processes (``python -m <package>``), each with its own SQLite file, and waits
   for each to report SERVING on the health service;
2. simulates a population (``creditscore.sim``), enrolls every subject and grants
   consent per data source (a few subjects withhold one source, so that some
   records are rejected with CONSENT_REQUIRED);
3. ingests every producer's records through the ingest service, sends one batch a
   second time (stored once), and waits until the feature service has applied
   everything the outbox delivered;
4. looks scores up through the gateway and prints them;
5. keeps serving until interrupted (Ctrl-C / SIGTERM), then stops the services
   gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import CallError, create_channel

__all__ = ["SERVICES", "main"]

# (package, default port); the order they start in.
SERVICES: tuple[tuple[str, int], ...] = (
    ("consent_service", 50051),
    ("feature_service", 50053),
    ("scoring_service", 50054),
    ("ingest_service", 50052),
    ("gateway", 50050),
)
BATCH = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Suite:
    data_dir: Path
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]]

    def addr(self, package: str) -> str:
        return f"127.0.0.1:{self.ports[package]}"

    def stop(self, grace: float = 15.0) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + grace
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


def start_suite(data_dir: Path, base_port: int | None, *, fresh: bool = True) -> Suite:
    """Starts the five services as processes on SQLite files in ``data_dir``.
    ``base_port`` None: the usual ports 50050-50054; 0: free ports."""
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    ports = {}
    for package, default in SERVICES:
        if base_port is None:
            ports[package] = default
        elif base_port == 0:
            ports[package] = _free_port()
        else:
            ports[package] = base_port + (default - 50050)
    suite = Suite(data_dir, ports, {})
    env_common = {
        "CONSENT_SERVICE_ADDR": suite.addr("consent_service"),
        "INGEST_SERVICE_ADDR": suite.addr("ingest_service"),
        "FEATURE_SERVICE_ADDR": suite.addr("feature_service"),
        "SCORING_SERVICE_ADDR": suite.addr("scoring_service"),
        "GRPC_HOST": "127.0.0.1",
        "GRPC_GRACE_SECONDS": "5",
    }
    for package, _ in SERVICES:
        env = {**os.environ, **env_common,
               "GRPC_PORT": str(ports[package]),
               "DATABASE_URL": f"sqlite:///{data_dir / (package + '.db')}"}
        log = open(data_dir / "logs" / f"{package}.log", "wb")  # noqa: SIM115 - owned by the child
        suite.procs[package] = subprocess.Popen(
            [sys.executable, "-m", package], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
    return suite


async def wait_serving(suite: Suite, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for package, _ in SERVICES:
        async with grpc.aio.insecure_channel(suite.addr(package)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                proc = suite.procs[package]
                if proc.poll() is not None:
                    log = (suite.data_dir / "logs" / f"{package}.log").read_text(errors="replace")
                    raise RuntimeError(f"{package} exited with {proc.returncode}:\n{log[-3000:]}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{package} did not become SERVING in {timeout:.0f}s")
                await asyncio.sleep(0.2)


@dataclass
class LoadReport:
    subjects: int
    sent: int
    statuses: Counter[str]
    reasons: Counter[str]
    seconds: float
    resent: int
    resent_statuses: Counter[str]
    accepted_for_features: int


async def load_population(suite: Suite, n_subjects: int, seed: int, out=print) -> tuple[object, LoadReport]:
    """Enrolls, consents and ingests a simulated population through the services."""
    from creditscore.sim import simulate

    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    population = simulate(n_subjects, seed=seed, as_of=as_of)
    out(f"simulated {len(population.subjects)} subjects, {len(population.records)} records "
        f"and {len(population.outcomes)} loan outcomes (seed {seed}, as of {as_of:%Y-%m-%d})")

    consent_ch = create_channel(suite.addr("consent_service"))
    ingest_ch = create_channel(suite.addr("ingest_service"))
    try:
        consent = consent_pb2_grpc.ConsentServiceStub(consent_ch)
        ingest = ingest_pb2_grpc.IngestServiceStub(ingest_ch)
        # Enroll and consent. Every 5th subject with external records withholds
        # consent for that source, so its external records are refused.
        with_external = [s.subject_id for s in population.subjects
                         if common_pb2.DATA_SOURCE_EXTERNAL in s.sources]
        withholding = set(with_external[::5])
        sem = asyncio.Semaphore(16)

        async def enroll(subject) -> None:
            async with sem:
                sid = subject.subject_id
                await consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
                    request_id=f"demo-enroll-{sid}", subject_id=sid), timeout=5)
                grants = [(s, common_pb2.PURPOSE_CREDIT_SCORING) for s in (
                    common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_PAYMENTS,
                    common_pb2.DATA_SOURCE_IDENTITY, common_pb2.DATA_SOURCE_EXTERNAL)
                    if not (sid in withholding and s == common_pb2.DATA_SOURCE_EXTERNAL)]
                # Model development (training scorecards) is a purpose of its own,
                # asked separately: the same sources, and the loan outcomes.
                grants += [(s, common_pb2.PURPOSE_MODEL_DEVELOPMENT) for s, _ in list(grants)]
                grants.append((common_pb2.DATA_SOURCE_OUTCOMES, common_pb2.PURPOSE_MODEL_DEVELOPMENT))
                for source, purpose in grants:
                    await consent.GrantConsent(consent_pb2.GrantConsentRequest(
                        request_id=f"demo-grant-{sid}-{source}-{purpose}", subject_id=sid,
                        source=source, purpose=purpose), timeout=5)

        t0 = time.perf_counter()
        await asyncio.gather(*(enroll(s) for s in population.subjects))
        out(f"enrolled and consented {len(population.subjects)} subjects in {time.perf_counter() - t0:.1f}s")

        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        sent = 0
        accepted_for_features = 0
        t0 = time.perf_counter()
        first_batch: tuple[str, list] | None = None
        for producer, records in sorted(population.by_producer().items()):
            for start in range(0, len(records), BATCH):
                batch = records[start:start + BATCH]
                if first_batch is None and producer == "wallet":
                    first_batch = (producer, batch)
                reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
                    request_id=f"demo-{producer}-{start}", producer_id=producer, records=batch),
                    timeout=30)
                sent += len(batch)
                for record, result in zip(batch, reply.results, strict=True):
                    statuses[ingest_pb2.RecordStatus.Name(result.status)] += 1
                    if (result.status == ingest_pb2.RECORD_STATUS_ACCEPTED
                            and record.WhichOneof("body") != "loan_outcome"):
                        accepted_for_features += 1
                    if result.reason:
                        reasons[result.reason] += 1
        seconds = time.perf_counter() - t0
        # The wallet's first batch again, under a new request id: stored once,
        # every record answered DUPLICATE.
        assert first_batch is not None
        producer, batch = first_batch
        reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="demo-resend", producer_id=producer, records=batch), timeout=30)
        resent_statuses = Counter(ingest_pb2.RecordStatus.Name(r.status) for r in reply.results)
    finally:
        await consent_ch.close()
        await ingest_ch.close()
    return population, LoadReport(len(population.subjects), sent, statuses, reasons, seconds,
                                  len(batch), resent_statuses, accepted_for_features)


async def wait_features(suite: Suite, population, expected: int, timeout: float = 120.0) -> int:
    """Waits until the feature service has applied ``expected`` records in all."""
    channel = create_channel(suite.addr("feature_service"))
    try:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            replies = await asyncio.gather(*(
                stub.GetFeatureVector(feature_pb2.GetFeatureVectorRequest(subject_id=s.subject_id), timeout=5)
                for s in population.subjects))
            applied = sum(r.feature_vector.record_count for r in replies)
            if applied >= expected or time.monotonic() > deadline:
                return applied
            await asyncio.sleep(0.5)
    finally:
        await channel.close()


def _band(band: int) -> str:
    return common_pb2.ScoreBand.Name(band).removeprefix("SCORE_BAND_").replace("_", " ").lower()


async def lookups(gateway_addr: str, subject_ids: list[str], out=print) -> list[gateway_pb2.CreditScore]:
    """Looks each subject up through the gateway at ``gateway_addr`` and prints the answer."""
    channel = create_channel(gateway_addr)
    results = []
    try:
        stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
        for sid in subject_ids:
            t0 = time.perf_counter()
            try:
                reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(subject_id=sid), timeout=3)
            except grpc.aio.AioRpcError as exc:
                err = CallError.from_rpc_error(exc)
                out(f"  {sid:<14} {err.code.name} [{err.reason}] {err.message}")
                continue
            ms = (time.perf_counter() - t0) * 1000
            cs = reply.credit_score
            results.append(cs)
            if cs.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA:
                out(f"  {sid:<14} INSUFFICIENT_DATA (coverage {cs.coverage:.0%})  {ms:.1f} ms")
                continue
            out(f"  {sid:<14} score {cs.score}  {_band(cs.band):<9}  P(bad) {cs.probability_of_bad:5.1%}  "
                f"coverage {cs.coverage:.0%}  model {cs.model_version}  {ms:.1f} ms")
            for reason in cs.reasons:
                out(f"  {'':<14}   - {reason.code}: {reason.text} (-{reason.points_lost:.0f} pts)")
    finally:
        await channel.close()
    return results


def _pick_subjects(population, k: int = 6) -> list[str]:
    """A spread of subjects: by latent creditworthiness, plus a thin file."""
    ranked = sorted(population.subjects, key=lambda s: s.latent)
    picks = [ranked[int(q * (len(ranked) - 1))].subject_id for q in (0.03, 0.25, 0.5, 0.75, 0.97)]
    thin = [s.subject_id for s in population.subjects if len(s.sources) <= 1]
    return (picks + thin[:1])[:k]


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    t_start = time.perf_counter()
    suite = start_suite(data_dir, args.base_port)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await wait_serving(suite)
        print("services SERVING: " + ", ".join(f"{p} on {suite.ports[p]}" for p, _ in SERVICES))
        population, report = await load_population(suite, args.subjects, args.seed)
        print(f"ingested {report.sent} records in {report.seconds:.1f}s "
              f"({report.sent / report.seconds:,.0f} records/s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
              + ("; rejected because " + ", ".join(f"{k} {v}" for k, v in sorted(report.reasons.items()))
                 if report.reasons else ""))
        print(f"sent {report.resent} of them again: "
              + ", ".join(f"{k} {v}" for k, v in sorted(report.resent_statuses.items())))
        applied = await wait_features(suite, population, report.accepted_for_features)
        print(f"feature service applied {applied} of {report.accepted_for_features} records "
              "delivered through the outbox (loan outcomes are labels and stay in ingest)")
        print("score lookups through the gateway (CreditScoreService/GetCreditScore):")
        ids = _pick_subjects(population)
        ids.append("not-enrolled-1")
        await lookups(suite.addr("gateway"), ids)
        print(f"ready in {time.perf_counter() - t_start:.1f}s from start")
        if args.no_serve:
            return 0
        print(f"\nserving until interrupted (Ctrl-C). Try:\n"
              f"  .venv/bin/grpcurl -plaintext 127.0.0.1:{suite.ports['gateway']} list\n"
              f"  .venv/bin/grpcurl -plaintext -d '{{\"subject_id\": \"{ids[2]}\"}}' "
              f"127.0.0.1:{suite.ports['gateway']} creditscore.gateway.v1.CreditScoreService/GetCreditScore\n"
              f"logs in {data_dir / 'logs'}/")
        crashed = asyncio.create_task(_watch(suite))
        stopped = asyncio.create_task(stop_requested.wait())
        done, _ = await asyncio.wait({crashed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (crashed, stopped):
            task.cancel()
        if crashed in done:
            print("a service exited unexpectedly; stopping the others", file=sys.stderr)
            return 1
        return 0
    finally:
        print("stopping services ...")
        codes = suite.stop()
        print("stopped: " + ", ".join(f"{p} exit {c}" for p, c in codes.items()))


async def _watch(suite: Suite) -> None:
    while all(p.poll() is None for p in suite.procs.values()):
        await asyncio.sleep(0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subjects", type=int, default=400, help="simulated subjects (default 400)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument("--data-dir", default="var/demo", help="SQLite files and logs (wiped at start)")
    parser.add_argument("--base-port", type=int, default=None,
                        help="gateway port; the others follow it (default 50050; 0 = free ports)")
    parser.add_argument("--no-serve", action="store_true", help="stop after the lookups")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="creditscore run", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return asyncio.run(run(parser.parse_args(argv)))
