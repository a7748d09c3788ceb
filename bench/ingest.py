"""Ingest rate: records per second through the ingest service over gRPC, against
the raw SQLAlchemy Core insert rate of the same rows.

``python -m bench.ingest [--quick] [--postgres-url URL] [--only sqlite|postgresql]``

A simulated population (``creditscore.sim``: bills, orders, ratings, identity,
external records, loan outcomes; about 80 bytes a record) is enrolled and
consented in a real consent service (``python -m consent_service``, its own
SQLite file). Then, for each database (a SQLite file; a PostgreSQL database
created on the server of ``--postgres-url`` and dropped afterwards) and each way
of sending:

- unary: ``IngestRecords`` batches of 1000, 4 calls in flight on one channel;
- stream: ``IngestRecordStream``, one stream per producer (all at once), chunks
  of 1000 sent without waiting;

every record goes into a fresh ``python -m ingest_service`` process on a fresh
database, with everything a producer relies on switched on: validation, one
consent check per purpose per batch (a real gRPC call to the consent service),
idempotency (insert-or-judge by (producer, record id)), the outbox row of every
record in the same transaction. The replica runs with ``OUTBOX_DISPATCH=false``
so that the clock covers taking records, not delivering them; delivery is timed
apart (below). Requests are built before the clock starts; the clock stops when
the last reply is in, every record ACCEPTED. The same records are then sent again
(unary), every one answered DUPLICATE: the idempotent-retry rate.

The raw rate is SQLAlchemy Core ``executemany`` of exactly the rows the service
stores (``records`` table, same columns and values, payload and hash computed
before the clock), 1000 rows a transaction, through the same async drivers
(aiosqlite, asyncpg), into a fresh database, measured right before each
end-to-end run. The ratio is end-to-end / raw of each such pair; the figures
are medians over ``--repeat`` pairs (the machine is shared: its load moves).

End to end: record accepted -> applied to features -> score stored. A fresh
ingest replica with its dispatcher on, a real feature service (``python -m
feature_service``) and a real scoring service (``python -m scoring_service``, the
scorecard shipped with it), each on its own fresh database of the same kind; the
feature service has every changed subject scored (``ScoreBatch``) inside the
apply's transaction. The clock starts with the first stream (same streams as
above) and stops when the outbox is empty: every record accepted, delivered,
applied and its subject's score stored. It is paired with a raw insert of the same
rows measured right before. A failed delivery stops the run at once (the
dispatcher takes an ApplyRecords reply as done only when its applied and
duplicate counts account for every record sent; any other reply, error or
timeout counts an attempt on the outbox row, which the bench watches). Then every
answer is checked: every record ACCEPTED
(one result per record), the ingest store holds every record, the feature store
holds one applied version per record that feeds features and its aggregates count
each once, and every subject with such a record has a stored score of the active
model for its own subject id. The first failure stops the run without a figure.

Every process runs on this machine (client, ingest, consent, feature and the
PostgreSQL server share its CPUs). Ends with one ``RESULT ingest ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bench import _common
from bench._common import Service, code_version, describe_machine, result_line
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import create_channel, create_schema, make_engine
from creditscore.sim import simulate
from ingest_service.ingestion import content_hash, serialize
from ingest_service.store import RecordStore, outbox, records
from ingest_service.validation import source_of

BATCH = 1000
UNARY_IN_FLIGHT = 4
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ACCEPTED = ingest_pb2.RECORD_STATUS_ACCEPTED
DUPLICATE = ingest_pb2.RECORD_STATUS_DUPLICATE


#: A folder for a cProfile of every service process (``--profile``); None: no profile.
PROFILE_DIR: Path | None = None


async def start_service(package: str, env: dict[str, str], log: Path) -> Service:
    # Token authentication (issue 5) is off here: this benchmark measures the
    # ingest path issue 4 defined (validation, consent checks, idempotency,
    # outbox); the cost of verifying tokens is measured with the lookup path.
    return await _common.start_service(package, env, log, profile_dir=PROFILE_DIR)


@asynccontextmanager
async def fresh_database(kind: str, workdir: Path, admin_url: str, name: str) -> AsyncIterator[str]:
    """A new empty database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / (name + '.db')}"
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    db = f"bench_{name}_{uuid.uuid4().hex[:8]}"

    async def admin_exec(sql: str) -> None:
        conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
                                     password=admin.password, database=admin.database or "postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin_exec(f'CREATE DATABASE "{db}"')
    try:
        yield admin.set(database=db).render_as_string(hide_password=False)
    finally:
        await admin_exec(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def enroll(consent_addr: str, subject_ids: Sequence[str]) -> None:
    """Every subject enrolled, with consent to scoring for every scoring source
    and to model development for the loan outcomes."""
    channel = create_channel(consent_addr)
    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    grants = [(s, common_pb2.PURPOSE_CREDIT_SCORING) for s in (
        common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_PAYMENTS,
        common_pb2.DATA_SOURCE_IDENTITY, common_pb2.DATA_SOURCE_EXTERNAL)]
    grants.append((common_pb2.DATA_SOURCE_OUTCOMES, common_pb2.PURPOSE_MODEL_DEVELOPMENT))
    sem = asyncio.Semaphore(16)

    async def one(sid: str) -> None:
        async with sem:
            await stub.EnrollSubject(consent_pb2.EnrollSubjectRequest(request_id=f"e-{sid}", subject_id=sid),
                                     timeout=10)
            for source, purpose in grants:
                await stub.GrantConsent(consent_pb2.GrantConsentRequest(
                    request_id=f"g-{sid}-{source}-{purpose}", subject_id=sid, source=source, purpose=purpose),
                    timeout=10)

    try:
        await asyncio.gather(*(one(s) for s in subject_ids))
    finally:
        await channel.close()


def by_producer(population) -> dict[str, list[records_pb2.Record]]:
    return {p: rs for p, rs in sorted(population.by_producer().items())}


async def send_unary(addr: str, batches: list[ingest_pb2.IngestRecordsRequest], expect: int) -> float:
    """Seconds to send every batch, ``UNARY_IN_FLIGHT`` at a time; checks that every
    record got the status ``expect``."""
    channel = create_channel(addr)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    queue = list(reversed(batches))
    bad: list[str] = []

    async def worker() -> None:
        while queue:
            request = queue.pop()
            reply = await stub.IngestRecords(request, timeout=120)
            if len(reply.results) != len(request.records):
                bad.append(f"{request.request_id}: {len(reply.results)} results for {len(request.records)} records")
            elif any(r.status != expect for r in reply.results):
                bad.append(next(f"{r.record_id}: {r.status} {r.reason}" for r in reply.results if r.status != expect))

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(UNARY_IN_FLIGHT)))
        seconds = time.perf_counter() - start
    finally:
        await channel.close()
    if bad:
        raise RuntimeError(f"{len(bad)} batches had records not answered as expected, e.g. {bad[0]}")
    return seconds


async def send_streams(addr: str, streams: dict[str, list[ingest_pb2.IngestRecordStreamRequest]]) -> float:
    """Seconds to send one stream per producer, all at once; every record must be ACCEPTED,
    each with its own result."""
    channel = create_channel(addr)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)

    async def one(chunks: list[ingest_pb2.IngestRecordStreamRequest]) -> None:
        async def requests() -> AsyncIterator[ingest_pb2.IngestRecordStreamRequest]:
            for chunk in chunks:
                yield chunk

        reply = await stub.IngestRecordStream(requests(), timeout=600)
        sent = sum(len(c.records) for c in chunks)
        if len(reply.results) != sent or reply.accepted_count != sent:
            raise RuntimeError(f"{len(reply.results)} results, {reply.accepted_count} accepted, for {sent} records")
        wrong = [r for r in reply.results if r.status != ACCEPTED]
        if wrong:
            raise RuntimeError(f"{len(wrong)} records not accepted, e.g. {wrong[0]}")

    try:
        start = time.perf_counter()
        await asyncio.gather(*(one(c) for c in streams.values()))
        return time.perf_counter() - start
    finally:
        await channel.close()


async def raw_insert_rate(url: str, rows: list[dict]) -> float:
    """Rows per second of SQLAlchemy Core executemany into the ``records`` table,
    ``BATCH`` rows a transaction, on a fresh database."""
    engine = make_engine(url)
    try:
        await create_schema(engine, records.metadata)
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            async with engine.begin() as conn:
                await conn.execute(records.insert(), rows[i:i + BATCH])
        return len(rows) / (time.perf_counter() - start)
    finally:
        await engine.dispose()


async def drain_seconds(url: str, total: int, timeout: float = 600) -> float:
    """Seconds until the outbox of the ingest database at ``url`` is empty."""
    engine = make_engine(url)
    store = RecordStore(engine)
    try:
        start = time.perf_counter()
        while (backlog := await store.outbox_backlog()) > 0:
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{backlog} of {total} records still in the outbox")
            await asyncio.sleep(0.05)
        return time.perf_counter() - start
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace) -> dict[str, object]:
    print(describe_machine())
    print(code_version())
    print("services run with AUTH_MODE=disabled: token verification is not part of this figure")
    now = datetime.now(UTC).replace(microsecond=0)
    population = simulate(args.subjects, seed=args.seed, as_of=now)
    groups = by_producer(population)
    total = sum(len(v) for v in groups.values())
    deliverable = sum(1 for v in groups.values() for r in v if r.WhichOneof("body") != "loan_outcome")
    print(f"population: {len(population.subjects)} subjects, {total} records from {len(groups)} producers "
          f"({deliverable} feed features; the rest are loan outcomes), seed {args.seed}")

    unary = [ingest_pb2.IngestRecordsRequest(request_id=f"{p}-{i}", producer_id=p, records=rs[i:i + BATCH])
             for p, rs in groups.items() for i in range(0, len(rs), BATCH)]
    streams = {p: [ingest_pb2.IngestRecordStreamRequest(request_id=f"{p}-{i}", producer_id=p,
                                                        records=rs[i:i + BATCH])
                   for i in range(0, len(rs), BATCH)] for p, rs in groups.items()}
    stamp = datetime.now(UTC)
    rows = []
    for producer, rs in groups.items():
        for r in rs:
            payload = serialize(r)
            rows.append({"producer_id": producer, "record_id": r.record_id, "subject_id": r.subject_id,
                         "source": source_of(r), "event_time": r.event_time.ToDatetime(tzinfo=UTC),
                         "payload": payload, "content_hash": content_hash(payload), "ingest_time": stamp,
                         "revision": 0, "retracted": False})

    expected = Expected(total, deliverable, frozenset(
        r.subject_id for v in groups.values() for r in v if r.WhichOneof("body") != "loan_outcome"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    figures: dict[str, object] = {"records": total}
    consent = await start_service("consent_service", {"DATABASE_URL": f"sqlite:///{workdir}/consent.db"},
                                  workdir / "consent.log")
    try:
        t0 = time.perf_counter()
        await enroll(consent.addr, [s.subject_id for s in population.subjects])
        print(f"enrolled and consented {len(population.subjects)} subjects in {time.perf_counter() - t0:.1f} s")
        for kind in args.databases:
            short = "sqlite" if kind == "sqlite" else "pg"
            raws: list[float] = []
            for mode in args.modes:
                rates: list[float] = []
                ratios: list[float] = []
                for attempt in range(args.repeat):
                    # The raw rate is measured right before each run and paired with
                    # it: on a shared machine the load moves between runs.
                    async with fresh_database(kind, workdir, args.postgres_url, f"raw{mode}{attempt}") as url:
                        raw = await raw_insert_rate(url, rows)
                    raws.append(raw)
                    async with fresh_database(kind, workdir, args.postgres_url, f"{mode}{attempt}") as url:
                        ingest = await start_service("ingest_service", {
                            "DATABASE_URL": url, "CONSENT_SERVICE_ADDR": consent.addr,
                            "FEATURE_SERVICE_ADDR": "127.0.0.1:9", "OUTBOX_DISPATCH": "false",
                        }, workdir / f"ingest-{short}-{mode}-{attempt}.log")
                        try:
                            if mode == "unary":
                                seconds = await send_unary(ingest.addr, unary, ACCEPTED)
                            else:
                                seconds = await send_streams(ingest.addr, streams)
                            rates.append(total / seconds)
                            ratios.append(total / seconds / raw)
                            if mode == "unary" and attempt == 0:
                                again = await send_unary(ingest.addr, unary, DUPLICATE)
                                figures[f"{short}_duplicate"] = total / again
                                print(f"[{kind}] the same records again (unary), all DUPLICATE: "
                                      f"{total / again:,.0f} records/s")
                        finally:
                            await ingest.stop()
                    print(f"[{kind}] {mode} run {attempt + 1}: {rates[-1]:,.0f} records/s end to end, "
                          f"raw just before {raw:,.0f} rows/s, ratio {ratios[-1]:.2f}")
                rate = statistics.median(rates)
                figures[f"{short}_{mode}"] = rate
                figures[f"{short}_ratio_{mode}"] = statistics.median(ratios)
                print(f"[{kind}] {mode}: median {rate:,.0f} records/s end to end, median paired ratio "
                      f"{statistics.median(ratios):.2f}x raw")
            if args.e2e:
                rates, ratios, tails = [], [], []
                for attempt in range(args.repeat):
                    async with fresh_database(kind, workdir, args.postgres_url, f"rawe2e{attempt}") as url:
                        raw = await raw_insert_rate(url, rows)
                    raws.append(raw)
                    rate, tail = await e2e_run(kind, workdir, args, consent, f"{short}{attempt}", streams, expected)
                    rates.append(rate)
                    ratios.append(rate / raw)
                    tails.append(tail)
                    print(f"[{kind}] e2e run {attempt + 1}: {rate:,.0f} records/s accepted -> applied -> scored "
                          f"({total / rate:.1f} s, of which {tail:.1f} s after the last ingest reply), "
                          f"raw just before {raw:,.0f} rows/s, ratio {rate / raw:.2f}; every answer checked")
                figures[f"{short}_e2e"] = statistics.median(rates)
                figures[f"{short}_ratio_e2e"] = statistics.median(ratios)
                figures[f"{short}_e2e_tail_s"] = statistics.median(tails)
                print(f"[{kind}] e2e: median {statistics.median(rates):,.0f} records/s, median paired ratio "
                      f"{statistics.median(ratios):.2f}x raw")
            figures[f"{short}_raw"] = statistics.median(raws)
            print(f"[{kind}] raw Core executemany into records: median {statistics.median(raws):,.0f} rows/s "
                  f"({', '.join(f'{r:,.0f}' for r in raws)})")
    finally:
        await consent.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figures["goal_ratio"] = 0.25
    return figures


async def e2e_run(kind: str, workdir: Path, args: argparse.Namespace, consent: Service, tag: str,
                  streams: dict[str, list[ingest_pb2.IngestRecordStreamRequest]],
                  expected: Expected) -> tuple[float, float]:
    """Records/s from the first record sent until every record is applied and its
    subject's score stored, through fresh ingest, feature and scoring processes on
    fresh databases; and the seconds of the tail after the last reply (delivery
    still going on). Checks every answer (``check_e2e``)."""
    async with contextlib.AsyncExitStack() as stack:
        ingest_url, feature_url, scoring_url = [
            await stack.enter_async_context(fresh_database(kind, workdir, args.postgres_url, f"{name}{tag}"))
            for name in ("ingest", "feature", "scoring")]
        scoring = await start_service("scoring_service", {
            "DATABASE_URL": scoring_url, "CONSENT_SERVICE_ADDR": consent.addr,
        }, workdir / f"scoring-{tag}.log")
        stack.push_async_callback(scoring.stop)
        feature = await start_service("feature_service", {
            "DATABASE_URL": feature_url, "CONSENT_SERVICE_ADDR": consent.addr,
            "SCORING_SERVICE_ADDR": scoring.addr,
        }, workdir / f"feature-{tag}.log")
        stack.push_async_callback(feature.stop)
        ingest = await start_service("ingest_service", {
            "DATABASE_URL": ingest_url, "CONSENT_SERVICE_ADDR": consent.addr,
            "FEATURE_SERVICE_ADDR": feature.addr, "OUTBOX_BATCH": str(args.outbox_batch),
            "OUTBOX_CONCURRENCY": str(args.outbox_concurrency),
        }, workdir / f"ingest-{tag}.log")
        stack.push_async_callback(ingest.stop)
        engine = make_engine(ingest_url)
        stack.push_async_callback(engine.dispose)
        store = RecordStore(engine)
        services = {"ingest": ingest, "feature": feature, "scoring": scoring}
        cpu_before = {name: _cpu_seconds(s.proc.pid) for name, s in services.items()}
        start = time.perf_counter()
        sent = await send_streams(ingest.addr, streams)
        while (backlog := await store.outbox_backlog()) > 0:
            if time.perf_counter() - start > 900:
                raise TimeoutError(f"{backlog} records still in the outbox after 900 s")
            await failed_delivery(engine)
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - start
        cpu = {name: _cpu_seconds(s.proc.pid) - cpu_before[name] for name, s in services.items()}
        await check_e2e(ingest_url, feature_url, expected)
    print(f"[{kind}] CPU per record over the run (user + system, from /proc; the database server's not "
          "included): " + ", ".join(f"{name} {value / expected.total * 1e6:.0f} us" for name, value in cpu.items()))
    return expected.total / seconds, seconds - sent


async def failed_delivery(engine: AsyncEngine) -> None:
    """Raises with its error when a delivery failed: an outbox row was attempted
    (the dispatcher counts attempts only on failures: a refused or short ApplyRecords
    reply, an error, a timeout)."""
    from sqlalchemy import select

    async with engine.connect() as conn:
        row = (await conn.execute(
            select(outbox.c.id, outbox.c.attempts, outbox.c.last_error).where(outbox.c.attempts > 0).limit(1)
        )).first()
    if row is not None:
        raise RuntimeError(f"a delivery failed (outbox row {row.id}, attempt {row.attempts}): {row.last_error}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Expected:
    """What an end-to-end run must leave behind."""

    total: int  # records stored by ingest
    applied: int  # records that feed features: one applied version each
    subjects: frozenset[str]  # subjects with at least one such record: one stored score each


async def check_e2e(ingest_url: str, feature_url: str, expected: Expected) -> None:
    """Raises unless every record is stored once, applied once and every subject scored."""
    from sqlalchemy import func, select

    from creditscore.scoring.v1 import scoring_pb2
    from feature_service.store import applied_records, subject_features

    engine = make_engine(ingest_url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(select(func.count()).select_from(records))).scalar_one()
    finally:
        await engine.dispose()
    if stored != expected.total:
        raise RuntimeError(f"the ingest store holds {stored} records, {expected.total} were accepted")
    engine = make_engine(feature_url)
    try:
        async with engine.connect() as conn:
            applied = (await conn.execute(select(func.count()).select_from(applied_records))).scalar_one()
            rows = (await conn.execute(select(
                subject_features.c.subject_id, subject_features.c.record_count, subject_features.c.score,
                subject_features.c.model_version))).all()
    finally:
        await engine.dispose()
    if applied != expected.applied:
        raise RuntimeError(f"{applied} record versions applied, {expected.applied} expected")
    counted = sum(int(r.record_count) for r in rows)
    if counted != expected.applied:
        raise RuntimeError(f"the aggregates count {counted} records, {expected.applied} were applied")
    scored = {r.subject_id: r for r in rows if r.score is not None}
    missing = expected.subjects - scored.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} subjects have no stored score, e.g. {sorted(missing)[0]}")
    models = {r.model_version for r in scored.values()}
    if len(models) != 1 or "" in models:
        raise RuntimeError(f"stored scores of model versions {sorted(models)}, one expected")
    for subject_id, row in scored.items():
        score = scoring_pb2.Score.FromString(bytes(row.score))
        scored_ok = score.state == common_pb2.SCORE_STATE_SCORED and 350 <= score.score <= 950
        no_data = score.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA and score.score == 0
        if score.subject_id != subject_id or score.model_version != row.model_version or not (scored_ok or no_data):
            raise RuntimeError(f"the stored score of {subject_id} is {score.subject_id!r} "
                               f"{common_pb2.ScoreState.Name(score.state)} {score.score}")
    states = Counter(scoring_pb2.Score.FromString(bytes(r.score)).state for r in scored.values())
    if not states[common_pb2.SCORE_STATE_SCORED]:
        raise RuntimeError("no subject was scored (every stored score is INSUFFICIENT_DATA)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller population, one run each")
    parser.add_argument("--subjects", type=int, help="subjects to simulate (default 1000; quick 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, help="runs per figure, the median kept (default 3; quick 1)")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG),
                        help="a PostgreSQL server to create the bench databases on")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one database only")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false",
                        help="skip the end-to-end runs (accepted -> applied -> score stored)")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end runs")
    parser.add_argument("--outbox-batch", type=int, default=1000,
                        help="OUTBOX_BATCH of the end-to-end ingest replica (default 1000)")
    parser.add_argument("--outbox-concurrency", type=int, default=1,
                        help="OUTBOX_CONCURRENCY of the end-to-end ingest replica (default 1, the service's)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run every service process under cProfile, its profile written to DIR/<name>.prof")
    args = parser.parse_args(argv)
    if args.profile is not None:
        global PROFILE_DIR
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile.resolve()
    args.subjects = args.subjects or (200 if args.quick else 1000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.databases = [args.only] if args.only else ["sqlite", "postgresql"]
    args.modes = [] if args.e2e_only else ["unary", "stream"]
    if args.e2e_only and not args.e2e:
        parser.error("--e2e-only and --no-e2e leave nothing to measure")
    print("how: records/s over gRPC into a fresh ingest process and database, validation, consent (real "
          "consent service), idempotency and outbox on; raw = Core executemany of the same rows; "
          "ratio = end-to-end / raw")
    figures = asyncio.run(run(args))
    ratios = [v for k, v in figures.items() if "_ratio_" in k]
    e2e = [v for k, v in figures.items() if k.endswith("_ratio_e2e")]
    if e2e:
        figures["e2e_ratio"] = min(e2e)
    print(f"\ngoal: end to end at least 0.25x raw; worst ratio {min(ratios):.2f}"
          + (f"; worst accepted -> applied -> scored {min(e2e):.2f}" if e2e else ""))
    print(result_line("ingest", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
