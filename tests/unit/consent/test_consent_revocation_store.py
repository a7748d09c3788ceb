"""Revocation in the consent store, on SQLite and PostgreSQL: credential
generations of subjects, clients and services; the revocation log, its order,
its pages, its expiry; and a re-enrolled id that never accepts an earlier
enrollment's tokens."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent_service.consents import RequestKey
from consent_service.purge import DeletionScope
from consent_service.registry import Client
from consent_service.revocation import RevocationRecord, generation_at
from consent_service.store import TOKEN_LIFE, ConsentStore
from creditscore.runtime import KIND_PARTNER, NotFound

T0 = datetime(2030, 1, 1, tzinfo=UTC)
#: How long a revocation entry lives: the store's default (the longest token life).
LIFE = TOKEN_LIFE


def key(request_id: str, payload: str = "") -> RequestKey:
    return RequestKey.of(request_id, "M", payload.encode())


def enc(value: Any) -> bytes:
    return json.dumps(str(value)).encode()


async def enroll(store: ConsentStore, subject_id: str, request_id: str, now: datetime = T0) -> None:
    await store.enroll_subject(key(request_id, subject_id), subject_id, now=now, encode=enc, secret_hash="h")


async def register(store: ConsentStore, client_id: str, now: datetime = T0) -> None:
    client = Client(client_id, KIND_PARTNER, client_id, "scrypt$x", register_time=now)
    await store.register_client(key(f"reg-{client_id}", client_id), client, generated_id=None, encode=enc)


async def close(store: ConsentStore, subject_id: str, request_id: str, now: datetime) -> None:
    await store.purge_subject(key(request_id, subject_id), subject_id=subject_id,
                              scope=DeletionScope.ACCOUNT, now=now)


async def all_after(store: ConsentStore, cursor: int, now: datetime, limit: int = 2) -> list[RevocationRecord]:
    out: list[RevocationRecord] = []
    while True:
        records, cursor, more, _ = await store.revocations_after(cursor, now=now, limit=limit)
        out.extend(records)
        if not more:
            return out


async def test_a_generation_from_enrollment_raised_by_rotation_and_closure(store: ConsentStore) -> None:
    await enroll(store, "alice", "e1")
    first = await store.subject_generation("alice")
    assert first == generation_at(T0)
    assert await store.subject_credentials("alice") == ("h", first)
    # Rotating the secret: a higher generation and an entry refusing what was below it.
    await store.rotate_subject_secret(key("r1"), subject_id="alice", secret_hash="h2", now=T0, encode=enc)
    second = await store.subject_generation("alice")
    assert second == first + 1  # the same millisecond: one more
    [entry] = await all_after(store, 0, T0)
    assert (entry.sequence, entry.kind, entry.key, entry.generation) == (1, "subject", "alice", second)
    assert entry.expire_time == T0 + LIFE and entry.note == "secret rotated"
    # Closing the account: another entry, in the same transaction as the deletion.
    later = T0 + timedelta(seconds=3)
    await close(store, "alice", "c1", later)
    assert await store.subject_generation("alice") is None
    entries = await all_after(store, 0, later)
    assert [(e.sequence, e.generation, e.note) for e in entries] == [
        (1, second, "secret rotated"), (2, generation_at(later), "account closed")]


async def test_the_same_id_enrolled_again_starts_above_every_earlier_revocation(store: ConsentStore) -> None:
    await enroll(store, "bob", "e1")
    # Closed with a clock running ahead of the one that enrolls next: the new
    # enrollment still starts at the closure's generation, never below.
    await close(store, "bob", "c1", T0 + timedelta(hours=1))
    closed_at = generation_at(T0 + timedelta(hours=1))
    while tasks := await store.claim_due_steps(T0 + timedelta(days=1), T0 + timedelta(days=2), 100):
        for task in tasks:
            await store.complete_step(task.receipt_id, task.position, [], T0 + timedelta(days=1))
    await enroll(store, "bob", "e2", now=T0 + timedelta(minutes=1))
    assert await store.subject_generation("bob") >= closed_at


async def test_clients_and_services_get_revoked(store: ConsentStore) -> None:
    await register(store, "acme")
    assert (await store.get_client("acme")).token_generation == 0  # type: ignore[union-attr]
    done = await store.revoke_tokens(key("rt1"), kind="client", principal_id="acme", service=False,
                                     note="leaked", now=T0, encode=enc)
    assert done.value is not None and done.value.generation == generation_at(T0)
    acme = await store.get_client("acme")
    assert acme is not None and acme.token_generation == generation_at(T0) and acme.revoke_time is None
    # A repeat of the request changes nothing.
    again = await store.revoke_tokens(key("rt1"), kind="client", principal_id="acme", service=False,
                                      note="leaked", now=T0 + LIFE, encode=enc)
    assert again.replayed and len(await all_after(store, 0, T0)) == 1
    # The whole client: revoked, kept (its lookups stay in access logs), another entry.
    ended = await store.revoke_client(key("rc1"), client_id="acme", note="", now=T0, encode=enc)
    client, entry = ended.value  # type: ignore[misc]
    assert client.revoke_time == T0 and entry.generation > done.value.generation
    assert entry.note == "client revoked"
    # A configured service has no row but gets a generation of its own.
    assert await store.service_generation("gateway") == 0
    await store.revoke_tokens(key("rt2"), kind="client", principal_id="gateway", service=True, note="",
                              now=T0, encode=enc)
    assert await store.service_generation("gateway") == generation_at(T0)
    for kind, principal, service in (("client", "nobody", False), ("subject", "nobody", False)):
        with pytest.raises(NotFound):
            await store.revoke_tokens(key(f"x-{kind}"), kind=kind, principal_id=principal, service=service,
                                      note="", now=T0, encode=enc)
    with pytest.raises(NotFound):
        await store.revoke_client(key("rc2"), client_id="nobody", note="", now=T0, encode=enc)


async def test_the_log_pages_in_order_expires_and_says_when_a_cursor_is_unknown(store: ConsentStore) -> None:
    for i in range(5):
        await store.revoke_token(key(f"t{i}"), token_id=f"jti-{i}", note="", now=T0 + timedelta(minutes=i),
                                 encode=enc)
    records, cursor, more, reset = await store.revocations_after(0, now=T0, limit=2)
    assert [r.key for r in records] == ["jti-0", "jti-1"] and cursor == 2 and more and not reset
    assert [r.key for r in await all_after(store, 2, T0)] == ["jti-2", "jti-3", "jti-4"]
    # Nothing new: the cursor stays at the last sequence handed out.
    assert await store.revocations_after(5, now=T0) == ([], 5, False, False)
    # Entries that can no longer refuse a live token are not sent, and are pruned.
    later = T0 + LIFE + timedelta(minutes=2, seconds=30)
    assert [r.key for r in await all_after(store, 0, later)] == ["jti-3", "jti-4"]
    assert await store.prune_revocations(later) == 3
    # A cursor beyond the log (a database reset under a running service): the whole list again.
    records, cursor, more, reset = await store.revocations_after(99, now=T0)
    assert reset and [r.key for r in records] == ["jti-3", "jti-4"] and cursor == 5


async def test_concurrent_revocations_are_never_skipped_by_a_poller(store: ConsentStore) -> None:
    """Writers commit in sequence order (the counter row's lock), so a poller that
    reads while they write and moves its cursor on never misses one."""
    n = 40
    seen: dict[str, int] = {}
    cursor = 0
    done = asyncio.Event()

    async def poller() -> None:
        nonlocal cursor
        while True:
            finished = done.is_set()
            records, cursor, _, _ = await store.revocations_after(cursor, now=T0)
            for r in records:
                seen[r.key] = r.sequence
            if finished:
                return
            await asyncio.sleep(0)

    async def revoke(i: int) -> None:
        await store.revoke_token(key(f"c{i}"), token_id=f"jti-{i}", note="", now=T0, encode=enc)

    polling = asyncio.create_task(poller())
    await asyncio.gather(*(revoke(i) for i in range(n)))
    done.set()
    await polling
    assert len(seen) == n and sorted(seen.values()) == list(range(1, n + 1))
