"""ConsentService.RecordAccesses on a real in-process server (tokens required, as
the gateway calls it) over SQLite and PostgreSQL: validation of every item, the
outcomes as they cross the wire, and RecordAccess beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from consent_service.config import Settings
from consent_service.server import ConsentApp, build_consent
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2 as pb
from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.runtime import KIND_SERVICE, CallError, ServerSettings, TokenSource, create_channel, from_timestamp

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
FULL = common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE
THRESHOLD = common_pb2.AUTHORIZATION_SCOPE_THRESHOLD
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
OUTCOMES = common_pb2.DATA_SOURCE_OUTCOMES

RECORDED = pb.ACCESS_OUTCOME_KIND_RECORDED
REPLAYED = pb.ACCESS_OUTCOME_KIND_REPLAYED
NOT_AUTHORIZED = pb.ACCESS_OUTCOME_KIND_NOT_AUTHORIZED
REUSED = pb.ACCESS_OUTCOME_KIND_TRANSACTION_ID_REUSED
SOURCES_CHANGED = pb.ACCESS_OUTCOME_KIND_SOURCES_CHANGED


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


class NothingHeld:
    async def purge(self, request_id: str, subject_id: str, source: int, timeout: float) -> list[Any]:
        return []

    async def export(self, subject_id: str, timeout: float) -> list[Any]:
        return []


@dataclass
class Served:
    app: ConsentApp
    stub: consent_pb2_grpc.ConsentServiceStub
    clock: Clock


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    nothing = {name: NothingHeld() for name in ("ingest_service", "feature_service", "scoring_service")}
    credentials = tmp_path / "service-credentials"
    credentials.write_text("gateway gateway-secret-from-a-file\n")
    clock = Clock()
    app = await build_consent(
        Settings(
            server=ServerSettings(host="127.0.0.1", port=0),
            database_url=database_url,
            signing_key_file=str(tmp_path / "keys" / "signing.pem"),
            service_credentials_file=str(credentials),
            purge_worker=False,
        ),
        clock=clock,
        purgers_override=nothing,
        held_override=nothing,
    )
    await app.handle.start()
    gateway = TokenSource.static(app.issuer.issue(KIND_SERVICE, "gateway").token)
    channel = create_channel(f"127.0.0.1:{app.handle.port}", tokens=gateway)
    try:
        yield Served(app, consent_pb2_grpc.ConsentServiceStub(channel), clock)
    finally:
        await channel.close()
        await app.handle.stop(0)


async def fails(call: Awaitable[Any]) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def setup_subject(s: Served, subject_id: str, *, scope: int = THRESHOLD,
                        sources: tuple[int, ...] = (PAYMENTS,)) -> None:
    """Enrolled, consented to be scored from ``sources``, acme authorized for credit."""
    await s.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id=f"e-{subject_id}", subject_id=subject_id),
                               timeout=5)
    for source in sources:
        await s.stub.GrantConsent(pb.GrantConsentRequest(
            request_id=f"g-{subject_id}-{source}", subject_id=subject_id, source=source,
            purpose=common_pb2.PURPOSE_CREDIT_SCORING), timeout=5)
    await s.stub.GrantAuthorization(pb.GrantAuthorizationRequest(
        request_id=f"a-{subject_id}", subject_id=subject_id, partner_id="acme", purpose=CREDIT, scope=scope),
        timeout=5)


@pytest.fixture
async def acme(served: Served) -> Served:
    await served.stub.RegisterPartner(
        pb.RegisterPartnerRequest(request_id="p-acme", partner_id="acme", display_name="Acme Lending"), timeout=5)
    await setup_subject(served, "s-1")
    await setup_subject(served, "s-2", scope=FULL, sources=(PAYMENTS, COMMERCE))
    return served


def threshold() -> pb.AccessAnswer:
    return pb.AccessAnswer(threshold=pb.ThresholdAnswer(threshold=620, decision=common_pb2.THRESHOLD_DECISION_MEETS))


def score() -> pb.AccessAnswer:
    return pb.AccessAnswer(score=pb.ScoreAnswer(
        state=common_pb2.SCORE_STATE_SCORED, score=702, band=common_pb2.SCORE_BAND_EXCELLENT,
        reason_codes=["PAY_ONTIME_RATIO_12M"], model_version="2.0.0"))


def lookup(subject_id: str, transaction_id: str, *, answer: pb.AccessAnswer | None = None,
           sources: tuple[int, ...] = (PAYMENTS,), response: bytes = b"") -> pb.AccessToRecord:
    return pb.AccessToRecord(
        subject_id=subject_id, partner_id="acme", purpose=CREDIT, transaction_id=transaction_id,
        answer=answer or threshold(), response=response or f"{subject_id}/{transaction_id}".encode(),
        sources_used=sources,
    )


async def record(s: Served, *accesses: pb.AccessToRecord) -> list[pb.AccessOutcome]:
    reply = await s.stub.RecordAccesses(pb.RecordAccessesRequest(accesses=accesses), timeout=10)
    return list(reply.outcomes)


async def logged(s: Served, subject_id: str) -> list[str]:
    reply = await s.stub.ListAccessLog(pb.ListAccessLogRequest(subject_id=subject_id, page_size=100), timeout=5)
    return sorted(e.transaction_id for e in reply.entries)


async def test_each_outcome_crosses_the_wire(acme: Served) -> None:
    acme.clock.now = T0 + HOUR
    [first] = await record(acme, lookup("s-2", "tx-0", answer=score(), response=b"the first answer"))
    assert first.kind == RECORDED
    outcomes = await record(
        acme,
        lookup("s-1", "tx-1", response=b"new"),
        lookup("s-2", "tx-0", answer=score(), response=b"again"),
        lookup("ghost", "tx-2"),
        lookup("s-1", "tx-0"),
        lookup("s-1", "tx-3", sources=(PAYMENTS, COMMERCE)),
        lookup("s-1", "tx-4", answer=score()),  # a threshold authorization
    )
    assert [o.kind for o in outcomes] == [RECORDED, REPLAYED, NOT_AUTHORIZED, REUSED, SOURCES_CHANGED, NOT_AUTHORIZED]
    new, replayed, refused, reused, changed, scoped = outcomes
    # A new entry: as written, without echoing the response the caller just sent.
    assert (new.entry.subject_id, new.entry.transaction_id, new.entry.partner_name) == ("s-1", "tx-1", "Acme Lending")
    assert new.entry.scope == THRESHOLD and new.entry.answer == threshold() and new.entry.access_id
    assert from_timestamp(new.entry, "access_time") == T0 + HOUR and new.entry.response == b""
    # A replay: the first entry with the first answer, byte for byte.
    assert replayed.entry.access_id == first.entry.access_id
    assert replayed.entry.response == b"the first answer" and replayed.entry.answer == score()
    assert replayed.entry.scope == FULL
    for outcome in (refused, reused, scoped):
        assert not outcome.HasField("entry") and not outcome.granted_sources
    assert list(changed.granted_sources) == [PAYMENTS] and not changed.HasField("entry")
    assert await logged(acme, "s-1") == ["tx-1"]
    assert await logged(acme, "s-2") == ["tx-0"]


async def test_every_item_is_validated_and_nothing_is_written(acme: Served) -> None:
    good = lookup("s-1", "tx-1")
    bad = await fails(record(
        acme,
        good,
        pb.AccessToRecord(subject_id="s 1", partner_id="", purpose=0, transaction_id="tx\n2",
                          answer=pb.AccessAnswer(threshold=pb.ThresholdAnswer(threshold=100)),
                          response=b"x" * 70000, sources_used=[OUTCOMES]),
        lookup("s-1", "tx-3", answer=pb.AccessAnswer()),
        lookup("s-1", "tx-4", answer=pb.AccessAnswer(score=pb.ScoreAnswer(score=10)), sources=(PAYMENTS, 0)),
    ))
    assert (bad.code, bad.message) == (grpc.StatusCode.INVALID_ARGUMENT, "the request is not valid")
    assert [v.field for v in bad.violations] == [
        "accesses[1].subject_id",
        "accesses[1].partner_id",
        "accesses[1].purpose",
        "accesses[1].transaction_id",
        "accesses[1].answer.threshold.threshold",
        "accesses[1].answer.threshold.decision",
        "accesses[1].response",
        "accesses[1].sources_used[0]",
        "accesses[2].answer",
        "accesses[3].answer.score.state",
        "accesses[3].answer.score.score",
        "accesses[3].sources_used[1]",
    ]
    assert await logged(acme, "s-1") == []  # not even the valid item

    empty = await fails(record(acme))
    assert (empty.code, [v.field for v in empty.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, ["accesses"])
    too_many = await fails(record(acme, *[lookup("s-1", f"tx-{i}") for i in range(257)]))
    assert [(v.field, v.description) for v in too_many.violations] == [
        ("accesses", "must have at most 256 accesses, got 257")]
    assert await logged(acme, "s-1") == []
    # 256 is the limit, not past it.
    outcomes = await record(acme, *[lookup("s-1", f"tx-{i}", response=b"r") for i in range(256)])
    assert [o.kind for o in outcomes] == [RECORDED] * 256


async def test_a_revocation_refuses_the_next_batch_and_record_access_still_works(acme: Served) -> None:
    reply = await acme.stub.RecordAccess(pb.RecordAccessRequest(
        subject_id="s-1", partner_id="acme", purpose=CREDIT, transaction_id="tx-1", answer=threshold(),
        response=b"via RecordAccess"), timeout=5)
    assert reply.created
    [replayed] = await record(acme, lookup("s-1", "tx-1"))
    assert replayed.kind == REPLAYED and replayed.entry.response == b"via RecordAccess"
    await acme.stub.RevokeAuthorization(pb.RevokeAuthorizationRequest(
        request_id="rv", subject_id="s-1", partner_id="acme", purpose=CREDIT), timeout=5)
    outcomes = await record(acme, lookup("s-1", "tx-1"), lookup("s-1", "tx-2"))
    assert [o.kind for o in outcomes] == [NOT_AUTHORIZED, NOT_AUTHORIZED]
    refused = await fails(acme.stub.RecordAccess(pb.RecordAccessRequest(
        subject_id="s-1", partner_id="acme", purpose=CREDIT, transaction_id="tx-2", answer=threshold()), timeout=5))
    assert refused.reason == "NOT_AUTHORIZED"
    assert await logged(acme, "s-1") == ["tx-1"]
