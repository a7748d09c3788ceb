"""The whole population path, stage by stage, through the running suite.

``python -m bench.population [--quick] [--subjects N] [--db sqlite|postgres]``

The five services run as ``creditscore run`` runs them (``creditscore.cli.run``):
separate processes (``python -m <package>``), authentication required everywhere,
each with its own store: a SQLite file in a temporary folder, or (``--db
postgres``) a database of its own created on the server ``--postgres-url`` names
(default ``$TEST_POSTGRES_URL``) and dropped afterwards. The scoring service starts
with the shipped scorecard 1.0.0 active. A simulated population
(``creditscore.sim``; default 10,000 subjects, ``--quick`` 1,000) then goes through
the public RPCs, each stage timed and every answer checked; the first wrong
answer stops the run without a figure:

1. sign-up (``signup``): every subject enrolled (``EnrollSubject``) and its
   consents granted (``GrantConsent``: four sources for scoring, the same and the
   loan outcomes for model development; every 5th subject with external records
   withholds that source) by the subjects' app, a service, 16 subjects at a time;
2. ingest: each producer (registered with its sources) sends its records with
   its own token, batches of 500, the five producers at once; every record must
   be answered, in order, ACCEPTED, or REJECTED with CONSENT_REQUIRED exactly
   where consent was withheld;
3. delivery: until every accepted record is applied by the feature service
   (through the ingest outbox) and every subject with such records has its score
   materialized;
4. rescore: scorecard 2.0.0 activated (``ScoringService/ActivateModel``); until
   every materialized score is from it (the feature service learns the change
   within its ``MODEL_REFRESH_SECONDS``, 5 s by default, and re-scores in the
   background);
5. month-boundary expiry: every materialized score's ``valid_until`` moved into
   the past with one UPDATE of the feature store (what the first of a month does
   to it: the services read the host's clock, which no run can move); until every
   score is scored again by the refresher's expired pass, still from 2.0.0;
6. training from the suite: ``IngestService/ExportTrainingRecords`` (model
   development consent only) to a point-in-time matrix
   (``creditscore.features.engine``) to a scorecard (``creditscore.scorecard``),
   in a child process (wall time, its peak RSS); the export must hold every
   accepted record and every loan outcome, and the scorecard must come with a
   holdout AUC (printed; not held to a bar: at a few hundred outcomes it is noisy);
7. lookups: a partner registered; up to ``--lookup-subjects`` subjects whose
   materialized score is SCORED authorize it from their own app (a subject
   token from the gateway's ``TokenService`` for the secret shown at sign-up,
   ``SubjectService/GrantAuthorization``); ``--lookups`` calls of
   ``GetCreditScore`` at 8 in flight with the partner's token, each answer
   SCORED, in 350-950, and equal to the subject's materialized score.

Progress (3, 4, 5) is read from the feature service's store, read only: the service's
own RPCs re-score out-of-date rows within the call, so asking them would do the
work being timed.

After each stage: each service's peak RSS (``VmHWM`` of ``/proc/<pid>/status``)
and the bytes of each store per subject, counted over what the store took empty
(schema only) when the suite was ready (SQLite: the file with its WAL, which holds
pages not yet checkpointed; PostgreSQL: ``pg_database_size``). Each run's figures are appended as one JSON line
to ``var/population.jsonl`` (``--json``), which ``python -m bench.population_plot``
draws. Ends with one ``RESULT population ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import BENCH_ENV, code_version, describe_machine
from bench._population import (
    PopulationRun,
    Stage,
    append_json_line,
    describe_stage,
    population_result_line,
    work_rate,
)
from creditscore.runtime import TokenSource, create_channel

SERVICE_NAMES = ("consent_service", "ingest_service", "feature_service", "scoring_service", "gateway")
STORES = ("consent_service", "ingest_service", "feature_service", "scoring_service")
FIRST_MODEL, SECOND_MODEL = "1.0.0", "2.0.0"
BATCH = 500
CALL_TIMEOUT = 30.0
LOOKUP_IN_FLIGHT = 8
#: Where the month-boundary stage moves every score's ``valid_until``: long past.
EXPIRED_AT = datetime(2000, 1, 1, tzinfo=UTC)


class WrongAnswer(RuntimeError):
    """A stage got a failed call or a wrong answer: the run stops without a figure."""


# -- watching the processes and the stores ----------------------------------------


def peak_rss_kb(pid: int) -> int:
    """``VmHWM`` of a live process, in kB (0 where /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Stores:
    """Each service's store: its size, and read-only counts in the feature store."""

    def __init__(self, db: str, data_dir: Path, urls: dict[str, str]) -> None:
        self.db = db
        self.data_dir = data_dir
        self.urls = urls  # PostgreSQL: asyncpg URLs by service

    def _sqlite(self, service: str) -> Path:
        return self.data_dir / f"{service}.db"

    async def sizes(self) -> dict[str, int]:
        if self.db == "sqlite":
            out = {}
            for service in STORES:
                path = self._sqlite(service)
                out[service] = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
            return out
        import asyncpg

        out = {}
        for service in STORES:
            conn = await asyncpg.connect(_asyncpg_dsn(self.urls[service]))
            try:
                out[service] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
            finally:
                await conn.close()
        return out

    async def largest_tables(self, service: str, k: int = 3) -> list[tuple[str, int]]:
        """PostgreSQL: the ``k`` largest tables of a service's database with their
        ``pg_total_relation_size``; SQLite: nothing (one file)."""
        if self.db == "sqlite":
            return []
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(self.urls[service]))
        try:
            rows = await conn.fetch(
                "SELECT relname, pg_total_relation_size(relid) AS size FROM pg_stat_user_tables "
                "ORDER BY size DESC LIMIT $1", k)
        finally:
            await conn.close()
        return [(r["relname"], int(r["size"])) for r in rows]

    async def feature_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the feature store."""
        if self.db == "sqlite":
            uri = f"file:{self._sqlite('feature_service')}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=30) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(self.urls["feature_service"]))
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def expire_every_score(self) -> int:
        """What a month boundary does to the feature store, brought on at once:
        every materialized score's ``valid_until`` moved to ``EXPIRED_AT``, so the
        refresher's expired pass (every ``SCORE_REFRESH_SECONDS``) scores each row
        again and a lookup that meets one first scores it within the call. The one
        write of the bench to a service's store; how many rows it moved."""
        sql = "UPDATE subject_features SET valid_until = {} WHERE score IS NOT NULL"
        if self.db == "sqlite":
            # The column as SQLAlchemy writes a UtcDateTime on SQLite: naive UTC text.
            with sqlite3.connect(self._sqlite("feature_service"), timeout=60) as conn:
                return int(conn.execute(sql.format("?"), (EXPIRED_AT.strftime("%Y-%m-%d %H:%M:%S.%f"),)).rowcount)
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(self.urls["feature_service"]))
        try:
            status = await conn.execute(sql.format("$1"), EXPIRED_AT)
        finally:
            await conn.close()
        return int(status.split()[-1])

    async def expiry_progress(self) -> tuple[int, int]:
        """(materialized scores scored again since ``expire_every_score``, materialized scores in all)."""
        cutoff = "2000-01-02 00:00:00" + ("" if self.db == "sqlite" else "+00")  # a day after EXPIRED_AT
        rows = await self.feature_rows(
            f"SELECT coalesce(sum(CASE WHEN valid_until > '{cutoff}' THEN 1 ELSE 0 END), 0), count(*) "
            "FROM subject_features WHERE score IS NOT NULL")
        return int(rows[0][0]), int(rows[0][1])

    async def delivery_progress(self) -> tuple[int, int]:
        """(records applied, subjects whose score is materialized)."""
        rows = await self.feature_rows(
            "SELECT (SELECT count(*) FROM applied_records), "
            "(SELECT count(*) FROM subject_features WHERE score IS NOT NULL)")
        return int(rows[0][0]), int(rows[0][1])

    async def rescore_progress(self, version: str) -> tuple[int, int]:
        """(materialized scores from ``version``, materialized scores in all)."""
        rows = await self.feature_rows(
            "SELECT coalesce(sum(CASE WHEN model_version = '" + version.replace("'", "''")
            + "' THEN 1 ELSE 0 END), 0), count(*) FROM subject_features WHERE score IS NOT NULL")
        return int(rows[0][0]), int(rows[0][1])

    async def materialized(self) -> dict[str, bytes]:
        """Each subject's materialized score (a serialized ``scoring.v1.Score``)."""
        rows = await self.feature_rows("SELECT subject_id, score FROM subject_features WHERE score IS NOT NULL")
        return {str(sid): bytes(blob) for sid, blob in rows}


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_pg_databases(admin_url: str, tag: str) -> dict[str, str]:
    """A database per store on the server of ``admin_url``: their URLs by service."""
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    conn = await asyncpg.connect(_asyncpg_dsn(admin.set(drivername="postgresql").render_as_string(False)))
    urls = {}
    try:
        for service in STORES:
            name = f"pop_{tag}_{service.removesuffix('_service')}"
            await conn.execute(f'CREATE DATABASE "{name}"')
            urls[service] = admin.set(drivername="postgresql", database=name).render_as_string(False)
    finally:
        await conn.close()
    return urls


async def drop_pg_databases(admin_url: str, urls: dict[str, str]) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    conn = await asyncpg.connect(_asyncpg_dsn(admin.set(drivername="postgresql").render_as_string(False)))
    try:
        for url in urls.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def wait_until(
    what: str, progress: Callable[[], Awaitable[tuple[int, int]]], done: Callable[[tuple[int, int]], bool],
    timeout: float, *, poll: float = 0.2, alive: Callable[[], None] | None = None,
) -> tuple[float, float | None]:
    """Polls ``progress()`` until ``done(it)``: (seconds, seconds until the first
    change from the first reading). ``TimeoutError`` after ``timeout`` seconds."""
    start = time.perf_counter()
    first = await progress()
    first_change: float | None = None
    state = first
    while not done(state):
        if alive is not None:
            alive()
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s (last reading {state})")
        await asyncio.sleep(poll)
        state = await progress()
        if first_change is None and state != first:
            first_change = time.perf_counter() - start
    return time.perf_counter() - start, first_change


# -- the stages ---------------------------------------------------------------------


@dataclass
class SignupResult:
    enrolled: int
    grants: int
    #: Each subject's own secret, shown once by its enrollment.
    secrets: dict[str, str] = field(default_factory=dict)


def consents_of(subject_id: str, withholding: set[str]) -> list[tuple[int, int]]:
    """(source, purpose) pairs a subject grants at sign-up: the four scoring
    sources (less external where withheld) for credit scoring, the same for model
    development, and the loan outcomes for model development."""
    from creditscore.common.v1 import common_pb2 as c

    sources = [c.DATA_SOURCE_COMMERCE, c.DATA_SOURCE_PAYMENTS, c.DATA_SOURCE_IDENTITY, c.DATA_SOURCE_EXTERNAL]
    if subject_id in withholding:
        sources.remove(c.DATA_SOURCE_EXTERNAL)
    grants = [(s, c.PURPOSE_CREDIT_SCORING) for s in sources]
    grants += [(s, c.PURPOSE_MODEL_DEVELOPMENT) for s in sources]
    grants.append((c.DATA_SOURCE_OUTCOMES, c.PURPOSE_MODEL_DEVELOPMENT))
    return grants


async def signup(
    consent: Any, subject_ids: Sequence[str], withholding: set[str], *, concurrency: int = 64, tag: str = ""
) -> SignupResult:
    """Signs every subject up: one ``EnrollSubject`` per subject carrying its
    initial consents (``consents_of``), ``concurrency`` subjects at a time, each
    reply checked (the subject created with its secret, every consent granted as
    asked, in the request's order)."""
    from creditscore.consent.v1 import consent_pb2

    sem = asyncio.Semaphore(concurrency)
    result = SignupResult(0, 0)

    async def one(sid: str) -> None:
        async with sem:
            wanted = list(consents_of(sid, withholding))
            enrolled = await consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
                request_id=f"pop{tag}-enroll-{sid}", subject_id=sid,
                consents=[consent_pb2.InitialConsent(source=source, purpose=purpose)
                          for source, purpose in wanted]), timeout=CALL_TIMEOUT)
            if not enrolled.created or not enrolled.subject_secret or enrolled.subject.subject_id != sid:
                raise WrongAnswer(f"EnrollSubject({sid}) did not create it: {enrolled}")
            granted = [(c.subject_id, c.source, c.purpose) for c in enrolled.consents]
            if granted != [(sid, source, purpose) for source, purpose in wanted]:
                raise WrongAnswer(f"EnrollSubject({sid}) granted {granted}, not {wanted}")
            result.secrets[sid] = enrolled.subject_secret
            result.enrolled += 1
            result.grants += len(granted)

    await _gather_or_fail(one(sid) for sid in subject_ids)
    return result


async def _gather_or_fail(coros: Iterable[Awaitable[None]]) -> None:
    """All of ``coros``; the first failure cancels the rest and is raised as
    ``WrongAnswer`` (a failed call is a wrong answer)."""
    import grpc

    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except grpc.aio.AioRpcError as exc:
        raise WrongAnswer(f"a call failed: {exc.code().name} {exc.details()}") from None
    finally:
        for task in tasks:
            task.cancel()


@dataclass
class IngestResult:
    sent: int = 0
    accepted_for_features: int = 0
    outcomes_accepted: int = 0
    rejected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: Subjects with at least one record accepted for the feature service.
    subjects_with_features: set[str] = field(default_factory=set)


def check_ingest_reply(batch: Sequence[Any], reply: Any, withheld: set[tuple[str, str]], out: IngestResult) -> None:
    """Every record answered once, in order: ACCEPTED, or REJECTED with
    CONSENT_REQUIRED exactly where its (subject, kind) was withheld."""
    from creditscore.ingest.v1 import ingest_pb2

    if len(reply.results) != len(batch):
        raise WrongAnswer(f"{len(batch)} records sent, {len(reply.results)} results")
    for i, (record, result) in enumerate(zip(batch, reply.results, strict=True)):
        kind = record.WhichOneof("body")
        if result.index != i or result.record_id != record.record_id[:128]:
            raise WrongAnswer(f"result {i} answers record {result.index} {result.record_id!r}")
        if (record.subject_id, kind) in withheld:
            if result.status != ingest_pb2.RECORD_STATUS_REJECTED or result.reason != "CONSENT_REQUIRED":
                raise WrongAnswer(f"record {record.record_id} had no consent, answered "
                                  f"{ingest_pb2.RecordStatus.Name(result.status)} {result.reason}")
            out.rejected += 1
        elif result.status != ingest_pb2.RECORD_STATUS_ACCEPTED:
            raise WrongAnswer(f"record {record.record_id} answered {ingest_pb2.RecordStatus.Name(result.status)} "
                              f"{result.reason} {list(result.field_violations)}")
        elif kind == "loan_outcome":
            out.outcomes_accepted += 1
        else:
            out.accepted_for_features += 1
            out.subjects_with_features.add(record.subject_id)
        out.statuses[ingest_pb2.RecordStatus.Name(result.status)] += 1
    out.sent += len(batch)


async def ingest_all(
    ingest: Any, by_producer: dict[str, list[Any]], tokens: dict[str, TokenSource], withheld: set[tuple[str, str]]
) -> IngestResult:
    """Each producer sends its records in batches, with its own token; the
    producers at once."""
    from creditscore.cli.run import bearer
    from creditscore.ingest.v1 import ingest_pb2

    out = IngestResult()

    async def producer(name: str, records: list[Any]) -> None:
        for start in range(0, len(records), BATCH):
            batch = records[start:start + BATCH]
            reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
                request_id=f"pop-{name}-{start}", producer_id=name, records=batch),
                metadata=bearer(await tokens[name].token()), timeout=CALL_TIMEOUT * 2)
            check_ingest_reply(batch, reply, withheld, out)

    await _gather_or_fail(producer(name, records) for name, records in sorted(by_producer.items()))
    return out


def _client_tokens(consent_addr: str, credentials: Any) -> TokenSource:
    """A producer's or partner's token for its credentials, fetched again before it expires."""
    from creditscore.cli.run import issue_token

    async def fetch() -> str:
        return await issue_token(consent_addr, credentials.client_id, credentials.client_secret)

    return TokenSource(fetch)


def _train_child(ingest_addr: str) -> int:
    """``python -m bench.population --train-from ADDR``: the training from the suite
    (``CREDITSCORE_TOKEN``: a service token), one JSON line of figures on stdout."""
    from creditscore.cli.training_source import fetch_training_records
    from creditscore.features.engine import point_in_time_matrix
    from creditscore.scorecard.config import TrainingConfig
    from creditscore.scorecard.training import train_matrix

    t0 = time.perf_counter()
    data = asyncio.run(fetch_training_records(ingest_addr))
    t1 = time.perf_counter()
    matrix = point_in_time_matrix(data.records, data.outcomes)
    t2 = time.perf_counter()
    result = train_matrix(matrix.X, matrix.y, list(matrix.feature_names),
                          TrainingConfig(version="bench-population", description="bench.population", seed=7))
    t3 = time.perf_counter()
    auc = float(result.metrics.get("auc", float("nan")))
    print(json.dumps({
        "records": len(data.records), "outcomes": len(data.outcomes), "rows": int(len(matrix.y)),
        "skipped_without_consent": data.skipped_without_consent,
        "export_s": t1 - t0, "matrix_s": t2 - t1, "fit_s": t3 - t2, "auc": auc,
        "peak_rss_kb": peak_rss_kb(os.getpid()),
    }))
    return 0


async def authorize_from_apps(gateway_addr: str, secrets: dict[str, str], partner_id: str, concurrency: int = 8) -> int:
    """Each subject of ``secrets`` authorizes the partner for credit applications
    (full score) from its own app: a subject token, then GrantAuthorization."""
    from creditscore.cli.run import bearer
    from creditscore.common.v1 import common_pb2
    from creditscore.gateway.v1 import subject_pb2, subject_pb2_grpc
    from creditscore.runtime import create_channel

    sem = asyncio.Semaphore(concurrency)
    done = 0
    async with create_channel(gateway_addr) as channel:
        tokens = subject_pb2_grpc.TokenServiceStub(channel)
        subjects = subject_pb2_grpc.SubjectServiceStub(channel)

        async def one(sid: str, secret: str) -> None:
            nonlocal done
            async with sem:
                issued = await tokens.IssueToken(
                    subject_pb2.IssueTokenRequest(client_id=sid, client_secret=secret), timeout=CALL_TIMEOUT)
                granted = await subjects.GrantAuthorization(subject_pb2.GrantAuthorizationRequest(
                    request_id=f"pop-auth-{sid}", partner_id=partner_id,
                    purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                    scope=common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE), metadata=bearer(issued.token),
                    timeout=CALL_TIMEOUT)
                if granted.authorization.partner_id != partner_id:
                    raise WrongAnswer(f"GrantAuthorization for {sid} answered {granted}")
                done += 1

        await _gather_or_fail(one(sid, secret) for sid, secret in secrets.items())
    return done


# -- the run ------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    from creditscore.cli.run import (
        PRODUCER_SOURCES,
        issue_token,
        start_suite,
        wait_serving,
    )
    from creditscore.common.v1 import common_pb2
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
    from creditscore.ingest.v1 import ingest_pb2_grpc
    from creditscore.runtime import tool_channel
    from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
    from creditscore.sim import simulate

    tag = uuid.uuid4().hex[:8]
    code, machine, started = code_version(), describe_machine(), datetime.now(UTC).isoformat(timespec="seconds")
    if args.db == "postgres" and not args.postgres_url:
        print("--db postgres needs --postgres-url (or TEST_POSTGRES_URL)", file=sys.stderr)
        return 2
    own_dir = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="population-"))
    urls: dict[str, str] = {}
    if args.db == "postgres":
        urls = await create_pg_databases(args.postgres_url, tag)
    stores = Stores(args.db, data_dir, urls)
    database_urls = {s: u.replace("postgresql://", "postgresql+asyncpg://", 1) for s, u in urls.items()}

    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = time.perf_counter()
    population = simulate(args.subjects, seed=args.seed, as_of=as_of)
    by_producer = population.by_producer()
    n_records = sum(len(r) for r in by_producer.values())
    print(f"simulated {len(population.subjects):,} subjects, {n_records:,} records "
          f"({n_records / len(population.subjects):.1f} per subject, loan outcomes included) "
          f"in {time.perf_counter() - t0:.1f} s (seed {args.seed})")

    # The one client process stands for every subject's app: the gateway's IssueToken
    # limit per peer address (5/s) is raised out of the way, like the partner's
    # lookup limit (BENCH_ENV); the limiters still run on every call.
    env = {**BENCH_ENV, "MODEL_VERSION": FIRST_MODEL, "TOKEN_RATE_PER_PEER": "1000000",
           "TOKEN_BURST_PER_PEER": "1000000"}
    try:
        suite = start_suite(data_dir, args.base_port, env=env, database_urls=database_urls or None)
    except BaseException:
        await _clean_up(args, urls, data_dir if own_dir else None)
        raise
    stages: list[Stage] = []
    extra: dict[str, float | int | str] = {}
    empty: dict[str, int] = {}

    def alive() -> None:
        for name, proc in suite.procs.items():
            if proc.poll() is not None:
                raise WrongAnswer(f"{name} exited with {proc.returncode} (logs in {data_dir / 'logs'})")

    async def finish(stage: Stage) -> None:
        alive()
        stage.peak_rss_kb = {s: peak_rss_kb(suite.procs[s].pid) for s in SERVICE_NAMES}
        sizes = await stores.sizes()
        stage.store_bytes = {s: sizes[s] - empty.get(s, 0) for s in sizes}
        stages.append(stage)
        for line in describe_stage(stage, len(population.subjects)):
            print(line, flush=True)

    try:
        await wait_serving(suite, timeout=120)
        # What the stores take with their schema and nothing else (PostgreSQL: ~7.5 MB a
        # database): the bytes per subject are counted over it.
        empty = await stores.sizes()
        print(f"suite SERVING on {args.db} ({', '.join(f'{p} {suite.ports[p]}' for p in SERVICE_NAMES)}); "
              f"scorecard {FIRST_MODEL} active")
        # Runs outlast a token (15 minutes): every token is fetched again before it expires.
        operator = suite.operator_token_source()
        consent_ch = create_channel(suite.addr("consent_service"), tokens=operator)
        ingest_ch = create_channel(suite.addr("ingest_service"))
        scoring_ch = create_channel(suite.addr("scoring_service"), tokens=operator)
        try:
            consent = consent_pb2_grpc.ConsentServiceStub(consent_ch)
            # Producers, each registered with its sources and sending with its own token.
            tokens: dict[str, TokenSource] = {}
            for producer, sources in PRODUCER_SOURCES.items():
                registered = await consent.RegisterProducer(consent_pb2.RegisterProducerRequest(
                    request_id=f"pop-producer-{producer}", producer_id=producer, display_name=producer,
                    sources=sources), timeout=CALL_TIMEOUT)
                tokens[producer] = _client_tokens(suite.addr("consent_service"), registered.credentials)

            # 1. sign-up
            subject_ids = [s.subject_id for s in population.subjects]
            with_external = [s.subject_id for s in population.subjects
                             if common_pb2.DATA_SOURCE_EXTERNAL in s.sources]
            withholding = set(with_external[::5])
            t = time.perf_counter()
            signed = await signup(consent, subject_ids, withholding, tag=tag)
            seconds = time.perf_counter() - t
            if signed.enrolled != len(subject_ids) or len(signed.secrets) != len(subject_ids):
                raise WrongAnswer(f"{signed.enrolled} of {len(subject_ids)} subjects enrolled")
            expected_grants = sum(len(consents_of(s, withholding)) for s in subject_ids)
            if signed.grants != expected_grants:
                raise WrongAnswer(f"{signed.grants} of {expected_grants} consents granted")
            extra["consent_writes_per_s"] = (signed.enrolled + signed.grants) / seconds
            await finish(Stage("signup", signed.enrolled, seconds,
                               note=f"{signed.grants:,} consents granted: "
                                    f"{(signed.enrolled + signed.grants) / seconds:,.0f} consent writes/s, "
                                    "16 subjects in flight"))

            # 2. ingest
            withheld = {(sid, "external") for sid in withholding}
            t_ingest = time.perf_counter()
            ingested = await ingest_all(ingest_pb2_grpc.IngestServiceStub(ingest_ch), by_producer, tokens, withheld)
            seconds = time.perf_counter() - t_ingest
            if ingested.sent != n_records:
                raise WrongAnswer(f"{ingested.sent} of {n_records} records answered")
            await finish(Stage("ingest", ingested.sent, seconds,
                               note=f"{ingested.accepted_for_features:,} accepted for features, "
                                    f"{ingested.outcomes_accepted:,} loan outcomes, {ingested.rejected:,} "
                                    "refused CONSENT_REQUIRED where withheld; 5 producers at once, "
                                    f"batches of {BATCH}"))

            # 3. delivery to features, scores materialized
            want = (ingested.accepted_for_features, len(ingested.subjects_with_features))
            seconds, _ = await wait_until(
                "delivery", stores.delivery_progress, lambda p: p[0] >= want[0] and p[1] >= want[1],
                timeout=300 + n_records * 0.05, alive=alive)
            applied, scored = await stores.delivery_progress()
            if (applied, scored) != want:
                raise WrongAnswer(f"feature store holds {applied} records and {scored} scores, expected {want}")
            await finish(Stage("delivery", ingested.accepted_for_features, seconds,
                               note=f"after the last ingest reply; {scored:,} subjects with a materialized "
                                    "score; e2e "
                                    f"{ingested.accepted_for_features / (time.perf_counter() - t_ingest):,.0f}"
                                    " records/s from the first record sent"))

            # 4. rescore after activating another model
            scoring = scoring_pb2_grpc.ScoringServiceStub(scoring_ch)
            t = time.perf_counter()
            activated = await scoring.ActivateModel(scoring_pb2.ActivateModelRequest(
                request_id=f"pop-activate-{tag}", version=SECOND_MODEL, note="bench.population"),
                timeout=CALL_TIMEOUT)
            if activated.model.version != SECOND_MODEL:
                raise WrongAnswer(f"ActivateModel answered {activated.model.version}")
            seconds, first = await wait_until(
                "rescore", lambda: stores.rescore_progress(SECOND_MODEL), lambda p: p[0] == want[1] == p[1],
                timeout=300 + len(subject_ids) * 0.2, alive=alive)
            seconds = time.perf_counter() - t
            noticed = first or 0.0
            extra["rescore_noticed_s"] = noticed
            extra["rescore_work_per_s"], work = work_rate(want[1], seconds, noticed)
            await finish(Stage("rescore", want[1], seconds,
                               note=f"from ActivateModel({SECOND_MODEL}); the first row moved after "
                                    f"{noticed:.1f} s (MODEL_REFRESH_SECONDS), then {work}"))

            # 5. month-boundary expiry: every score out of date at once, as at the first of a month
            moved = await stores.expire_every_score()
            if moved != want[1]:
                raise WrongAnswer(f"{moved} materialized scores expired, expected {want[1]}")
            t = time.perf_counter()
            seconds, first = await wait_until(
                "expiry", stores.expiry_progress, lambda p: p[0] == want[1] == p[1],
                timeout=300 + len(subject_ids) * 0.2, alive=alive)
            after = await stores.rescore_progress(SECOND_MODEL)
            if after != (want[1], want[1]):
                raise WrongAnswer(f"after the expiry {after[0]} of {after[1]} scores are from {SECOND_MODEL}")
            noticed = first or 0.0
            extra["expiry_noticed_s"] = noticed
            extra["expiry_work_per_s"], work = work_rate(want[1], seconds, noticed)
            await finish(Stage("expiry", want[1], seconds, note=(
                f"every materialized score's valid_until moved into the past in one UPDATE (what the first "
                f"of a month does to the store); the first row scored again after {noticed:.1f} s "
                f"(SCORE_REFRESH_SECONDS), then {work}")))

            # 6. training from the suite
            t = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-m", "bench.population", "--train-from", suite.addr("ingest_service")],
                env={**os.environ, "CREDITSCORE_TOKEN": await operator.token()},
                capture_output=True, text=True, timeout=3600)
            seconds = time.perf_counter() - t
            if child.returncode != 0:
                raise WrongAnswer(f"training from the suite failed:\n{child.stderr[-3000:]}")
            trained = json.loads(child.stdout.strip().splitlines()[-1])
            if (trained["records"], trained["outcomes"]) != (ingested.accepted_for_features,
                                                             ingested.outcomes_accepted):
                raise WrongAnswer(f"the export held {trained['records']} records and {trained['outcomes']} outcomes, "
                                  f"expected {ingested.accepted_for_features} and {ingested.outcomes_accepted}")
            if not 0.0 <= trained["auc"] <= 1.0:  # NaN fails too
                raise WrongAnswer(f"the scorecard trained from the suite has a holdout AUC of {trained['auc']}")
            extra["train_peak_rss_mb"] = round(trained["peak_rss_kb"] / 1024)
            await finish(Stage("train", trained["outcomes"], seconds, note=(
                f"export {trained['export_s']:.1f} s, matrix {trained['matrix_s']:.1f} s, fit {trained['fit_s']:.1f} s "
                f"({trained['rows']:,} rows, holdout AUC {trained['auc']:.3f}); child process peak RSS "
                f"{trained['peak_rss_kb'] / 1024:.0f} MB")))

            # 7. lookups through the gateway
            materialized = await stores.materialized()
            scored_ids = []
            for sid in subject_ids:
                blob = materialized.get(sid)
                if blob is not None and scoring_pb2.Score.FromString(blob).state == common_pb2.SCORE_STATE_SCORED:
                    scored_ids.append(sid)
            lookup_ids = scored_ids[: args.lookup_subjects]
            if not lookup_ids:
                raise WrongAnswer("no subject has a SCORED materialized score")
            partner = await consent.RegisterPartner(consent_pb2.RegisterPartnerRequest(
                request_id=f"pop-partner-{tag}", partner_id="population-lender", display_name="Population Lender"),
                timeout=CALL_TIMEOUT)
            authorized = await authorize_from_apps(suite.addr("gateway"), {s: signed.secrets[s] for s in lookup_ids},
                                                   "population-lender")
            partner_token = await issue_token(suite.addr("consent_service"), partner.credentials.client_id,
                                              partner.credentials.client_secret)
            expected = {sid: scoring_pb2.Score.FromString(materialized[sid]) for sid in lookup_ids}
            from bench.lookup import WrongAnswer as LookupWrong
            from bench.lookup import drive

            gw = tool_channel(suite.addr("gateway"), partner_token)
            try:
                stub = gateway_pb2_grpc.CreditScoreServiceStub(gw)

                def call(i: int) -> Awaitable[Any]:
                    return stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                        subject_id=lookup_ids[i % len(lookup_ids)],
                        purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                        transaction_id=f"pop-{tag}-{i}"), timeout=CALL_TIMEOUT)

                def check(i: int, reply: Any) -> None:
                    cs, want_score = reply.credit_score, expected[lookup_ids[i % len(lookup_ids)]]
                    if cs.state != common_pb2.SCORE_STATE_SCORED or not 350 <= cs.score <= 950:
                        raise ValueError(f"state {cs.state} score {cs.score}")
                    if (cs.score, cs.model_version) != (want_score.score, want_score.model_version):
                        raise ValueError(f"score {cs.score} of {cs.model_version}, materialized "
                                         f"{want_score.score} of {want_score.model_version}")

                try:
                    level = await drive(call, args.lookups, LOOKUP_IN_FLIGHT, 600.0,
                                        [suite.procs[s].pid for s in SERVICE_NAMES], check)
                except LookupWrong as exc:
                    raise WrongAnswer(str(exc)) from None
            finally:
                await gw.close()
            if level.calls != args.lookups:
                raise WrongAnswer(f"{level.calls} of {args.lookups} lookups in the time allowed")
            extra["lookup_p50_ms"] = level.pct(0.5)
            extra["lookup_p99_ms"] = level.pct(0.99)
            extra["lookups_per_s"] = level.rate
            await finish(Stage("lookup", level.calls, level.seconds, note=(
                f"{LOOKUP_IN_FLIGHT} in flight over {len(lookup_ids):,} subjects ({authorized:,} authorized the "
                f"partner from their own app); p50 {level.pct(0.5):.2f} ms, p99 {level.pct(0.99):.2f} ms; every "
                "answer SCORED, 350-950, equal to the materialized score")))
        finally:
            await consent_ch.close()
            await ingest_ch.close()
            await scoring_ch.close()

        for service in STORES:
            largest = await stores.largest_tables(service)
            if largest:
                print(f"  {service}: largest tables " + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in largest))
        run_figures = PopulationRun(
            subjects=len(population.subjects), db=args.db, records=n_records, stages=stages, extra=extra,
            code=code, machine=machine, started=started)
        if args.json:
            append_json_line(Path(args.json), run_figures)
            print(f"figures appended to {args.json}")
        print(population_result_line(run_figures))
        return 0
    except (WrongAnswer, TimeoutError) as exc:
        print(f"STOPPED without a figure: {exc}", file=sys.stderr)
        return 1
    finally:
        suite.stop()
        await _clean_up(args, urls, data_dir if own_dir else None)


async def _clean_up(args: argparse.Namespace, urls: dict[str, str], data_dir: Path | None) -> None:
    """Drops the run's PostgreSQL databases and removes its own temporary folder."""
    if urls:
        await drop_pg_databases(args.postgres_url, urls)
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.population", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 subjects and 1,000 lookups")
    parser.add_argument("--subjects", type=int, default=None, help="simulated subjects (default 10,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", ""),
                        help="a server the run may create and drop databases on (default $TEST_POSTGRES_URL)")
    parser.add_argument("--base-port", type=int, default=0, help="gateway port, the others after it (0: free ports)")
    parser.add_argument("--data-dir", default=None, help="the suite's files (default: a temporary folder, removed)")
    parser.add_argument("--lookups", type=int, default=None, help="lookups timed (default 3,000; quick 1,000)")
    parser.add_argument("--lookup-subjects", type=int, default=1000, help="subjects looked up (default 1,000)")
    parser.add_argument("--json", default="var/population.jsonl", help="where the run's JSON line is appended")
    parser.add_argument("--train-from", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_from:
        return _train_child(args.train_from)
    args.subjects = args.subjects or (1000 if args.quick else 10_000)
    args.lookups = args.lookups or (1000 if args.quick else 3000)
    print(describe_machine())
    print(code_version())
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
