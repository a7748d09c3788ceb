"""How long the feature service takes to catch up when every materialized score
goes stale at once, and what lookups see meanwhile.

``python -m bench.rescore [--quick] [--subjects N] [--postgres URL]``

Every subject's materialized score (``docs/materialized-scores.md``) goes stale
after a model activation and at the start of each UTC month. This benchmark:

1. **Loads** ``--subjects`` subjects' aggregates straight into the feature
   service's table (the store's schema, migrated as the service migrates it; one
   executemany per 5,000 rows; no score yet). Their states are those of
   ``--templates`` simulated subjects (``creditscore.sim``, seed 7), subject ``i``
   taking template ``i mod templates``, so that every answer can be checked
   against the scoring engine.
2. Starts a real **scoring service** (``python -m scoring_service``, the shipped
   scorecards 1.0.0 and 2.0.0, 1.0.0 active) and a real **feature service**
   (``feature_service.server.build_server`` in its own process, its clock frozen
   at ``T0`` = 2026-11-15T12:00Z), both on SQLite files in a temporary folder
   (or on two fresh PostgreSQL databases), authentication disabled, tracing off.
   The feature service's refresher runs as shipped, with
   ``SCORE_REFRESH_SECONDS`` and ``MODEL_REFRESH_SECONDS`` set to 0.5.
3. **Initial**: times until every row has a score (the refresher's first pass).
4. **Idle lookups**: ``GetCurrentScores`` of one subject per call, 8 in flight,
   one in five a subject without data (no row): the idle p50/p99.
5. **(a) model change**: ``ActivateModel 2.0.0``; times from its answer until no
   row holds a score of another model (polled every 0.1 s with one
   ``SELECT ... LIMIT 1`` on the feature database), lookups at 8 in flight all
   the while.
6. **(b) month boundary**: the feature service's clock jumps to
   ``T1`` = 2026-12-01T00:00:01Z (SIGUSR1; the bench waits until the service
   says so); times until no row's ``valid_until`` has passed, lookups as in (a).

Every answer is checked, and the first wrong one (or a lookup that fails or takes
over 10 s) stops the run without a figure:
status OK for every subject, with or without data (a lookup never tells them
apart by its refusal or its shape); the score is the scoring engine's
(``Scorecard.score_one`` of the template's ``feature_vector`` at the clock's
instant) for the model version named; during (a) that version is 1.0.0 or
2.0.0, after it 2.0.0 only; during and after (b) every answer is of the vector at
``T1``. After each phase every subject is looked up once more (256 per call) and
checked the same way: no row left stale.

Reported per phase: subjects/s (subjects over the time from the trigger to the
last stale row gone), lookups' p50/p99 and their ratio to the idle p99, and the
p50 of subjects with data against subjects without (the rescore is the one
time a stale row costs a lookup a scoring call: the timing difference partners
could see).

Ends with ``RESULT rescore subjects_per_s=... lookup_p99_ratio=...`` (the worse
of the two phases for each).

``--profile PATH`` writes cProfile statistics of the feature service (PATH) and
of the scoring service (PATH.scoring) when they stop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import code_version, describe_machine, result_line

T0 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
OLD, NEW = "1.0.0", "2.0.0"
IN_FLIGHT = 8
NO_DATA_SHARE = 5  # one lookup in five is of a subject without data
LOAD_CHUNK = 5000
POLL_SECONDS = 0.1
LOOKUP_TIMEOUT = 10.0  # seconds; a lookup slower than this is a failure
_ROOT = Path(__file__).resolve().parent.parent


class Wrong(Exception):
    """An answer the benchmark checked and found wrong: no figure."""


# -- the feature service with a clock the benchmark moves ---------------------------


def _serve_feature() -> None:
    """``python -m bench.rescore --serve-feature``: the feature service as
    ``python -m feature_service`` runs it, but with its clock frozen at
    ``RESCORE_T0``, jumping to ``RESCORE_T1`` on SIGUSR1."""
    from creditscore.runtime import run_main
    from feature_service import server
    from feature_service.config import Settings

    now = [datetime.fromisoformat(os.environ["RESCORE_T0"])]
    later = datetime.fromisoformat(os.environ["RESCORE_T1"])

    def jump(*_: Any) -> None:
        now[0] = later

    signal.signal(signal.SIGUSR1, jump)

    async def build(settings: Settings, **kwargs: Any) -> Any:
        return await server.build_server(settings, clock=lambda: now[0], **kwargs)

    run_main("feature_service", Settings, build)


# -- the population -----------------------------------------------------------------


@dataclass
class Population:
    with_data: list[str]
    without_data: list[str]
    templates: list[Any]  # SubjectState per template
    template_of: dict[str, int]
    # (model version, instant) -> expected ScoreResult per template
    expected: dict[tuple[str, datetime], list[Any]] = field(default_factory=dict)
    empty: dict[tuple[str, datetime], Any] = field(default_factory=dict)


def _population(n: int, n_templates: int) -> Population:
    from creditscore.features.engine import SubjectState, apply_record, feature_vector
    from creditscore.scorecard.model import Scorecard
    from creditscore.sim import simulate

    sim = simulate(n_templates, seed=7)
    states: dict[str, SubjectState] = {}
    for record in sim.records:
        apply_record(states.setdefault(record.subject_id, SubjectState()), record)
    templates = [states[s] for s in sorted(states)]
    with_data = [f"rs-{i:08d}" for i in range(n)]
    without = [f"rs-none-{i:06d}" for i in range(max(100, n // 50))]
    pop = Population(with_data, without, templates, {s: i % len(templates) for i, s in enumerate(with_data)})
    model_dir = _ROOT / "scoring_service" / "models"
    for version in (OLD, NEW):
        card = Scorecard.load(model_dir / f"scorecard-{version}.json")
        for when in (T0, T1):
            pop.expected[(version, when)] = [card.score_one(feature_vector(t, when)) for t in templates]
            pop.empty[(version, when)] = card.score_one(feature_vector(SubjectState(), when))
    return pop


async def _load(url: str, pop: Population) -> float:
    """Writes every subject's aggregates (no score) into a migrated, empty
    feature database; seconds taken."""
    from creditscore.runtime import make_engine
    from creditscore.runtime._migrations import prepare_schema
    from feature_service.migrations import MIGRATIONS
    from feature_service.store import subject_features

    engine = make_engine(url)
    try:
        await prepare_schema(engine, MIGRATIONS, auto_migrate=True)
        start = time.perf_counter()
        texts = [t.to_json() for t in pop.templates]
        counts = [t.record_count for t in pop.templates]
        ids = pop.with_data
        for at in range(0, len(ids), LOAD_CHUNK):
            rows = [
                {"subject_id": s, "state": texts[pop.template_of[s]], "record_count": counts[pop.template_of[s]],
                 "updated_time": T0}
                for s in ids[at:at + LOAD_CHUNK]
            ]
            async with engine.begin() as conn:
                await conn.execute(subject_features.insert(), rows)
        return time.perf_counter() - start
    finally:
        await engine.dispose()


# -- the services ---------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update({"OTEL_SDK_DISABLED": "true", "AUTH_MODE": "disabled", "LOG_LEVEL": "WARNING",
                 "PYTHONPATH": str(_ROOT)})
    base.update(env)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, *args], env=base, stdout=out, stderr=subprocess.STDOUT, cwd=_ROOT)


async def _wait_serving(addr: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from creditscore.runtime import create_channel

    deadline = time.monotonic() + seconds
    async with create_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"a service exited at start:\n{log.read_text()[-3000:]}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{addr} did not become ready in {seconds} s:\n{log.read_text()[-3000:]}")


# -- checking answers -----------------------------------------------------------------


def _check(pop: Pop, subject_id: str, current: Any, allowed: Callable[[str], datetime | None]) -> None:
    """Raises ``Wrong`` unless ``current`` (a CurrentScore) is the scoring engine's
    score of the subject's vector at ``allowed(model_version)`` (None: that
    version is not allowed now)."""
    from creditscore.common.v1 import common_pb2
    from creditscore.scorecard.model import ScoreState

    score = current.score
    when = allowed(score.model_version)
    if current.subject_id != subject_id or score.subject_id != subject_id:
        raise Wrong(f"{subject_id}: answered for {current.subject_id!r}/{score.subject_id!r}")
    if when is None:
        raise Wrong(f"{subject_id}: model version {score.model_version!r} is not allowed now")
    index = pop.template_of.get(subject_id)
    want = pop.empty[(score.model_version, when)] if index is None else pop.expected[(score.model_version, when)][index]
    scored = score.state == common_pb2.SCORE_STATE_SCORED
    if scored != (want.state is ScoreState.SCORED) or score.score != (want.score or 0) or [
        r.code for r in score.reasons
    ] != [r.code for r in want.reasons]:
        raise Wrong(
            f"{subject_id}: score {score.score} state {score.state} reasons {[r.code for r in score.reasons]} "
            f"of {score.model_version}, the engine gives {want.score} {want.state} "
            f"{[r.code for r in want.reasons]} for its vector at {when.isoformat()}"
        )
    if index is None and (score.score_id != 0 or current.sources_used):
        raise Wrong(f"{subject_id}: a subject without data got a stored score or sources")


Pop = Population


@dataclass
class Lookups:
    """Latencies (ms) of the lookups of one phase, by kind."""

    with_data: list[float] = field(default_factory=list)
    without_data: list[float] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        return self.with_data + self.without_data


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _lookups(
    stub: Any, pop: Population, allowed: Callable[[str], datetime | None], stop: asyncio.Event,
    calls: int | None, seed: int,
) -> Lookups:
    """``GetCurrentScores`` of one subject per call, ``IN_FLIGHT`` at once, until
    ``stop`` is set (or ``calls`` calls are made); every answer checked."""
    import grpc

    from creditscore.feature.v1 import feature_pb2

    rng = random.Random(seed)
    out = Lookups()
    made = 0

    async def worker() -> None:
        nonlocal made
        while not stop.is_set() and (calls is None or made < calls):
            made += 1
            no_data = rng.randrange(NO_DATA_SHARE) == 0
            subject = rng.choice(pop.without_data if no_data else pop.with_data)
            start = time.perf_counter()
            try:
                reply = await stub.GetCurrentScores(
                    feature_pb2.GetCurrentScoresRequest(subject_ids=[subject]), timeout=LOOKUP_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                raise Wrong(f"{subject}: the lookup failed: {exc.code().name} {exc.details()}") from None
            elapsed = (time.perf_counter() - start) * 1e3
            if len(reply.current_scores) != 1:
                raise Wrong(f"{subject}: {len(reply.current_scores)} answers to one subject")
            _check(pop, subject, reply.current_scores[0], allowed)
            (out.without_data if no_data else out.with_data).append(elapsed)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return out


async def _verify_all(stub: Any, pop: Population, allowed: Callable[[str], datetime | None]) -> None:
    """Every subject looked up once (256 per call) and checked."""
    from creditscore.feature.v1 import feature_pb2

    everyone = pop.with_data + pop.without_data
    for at in range(0, len(everyone), 256):
        part = everyone[at:at + 256]
        reply = await stub.GetCurrentScores(feature_pb2.GetCurrentScoresRequest(subject_ids=part), timeout=60)
        if len(reply.current_scores) != len(part):
            raise Wrong(f"{len(reply.current_scores)} answers to {len(part)} subjects")
        for subject, current in zip(part, reply.current_scores, strict=True):
            _check(pop, subject, current, allowed)


async def _any_row(engine: Any, version: str, now: datetime, *, stale: bool) -> bool:
    """Whether any row is stale for ``version`` at ``now`` (``stale``), or any is
    fresh: one ``SELECT ... LIMIT 1`` on the feature database, which stops at the
    first such row (a ``COUNT`` would read the whole table at every poll)."""
    from sqlalchemy import and_, not_, or_, select

    from feature_service.store import subject_features

    t = subject_features.c
    stale_rows = or_(t.score.is_(None), t.model_version != version, t.valid_until <= now)
    query = select(t.subject_id).where(stale_rows if stale else and_(t.score.is_not(None), not_(stale_rows)))
    async with engine.connect() as conn:
        return (await conn.execute(query.limit(1))).first() is not None


@dataclass
class Phase:
    name: str
    seconds: float
    first_progress: float  # seconds from the trigger to the first row done
    subjects: int
    lookups: Lookups

    @property
    def per_s(self) -> float:
        return self.subjects / self.seconds


async def _phase(
    name: str, stub: Any, engine: Any, pop: Population, version: str, now: datetime,
    allowed: Callable[[str], datetime | None], trigger: Callable[[], Any], seed: int, timeout: float,
) -> Phase:
    """Triggers the staleness (``trigger``, awaited), then lookups at 8 in flight
    until no row is stale for ``version`` at ``now``; checks every answer."""
    n = len(pop.with_data)
    stop = asyncio.Event()
    start = time.perf_counter()
    await trigger()
    traffic = asyncio.create_task(_lookups(stub, pop, allowed, stop, None, seed))
    first = None
    try:
        while True:
            if traffic.done():
                traffic.result()  # a wrong answer: raised here
            if first is None and await _any_row(engine, version, now, stale=False):
                first = time.perf_counter() - start
            left = await _any_row(engine, version, now, stale=True)
            elapsed = time.perf_counter() - start
            if not left:
                break
            if elapsed > timeout:
                raise Wrong(f"{name}: rows still stale after {timeout:.0f} s")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        stop.set()
        lookups = await traffic
    return Phase(name, elapsed, first if first is not None else elapsed, n, lookups)


# -- the run ----------------------------------------------------------------------------


async def _pg_database(server: str, action: str, url: str = "") -> str:
    """Creates a fresh database on the PostgreSQL server ``server`` (its URL, of a
    database to connect to) and returns its URL, or drops the one of ``url``."""
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(server)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
        password=admin.password, database=admin.database or "postgres",
    )
    try:
        if action == "drop":
            await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
            return url
        name = f"bench_rescore_{uuid.uuid4().hex[:12]}"
        await conn.execute(f'CREATE DATABASE "{name}"')
        return admin.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.close()



async def _run(args: argparse.Namespace) -> None:
    from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
    from creditscore.runtime import create_channel, make_engine
    from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

    print(describe_machine())
    print(code_version())
    work = Path(tempfile.mkdtemp(prefix="bench-rescore-"))
    procs: list[subprocess.Popen[bytes]] = []
    pg_dbs: list[str] = []
    try:
        if args.postgres:
            feature_url = await _pg_database(args.postgres, "create")
            pg_dbs.append(feature_url)
            scoring_url = await _pg_database(args.postgres, "create")
            pg_dbs.append(scoring_url)
            where = "PostgreSQL"
        else:
            feature_url = f"sqlite+aiosqlite:///{work / 'feature.db'}"
            scoring_url = f"sqlite+aiosqlite:///{work / 'scoring.db'}"
            where = "SQLite"
        pop = _population(args.subjects, args.templates)
        loaded = await _load(feature_url, pop)
        print(f"{where}: loaded {args.subjects:,} subjects' aggregates ({len(pop.templates)} simulated templates) "
              f"in {loaded:.1f} s; {len(pop.without_data)} more subject ids have no data")

        scoring_port, feature_port = _free_port(), _free_port()
        scoring_log, feature_log = work / "scoring.log", work / "feature.log"
        profile_scoring = ["-m", "cProfile", "-o", args.profile + ".scoring"] if args.profile else []
        procs.append(_start([*profile_scoring, "-m", "scoring_service"], {
            "GRPC_PORT": str(scoring_port), "DATABASE_URL": scoring_url, "MODEL_VERSION": OLD,
            "MODEL_REFRESH_SECONDS": "0.5",
        }, scoring_log))
        await _wait_serving(f"127.0.0.1:{scoring_port}", procs[-1], scoring_log)
        procs.append(_start(["-m", "bench.rescore", "--serve-feature"], {
            "GRPC_PORT": str(feature_port), "DATABASE_URL": feature_url,
            "SCORING_SERVICE_ADDR": f"127.0.0.1:{scoring_port}", "SCORE_REFRESH_SECONDS": "0.5",
            "MODEL_REFRESH_SECONDS": "0.5", "RESCORE_T0": T0.isoformat(), "RESCORE_T1": T1.isoformat(),
            **({"PROFILE_TO": args.profile} if args.profile else {}),
        }, feature_log))
        await _wait_serving(f"127.0.0.1:{feature_port}", procs[-1], feature_log)
        feature_proc = procs[-1]

        engine = make_engine(feature_url)
        async with create_channel(f"127.0.0.1:{feature_port}") as fch, \
                create_channel(f"127.0.0.1:{scoring_port}") as sch:
            stub = feature_pb2_grpc.FeatureServiceStub(fch)
            scoring = scoring_pb2_grpc.ScoringServiceStub(sch)
            n = args.subjects

            start = time.perf_counter()
            while await _any_row(engine, OLD, T0, stale=True):
                if time.perf_counter() - start > args.timeout:
                    raise Wrong("the initial scores did not all land")
                await asyncio.sleep(POLL_SECONDS)
            initial = time.perf_counter() - start
            print(f"initial: every row scored by {OLD} {initial:.2f} s after the service was ready "
                  f"({n / initial:,.0f} subjects/s)")

            def before(version: str) -> datetime | None:
                return T0 if version == OLD else None

            idle = await _lookups(stub, pop, before, asyncio.Event(), args.idle_calls, 1)
            idle_p99 = _pct(idle.all, 0.99)
            print(f"idle: {len(idle.all)} lookups at {IN_FLIGHT} in flight, p50 {_pct(idle.all, 0.5):.2f} ms, "
                  f"p99 {idle_p99:.2f} ms (with data p50 {_pct(idle.with_data, 0.5):.2f}, "
                  f"without {_pct(idle.without_data, 0.5):.2f})")

            async def activate() -> None:
                await scoring.ActivateModel(scoring_pb2.ActivateModelRequest(
                    request_id=f"bench-{uuid.uuid4().hex}", version=NEW, note="bench.rescore"), timeout=10)

            def during_a(version: str) -> datetime | None:
                return T0 if version in (OLD, NEW) else None

            a = await _phase("model change", stub, engine, pop, NEW, T0, during_a, activate, 2, args.timeout)
            await _verify_all(stub, pop, lambda v: T0 if v == NEW else None)

            async def jump() -> None:
                feature_proc.send_signal(signal.SIGUSR1)
                while True:  # until the service's clock has moved
                    reply = await stub.GetFeatureVector(
                        feature_pb2.GetFeatureVectorRequest(subject_id=pop.with_data[0]), timeout=10)
                    if reply.feature_vector.as_of_time.ToDatetime(UTC) >= T1:
                        return
                    await asyncio.sleep(0.01)

            def after(version: str) -> datetime | None:
                return T1 if version == NEW else None

            b = await _phase("month boundary", stub, engine, pop, NEW, T1, after, jump, 3, args.timeout)
            await _verify_all(stub, pop, after)
        await engine.dispose()
    except Wrong as exc:
        raise SystemExit(f"WRONG ANSWER, no figure: {exc}") from None
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for url in pg_dbs:
            await _pg_database(args.postgres, "drop", url)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{where}, {n:,} subjects with data; lookups: GetCurrentScores of 1 subject per call, "
          f"{IN_FLIGHT} in flight, 1 in {NO_DATA_SHARE} without data; every answer checked")
    print(f"{'phase':<16} {'seconds':>8} {'first row':>9} {'subjects/s':>11} {'lookups':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'p99/idle':>8} {'p50 data':>8} {'p50 none':>8}")
    print(f"{'idle':<16} {'':>8} {'':>9} {'':>11} {len(idle.all):>8} {_pct(idle.all, .5):>7.2f} "
          f"{idle_p99:>7.2f} {1.0:>8.2f} {_pct(idle.with_data, .5):>8.2f} {_pct(idle.without_data, .5):>8.2f}")
    for p in (a, b):
        ls = p.lookups
        print(f"{p.name:<16} {p.seconds:>8.2f} {p.first_progress:>9.2f} {p.per_s:>11,.0f} {len(ls.all):>8} "
              f"{_pct(ls.all, .5):>7.2f} {_pct(ls.all, .99):>7.2f} {_pct(ls.all, .99) / idle_p99:>8.2f} "
              f"{_pct(ls.with_data, .5):>8.2f} {_pct(ls.without_data, .5):>8.2f}")
    print("subjects/s: subjects over the time from the trigger (ActivateModel answered; the clock moved) until "
          f"no row was stale (polled every {POLL_SECONDS} s with a SELECT ... LIMIT 1); "
          "'first row': when the first row was done "
          "(the refresher's polling: MODEL_REFRESH_SECONDS and SCORE_REFRESH_SECONDS are 0.5)")
    worst = min(a, b, key=lambda p: p.per_s)
    ratio = max(_pct(p.lookups.all, .99) for p in (a, b)) / idle_p99
    print(result_line("rescore", {
        "db": where.lower(), "subjects": n, "subjects_per_s": worst.per_s,
        "model_change_per_s": a.per_s, "month_boundary_per_s": b.per_s,
        "lookup_p99_ratio": ratio, "idle_p99_ms": idle_p99,
        "model_change_p99_ms": _pct(a.lookups.all, .99), "month_boundary_p99_ms": _pct(b.lookups.all, .99),
        "p50_with_data_ms": _pct(a.lookups.with_data + b.lookups.with_data, .5),
        "p50_without_data_ms": _pct(a.lookups.without_data + b.lookups.without_data, .5),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 subjects, 400 idle lookups")
    parser.add_argument("--subjects", type=int, default=None, help="subjects with data (default 100,000)")
    parser.add_argument("--templates", type=int, default=400, help="distinct simulated subjects")
    parser.add_argument("--idle-calls", type=int, default=None, help="idle lookups (default 2,000)")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL to create the two databases on")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a phase may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, SQLite files)")
    parser.add_argument("--profile", default="", help="cProfile both services into PATH and PATH.scoring")
    parser.add_argument("--serve-feature", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_feature:
        if os.environ.get("PROFILE_TO"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                _serve_feature()
            finally:
                profiler.disable()
                profiler.dump_stats(os.environ["PROFILE_TO"])
        else:
            _serve_feature()
        return
    if args.subjects is None:
        args.subjects = 20_000 if args.quick else 100_000
    if args.idle_calls is None:
        args.idle_calls = 400 if args.quick else 2_000
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
