"""Sign-up throughput: subjects enrolled with their consents, one call each,
against a bare echo server measured in the same run.

``python -m bench.signup [--quick] [--subjects N] [--concurrency C] [--db sqlite|postgres|both]``

The consent service runs as ``creditscore run`` runs it: its own process
(``python -m consent_service``), authentication required (the calls carry an
operator's service token), its database a SQLite file in a temporary folder
(``synchronous=FULL``: every answered sign-up is on disk) or a fresh PostgreSQL
database (``--postgres-url``, default ``$TEST_POSTGRES_URL``; dropped after).

Sign-up: ``--subjects`` subjects (``--quick``: 2,000; default 20,000), each one
``EnrollSubject`` with the demo's nine consents (four sources for credit
scoring, the same four and the loan outcomes for model development),
``--concurrency`` calls in flight (default 64) on one channel from this one
client process. Every reply is checked (the subject created under its id, a
secret shown, the nine consents granted in the order asked); afterwards the
subjects and consents in the store are counted and must equal N and 9×N. A
failed call, a wrong reply or a wrong count stops the run without a figure.

Old way: the same at the same concurrency for ``--old-subjects`` others (default
a fiftieth, at least 50), as sign-up was made before: ``EnrollSubject`` alone, then nine
``GrantConsent`` calls one after the other (the speed-up is new over old).

Echo: a server from the same ``create_server`` (``python -m bench.lookup
--serve-echo``: interceptors, no authentication, no database) answering the
health service's ``Check``, at the same concurrency, as many calls as sign-ups.
The ratio is sign-ups/s over echo calls/s.

Server CPU is the consent process's CPU during the sign-ups over their number
(``/proc``). Ends with one ``RESULT signup ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import code_version, describe_machine, result_line
from bench.lookup import WrongAnswer, _describe, _start_echo, drive

DEFAULT_SUBJECTS = 20_000
QUICK_SUBJECTS = 2_000


def nine_consents() -> list[tuple[int, int]]:
    from creditscore.common.v1 import common_pb2 as c

    sources = (c.DATA_SOURCE_COMMERCE, c.DATA_SOURCE_PAYMENTS, c.DATA_SOURCE_IDENTITY, c.DATA_SOURCE_EXTERNAL)
    return [(s, c.PURPOSE_CREDIT_SCORING) for s in sources] + [
        (s, c.PURPOSE_MODEL_DEVELOPMENT) for s in (*sources, c.DATA_SOURCE_OUTCOMES)
    ]


async def _create_pg(admin_url: str) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    name = f"bench_signup_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
                                 password=admin.password, database=admin.database or "postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name).render_as_string(hide_password=False)


async def _drop_pg(admin_url: str, url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin, name = make_url(admin_url), make_url(url).database
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
                                 password=admin.password, database=admin.database or "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _start_consent(workdir: Path, database_url: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """The consent service as a process on a free port; its pid, port and an
    operator's token."""
    from creditscore.cli.run import DemoAuth, _free_port, issue_token
    from creditscore.runtime import create_channel, health_status

    auth = DemoAuth.create(workdir)
    port = _free_port()
    env = {**os.environ, **auth.env_for("consent_service"), "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(port),
           "DATABASE_URL": database_url, "PURGE_WORKER": "false"}
    log_path = workdir / "consent.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "consent_service"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    async with create_channel(f"127.0.0.1:{port}") as channel:
        while True:
            try:
                if await health_status(channel, "creditscore.consent.v1.ConsentService", timeout=1.0):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log_text = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the consent service did not start:\n{log_text}")
            await asyncio.sleep(0.1)
    token = await issue_token(f"127.0.0.1:{port}", "operator", auth.secrets["operator"])
    return proc, port, token


async def _count(database_url: str, prefix: str) -> tuple[int, int]:
    """Subjects and consents whose subject id starts with ``prefix``, read from the store."""
    from sqlalchemy import func, select

    from consent_service.tables import consents_table, subjects_table
    from creditscore.runtime import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            subjects = (await conn.execute(select(func.count()).select_from(subjects_table).where(
                subjects_table.c.subject_id.like(prefix + "%")))).scalar_one()
            consents = (await conn.execute(select(func.count()).select_from(consents_table).where(
                consents_table.c.subject_id.like(prefix + "%")))).scalar_one()
    finally:
        await engine.dispose()
    return int(subjects), int(consents)


async def one_database(args: argparse.Namespace, db: str, workdir: Path) -> dict[str, Any]:
    from creditscore.consent.v1 import consent_pb2 as pb
    from creditscore.consent.v1 import consent_pb2_grpc
    from creditscore.runtime import TokenSource, create_channel

    if db == "postgres":
        if not args.postgres_url:
            raise SystemExit("--db postgres needs --postgres-url (or TEST_POSTGRES_URL)")
        database_url = await _create_pg(args.postgres_url)
    else:
        database_url = f"sqlite:///{workdir / 'consent.db'}"
    print(f"\n== {db}: consent service on {database_url.split('@')[-1] if db == 'postgres' else 'a SQLite file'}")
    proc, port, token = await _start_consent(workdir / db, database_url)
    nine = nine_consents()
    figures: dict[str, Any] = {}
    try:
        async with create_channel(f"127.0.0.1:{port}", tokens=TokenSource.static(token)) as channel:
            stub = consent_pb2_grpc.ConsentServiceStub(channel)
            # Warm up: connections, the token, the first statements (not counted).
            for i in range(20):
                await stub.EnrollSubject(pb.EnrollSubjectRequest(request_id=f"warm-{i}", subject_id=f"warm-{i}"),
                                         timeout=10)
            n, prefix = args.subjects, "new-"
            requests = [
                pb.EnrollSubjectRequest(
                    request_id=f"su-{i}", subject_id=f"{prefix}{i:07d}",
                    consents=[pb.InitialConsent(source=s, purpose=p) for s, p in nine])
                for i in range(n)
            ]

            def check(i: int, reply: object) -> None:
                assert isinstance(reply, pb.EnrollSubjectResponse)
                want = requests[i].subject_id
                if not (reply.created and reply.subject.subject_id == want and reply.subject_secret):
                    raise AssertionError(f"{want}: not created as asked ({reply.subject.subject_id!r})")
                got = [(c.source, c.purpose) for c in reply.consents]
                if got != nine or any(c.state != pb.CONSENT_STATE_GRANTED or c.subject_id != want
                                      for c in reply.consents):
                    raise AssertionError(f"{want}: consents {got} are not the nine asked, granted")

            level = await drive(lambda i: stub.EnrollSubject(requests[i], timeout=30), n, args.concurrency,
                                1e9, [proc.pid], check)
            if level.calls != n:
                raise WrongAnswer(f"{level.calls} of {n} sign-ups made")
            print(_describe("sign-up (1 call, 9 consents)", level))
            subjects, consents = await _count(database_url, prefix)
            if (subjects, consents) != (n, 9 * n):
                raise WrongAnswer(f"the store holds {subjects} subjects and {consents} consents, "
                                  f"not {n} and {9 * n}")
            print(f"  read back from the store: {subjects} subjects, {consents} consents (= N and 9 x N)")

            old_n, old_prefix = args.old_subjects, "old-"

            async def old_way(i: int) -> pb.EnrollSubjectResponse:
                sid = f"{old_prefix}{i:07d}"
                reply = await stub.EnrollSubject(pb.EnrollSubjectRequest(request_id=f"old-{i}", subject_id=sid),
                                                 timeout=30)
                for s, p in nine:
                    granted = await stub.GrantConsent(pb.GrantConsentRequest(
                        request_id=f"old-{i}-{s}-{p}", subject_id=sid, source=s, purpose=p), timeout=30)
                    reply.consents.append(granted.consent)
                return reply

            def check_old(i: int, reply: object) -> None:
                assert isinstance(reply, pb.EnrollSubjectResponse)
                if not reply.created or [(c.source, c.purpose) for c in reply.consents] != nine:
                    raise AssertionError(f"old-way subject {i} not signed up as asked")

            old = await drive(old_way, old_n, args.concurrency, 1e9, [proc.pid], check_old)
            print(_describe("old way (10 calls)         ", old))
            if await _count(database_url, old_prefix) != (old_n, 9 * old_n):
                raise WrongAnswer("the old way's subjects or consents are not all in the store")
            figures = {
                "subjects_per_s": level.rate, "consent_writes_per_s": level.rate * 9,
                "p50_ms": level.pct(0.5), "p99_ms": level.pct(0.99),
                "server_cpu_ms": (level.server_cpu or 0.0) / n * 1000,
                "old_subjects_per_s": old.rate, "speedup_vs_old": level.rate / old.rate,
            }
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if db == "postgres":
            await _drop_pg(args.postgres_url, database_url)
    return figures


async def echo(args: argparse.Namespace, workdir: Path, calls: int) -> float:
    from grpc_health.v1 import health_pb2

    from creditscore.runtime import create_channel

    proc, port = await _start_echo(workdir)
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            check_call = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )

            def check(i: int, reply: object) -> None:
                if getattr(reply, "status", None) != health_pb2.HealthCheckResponse.SERVING:
                    raise AssertionError("echo not SERVING")

            for _ in range(200):
                await check_call(health_pb2.HealthCheckRequest(), timeout=5)
            level = await drive(lambda i: check_call(health_pb2.HealthCheckRequest(), timeout=5), calls,
                                args.concurrency, 1e9, [proc.pid], check)
            print(_describe("echo                       ", level))
            return level.rate
    finally:
        proc.terminate()
        proc.wait(15)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    print(describe_machine())
    print(code_version())
    print(f"{args.subjects} sign-ups (and {args.old_subjects} the old way) at {args.concurrency} in flight; "
          "one client process, one channel, everything on 127.0.0.1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-signup-"))
    figures: dict[str, Any] = {"subjects": args.subjects, "concurrency": args.concurrency}
    try:
        echo_rate = await echo(args, workdir, max(args.subjects, 5000))
        figures["echo_calls_per_s"] = echo_rate
        dbs = ("sqlite", "postgres") if args.db == "both" else (args.db,)
        for db in dbs:
            got = await one_database(args, db, workdir)
            got["ratio_to_echo"] = got["subjects_per_s"] / echo_rate
            key = "" if db == "sqlite" else "pg_"
            figures.update({f"{key}{name}": value for name, value in got.items()})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SUBJECTS} subjects")
    parser.add_argument("--subjects", type=int, default=None, help=f"sign-ups timed (default {DEFAULT_SUBJECTS})")
    parser.add_argument("--old-subjects", type=int, default=None,
                        help="subjects signed up the old way, 10 calls each (default a fiftieth)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", ""),
                        help="a PostgreSQL server to create the benchmark's database on")
    args = parser.parse_args(argv)
    if args.subjects is None:
        args.subjects = QUICK_SUBJECTS if args.quick else DEFAULT_SUBJECTS
    if args.old_subjects is None:
        args.old_subjects = max(50, args.subjects // 50)
    try:
        figures = asyncio.run(run(args))
    except WrongAnswer as exc:
        print(f"STOPPED without a figure: {exc}", file=sys.stderr)
        return 1
    print(f"sign-up figures: subjects/s with 9 consents each; ratio_to_echo = sign-ups/s over echo calls/s "
          f"at {args.concurrency} in flight")
    print(result_line("signup", {"db": args.db, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
