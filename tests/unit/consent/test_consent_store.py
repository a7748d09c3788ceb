"""ConsentStore on SQLite and PostgreSQL: idempotent mutations, one transaction per
request, the one-SELECT batch check, keyset pages."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from consent_service.consents import Consent, Enrollment, RequestKey
from consent_service.store import ConsentStore, Withdrawal
from creditscore.common.v1 import common_pb2
from creditscore.runtime import FailedPrecondition, InvalidArgument, NotFound

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
MODELLING = common_pb2.PURPOSE_MODEL_DEVELOPMENT


def enc_enrollment(e: Enrollment) -> bytes:
    return json.dumps([e.subject.subject_id, e.created]).encode()


def enc_consent(c: Consent) -> bytes:
    return json.dumps([c.subject_id, c.source, c.purpose, str(c.withdraw_time)]).encode()


def enc_withdrawal(w: Withdrawal) -> bytes:
    return enc_consent(w.consent) + (w.receipt_id or "").encode()


async def finish_purges(store: ConsentStore, now: datetime) -> None:
    """Completes every purge step as if each service had nothing to delete."""
    while tasks := await store.claim_due_steps(now, now + HOUR, 100):
        for task in tasks:
            await store.complete_step(task.receipt_id, task.position, [], now)


def key(request_id: str, method: str = "M", payload: bytes = b"p") -> RequestKey:
    return RequestKey.of(request_id, method, payload)


async def enroll(store: ConsentStore, subject_id: str | None, request_id: str, now: datetime = T0) -> Enrollment:
    done = await store.enroll_subject(key(request_id, "Enroll", (subject_id or "").encode()), subject_id,
                                      now=now, encode=enc_enrollment)
    assert done.value is not None
    return done.value


async def grant(store: ConsentStore, request_id: str, subject_id: str = "s1", source: int = COMMERCE,
                purpose: int = SCORING, expire_time: datetime | None = None, now: datetime = T0) -> Any:
    return await store.grant_consent(
        key(request_id, "Grant", f"{subject_id}/{source}/{purpose}/{expire_time}".encode()),
        subject_id=subject_id, source=source, purpose=purpose, expire_time=expire_time, now=now,
        encode=enc_consent,
    )


async def withdraw(store: ConsentStore, request_id: str, subject_id: str = "s1", source: int = COMMERCE,
                   purpose: int = SCORING, now: datetime = T0) -> Any:
    return await store.withdraw_consent(
        key(request_id, "Withdraw", f"{subject_id}/{source}/{purpose}".encode()),
        subject_id=subject_id, source=source, purpose=purpose, now=now, encode=enc_withdrawal,
    )


async def test_enroll_creates_once_and_keeps_the_first_enroll_time(store: ConsentStore) -> None:
    first = await enroll(store, "s1", "r1")
    assert first.created and first.subject.enroll_time == T0
    again = await enroll(store, "s1", "r2", now=T0 + HOUR)
    assert not again.created and again.subject.enroll_time == T0
    assert await store.get_subject("s1") == first.subject
    assert await store.get_subject("nobody") is None


async def test_enroll_generates_an_id_when_none_is_given(store: ConsentStore) -> None:
    made = await enroll(store, None, "r1")
    assert made.created and made.subject.subject_id.startswith("subj_")
    assert await store.get_subject(made.subject.subject_id) == made.subject


async def test_a_repeated_request_returns_the_stored_response(store: ConsentStore) -> None:
    k = key("r1", "Enroll", b"")
    first = await store.enroll_subject(k, None, now=T0, encode=enc_enrollment)
    again = await store.enroll_subject(k, None, now=T0 + HOUR, encode=enc_enrollment)
    assert not first.replayed and again.replayed
    assert again.response == first.response  # the same generated id, not a new subject


async def test_a_reused_request_id_is_refused(store: ConsentStore) -> None:
    await enroll(store, "s1", "r1")
    for other in (key("r1", "Enroll", b"different"), key("r1", "Grant", b"s1")):
        with pytest.raises(InvalidArgument) as info:
            await store.enroll_subject(other, "s2", now=T0, encode=enc_enrollment)
        assert info.value.reason == "REQUEST_ID_REUSED"
    assert await store.get_subject("s2") is None


async def test_a_failed_request_keeps_nothing(store: ConsentStore) -> None:
    with pytest.raises(NotFound) as info:
        await grant(store, "r1", subject_id="ghost")
    assert info.value.reason == "SUBJECT_NOT_FOUND"
    await enroll(store, "s1", "e1")
    with pytest.raises(NotFound) as info:
        await withdraw(store, "r2")
    assert info.value.reason == "CONSENT_NOT_FOUND"

    # The state change and the stored response commit together: an encoder
    # failing after the change leaves neither behind.
    def broken(_: Consent) -> bytes:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        await store.grant_consent(key("r3"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                                  expire_time=None, now=T0, encode=broken)
    assert await store.list_consents("s1", after=None, limit=10) == ([], False)
    # None of those request ids was consumed: each can now be used afresh.
    done = await grant(store, "r1")
    assert not done.replayed and done.value.grant_time == T0


async def test_grant_withdraw_regrant_is_persisted(store: ConsentStore) -> None:
    await enroll(store, "s1", "e1")
    granted = (await grant(store, "g1", expire_time=T0 + 2 * HOUR)).value
    assert granted == Consent("s1", COMMERCE, SCORING, T0, T0 + 2 * HOUR, None)
    extended = (await grant(store, "g2", expire_time=T0 + 9 * HOUR, now=T0 + HOUR)).value
    assert extended.grant_time == T0 and extended.expire_time == T0 + 9 * HOUR
    first = (await withdraw(store, "w1", now=T0 + 2 * HOUR)).value
    withdrawn = first.consent
    assert withdrawn.withdraw_time == T0 + 2 * HOUR
    assert first.receipt_id  # the consent commerce is collected under: its records are purged
    again = (await withdraw(store, "w2", now=T0 + 3 * HOUR)).value
    assert again.consent == withdrawn and again.receipt_id is None
    # Not granted again while the purge (both passes) runs.
    with pytest.raises(FailedPrecondition) as info:
        await grant(store, "g3", now=T0 + 3 * HOUR)
    assert info.value.reason == "PURGE_IN_PROGRESS"
    await finish_purges(store, T0 + 4 * HOUR)
    assert (await store.receipt(first.receipt_id)).complete
    regranted = (await grant(store, "g3", now=T0 + 4 * HOUR)).value
    assert regranted == Consent("s1", COMMERCE, SCORING, T0 + 4 * HOUR, None, None)
    assert await store.list_consents("s1", after=None, limit=10) == ([regranted], False)


async def test_concurrent_retries_apply_once(store: ConsentStore) -> None:
    await enroll(store, "s1", "e1")
    results = await asyncio.gather(*(grant(store, "same", now=T0 + i * HOUR) for i in range(6)))
    assert len({r.response for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    (stored,), _ = await store.list_consents("s1", after=None, limit=10)
    assert stored == next(r.value for r in results if not r.replayed)


async def test_batch_check_reads_in_one_select(store: ConsentStore, engine: Any) -> None:
    for i in range(3):
        await enroll(store, f"s{i}", f"e{i}")
    await grant(store, "g0", subject_id="s0")
    await grant(store, "g1", subject_id="s1", source=PAYMENTS)
    await grant(store, "g2", subject_id="s2", purpose=MODELLING)
    await withdraw(store, "w1", subject_id="s1", source=PAYMENTS)

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        subjects = [f"s{i % 3}" for i in range(900)] + [f"unknown{i}" for i in range(100)]
        held = await store.consents_for(subjects, [COMMERCE, PAYMENTS], SCORING)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    # Whatever their state; the rules decide which are live.
    assert sorted((c.subject_id, c.source, c.withdraw_time is None) for c in held) == [
        ("s0", COMMERCE, True),
        ("s1", PAYMENTS, False),
    ]
    assert await store.consents_for([], [COMMERCE], SCORING) == []


async def test_list_pages_in_source_purpose_order(store: ConsentStore) -> None:
    with pytest.raises(NotFound) as info:
        await store.list_consents("ghost", after=None, limit=10)
    assert info.value.reason == "SUBJECT_NOT_FOUND"
    await enroll(store, "s1", "e1")
    await enroll(store, "s2", "e2")
    await grant(store, "other", subject_id="s2")
    pairs = [(src, pur) for src in (5, 3, 1, 4, 2) for pur in (MODELLING, SCORING)]
    for i, (src, pur) in enumerate(pairs):
        await grant(store, f"g{i}", source=src, purpose=pur)

    seen: list[tuple[int, int]] = []
    after = None
    while True:
        page, more = await store.list_consents("s1", after=after, limit=3)
        assert all(c.subject_id == "s1" for c in page)
        seen += [(c.source, c.purpose) for c in page]
        if not more:
            break
        after = (page[-1].source, page[-1].purpose)
    assert seen == sorted(pairs)
    assert len(seen) == 10
