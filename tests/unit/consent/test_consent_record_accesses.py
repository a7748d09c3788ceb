"""ConsentStore.record_accesses on SQLite and PostgreSQL: the lookup's one
question for a batch of lookups, in one transaction with a fixed number of
statements; each outcome, the order of the rules, duplicates inside a batch and
across concurrent batches, revocations, withdrawals and purges."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from consent_service.authorizations import (
    ANSWER_SCORE,
    ANSWER_THRESHOLD,
    SCOPE_FULL_SCORE,
    SCOPE_THRESHOLD,
    AccessOutcome,
    AccessOutcomeKind,
    AccessToRecord,
)
from consent_service.consents import RequestKey
from consent_service.purge import DeletionScope
from consent_service.registry import Client
from consent_service.store import ConsentStore, access_log_table
from creditscore.common.v1 import common_pb2
from creditscore.runtime import KIND_PARTNER, Transactions, make_engine

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CREDIT = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION
RENTAL = common_pb2.ACCESS_PURPOSE_RENTAL
COMMERCE = common_pb2.DATA_SOURCE_COMMERCE
PAYMENTS = common_pb2.DATA_SOURCE_PAYMENTS
IDENTITY = common_pb2.DATA_SOURCE_IDENTITY
OUTCOMES = common_pb2.DATA_SOURCE_OUTCOMES
SCORING = common_pb2.PURPOSE_CREDIT_SCORING
MODELLING = common_pb2.PURPOSE_MODEL_DEVELOPMENT

RECORDED = AccessOutcomeKind.RECORDED
REPLAYED = AccessOutcomeKind.REPLAYED
NOT_AUTHORIZED = AccessOutcomeKind.NOT_AUTHORIZED
REUSED = AccessOutcomeKind.TRANSACTION_ID_REUSED
SOURCES_CHANGED = AccessOutcomeKind.SOURCES_CHANGED


def enc(value: Any) -> bytes:
    return json.dumps(repr(value)).encode()


def key(request_id: str) -> RequestKey:
    return RequestKey.of(request_id, "M", request_id.encode())


async def subject(store: ConsentStore, subject_id: str, *, sources: tuple[int, ...] = (PAYMENTS,),
                  expire_time: datetime | None = None) -> None:
    """Enrolls ``subject_id`` with a CREDIT_SCORING consent for each of ``sources``."""
    await store.enroll_subject(key(f"e-{subject_id}"), subject_id, now=T0, encode=enc)
    for source in sources:
        await store.grant_consent(
            key(f"g-{subject_id}-{source}"), subject_id=subject_id, source=source, purpose=SCORING,
            expire_time=expire_time, now=T0, encode=enc,
        )


async def partner(store: ConsentStore, partner_id: str, name: str = "Acme Lending") -> None:
    await store.register_client(
        key(f"p-{partner_id}"),
        Client(partner_id, KIND_PARTNER, name, "hash", register_time=T0),
        generated_id=None,
        encode=enc,
    )


async def authorize(store: ConsentStore, subject_id: str, partner_id: str, *, purpose: int = CREDIT,
                    scope: int = SCOPE_THRESHOLD, expire_time: datetime = T0 + 30 * DAY) -> None:
    await store.grant_authorization(
        key(f"a-{subject_id}-{partner_id}-{purpose}-{scope}-{expire_time}"), subject_id=subject_id,
        partner_id=partner_id, purpose=purpose, scope=scope, expire_time=expire_time, now=T0, encode=enc,
    )


def access(subject_id: str, transaction_id: str, *, partner_id: str = "acme", purpose: int = CREDIT,
           kind: str = ANSWER_THRESHOLD, sources: tuple[int, ...] = (PAYMENTS,),
           response: bytes | None = None) -> AccessToRecord:
    return AccessToRecord(
        subject_id=subject_id,
        partner_id=partner_id,
        purpose=purpose,
        transaction_id=transaction_id,
        answer_kind=kind,
        answer=f"{kind}:{subject_id}".encode(),
        response=response if response is not None else f"answer {transaction_id} {subject_id}".encode(),
        sources_used=frozenset(sources),
    )


def kinds(outcomes: list[AccessOutcome]) -> list[AccessOutcomeKind]:
    return [o.kind for o in outcomes]


async def log_rows(engine: Any) -> list[tuple[str, str, str, str | None]]:
    """(partner, transaction id, subject, transaction key) of every entry."""
    log = access_log_table.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(log.partner_id, log.transaction_id, log.subject_id, log.transaction_key)
            .order_by(log.access_time, log.partner_id, log.transaction_id)
        )
        return [tuple(r) for r in rows]


async def log_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(access_log_table))).scalar_one())


@pytest.fixture
async def lender(store: ConsentStore) -> ConsentStore:
    """Partner acme; s1 authorized it for credit (threshold) with a payments consent."""
    await partner(store, "acme")
    await subject(store, "s1")
    await authorize(store, "s1", "acme")
    return store


# --- each outcome -------------------------------------------------------------------


async def test_a_new_lookup_is_recorded_and_committed(lender: ConsentStore, engine: Any) -> None:
    [outcome] = await lender.record_accesses([access("s1", "tx-1", response=b"the answer")], now=T0 + HOUR)
    assert outcome.kind is RECORDED and outcome.granted_sources == frozenset()
    entry = outcome.entry
    assert entry is not None
    assert (entry.subject_id, entry.partner_id, entry.purpose, entry.transaction_id) == ("s1", "acme", CREDIT, "tx-1")
    assert (entry.scope, entry.partner_name, entry.access_time) == (SCOPE_THRESHOLD, "Acme Lending", T0 + HOUR)
    assert (entry.answer, entry.response) == (b"threshold:s1", b"the answer")
    # Committed: another connection sees it, and the subject's log lists it.
    assert await log_rows(engine) == [("acme", "tx-1", "s1", "tx-1")]
    page, more = await lender.list_access_log("s1", after=None, limit=10)
    assert page == [entry] and not more
    assert await lender.access_by_transaction("acme", "tx-1", now=T0 + HOUR) == entry


async def test_a_repeated_transaction_id_replays_the_first_entry_for_24_hours(
    lender: ConsentStore, engine: Any
) -> None:
    [first] = await lender.record_accesses([access("s1", "tx-1", response=b"first")], now=T0)
    [again] = await lender.record_accesses(
        [access("s1", "tx-1", kind=ANSWER_THRESHOLD, response=b"second")], now=T0 + 23 * HOUR
    )
    assert again.kind is REPLAYED and again.entry == first.entry
    assert again.entry is not None and again.entry.response == b"first"
    assert await log_count(engine) == 1
    # 24 hours on, the id names a new lookup; the old entry stays in the log.
    [later] = await lender.record_accesses([access("s1", "tx-1", response=b"third")], now=T0 + 24 * HOUR)
    assert later.kind is RECORDED and later.entry is not None
    assert later.entry.access_id != first.entry.access_id
    assert await log_rows(engine) == [("acme", "tx-1", "s1", None), ("acme", "tx-1", "s1", "tx-1")]


async def test_a_transaction_id_reused_for_another_subject_or_purpose(lender: ConsentStore, engine: Any) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    await authorize(lender, "s1", "acme", purpose=RENTAL)
    await lender.record_accesses([access("s1", "tx-1")], now=T0)
    outcomes = await lender.record_accesses(
        [access("s2", "tx-1"), access("s1", "tx-1", purpose=RENTAL)], now=T0 + HOUR
    )
    assert kinds(outcomes) == [REUSED, REUSED]
    assert all(o.entry is None for o in outcomes)  # never another lookup's answer
    # Another partner's transaction ids are its own.
    await partner(lender, "other", "Other Bank")
    await authorize(lender, "s2", "other")
    [own] = await lender.record_accesses([access("s2", "tx-1", partner_id="other")], now=T0 + HOUR)
    assert own.kind is RECORDED and own.entry is not None and own.entry.partner_name == "Other Bank"
    assert await log_count(engine) == 2


async def test_a_source_without_live_consent_asks_to_score_again(lender: ConsentStore, engine: Any) -> None:
    await lender.grant_consent(key("g-s1-commerce"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                               expire_time=None, now=T0, encode=enc)
    await lender.withdraw_consent(key("w-s1-commerce"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                                  now=T0 + HOUR, encode=enc)
    # Identity was never granted; a model-development consent does not count.
    await lender.grant_consent(key("g-s1-identity-m"), subject_id="s1", source=IDENTITY, purpose=MODELLING,
                               expire_time=None, now=T0, encode=enc)
    outcomes = await lender.record_accesses(
        [
            access("s1", "tx-1", sources=(PAYMENTS, COMMERCE)),
            access("s1", "tx-2", sources=(IDENTITY,)),
            access("s1", "tx-3", sources=(PAYMENTS,)),
            access("s1", "tx-4", sources=()),  # e.g. insufficient data: drew on nothing
        ],
        now=T0 + 2 * HOUR,
    )
    assert kinds(outcomes) == [SOURCES_CHANGED, SOURCES_CHANGED, RECORDED, RECORDED]
    assert outcomes[0].granted_sources == outcomes[1].granted_sources == frozenset({PAYMENTS})
    assert outcomes[0].entry is None
    # Nothing written for them: scored again, the same transaction id is recorded.
    assert [r[1] for r in await log_rows(engine)] == ["tx-3", "tx-4"]
    [retry] = await lender.record_accesses([access("s1", "tx-1", sources=(PAYMENTS,))], now=T0 + 2 * HOUR)
    assert retry.kind is RECORDED


async def test_unknown_unauthorized_and_unconsented_lookups_get_the_one_refusal(
    lender: ConsentStore, engine: Any
) -> None:
    await subject(lender, "no-consent", sources=())
    await authorize(lender, "no-consent", "acme")
    await subject(lender, "no-grant")
    await subject(lender, "outcomes-only", sources=(OUTCOMES,))  # labels never make a subject scorable
    await authorize(lender, "outcomes-only", "acme")
    await partner(lender, "other")
    outcomes = await lender.record_accesses(
        [
            access("ghost", "tx-1"),  # never enrolled
            access("no-grant", "tx-2"),  # enrolled, consented, never authorized acme
            access("no-consent", "tx-3", sources=()),  # authorized, no consent to be scored
            access("s1", "tx-4", partner_id="other"),  # another partner
            access("s1", "tx-5", purpose=RENTAL),  # another purpose
            access("s1", "tx-6", partner_id="nobody"),  # no such partner
            access("outcomes-only", "tx-7", sources=()),
        ],
        now=T0,
    )
    assert kinds(outcomes) == [NOT_AUTHORIZED] * 7
    assert all(o.entry is None and not o.granted_sources for o in outcomes)
    assert await log_count(engine) == 0


async def test_a_threshold_authorization_does_not_cover_a_score(lender: ConsentStore) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme", scope=SCOPE_FULL_SCORE)
    outcomes = await lender.record_accesses(
        [
            access("s1", "tx-1", kind=ANSWER_SCORE),
            access("s1", "tx-2", kind=ANSWER_THRESHOLD),
            access("s2", "tx-3", kind=ANSWER_SCORE),
            access("s2", "tx-4", kind=ANSWER_THRESHOLD),
        ],
        now=T0,
    )
    assert kinds(outcomes) == [NOT_AUTHORIZED, RECORDED, RECORDED, RECORDED]
    # Each entry carries the scope it was given under.
    assert [o.entry.scope for o in outcomes[1:] if o.entry] == [SCOPE_THRESHOLD, SCOPE_FULL_SCORE, SCOPE_FULL_SCORE]


async def test_expired_authorizations_and_consents_refuse(store: ConsentStore) -> None:
    await partner(store, "acme")
    await subject(store, "short-grant")
    await authorize(store, "short-grant", "acme", expire_time=T0 + DAY)
    await subject(store, "short-consent", expire_time=T0 + DAY)
    await authorize(store, "short-consent", "acme")
    batch = [access("short-grant", "tx-1"), access("short-consent", "tx-2")]
    before = await store.record_accesses(batch, now=T0 + DAY - timedelta(seconds=1))
    assert kinds(before) == [RECORDED, RECORDED]
    at_expiry = await store.record_accesses(
        [access("short-grant", "tx-3"), access("short-consent", "tx-4")], now=T0 + DAY
    )
    assert kinds(at_expiry) == [NOT_AUTHORIZED, NOT_AUTHORIZED]


# --- the order of the rules -----------------------------------------------------------


async def test_a_refused_partner_learns_nothing_about_its_transaction_ids(lender: ConsentStore) -> None:
    """NOT_AUTHORIZED comes before REPLAYED and TRANSACTION_ID_REUSED: a refused
    lookup cannot tell whether its transaction id was used, nor for whom."""
    await subject(lender, "s2")  # consented, never authorized acme
    await lender.record_accesses([access("s1", "tx-1")], now=T0)
    outcomes = await lender.record_accesses(
        [access("s2", "tx-1"), access("s1", "tx-1", kind=ANSWER_SCORE)], now=T0 + HOUR
    )
    assert kinds(outcomes) == [NOT_AUTHORIZED, NOT_AUTHORIZED]
    # Revoked: even the very same lookup's replay is refused.
    await lender.revoke_authorization(key("rv"), subject_id="s1", partner_id="acme", purpose=CREDIT,
                                      now=T0 + 2 * HOUR, encode=enc)
    [replay] = await lender.record_accesses([access("s1", "tx-1")], now=T0 + 2 * HOUR)
    assert replay.kind is NOT_AUTHORIZED and replay.entry is None


async def test_a_replay_comes_before_a_change_of_sources(lender: ConsentStore) -> None:
    """The answer was given and logged while the source was granted: its replay
    stands after a withdrawal of that source, as long as the lookup is authorized."""
    await lender.grant_consent(key("g-c"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                               expire_time=None, now=T0, encode=enc)
    [first] = await lender.record_accesses([access("s1", "tx-1", sources=(PAYMENTS, COMMERCE))], now=T0)
    await lender.withdraw_consent(key("w-c"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                                  now=T0 + HOUR, encode=enc)
    outcomes = await lender.record_accesses(
        [access("s1", "tx-1", sources=(PAYMENTS, COMMERCE)), access("s1", "tx-2", sources=(PAYMENTS, COMMERCE))],
        now=T0 + HOUR,
    )
    assert kinds(outcomes) == [REPLAYED, SOURCES_CHANGED]
    assert outcomes[0].entry == first.entry


# --- duplicates inside a batch, a batch mixing everything -----------------------------------


async def test_duplicates_inside_one_batch(lender: ConsentStore, engine: Any) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    outcomes = await lender.record_accesses(
        [
            access("s1", "tx-1", response=b"first"),
            access("s1", "tx-1", response=b"second"),
            access("s2", "tx-1"),
            access("s2", "tx-2", sources=(COMMERCE,)),  # SOURCES_CHANGED: writes nothing...
            access("s2", "tx-2"),  # ...so the same id is recorded by the next item
            access("s1", "tx-3", kind=ANSWER_SCORE),  # NOT_AUTHORIZED: holds nothing either
            access("s1", "tx-3"),
        ],
        now=T0,
    )
    assert kinds(outcomes) == [RECORDED, REPLAYED, REUSED, SOURCES_CHANGED, RECORDED, NOT_AUTHORIZED, RECORDED]
    assert outcomes[1].entry == outcomes[0].entry
    assert outcomes[1].entry is not None and outcomes[1].entry.response == b"first"
    assert [(r[1], r[2]) for r in await log_rows(engine)] == [("tx-1", "s1"), ("tx-2", "s2"), ("tx-3", "s1")]


async def test_a_batch_mixing_every_outcome(lender: ConsentStore, engine: Any) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    [earlier] = await lender.record_accesses([access("s1", "old")], now=T0)
    batch = [
        access("s1", "new-1"),
        access("ghost", "new-2"),
        access("s1", "old"),
        access("s2", "old"),
        access("s2", "new-3", sources=(PAYMENTS, IDENTITY)),
        access("s2", "new-4"),
    ]
    outcomes = await lender.record_accesses(batch, now=T0 + HOUR)
    assert kinds(outcomes) == [RECORDED, NOT_AUTHORIZED, REPLAYED, REUSED, SOURCES_CHANGED, RECORDED]
    assert outcomes[2].entry == earlier.entry
    assert outcomes[4].granted_sources == frozenset({PAYMENTS})
    assert sorted(r[1] for r in await log_rows(engine)) == ["new-1", "new-4", "old"]


# --- statements, transactions, concurrency ----------------------------------------------------


async def test_the_statements_per_batch_do_not_grow_with_its_size(lender: ConsentStore, engine: Any) -> None:
    for i in range(50):
        await subject(lender, f"b{i}")
        await authorize(lender, f"b{i}", "acme")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb != "BEGIN":  # transaction control (the SQLite file's BEGIN is explicit), not a query
            statements.append(verb)

    async def measure(batch: list[AccessToRecord], now: datetime) -> tuple[list[str], list[AccessOutcome]]:
        statements.clear()
        watched = Transactions.of(engine).engines  # the async engine and the store's one-step side
        for e in watched:
            event.listen(e, "before_cursor_execute", count)
        try:
            outcomes = await lender.record_accesses(batch, now=now)
        finally:
            for e in watched:
                event.remove(e, "before_cursor_execute", count)
        return list(statements), outcomes

    one, outcomes = await measure([access("b0", "one")], T0)
    assert kinds(outcomes) == [RECORDED]
    fifty, outcomes = await measure([access(f"b{i}", f"fifty-{i}") for i in range(50)], T0)
    assert kinds(outcomes) == [RECORDED] * 50
    assert len(one) == len(fifty) <= 6, (one, fifty)
    assert fifty.count("INSERT") == 1
    # Replays only: no insert at all.
    replays, outcomes = await measure([access(f"b{i}", f"fifty-{i}") for i in range(50)], T0 + HOUR)
    assert kinds(outcomes) == [REPLAYED] * 50
    assert "INSERT" not in replays and len(replays) == len(one) - 1


async def test_a_revocation_committed_refuses_the_next_batch(lender: ConsentStore, engine: Any) -> None:
    [ok] = await lender.record_accesses([access("s1", "tx-1")], now=T0)
    assert ok.kind is RECORDED
    await lender.revoke_authorization(key("rv"), subject_id="s1", partner_id="acme", purpose=CREDIT,
                                      now=T0 + HOUR, encode=enc)
    [refused] = await lender.record_accesses([access("s1", "tx-2")], now=T0 + HOUR)
    assert refused.kind is NOT_AUTHORIZED
    assert await log_count(engine) == 1


async def test_concurrent_batches_with_the_same_transaction_ids_make_one_entry_each(
    lender: ConsentStore, engine: Any
) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    # 8 batches at once, each the same 10 transaction ids (in different orders),
    # one of them for another subject under some ids.
    ids = [f"tx-{i}" for i in range(10)]
    batches = [
        [access("s2" if b == 7 and i % 3 == 0 else "s1", ids[(i + b) % 10]) for i in range(10)]
        for b in range(8)
    ]
    results = await asyncio.gather(*(lender.record_accesses(batch, now=T0) for batch in batches))
    rows = await log_rows(engine)
    assert sorted(r[1] for r in rows) == ids  # exactly one entry per transaction id
    entries = {r[1]: r[2] for r in rows}
    for batch, outcomes in zip(batches, results, strict=True):
        for item, outcome in zip(batch, outcomes, strict=True):
            if entries[item.transaction_id] == item.subject_id:
                assert outcome.kind in (RECORDED, REPLAYED)
                assert outcome.entry is not None and outcome.entry.transaction_id == item.transaction_id
            else:
                assert outcome.kind is REUSED
    recorded = [o for outcomes in results for o in outcomes if o.kind is RECORDED]
    assert len(recorded) == 10 and len({o.entry.access_id for o in recorded if o.entry}) == 10


async def test_the_race_between_read_and_insert_ends_in_a_replay(
    lender: ConsentStore, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica writes some of the batch's transaction ids after the batch
    read the log and before it inserts: those items replay the other's entries
    (or are TRANSACTION_ID_REUSED), the rest are recorded; no second entry, no
    error. On PostgreSQL the other writer commits on its own connection in that
    window; on SQLite no other writer can (the batch holds the write lock from
    its first statement), so its rows are written on the batch's connection."""
    import consent_service.access_log_repo as access_log_repo

    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    theirs = {
        "tx-1": {"access_id": "acc_theirs1", "subject_id": "s1", "response": b"theirs"},
        "tx-2": {"access_id": "acc_theirs2", "subject_id": "s1", "response": b"theirs too"},
    }
    rows = [
        {"partner_id": "acme", "purpose": CREDIT, "transaction_id": tx, "transaction_key": tx,
         "scope": SCOPE_THRESHOLD, "answer": b"a", "access_time": T0, **values}
        for tx, values in theirs.items()
    ]
    real = access_log_repo._accesses_by_keys
    reads = 0

    def read_then_let_another_replica_write(conn: Any, keys: Any) -> Any:
        # Runs inside the batch's one-step transaction (synchronous code).
        nonlocal reads
        reads += 1
        found = real(conn, keys)
        if reads == 1:
            if engine.dialect.name == "postgresql":
                with engine.sync_engine.begin() as other:
                    other.execute(access_log_table.insert(), rows)
            else:
                conn.execute(access_log_table.insert(), rows)
        return found

    monkeypatch.setattr(access_log_repo, "_accesses_by_keys", read_then_let_another_replica_write)
    outcomes = await lender.record_accesses(
        [access("s1", "tx-1"), access("s1", "tx-1"), access("s2", "tx-2"), access("s1", "tx-3")], now=T0
    )
    assert reads == 2  # the log, then the entries that won
    assert kinds(outcomes) == [REPLAYED, REPLAYED, REUSED, RECORDED]
    assert [o.entry.access_id for o in outcomes[:2] if o.entry] == ["acc_theirs1", "acc_theirs1"]
    assert outcomes[0].entry is not None and outcomes[0].entry.response == b"theirs"
    assert outcomes[0].entry.partner_name == "Acme Lending"
    assert [(r[1], r[2]) for r in await log_rows(engine)] == [("tx-1", "s1"), ("tx-2", "s1"), ("tx-3", "s1")]


# --- purges ------------------------------------------------------------------------------------


async def test_a_closed_account_and_a_withdrawal_of_everything_refuse(lender: ConsentStore, engine: Any) -> None:
    await subject(lender, "s2")
    await authorize(lender, "s2", "acme")
    await lender.record_accesses([access("s1", "tx-1"), access("s2", "tx-2")], now=T0)
    await lender.purge_subject(key("close"), subject_id="s1", scope=DeletionScope.ACCOUNT, now=T0 + HOUR)
    await lender.purge_subject(key("all"), subject_id="s2", scope=DeletionScope.ALL_DATA, now=T0 + HOUR)
    # The purges are still in progress (their other steps pending): refused all the
    # same, and their transaction ids are gone with their entries.
    outcomes = await lender.record_accesses(
        [access("s1", "tx-3"), access("s2", "tx-4"), access("s1", "tx-1"), access("s2", "tx-2")], now=T0 + HOUR
    )
    assert kinds(outcomes) == [NOT_AUTHORIZED] * 4
    assert await log_count(engine) == 0


async def test_a_source_being_purged_is_a_change_of_sources(lender: ConsentStore) -> None:
    await lender.grant_consent(key("g-c"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                               expire_time=None, now=T0, encode=enc)
    done = await lender.withdraw_consent(key("w-c"), subject_id="s1", source=COMMERCE, purpose=SCORING,
                                         now=T0 + HOUR, encode=enc)
    assert done.value is not None and done.value.receipt_id  # its purge is under way
    outcomes = await lender.record_accesses(
        [access("s1", "tx-1", sources=(COMMERCE, PAYMENTS)), access("s1", "tx-2", sources=(PAYMENTS,))],
        now=T0 + HOUR,
    )
    assert kinds(outcomes) == [SOURCES_CHANGED, RECORDED]


async def test_batches_racing_an_account_closure_leave_nothing(lender: ConsentStore, engine: Any) -> None:
    """Each batch commits before the purge (whose transaction then deletes its
    entries) or after it (and is refused): nothing of the subject is left."""

    async def batch(b: int) -> list[AccessOutcome]:
        return await lender.record_accesses([access("s1", f"tx-{b}-{i}") for i in range(5)], now=T0)

    tasks = [asyncio.create_task(batch(b)) for b in range(12)]
    await asyncio.sleep(0)
    receipt, _ = await lender.purge_subject(key("close"), subject_id="s1", scope=DeletionScope.ACCOUNT, now=T0)
    results = await asyncio.gather(*tasks)
    for outcomes in results:
        assert len(set(kinds(outcomes))) == 1 and outcomes[0].kind in (RECORDED, NOT_AUTHORIZED)
    recorded = sum(o.kind is RECORDED for outcomes in results for o in outcomes)
    assert await log_count(engine) == 0
    deleted = {t.table: t.deleted for t in receipt.steps[0].tables or ()}
    assert deleted["access_log"] == recorded


async def test_the_lookup_statements_read_through_indexes_not_scans(tmp_path: Path) -> None:
    """SQLite answers a row-value IN ("(a, b) in ((?, ?), ...)") with a scan of the
    whole table; the lookup's statements must read the access log and the
    authorizations through their indexes, so a lookup does not grow with them."""
    from consent_service.access_log_repo import _lookup_statements

    engine = make_engine(f"sqlite:///{tmp_path}/plan.db")
    try:
        store = await ConsentStore.open(engine)
        await store.close()
        q = _lookup_statements("sqlite")
        params = {
            "partners": ["acme", "bank"], "transactions": ["t1", "t2"], "subject_ids": ["s1", "s2"],
            "cutoff": T0,
        }
        async with engine.connect() as conn:
            for name in ("release_stale_keys", "share_subjects", "grants", "consents", "entries"):
                statement = getattr(q, name)
                if name == "release_stale_keys":  # the rows the UPDATE finds, as a SELECT
                    statement = select(access_log_table).where(statement.whereclause)
                statement = statement.params(**params)
                sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()
                scans = [row[3] for row in plan if row[3].startswith("SCAN") and "CONSTANT ROW" not in row[3]]
                assert not scans, (name, plan)
    finally:
        await engine.dispose()
