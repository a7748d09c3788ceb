"""Downstream faults, end to end: one service of the in-process suite is reached
by the others through a ``FaultProxy`` (tests/faultproxy.py), which stops it,
slows it past the caller's deadline, cuts its connections under the calls, holds
everything without an answer (blackhole), or sends the calls to a server that
answers UNAVAILABLE or INTERNAL. For each fault the caller must

- answer a status that says what happened, with an ``ErrorInfo`` reason: never
  INTERNAL or UNKNOWN (a downstream's failure is not the caller's bug);
- answer within its own deadline (plus a generous margin for a loaded machine);
- answer again once the fault is cleared, within ``RECOVERY`` seconds;
- hold nothing meanwhile: no task, no queued batch item left once the calls are over.

The table of what each caller answers is in docs/faults.md."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from creditscore.cli.run import bearer, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import Batcher, CallError
from tests.e2e.conftest import InProcessSuite, _start, _stop
from tests.faultproxy import ErrorServer, FaultProxy, Mode

#: The deadline of every call made under a fault, and how late its answer may be.
DEADLINE = 1.0
MARGIN = 1.0
#: How soon after a fault is cleared calls must succeed again.
RECOVERY = 10.0

FAULTS = ("stopped", "slow", "cut", "blackhole", "answers UNAVAILABLE", "answers INTERNAL")
U, D = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED
#: What a caller may answer under each fault. A blackholed or slowed downstream
#: never answers: the caller's deadline passes. A stopped, cut or erroring one
#: is UNAVAILABLE, unless the channel's retries (backoff between attempts) are
#: still going when the deadline passes.
EXPECTED = {
    "stopped": {U},
    "slow": {U, D},
    "cut": {U, D},
    "blackhole": {U, D},
    "answers UNAVAILABLE": {U},
    "answers INTERNAL": {U},
}

#: The reasons a caller answers with, by the downstream at fault (docs/faults.md).
#: The gateway fails a lookup at its own deadline too (``Batcher``): when that
#: and a downstream call's timeout end together, either may answer first.
REASONS = {
    "consent_service": {"ACCESS_LOG_UNAVAILABLE", "DOWNSTREAM_DEADLINE_EXCEEDED"},
    "feature_service": {"DOWNSTREAM_UNAVAILABLE", "DOWNSTREAM_DEADLINE_EXCEEDED", "DOWNSTREAM_ERROR"},
    "scoring_service": {"SCORING_UNAVAILABLE"},
    # The ingest service's consent check (IngestRecords).
    "ingest: consent_service": {"CONSENT_SERVICE_UNAVAILABLE", "CONSENT_CHECK_FAILED"},
}


class Faults:
    """Injects a fault into a proxy, and clears it."""

    def __init__(self, proxy: FaultProxy, errors: dict[str, ErrorServer]) -> None:
        self.proxy = proxy
        self.errors = errors

    async def inject(self, fault: str) -> None:
        match fault:
            case "stopped":
                await self.proxy.set(Mode.STOPPED)
            case "slow":
                await self.proxy.set(Mode.SLOW, delay=4 * DEADLINE)
            case "cut":
                await self.proxy.set(Mode.CUT)
            case "blackhole":
                await self.proxy.set(Mode.BLACKHOLE)
            case _:
                self.proxy.reroute(self.errors[fault].port)

    async def clear(self) -> None:
        await self.proxy.set(Mode.PASS)
        self.proxy.reroute(None)


@pytest.fixture
async def errors() -> AsyncIterator[dict[str, ErrorServer]]:
    made = {
        "answers UNAVAILABLE": await ErrorServer.start(grpc.StatusCode.UNAVAILABLE),
        "answers INTERNAL": await ErrorServer.start(grpc.StatusCode.INTERNAL),
    }
    try:
        yield made
    finally:
        for server in made.values():
            await server.close()


@pytest.fixture
async def proxied_suite(tmp_path) -> AsyncIterator:
    """``await proxied_suite(package, **env)``: the suite on SQLite, the other
    services reaching ``package`` through a fault proxy."""
    running: list[InProcessSuite] = []

    async def make(package: str, **env: str) -> InProcessSuite:
        urls = {p: f"sqlite:///{tmp_path}/{p}.db" for p in
                ("consent_service", "feature_service", "scoring_service", "ingest_service")}
        running.append(await _start(urls, tmp_path, env=env, proxied=(package,)))
        return running[-1]

    try:
        yield make
    finally:
        for suite in running:
            await _stop(suite)


def _plain_channel(address: str) -> grpc.aio.Channel:
    """A channel that does not retry: what the caller itself answered is what
    the test sees (a retrying client would turn a quick UNAVAILABLE into its own
    DEADLINE_EXCEEDED)."""
    return grpc.aio.insecure_channel(address, options=[("grpc.enable_retries", 0)])


async def _timed(call) -> tuple[CallError | None, float]:
    """The call's error (None: it succeeded) and how long it took."""
    started = time.monotonic()
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return CallError.from_rpc_error(exc), time.monotonic() - started
    return None, time.monotonic() - started


async def _fails_in_time(fault: str, call, where: str, reasons: set[str]) -> CallError:
    """Makes ``call()`` under ``fault``: every attempt must fail within the
    deadline (plus ``MARGIN``) with a status the fault calls for, never INTERNAL
    or UNKNOWN, and carry the caller's reason. An attempt whose answer left after
    the deadline had passed (the five servers and the test share one event loop
    and two busy cores: a stall of a few hundred ms happens) shows the client's
    own DEADLINE_EXCEEDED, without details: it is tried again, up to three times."""
    for _ in range(3):
        err, elapsed = await _timed(call())
        print(f"| {where} | {fault} | {err.code.name if err else None} | {err.reason if err else ''} | "
              f"{err.metadata if err else ''} | {elapsed:.2f} s |")
        assert err is not None, f"{where}: answered under fault {fault!r}"
        assert elapsed <= DEADLINE + MARGIN, f"{where}, {fault}: answered after {elapsed:.2f} s"
        if not err.reason and err.code == D and elapsed >= DEADLINE:
            continue  # the client's own timer: the caller's answer came too late
        assert err.code in EXPECTED[fault], f"{where}, {fault}: {err.code.name} {err.reason} {err.message}"
        assert err.reason in reasons, f"{where}, {fault}: {err.code.name} {err.reason!r} ({err.message})"
        return err
    raise AssertionError(f"{where}, {fault}: the caller's answer never arrived before its deadline")


async def _recovers(call, where: str) -> float:
    """Calls ``call()`` until it succeeds; how long that took (at most ``RECOVERY`` s)."""
    started = time.monotonic()
    while True:
        err, _ = await _timed(call())
        if err is None:
            return time.monotonic() - started
        assert time.monotonic() - started < RECOVERY, f"{where}: still failing: {err.code.name} {err.reason}"
        await asyncio.sleep(0.1)


def _tasks() -> int:
    """The event loop's tasks but the fault proxy's own (one set per connection)."""
    return sum(1 for task in asyncio.all_tasks()
               if not task.get_coro().__qualname__.startswith(("_Link.", "FaultProxy.")))


async def _quiet_tasks(baseline: int, slack: int = 3) -> int:
    """Waits until the loop holds about as many tasks as ``baseline``; the count."""
    deadline = time.monotonic() + RECOVERY
    while True:
        count = _tasks()
        if count <= baseline + slack or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


async def _world(suite: InProcessSuite) -> tuple[list[str], str]:
    population, report = await load_population(suite.suite, 4, seed=5, out=lambda *_: None)
    await wait_features(suite.suite, population, report.accepted_for_features, timeout=60)
    ids = [s.subject_id for s in population.subjects]
    partner = await register_partner(suite.suite, ids, out=lambda *_: None)
    return ids, partner.token


@pytest.mark.parametrize("downstream", ["consent_service", "feature_service"])
async def test_gateway_answers_every_downstream_fault_in_time_and_recovers(proxied_suite, errors, downstream):
    """The gateway's lookup; with the consent service at fault, the ingest
    service's consent check (IngestRecords) too."""
    suite = await proxied_suite(downstream)
    ids, token = await _world(suite)
    faults = Faults(suite.proxies[downstream], errors)
    channel = _plain_channel(suite.suite.addr("gateway"))
    stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
    ingest_channel = _plain_channel(suite.suite.addr("ingest_service"))
    ingest_stub = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
    wallet = bearer(suite.suite.producer_token("wallet"))
    counter = iter(range(1_000_000))

    def lookup():
        return stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=ids[0], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
            transaction_id=f"fault-{next(counter)}"), metadata=bearer(token), timeout=DEADLINE)

    def ingest():
        n = next(counter)
        return ingest_stub.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id=f"fault-ingest-{n}", producer_id="wallet", records=[_bill(ids[0], f"fault-bill-{n}")],
        ), metadata=wallet, timeout=DEADLINE)

    callers = [("gateway", lookup, REASONS[downstream])]
    if downstream == "consent_service":
        callers.append(("ingest_service", ingest, REASONS["ingest: consent_service"]))
    try:
        await _recovers(lookup, "before any fault")
        baseline = _tasks()
        for fault in FAULTS:
            await faults.inject(fault)
            for caller, call, reasons in callers:
                await _fails_in_time(fault, call, f"{caller} -> {downstream}", reasons)
            await faults.clear()
            for caller, call, _ in callers:
                took = await _recovers(call, f"{caller} -> {downstream} after {fault}")
                print(f"{caller}: recovered in {took:.2f} s")
        # Nothing left behind by the failed calls: no task, no queued lookup.
        assert await _quiet_tasks(baseline) <= baseline + 3
        assert await _drained()
    finally:
        await channel.close()
        await ingest_channel.close()


def _bill(subject_id: str, record_id: str) -> records_pb2.Record:
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    record = records_pb2.Record(record_id=record_id, subject_id=subject_id)
    record.event_time.FromDatetime(due)
    bill = record.bill
    bill.category = records_pb2.BILL_CATEGORY_UTILITY
    bill.amount_due.currency_code = bill.amount_paid.currency_code = "USD"
    bill.amount_due.minor_units = bill.amount_paid.minor_units = 5_000
    bill.issue_time.FromDatetime(due - timedelta(days=14))
    bill.due_time.FromDatetime(due)
    bill.paid_time.FromDatetime(due)
    return record


async def test_feature_service_answers_every_scoring_fault_in_time_and_recovers(proxied_suite, errors):
    """An apply scores the changed subjects before it commits: the scoring
    service's fault reaches the apply's caller (the ingest service's dispatcher)."""
    suite = await proxied_suite("scoring_service")
    faults = Faults(suite.proxies["scoring_service"], errors)
    channel = _plain_channel(suite.suite.addr("feature_service"))
    stub = feature_pb2_grpc.FeatureServiceStub(channel)
    operator = bearer(await suite.suite.operator_token())
    counter = iter(range(1_000_000))

    def apply():
        n = next(counter)
        return stub.ApplyRecords(feature_pb2.ApplyRecordsRequest(
            request_id=f"fault-apply-{n}",
            records=[feature_pb2.RecordEnvelope(producer_id="wallet", record=_bill("fault-subject", f"bill-{n}"))],
        ), metadata=operator, timeout=DEADLINE)

    try:
        await _recovers(apply, "before any fault")
        baseline = _tasks()
        for fault in FAULTS:
            await faults.inject(fault)
            await _fails_in_time(fault, apply, "feature_service -> scoring_service", REASONS["scoring_service"])
            await faults.clear()
            took = await _recovers(apply, f"feature_service -> scoring_service after {fault}")
            print(f"recovered in {took:.2f} s")
        # No apply's write still running for a caller gone (they run shielded, as tasks).
        assert await _quiet_tasks(baseline) <= baseline + 3
    finally:
        await channel.close()


def _outbox(db_file: str) -> list[tuple[int, str | None]]:
    """The ingest service's outbox rows: (attempts, last error)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_file)) as db:
        return db.execute("SELECT attempts, last_error FROM outbox ORDER BY id").fetchall()


async def test_ingest_holds_what_it_accepted_and_delivers_it_once_the_feature_service_returns(
    proxied_suite, errors, tmp_path
):
    """The outbox dispatcher (ApplyRecords, 1 s deadline here): each failed
    delivery keeps its rows with the status it met; once the fault is cleared the
    rows are delivered within ``RECOVERY`` (its backoff starts at 0.1 s and
    doubles: a short outage costs little; after a long one, at most 30 s)."""
    suite = await proxied_suite("feature_service", OUTBOX_DELIVERY_TIMEOUT_SECONDS="1")
    ids, _ = await _world(suite)
    faults = Faults(suite.proxies["feature_service"], errors)
    db_file = f"{tmp_path}/ingest_service.db"
    channel = _plain_channel(suite.suite.addr("ingest_service"))
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    wallet = bearer(suite.suite.producer_token("wallet"))
    # What a failed delivery keeps as its error, by fault.
    met = {"stopped": ("UNAVAILABLE",), "slow": ("DEADLINE_EXCEEDED",), "cut": ("UNAVAILABLE", "DEADLINE_EXCEEDED"),
           "blackhole": ("DEADLINE_EXCEEDED",), "answers UNAVAILABLE": ("UNAVAILABLE",),
           "answers INTERNAL": ("INTERNAL",)}
    try:
        assert _outbox(db_file) == []
        for n, fault in enumerate(FAULTS):
            await faults.inject(fault)
            reply = await stub.IngestRecords(ingest_pb2.IngestRecordsRequest(
                request_id=f"fault-ingest-{n}", producer_id="wallet",
                records=[_bill(subject, f"fault-bill-{n}-{subject}") for subject in ids],
            ), metadata=wallet, timeout=5)
            assert any(r.status == ingest_pb2.RECORD_STATUS_ACCEPTED for r in reply.results)
            started = time.monotonic()
            while not (rows := _outbox(db_file)) or rows[0][0] < 1:
                assert time.monotonic() - started < RECOVERY, f"{fault}: no delivery failed: {rows}"
                await asyncio.sleep(0.05)
            error = rows[0][1] or ""
            print(f"| ingest_service -> feature_service | {fault} | {error} |")
            assert any(code in error for code in met[fault]), (fault, error)
            await faults.clear()
            started = time.monotonic()
            while _outbox(db_file):
                assert time.monotonic() - started < RECOVERY, f"{fault}: still held: {_outbox(db_file)}"
                await asyncio.sleep(0.05)
            print(f"delivered {time.monotonic() - started:.2f} s after the fault was cleared")
    finally:
        await channel.close()


async def test_no_queue_grows_while_a_downstream_hangs(proxied_suite):
    """Many lookups while the feature service hangs: each fails at its own
    deadline, and once they are over the gateway holds no task and no queued item."""
    suite = await proxied_suite("feature_service")
    ids, token = await _world(suite)
    proxy = suite.proxies["feature_service"]
    channel = _plain_channel(suite.suite.addr("gateway"))
    stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)

    def lookup(txn: str, timeout: float = DEADLINE):
        return stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
            subject_id=ids[0], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
            transaction_id=txn), metadata=bearer(token), timeout=timeout)

    try:
        await _recovers(lambda: lookup("warm-up"), "before the fault")
        baseline = _tasks()
        await proxy.set(Mode.BLACKHOLE)
        for wave in range(3):
            results = await asyncio.gather(*(_timed(lookup(f"hang-{wave}-{i}", 0.5)) for i in range(50)))
            for err, elapsed in results:
                # Fifty answers due at the same moment: some may leave the gateway
                # after the caller gave up (its own DEADLINE_EXCEEDED, no details).
                assert err is not None and err.code == D, err
                # Fifty answers at once from one event loop shared with four more
                # servers, on two busy cores: twice the margin of a single call.
                assert elapsed <= 0.5 + 2 * MARGIN, elapsed
            assert await _drained(), [(b.queued, b.in_flight) for b in _batchers()]
        await proxy.set(Mode.PASS)
        await _recovers(lambda: lookup(f"after-{time.monotonic()}"), "after the fault")
        assert await _drained()
        assert await _quiet_tasks(baseline) <= baseline + 3
        # A longer outage (the feature service stopped for 5 s, asked every 0.25 s
        # meanwhile): the gateway's channel backs off reconnecting up to 2 s
        # (ChannelSettings.reconnect_max_backoff_ms), so lookups come back within
        # about that once the service is up again, not gRPC's default 120 s.
        await proxy.set(Mode.STOPPED)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 5:
            err, _ = await _timed(lookup(f"down-{time.monotonic()}"))
            assert err is not None and err.code == U and err.reason == "DOWNSTREAM_UNAVAILABLE", err
            await asyncio.sleep(0.25)
        await proxy.set(Mode.PASS)
        took = await _recovers(lambda: lookup(f"back-{time.monotonic()}"), "after a 5 s outage")
        print(f"gateway -> feature_service: lookups answered again {took:.2f} s after a 5 s outage")
        assert await _quiet_tasks(baseline) <= baseline + 3
    finally:
        await channel.close()


def _batchers() -> list[Batcher]:
    import gc

    return [o for o in gc.get_objects() if isinstance(o, Batcher)]


async def _drained() -> bool:
    """Whether every batcher's queue empties and its batches come back (polled)."""
    deadline = time.monotonic() + RECOVERY
    while any(b.queued or b.in_flight for b in _batchers()):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
