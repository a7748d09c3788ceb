"""ConsentService on a real in-process server (port 0) over SQLite and PostgreSQL:
what crosses the wire — responses, status codes, ErrorInfo reasons, BadRequest
field paths."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from consent_service.config import Settings
from consent_service.server import ConsentApp, build_consent
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2 as pb
from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.runtime import (
    KIND_SERVICE,
    CallError,
    ServerSettings,
    TokenSource,
    create_channel,
    encode_page_token,
    from_timestamp,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
IDENTITY = common_pb2.DATA_SOURCE_IDENTITY
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
MODELLING = common_pb2.PURPOSE_MODEL_DEVELOPMENT
GRANTED, WITHDRAWN, EXPIRED = pb.CONSENT_STATE_GRANTED, pb.CONSENT_STATE_WITHDRAWN, pb.CONSENT_STATE_EXPIRED


@dataclass
class Clock:
    """The server's "now", moved by the test instead of waiting."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    stub: consent_pb2_grpc.ConsentServiceStub
    clock: Clock
    app: ConsentApp

    async def finish_purges(self) -> None:
        """Runs every purge step (the services are fakes), its second pass included."""
        self.clock.now += timedelta(minutes=5)
        while await self.app.worker.run_once():
            pass


class NothingHeld:
    """A service that holds nothing: purges delete nothing, exports are empty."""

    async def purge(self, request_id: str, subject_id: str, source: int, timeout: float) -> list:
        return []

    async def export(self, subject_id: str, timeout: float) -> list:
        return []


NOTHING = {name: NothingHeld() for name in ("ingest_service", "feature_service", "scoring_service")}


@pytest.fixture
async def served(database_url: str, tmp_path) -> AsyncIterator[Served]:
    """The server as deployed (AUTH_MODE=required), called as a service would call it."""
    clock = Clock()
    app = await build_consent(
        Settings(
            server=ServerSettings(host="127.0.0.1", port=0),
            database_url=database_url,
            signing_key_file=str(tmp_path / "keys" / "signing.pem"),
            purge_worker=False,
        ),
        clock=clock,
        purgers_override=NOTHING,
        held_override=NOTHING,
    )
    handle = app.handle
    await handle.start()
    service_token = TokenSource.static(app.issuer.issue(KIND_SERVICE, "gateway").token)
    channel = create_channel(f"127.0.0.1:{handle.port}", tokens=service_token)
    try:
        yield Served(consent_pb2_grpc.ConsentServiceStub(channel), clock, app)
    finally:
        await channel.close()
        await handle.stop(0)


async def fails(call: Awaitable[Any]) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    error = CallError.from_rpc_error(info.value)
    assert error.domain == "consent.creditscore"
    return error


def fields(error: CallError) -> list[str]:
    return [v.field for v in error.violations]


async def enroll(s: Served, subject_id: str, request_id: str | None = None) -> pb.EnrollSubjectResponse:
    return await s.stub.EnrollSubject(
        pb.EnrollSubjectRequest(request_id=request_id or f"enroll-{subject_id}", subject_id=subject_id), timeout=5
    )


async def grant(s: Served, request_id: str, subject_id: str, source: int = COMMERCE, purpose: int = SCORING,
                expire_time: datetime | None = None) -> pb.Consent:
    reply = await s.stub.GrantConsent(
        pb.GrantConsentRequest(request_id=request_id, subject_id=subject_id, source=source, purpose=purpose,
                               expire_time=expire_time),
        timeout=5,
    )
    return reply.consent


async def withdraw(s: Served, request_id: str, subject_id: str, source: int = COMMERCE,
                   purpose: int = SCORING) -> pb.Consent:
    reply = await s.stub.WithdrawConsent(
        pb.WithdrawConsentRequest(request_id=request_id, subject_id=subject_id, source=source, purpose=purpose),
        timeout=5,
    )
    return reply.consent


async def check(s: Served, purpose: int, *pairs: tuple[str, int]) -> list[bool]:
    reply = await s.stub.CheckConsents(
        pb.CheckConsentsRequest(
            purpose=purpose, checks=[pb.ConsentCheck(subject_id=i, source=src) for i, src in pairs]
        ),
        timeout=5,
    )
    assert [(d.subject_id, d.source) for d in reply.decisions] == list(pairs)
    return [d.granted for d in reply.decisions]


async def list_all(s: Served, subject_id: str, page_size: int) -> tuple[list[pb.Consent], int]:
    consents: list[pb.Consent] = []
    token, pages = "", 0
    while True:
        reply = await s.stub.ListConsents(
            pb.ListConsentsRequest(subject_id=subject_id, page_size=page_size, page_token=token), timeout=5
        )
        consents += reply.consents
        pages += 1
        token = reply.next_page_token
        if not token:
            return consents, pages


# --- subjects ----------------------------------------------------------------


async def test_enroll_with_a_generated_id_and_its_retry(served: Served) -> None:
    request = pb.EnrollSubjectRequest(request_id="r-1")
    first = await served.stub.EnrollSubject(request, timeout=5)
    assert first.created
    assert re.fullmatch(r"subj_[0-9a-f]{24}", first.subject.subject_id)
    assert from_timestamp(first.subject, "enroll_time") == T0
    # A retry of the same request returns the same answer, not a second subject,
    # and not the secret again (it is shown once).
    served.clock.now = T0 + HOUR
    assert first.subject_secret.startswith("sbj.")
    again = await served.stub.EnrollSubject(request, timeout=5)
    assert not again.subject_secret
    first.ClearField("subject_secret")
    assert again == first
    # A new request_id enrols a new subject.
    other = await served.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id="r-2"), timeout=5)
    assert other.created and other.subject.subject_id != first.subject.subject_id


async def test_enroll_with_a_given_id_twice(served: Served) -> None:
    first = await enroll(served, "alice_01", "r-1")
    assert first.created and first.subject.subject_id == "alice_01"
    served.clock.now = T0 + HOUR
    again = await enroll(served, "alice_01", "r-2")
    assert not again.created and again.subject == first.subject
    got = await served.stub.GetSubject(pb.GetSubjectRequest(subject_id="alice_01"), timeout=5)
    assert got.subject == first.subject


# --- consents: grant, withdraw, expiry, re-grant -------------------------------


async def test_grant_withdraw_expire_and_regrant(served: Served) -> None:
    await enroll(served, "alice")
    granted = await grant(served, "g-1", "alice", expire_time=T0 + 2 * HOUR)
    assert granted.state == GRANTED
    assert from_timestamp(granted, "grant_time") == T0
    assert from_timestamp(granted, "expire_time") == T0 + 2 * HOUR
    assert not granted.HasField("withdraw_time")
    assert await check(served, SCORING, ("alice", COMMERCE), ("alice", PAYMENTS)) == [True, False]
    assert await check(served, MODELLING, ("alice", COMMERCE)) == [False]

    # Past its expiry it reads back EXPIRED and no longer counts, with no job run.
    served.clock.now = T0 + 3 * HOUR
    assert await check(served, SCORING, ("alice", COMMERCE)) == [False]
    (listed,), _ = await list_all(served, "alice", 0)
    assert listed.state == EXPIRED

    # Re-granting after expiry starts a new grant without expiry.
    regranted = await grant(served, "g-2", "alice")
    assert regranted.state == GRANTED and from_timestamp(regranted, "grant_time") == T0 + 3 * HOUR
    assert not regranted.HasField("expire_time")
    assert await check(served, SCORING, ("alice", COMMERCE)) == [True]

    # Withdrawal stops it at once; withdrawing again changes nothing.
    served.clock.now = T0 + 4 * HOUR
    withdrawn = await withdraw(served, "w-1", "alice")
    assert withdrawn.state == WITHDRAWN and from_timestamp(withdrawn, "withdraw_time") == T0 + 4 * HOUR
    assert await check(served, SCORING, ("alice", COMMERCE)) == [False]
    served.clock.now = T0 + 5 * HOUR
    assert await withdraw(served, "w-2", "alice") == withdrawn

    # Withdrawing the consent commerce records are collected under purges them:
    # until that is done (both passes), the consent cannot be granted again.
    error = await fails(grant(served, "g-3", "alice"))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PURGE_IN_PROGRESS")
    await served.finish_purges()
    served.clock.now = T0 + 5 * HOUR

    # Re-granting after withdrawal clears the withdrawal.
    again = await grant(served, "g-3", "alice")
    assert again.state == GRANTED and not again.HasField("withdraw_time")
    assert from_timestamp(again, "grant_time") == T0 + 5 * HOUR


async def test_regranting_a_live_grant_updates_its_expiry(served: Served) -> None:
    await enroll(served, "alice")
    await grant(served, "g-1", "alice", expire_time=T0 + HOUR)
    served.clock.now = T0 + timedelta(minutes=30)
    extended = await grant(served, "g-2", "alice", expire_time=T0 + 10 * HOUR)
    assert from_timestamp(extended, "grant_time") == T0
    assert from_timestamp(extended, "expire_time") == T0 + 10 * HOUR
    served.clock.now = T0 + 5 * HOUR
    assert await check(served, SCORING, ("alice", COMMERCE)) == [True]


async def test_check_consents_mixes_known_and_unknown_subjects(served: Served) -> None:
    for subject in ("a", "b", "c"):
        await enroll(served, subject)
    await grant(served, "g-a", "a")
    await grant(served, "g-a2", "a", source=IDENTITY)
    await grant(served, "g-b", "b")
    await withdraw(served, "w-b", "b")
    await grant(served, "g-c", "c", purpose=MODELLING)
    pairs = [("a", COMMERCE), ("ghost", COMMERCE), ("b", COMMERCE), ("c", COMMERCE), ("a", PAYMENTS),
             ("a", IDENTITY), ("a", COMMERCE)]
    # Unknown subjects get granted=false like anyone without consent: no error.
    assert await check(served, SCORING, *pairs) == [True, False, False, False, False, True, True]
    assert await check(served, MODELLING, ("c", COMMERCE), ("a", COMMERCE)) == [True, False]


# --- idempotency ---------------------------------------------------------------


async def test_request_id_retry_and_reuse(served: Served) -> None:
    await enroll(served, "alice")
    first = await grant(served, "g-1", "alice")
    served.clock.now = T0 + HOUR
    assert await grant(served, "g-1", "alice") == first  # a retry: the stored answer

    reuses = [
        served.stub.GrantConsent(pb.GrantConsentRequest(request_id="g-1", subject_id="alice", source=PAYMENTS,
                                                        purpose=SCORING), timeout=5),
        served.stub.WithdrawConsent(pb.WithdrawConsentRequest(request_id="g-1", subject_id="alice", source=COMMERCE,
                                                              purpose=SCORING), timeout=5),
        served.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id="g-1"), timeout=5),
    ]
    for call in reuses:
        error = await fails(call)
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
        assert fields(error) == ["request_id"]
    # Nothing was applied by the refused requests.
    assert await check(served, SCORING, ("alice", COMMERCE), ("alice", PAYMENTS)) == [True, False]


# --- bad requests ------------------------------------------------------------------


async def test_bad_requests_report_every_field(served: Served) -> None:
    error = await fails(served.stub.GrantConsent(
        pb.GrantConsentRequest(request_id="", subject_id="not valid!", source=99, purpose=0, expire_time=T0 - HOUR),
        timeout=5,
    ))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert fields(error) == ["request_id", "subject_id", "source", "purpose", "expire_time"]

    # A Timestamp outside what a Timestamp may hold is a bad field, not an INTERNAL error.
    error = await fails(served.stub.GrantConsent(
        pb.GrantConsentRequest(request_id="r", subject_id="a", source=COMMERCE, purpose=SCORING,
                               expire_time=Timestamp(seconds=10**12)),
        timeout=5,
    ))
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["expire_time"])

    error = await fails(served.stub.WithdrawConsent(
        pb.WithdrawConsentRequest(request_id="r" * 129, subject_id="", source=0, purpose=7), timeout=5))
    assert fields(error) == ["request_id", "subject_id", "source", "purpose"]

    error = await fails(served.stub.EnrollSubject(
        pb.EnrollSubjectRequest(request_id="r", subject_id="x" * 65), timeout=5))
    assert fields(error) == ["subject_id"]

    error = await fails(served.stub.GetSubject(pb.GetSubjectRequest(), timeout=5))
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["subject_id"])


async def test_bad_check_requests(served: Served) -> None:
    checks = [pb.ConsentCheck(subject_id="a", source=COMMERCE), pb.ConsentCheck(subject_id="", source=COMMERCE),
              pb.ConsentCheck(subject_id="b", source=0), pb.ConsentCheck(subject_id="c", source=42)]
    error = await fails(served.stub.CheckConsents(pb.CheckConsentsRequest(checks=checks), timeout=5))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["purpose", "checks[1].subject_id", "checks[2].source", "checks[3].source"]

    error = await fails(served.stub.CheckConsents(pb.CheckConsentsRequest(purpose=SCORING), timeout=5))
    assert fields(error) == ["checks"]
    too_many = [pb.ConsentCheck(subject_id="a", source=COMMERCE)] * 1001
    error = await fails(served.stub.CheckConsents(pb.CheckConsentsRequest(purpose=SCORING, checks=too_many),
                                                  timeout=5))
    assert fields(error) == ["checks"]
    # Exactly the limit is fine.
    reply = await served.stub.CheckConsents(pb.CheckConsentsRequest(purpose=SCORING, checks=too_many[:1000]),
                                            timeout=5)
    assert len(reply.decisions) == 1000 and not any(d.granted for d in reply.decisions)


async def test_bad_list_requests(served: Served) -> None:
    await enroll(served, "alice")
    error = await fails(served.stub.ListConsents(pb.ListConsentsRequest(subject_id="alice", page_size=-1), timeout=5))
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
    for token in ("%%%garbage", encode_page_token({"subject": "bob", "source": 1, "purpose": 1})):
        error = await fails(served.stub.ListConsents(
            pb.ListConsentsRequest(subject_id="alice", page_token=token), timeout=5))
        assert (error.code, error.reason, fields(error)) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", ["page_token"])


# --- not found ---------------------------------------------------------------------


async def test_not_found_reasons(served: Served) -> None:
    calls = [
        served.stub.GetSubject(pb.GetSubjectRequest(subject_id="ghost"), timeout=5),
        served.stub.GrantConsent(pb.GrantConsentRequest(request_id="g", subject_id="ghost", source=COMMERCE,
                                                        purpose=SCORING), timeout=5),
        served.stub.WithdrawConsent(pb.WithdrawConsentRequest(request_id="w", subject_id="ghost", source=COMMERCE,
                                                              purpose=SCORING), timeout=5),
        served.stub.ListConsents(pb.ListConsentsRequest(subject_id="ghost"), timeout=5),
    ]
    for call in calls:
        error = await fails(call)
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND")

    await enroll(served, "alice")
    await grant(served, "g-1", "alice", source=PAYMENTS)
    error = await fails(served.stub.WithdrawConsent(
        pb.WithdrawConsentRequest(request_id="w-1", subject_id="alice", source=COMMERCE, purpose=SCORING), timeout=5))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CONSENT_NOT_FOUND")
    # The failed withdrawal kept nothing: its request_id is free for another request.
    assert (await withdraw(served, "w-1", "alice", source=PAYMENTS)).state == WITHDRAWN


# --- pagination ----------------------------------------------------------------


async def test_list_consents_pages_in_stable_order(served: Served) -> None:
    await enroll(served, "alice")
    await enroll(served, "bob")
    await grant(served, "bob-1", "bob")
    pairs = [(src, pur) for src in (5, 2, 4, 1, 3) for pur in (MODELLING, SCORING)]
    for i, (src, pur) in enumerate(pairs):
        await grant(served, f"g-{i}", "alice", source=src, purpose=pur)
    await withdraw(served, "w-1", "alice", source=2, purpose=SCORING)

    consents, pages = await list_all(served, "alice", 3)
    assert pages == 4
    assert [(c.source, c.purpose) for c in consents] == sorted(pairs)
    assert {c.subject_id for c in consents} == {"alice"}
    assert [c.state for c in consents].count(WITHDRAWN) == 1

    everything, pages = await list_all(served, "alice", 0)  # 0 means 50: one page
    assert (everything, pages) == (consents, 1)
    assert (await list_all(served, "alice", 1000))[1] == 1  # capped at 100, still one page

    await enroll(served, "carol")
    empty = await served.stub.ListConsents(pb.ListConsentsRequest(subject_id="carol"), timeout=5)
    assert (list(empty.consents), empty.next_page_token) == ([], "")


async def test_hostile_ids_get_clear_answers_on_every_database(served: Served) -> None:
    """Found by ``python -m bench.hostile`` on PostgreSQL, which cannot hold a NUL in
    text: a request id or a receipt id with one answered INTERNAL."""
    await enroll(served, "sim-hostile")
    for request_id in ("a\x00b", "\x00", "r\n"):
        error = await fails(served.stub.GrantConsent(pb.GrantConsentRequest(
            request_id=request_id, subject_id="sim-hostile", source=COMMERCE, purpose=SCORING), timeout=5))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT and fields(error) == ["request_id"]
    for receipt_id in ("a\x00b", "\x00", "del_\x01"):
        error = await fails(served.stub.GetDeletionReceipt(pb.GetDeletionReceiptRequest(
            receipt_id=receipt_id, subject_id="sim-hostile"), timeout=5))
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "RECEIPT_NOT_FOUND")
