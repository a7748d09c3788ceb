"""Purges across the real stores of every service (no gRPC: the worker calls each
service's domain purge directly), on SQLite and PostgreSQL: nothing of the subject
left in any table, a source purge that takes only that source (and the features
follow), crashes half way that finish on restart and count nothing twice, retries,
and idempotence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consent_service.consents import RequestKey
from consent_service.purge import DeletionScope, PurgeWorker, TableCount, step_request_id
from consent_service.store import ConsentStore, Withdrawal
from consent_service.store import metadata as consent_metadata
from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import features_of_source
from creditscore.features.engine import rebuild_state
from creditscore.records.v1 import records_pb2
from creditscore.runtime import create_schema, make_engine
from creditscore.sim import producer_of, simulate
from feature_service.features import FeatureBook
from feature_service.store import FeatureStore
from feature_service.store import metadata as feature_metadata
from ingest_service.ingestion import Ingestor
from ingest_service.store import RecordStore
from ingest_service.store import metadata as ingest_metadata
from ingest_service.subjects import SubjectData
from scoring_service.config import DEFAULT_MODEL_DIR
from scoring_service.registry import ModelRegistry
from scoring_service.store import ScoreRecord, ScoreStore
from scoring_service.store import metadata as scoring_metadata
from tests.holdings import rows_naming
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
#: The consent service keeps the receipts (and only them) after an account is closed.
# A closed subject leaves its deletion receipts and, for the longest token
# lifetime, the entry that revokes its tokens.
RECEIPTS = ("purge_jobs", "purge_steps", "revocations")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class GrantAll:
    async def check(self, purpose: int, pairs: Sequence[tuple[str, int]], timeout: float) -> list[bool]:
        return [True] * len(pairs)


@dataclass
class Services:
    """Every service's store (and domain objects), each on its own database."""

    consent: ConsentStore
    records: RecordStore
    features: FeatureStore
    book: FeatureBook
    scores: ScoreStore
    engines: dict[str, Any]
    clock: Clock

    def purgers(self) -> dict[str, Any]:
        return {
            "ingest_service": Purger(lambda r, s, src: SubjectData(self.records).purge(r, s, src)),
            "feature_service": Purger(lambda r, s, src: self.book.purge(r, s, src)),
            "scoring_service": Purger(lambda r, s, src: self.scores.purge_subject(
                r, s, features_of_source(src) if src else None, self.clock())),
        }

    def worker(self, purgers: dict[str, Any] | None = None, **kwargs: Any) -> PurgeWorker:
        return PurgeWorker(self.consent, purgers or self.purgers(), clock=self.clock, poll_seconds=0.01, **kwargs)

    async def holding(self, subject_id: str) -> dict[str, int]:
        """Per service.table, the rows that still name the subject."""
        found = {}
        for name, metadata in (("consent", consent_metadata), ("ingest", ingest_metadata),
                               ("feature", feature_metadata), ("scoring", scoring_metadata)):
            skip = RECEIPTS if name == "consent" else ()
            for table, rows in (await rows_naming(self.engines[name], metadata, subject_id, skip=skip)).items():
                found[f"{name}.{table}"] = rows
        return found


class Purger:
    """A service's purge as the worker sees it, with the calls it got."""

    def __init__(self, purge: Any) -> None:
        self._purge = purge
        self.calls: list[str] = []
        self.fail: list[Exception] = []
        self.block: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def purge(self, request_id: str, subject_id: str, source: int, timeout: float) -> list[TableCount]:
        self.calls.append(request_id)
        self.entered.set()
        if self.block is not None:
            await self.block.wait()
        if self.fail:
            raise self.fail.pop(0)
        return list(await self._purge(request_id, subject_id, source))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    names = ("consent", "ingest", "feature", "scoring")
    created: list[str] = []
    if request.param == "sqlite":
        urls = {n: f"sqlite:///{tmp_path}/{n}.db" for n in names}
    else:
        if not POSTGRES_URL:
            pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
        created = [await create_pg_database() for _ in names]
        urls = dict(zip(names, created, strict=True))
    engines = {n: make_engine(urls[n]) for n in names}
    try:
        for name, metadata in (("consent", consent_metadata), ("ingest", ingest_metadata),
                               ("feature", feature_metadata), ("scoring", scoring_metadata)):
            await create_schema(engines[name], metadata)
        clock = Clock()
        features = FeatureStore(engines["feature"])
        yield Services(
            consent=ConsentStore(engines["consent"], sweep_delay=timedelta(minutes=1)),
            records=RecordStore(engines["ingest"]),
            features=features,
            book=FeatureBook(features, clock=lambda: AS_OF + timedelta(days=1)),
            scores=ScoreStore(engines["scoring"]),
            engines=engines,
            clock=clock,
        )
    finally:
        for engine in engines.values():
            await engine.dispose()
        for url in created:
            await drop_pg_database(url)


async def load(s: Services, n: int = 6) -> list[str]:
    """Enrolls a small simulated population with every consent, ingests its records,
    applies them to the features and scores each subject twice."""
    population = simulate(n, seed=5, as_of=AS_OF)
    # The subject with records from the most sources first.
    subjects = [p.subject_id for p in sorted(population.subjects, key=lambda p: -len(p.sources))]
    for sid in subjects:
        await s.consent.enroll_subject(RequestKey.of(f"e-{sid}", "Enroll", sid.encode()), sid, now=T0,
                                       encode=lambda e: b"")
        for source in (1, 2, 3, 4):
            await s.consent.grant_consent(
                RequestKey.of(f"g-{sid}-{source}", "Grant", f"{sid}{source}".encode()), subject_id=sid,
                source=source, purpose=SCORING, expire_time=None, now=T0, encode=lambda c: b"")
    ingestor = Ingestor(s.records, GrantAll(), clock=lambda: AS_OF)
    for producer, records in population.by_producer().items():
        for start in range(0, len(records), 500):
            outcome = await ingestor.ingest(f"load-{producer}-{start}", producer, records[start:start + 500],
                                            consent_timeout=5)
            assert all(r.status.value == "accepted" for r in outcome.results)
    await s.book.apply([(producer_of(r), r) for r in population.records])
    card = ModelRegistry.load(DEFAULT_MODEL_DIR).initial
    for sid in subjects:
        vector = (await s.book.vector(sid)).values
        for _ in range(2):
            await s.scores.record(ScoreRecord.from_result(sid, card.score_one(vector), vector, T0))
    return subjects


async def close_account(s: Services, subject_id: str, request_id: str = "close-1") -> str:
    receipt, created = await s.consent.purge_subject(
        RequestKey.of(request_id, "CloseAccount", subject_id.encode()),
        subject_id=subject_id, scope=DeletionScope.ACCOUNT, now=s.clock())
    assert created
    return receipt.receipt_id


async def run_all(s: Services, worker: PurgeWorker) -> None:
    s.clock.now += timedelta(minutes=2)  # the second pass is due
    while await worker.run_once():
        pass


async def test_closing_an_account_leaves_no_row_of_the_subject_in_any_store(services: Services) -> None:
    s = services
    subjects = await load(s)
    gone, kept = subjects[0], subjects[1:]
    before = await s.holding(gone)
    assert before["ingest.records"] > 0 and before["ingest.outbox"] > 0  # the outbox names its records
    assert before["feature.applied_records"] > 0 and before["feature.subject_features"] == 1
    assert before["scoring.score_history"] == 2 and before["consent.consents"] == 4
    others_before = {sid: await s.holding(sid) for sid in kept}

    receipt_id = await close_account(s, gone)
    # The consent service's own rows go at once: every check says "no" from then on.
    assert not [c for c in await s.consent.consents_for([gone], [1, 2, 3, 4], SCORING)]
    await run_all(s, s.worker())

    assert set((await s.holding(gone)).values()) == {0}
    receipt = await s.consent.receipt(receipt_id)
    assert receipt is not None and receipt.complete and receipt.subject_id == gone
    counted = {}
    for step in receipt.steps:
        for table in step.tables or ():
            key = f"{step.service.removesuffix('_service')}.{table.table}"
            counted[key] = counted.get(key, 0) + table.deleted
    # Exactly what was there, counted once over both passes.
    for key in ("ingest.records", "feature.applied_records", "feature.subject_features",
                "scoring.score_history", "consent.consents", "consent.subjects"):
        assert counted[key] == before[key], key
    assert counted["consent.requests"] == before["consent.requests"]
    # Nobody else lost anything (the outbox rows were shared: rewritten, not lost).
    for sid in kept:
        now = await s.holding(sid)
        assert {k: v for k, v in now.items() if k != "ingest.outbox"} == {
            k: v for k, v in others_before[sid].items() if k != "ingest.outbox"}
        assert now["ingest.outbox"] == others_before[sid]["ingest.outbox"]

    # The same request again is the same receipt; the purge again deletes nothing.
    again, created = await s.consent.purge_subject(
        RequestKey.of("close-1", "CloseAccount", gone.encode()), subject_id=gone,
        scope=DeletionScope.ACCOUNT, now=s.clock())
    assert not created and again.receipt_id == receipt_id
    assert [t.deleted for t in await SubjectData(s.records).purge("another", gone, 0)] == [0, 0]
    assert [t.deleted for t in await s.book.purge("another", gone, 0)] == [0, 0]


async def test_withdrawing_a_source_purges_only_it_and_the_features_follow(services: Services) -> None:
    s = services
    sid = (await load(s))[0]
    records_before = await s.records.subject_records(sid, None, 10_000)
    assert {r.source for r in records_before} >= {PAYMENTS, common_pb2.DATA_SOURCE_COMMERCE}
    # A score given while the subject had no payments data does not use that source.
    card = ModelRegistry.load(DEFAULT_MODEL_DIR).initial
    held = (await s.book.vector(sid)).values
    vector = {k: (None if k in features_of_source(PAYMENTS) else v) for k, v in held.items()}
    unrelated = await s.scores.record(ScoreRecord.from_result(sid, card.score_one(vector), vector, T0))
    done = await s.consent.withdraw_consent(
        RequestKey.of("w-1", "Withdraw", b"payments"), subject_id=sid, source=PAYMENTS, purpose=SCORING,
        now=s.clock(), encode=lambda w: b"")
    assert isinstance(done.value, Withdrawal) and done.value.receipt_id
    await run_all(s, s.worker())
    receipt = await s.consent.receipt(done.value.receipt_id)
    assert receipt is not None and receipt.complete and receipt.scope is DeletionScope.SOURCE

    left = await s.records.subject_records(sid, None, 10_000)
    assert {r.source for r in left} == {r.source for r in records_before} - {PAYMENTS}
    assert len(left) == len([r for r in records_before if r.source != PAYMENTS])
    # The features are those of a subject that never had a bill on record.
    remaining = [records_pb2.Record.FromString(r.payload) for r in left if r.source != common_pb2.DATA_SOURCE_OUTCOMES]
    stored = await s.features.get(sid)
    assert stored is not None and stored.state == rebuild_state(remaining)
    vector = (await s.book.vector(sid)).values
    assert all(vector[name] is None for name in features_of_source(PAYMENTS))
    assert any(vector[name] is not None for name in features_of_source(common_pb2.DATA_SOURCE_COMMERCE))
    # Scores that used a payments feature are gone; the others, the enrollment and consents stay.
    assert [r.id for r in await s.scores.history(sid)] == [unrelated]
    assert await s.consent.get_subject(sid) is not None
    counts = {(st.service, t.table): t for st in receipt.steps for t in st.tables or () if st.pass_ == 1}
    assert counts[("ingest_service", "records")].deleted == len(records_before) - len(left)
    assert counts[("feature_service", "subject_features")].rewritten == 1


async def test_a_purge_stopped_half_way_finishes_on_restart_and_counts_nothing_twice(services: Services) -> None:
    s = services
    sid = (await load(s))[0]
    before = await s.holding(sid)
    receipt_id = await close_account(s, sid)
    purgers = s.purgers()
    purgers["feature_service"].block = asyncio.Event()
    first = s.worker(purgers)
    await first.start()
    await asyncio.wait_for(purgers["feature_service"].entered.wait(), 10)
    await first.stop()  # stopped between the ingest step and the feature step's answer
    receipt = await s.consent.receipt(receipt_id)
    assert [st.done for st in receipt.steps[:3]] == [True, True, False]  # consent, ingest done; feature not

    # A new worker (the service restarted) picks the step up at once and finishes.
    purgers["feature_service"].block = None
    await run_all(s, s.worker(purgers))
    receipt = await s.consent.receipt(receipt_id)
    assert receipt.complete and set((await s.holding(sid)).values()) == {0}
    assert len(purgers["ingest_service"].calls) == 2  # pass 1 once, pass 2 once
    deleted = {(st.service, t.table): 0 for st in receipt.steps for t in st.tables or ()}
    for st in receipt.steps:
        for t in st.tables or ():
            deleted[(st.service, t.table)] += t.deleted
    assert deleted[("ingest_service", "records")] == before["ingest.records"]
    assert deleted[("feature_service", "applied_records")] == before["feature.applied_records"]


async def test_an_answer_lost_in_a_crash_is_answered_again_not_recounted(services: Services) -> None:
    """The ingest service deleted and committed, then the consent service died
    before recording it: the retried step gets the first call's counts."""
    s = services
    sid = (await load(s))[0]
    records = len(await s.records.subject_records(sid, None, 10_000))
    receipt_id = await close_account(s, sid)
    lease = await s.consent.claim_due_steps(s.clock(), s.clock() + timedelta(seconds=30), 10)
    assert [(t.service, t.position) for t in lease] == [("ingest_service", 1)]
    direct = await SubjectData(s.records).purge(step_request_id(receipt_id, 1), sid, 0)
    assert direct[0].deleted == records
    # ... crash. The lease runs out; a worker takes the step again.
    s.clock.now += timedelta(seconds=31)
    worker = s.worker()
    assert await worker.run_once() == 1
    receipt = await s.consent.receipt(receipt_id)
    assert receipt.steps[1].done and receipt.steps[1].tables[0] == TableCount("records", records)


async def test_a_failing_step_is_retried_with_backoff_until_it_succeeds(services: Services) -> None:
    s = services
    sid = (await load(s, 2))[0]
    receipt_id = await close_account(s, sid)
    purgers = s.purgers()
    purgers["ingest_service"].fail = [RuntimeError("ingest is down"), RuntimeError("still down")]
    worker = s.worker(purgers, backoff_initial=1.0)
    assert await worker.run_once() == 1
    step = (await s.consent.receipt(receipt_id)).steps[1]
    assert (step.done, step.attempts, step.last_error) == (False, 1, "RuntimeError: ingest is down")
    assert await worker.run_once() == 0  # backing off: nothing due
    s.clock.now += timedelta(seconds=1)
    assert await worker.run_once() == 1
    step = (await s.consent.receipt(receipt_id)).steps[1]
    assert (step.attempts, step.last_error, step.next_attempt_time) == (
        2, "RuntimeError: still down", s.clock.now + timedelta(seconds=2))
    s.clock.now += timedelta(seconds=2)
    await run_all(s, worker)
    receipt = await s.consent.receipt(receipt_id)
    assert receipt.complete and receipt.steps[1].attempts == 3 and receipt.steps[1].last_error is None


def test_the_backoff_stays_at_its_cap_however_long_a_step_fails(services: Services) -> None:
    worker = services.worker(backoff_max=60.0)
    assert worker.backoff(1) < worker.backoff(3) <= 60.0
    # 2.0 ** 1024 overflows a float: a step that has failed for about 17 hours at
    # the cap must keep being retried at the cap, not break the worker's round.
    assert worker.backoff(1025) == worker.backoff(10**6) == 60.0
