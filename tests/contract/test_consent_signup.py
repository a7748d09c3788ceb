"""Sign-up in one call: EnrollSubject with its initial consents, on a real
in-process server (port 0) over SQLite and PostgreSQL — validation, idempotency,
and concurrent sign-ups group-committed, each with its own answer."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2 as pb
from creditscore.runtime import from_timestamp
from tests.contract import test_consent_servicer as base
from tests.contract.test_consent_servicer import (
    GRANTED,
    HOUR,
    MODELLING,
    SCORING,
    T0,
    Served,
    fails,
    fields,
)

#: The consent server as deployed, called as a service would call it.
served = base.served

COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
IDENTITY = common_pb2.DATA_SOURCE_IDENTITY
EXTERNAL = common_pb2.DATA_SOURCE_EXTERNAL
OUTCOMES = common_pb2.DATA_SOURCE_OUTCOMES
#: The demo's sign-up: four sources to be scored, the same for model
#: development, and the loan outcomes.
NINE = [(s, SCORING) for s in (COMMERCE, PAYMENTS, IDENTITY, EXTERNAL)] + [
    (s, MODELLING) for s in (COMMERCE, PAYMENTS, IDENTITY, EXTERNAL, OUTCOMES)
]


def ts(when) -> Timestamp:  # type: ignore[no-untyped-def]
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def signup(request_id: str, subject_id: str = "", pairs=NINE, expire=None) -> pb.EnrollSubjectRequest:  # type: ignore[no-untyped-def]
    return pb.EnrollSubjectRequest(
        request_id=request_id, subject_id=subject_id,
        consents=[pb.InitialConsent(source=s, purpose=p, expire_time=expire) for s, p in pairs],
    )


async def listed(s: Served, subject_id: str) -> list[tuple[int, int, int]]:
    reply = await s.stub.ListConsents(pb.ListConsentsRequest(subject_id=subject_id, page_size=100), timeout=5)
    return [(c.source, c.purpose, c.state) for c in reply.consents]


async def test_an_enrollment_grants_its_consents_in_the_same_call(served: Served) -> None:
    reply = await served.stub.EnrollSubject(signup("r-1", "alice"), timeout=5)
    assert reply.created and reply.subject.subject_id == "alice" and reply.subject_secret.startswith("sbj.")
    assert [(c.source, c.purpose) for c in reply.consents] == NINE
    assert all(c.state == GRANTED and c.subject_id == "alice" for c in reply.consents)
    assert all(from_timestamp(c, "grant_time") == T0 and not c.HasField("expire_time") for c in reply.consents)
    assert sorted(await listed(served, "alice")) == sorted((s, p, GRANTED) for s, p in NINE)
    # Checked like any grant.
    check = await served.stub.CheckConsents(pb.CheckConsentsRequest(
        purpose=SCORING, checks=[pb.ConsentCheck(subject_id="alice", source=EXTERNAL)]), timeout=5)
    assert check.decisions[0].granted


async def test_an_expiry_is_kept_and_an_enrollment_without_consents_is_as_before(served: Served) -> None:
    reply = await served.stub.EnrollSubject(
        signup("r-1", "bob", pairs=[(PAYMENTS, SCORING)], expire=ts(T0 + 24 * HOUR)), timeout=5)
    assert from_timestamp(reply.consents[0], "expire_time") == T0 + 24 * HOUR
    bare = await served.stub.EnrollSubject(pb.EnrollSubjectRequest(request_id="r-2", subject_id="carol"), timeout=5)
    assert bare.created and bare.subject_secret and not bare.consents
    assert await listed(served, "carol") == []


async def test_one_bad_consent_refuses_the_whole_enrollment_and_writes_nothing(served: Served) -> None:
    bad = signup("r-1", "dave", pairs=[(COMMERCE, SCORING), (0, SCORING), (PAYMENTS, SCORING), (COMMERCE, SCORING),
                                       (IDENTITY, 99)])
    bad.consents[2].expire_time.CopyFrom(ts(T0 - HOUR))
    error = await fails(served.stub.EnrollSubject(bad, timeout=5))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["consents[1].source", "consents[2].expire_time", "consents[3]", "consents[4].purpose"]
    missing = await fails(served.stub.GetSubject(pb.GetSubjectRequest(subject_id="dave"), timeout=5))
    assert missing.reason == "SUBJECT_NOT_FOUND"
    # The request id was not taken: the corrected request goes through under it.
    fixed = await served.stub.EnrollSubject(signup("r-1", "dave"), timeout=5)
    assert fixed.created and len(fixed.consents) == 9
    too_many = signup("r-2", "erin", pairs=NINE * 2)
    error = await fails(served.stub.EnrollSubject(too_many, timeout=5))
    assert fields(error) == ["consents"]


async def test_a_repeat_answers_as_stored_without_a_second_secret(served: Served) -> None:
    request = signup("r-1", "frank")
    first = await served.stub.EnrollSubject(request, timeout=5)
    hash_before = await served.app.store.subject_secret_hash("frank")
    served.clock.now = T0 + HOUR
    again = await served.stub.EnrollSubject(request, timeout=5)
    assert first.subject_secret and not again.subject_secret
    first.ClearField("subject_secret")
    assert again == first  # grant times of the first call, nothing granted again
    assert await served.app.store.subject_secret_hash("frank") == hash_before
    # The same id under another request id with other consents: the subject as
    # it is, the new consents granted (the earlier ones kept).
    more = await served.stub.EnrollSubject(signup("r-2", "frank", pairs=[(OUTCOMES, SCORING)]), timeout=5)
    assert not more.created and not more.subject_secret
    assert [(c.source, c.purpose, from_timestamp(c, "grant_time")) for c in more.consents] == [
        (OUTCOMES, SCORING, T0 + HOUR)]
    assert len(await listed(served, "frank")) == 10
    reused = await fails(served.stub.EnrollSubject(signup("r-1", "frank", pairs=NINE[:2]), timeout=5))
    assert reused.reason == "REQUEST_ID_REUSED"


async def test_concurrent_enrollments_each_get_their_own_reply(served: Served) -> None:
    n = 60
    requests = [signup(f"c-{i}", f"sub-{i:03d}", pairs=NINE[: 1 + i % 9]) for i in range(n)]
    replies = await asyncio.gather(*(served.stub.EnrollSubject(r, timeout=10) for r in requests))
    secrets = set()
    for i, reply in enumerate(replies):
        assert reply.created and reply.subject.subject_id == f"sub-{i:03d}"
        assert [(c.source, c.purpose) for c in reply.consents] == NINE[: 1 + i % 9]
        assert all(c.subject_id == f"sub-{i:03d}" for c in reply.consents)
        secrets.add(reply.subject_secret)
    assert len(secrets) == n
    for i in (0, 17, n - 1):
        assert len(await listed(served, f"sub-{i:03d}")) == 1 + i % 9
    signups = served.app.store.signups
    assert signups.writes == n and signups.groups < n  # they were committed together


async def test_a_refused_enrollment_among_a_group_does_not_fail_the_others(served: Served) -> None:
    await served.stub.EnrollSubject(signup("taken", "gina"), timeout=5)
    await served.stub.EnrollSubject(signup("e-hank", "hank"), timeout=5)
    await served.stub.CloseAccount(pb.CloseAccountRequest(request_id="close-hank", subject_id="hank"), timeout=5)
    requests = [signup(f"g-{i}", f"grp-{i:02d}") for i in range(20)]
    requests[5] = signup("taken", "ivan")  # a request id already used for another request
    requests[12] = signup("g-12", "hank")  # an account still being closed
    outcomes = await asyncio.gather(
        *(served.stub.EnrollSubject(r, timeout=10) for r in requests), return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if i in (5, 12):
            assert isinstance(outcome, grpc.aio.AioRpcError)
        else:
            assert isinstance(outcome, pb.EnrollSubjectResponse), outcome
            assert outcome.created and len(outcome.consents) == 9
    assert (await fails(served.stub.EnrollSubject(requests[5], timeout=5))).reason == "REQUEST_ID_REUSED"
    assert (await fails(served.stub.EnrollSubject(requests[12], timeout=5))).reason == "PURGE_IN_PROGRESS"
    for sid in ("ivan", "hank"):
        assert (await fails(served.stub.GetSubject(pb.GetSubjectRequest(subject_id=sid), timeout=5))).reason == (
            "SUBJECT_NOT_FOUND")
    assert len(await listed(served, "grp-19")) == 9


async def test_cancelled_sign_ups_are_whole_or_absent(served: Served) -> None:
    requests = [signup(f"x-{i}", f"can-{i:02d}") for i in range(40)]
    calls = [asyncio.ensure_future(served.stub.EnrollSubject(r, timeout=10)) for r in requests]
    await asyncio.sleep(0.01)
    for call in calls[::2]:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    present = 0
    for i, request in enumerate(requests):
        found = True
        try:
            await served.stub.GetSubject(pb.GetSubjectRequest(subject_id=request.subject_id), timeout=5)
        except grpc.aio.AioRpcError:
            found = False
        if not found:
            assert i % 2 == 0  # only a cancelled call may have written nothing
            continue
        present += 1
        assert len(await listed(served, request.subject_id)) == 9
        # Its retry answers the stored reply: the same consents, no secret.
        again = await served.stub.EnrollSubject(request, timeout=5)
        assert again.created and len(again.consents) == 9 and not again.subject_secret
    assert present >= 20
