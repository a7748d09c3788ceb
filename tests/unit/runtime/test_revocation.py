"""The revocation list every service holds: what it refuses, when it goes stale,
and the watch that keeps it current."""

from __future__ import annotations

import asyncio

import pytest

from creditscore.runtime import (
    AuthWatch,
    KeyRing,
    RevocationEntry,
    RevocationPage,
    Revocations,
    TokenVerifier,
    Unauthenticated,
    Unavailable,
)
from tests.authkit import TokenKeys


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _entry(seq: int, kind: str, key: str, generation: int = 0, expire: float = 10_000.0) -> RevocationEntry:
    return RevocationEntry(seq, kind, key, generation, expire)


def _refusal(revocations: Revocations, *args: object) -> str | None:
    try:
        revocations.check(*args)  # type: ignore[arg-type]
    except (Unauthenticated, Unavailable) as exc:
        return exc.reason
    return None


def test_entries_refuse_one_token_or_every_earlier_token_of_a_principal() -> None:
    mono, wall = Clock(), Clock()
    r = Revocations(max_staleness=30, monotonic=mono, wall=wall)
    r.apply(RevocationPage([
        _entry(1, "token", "jti-1"),
        _entry(2, "subject", "alice", generation=500),
        _entry(3, "client", "acme", generation=700),
    ], last_sequence=3))
    r.mark_synced()
    assert r.cursor == 3 and len(r) == 3
    assert _refusal(r, "jti-1", "client", "anyone", 10**12) == "TOKEN_REVOKED"
    assert _refusal(r, "jti-2", "subject", "alice", 499) == "TOKEN_REVOKED"
    assert _refusal(r, "jti-2", "subject", "alice", 500) is None  # issued at or after the revocation
    assert _refusal(r, "jti-2", "client", "acme", 699) == "TOKEN_REVOKED"
    # Subjects and clients are different namespaces: a subject may carry a client's id.
    assert _refusal(r, "jti-2", "subject", "acme", 1) is None
    assert _refusal(r, "jti-2", "client", "alice", 1) is None
    # A lower generation arriving later does not lower the bar.
    r.apply(RevocationPage([_entry(4, "subject", "alice", generation=100)], last_sequence=4))
    assert _refusal(r, "jti-2", "subject", "alice", 499) == "TOKEN_REVOKED"


def test_the_list_is_stale_until_synced_and_again_after_max_staleness() -> None:
    mono = Clock()
    r = Revocations(max_staleness=30, monotonic=mono)
    assert _refusal(r, "t", "client", "acme", 1) == "REVOCATIONS_STALE"
    r.mark_synced()
    assert _refusal(r, "t", "client", "acme", 1) is None
    mono.now += 30
    assert _refusal(r, "t", "client", "acme", 1) is None
    mono.now += 0.1
    assert _refusal(r, "t", "client", "acme", 1) == "REVOCATIONS_STALE"
    r.mark_synced()
    assert _refusal(r, "t", "client", "acme", 1) is None


def test_a_reset_replaces_everything_and_expired_entries_are_swept() -> None:
    mono, wall = Clock(), Clock(1000.0)
    r = Revocations(monotonic=mono, wall=wall)
    r.apply(RevocationPage([_entry(1, "token", "a", expire=1100.0), _entry(2, "token", "b", expire=5000.0)], 2))
    r.mark_synced()
    wall.now = 2000.0  # past a's expiry, and past the sweep interval
    r.apply(RevocationPage([], 2))
    assert len(r) == 1 and _refusal(r, "b", "client", "x", 0) == "TOKEN_REVOKED"
    r.apply(RevocationPage([_entry(1, "subject", "s", 9)], last_sequence=1, reset=True))
    assert r.cursor == 1 and len(r) == 1
    assert _refusal(r, "b", "client", "x", 0) is None


def test_the_verifier_checks_revocations_on_every_call_cached_or_not() -> None:
    keys = TokenKeys.generate()
    revocations = Revocations.always_fresh()
    verifier = TokenVerifier(keys.public_pem, "gateway", revocations=revocations)
    token = keys.partner("acme", gen=10, jti="tok-1")
    assert verifier.verify(token).id == "acme"  # verified, remembered
    revocations.apply(RevocationPage([_entry(1, "client", "acme", generation=11)], 1))
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == "TOKEN_REVOKED"
    subject = keys.mint("alice", "subject", "gateway", gen=5, jti="tok-2")
    assert verifier.verify(subject).generation == 5
    revocations.apply(RevocationPage([_entry(2, "token", "tok-2")], 2))
    with pytest.raises(Unauthenticated):
        verifier.verify(subject)
    # Unchecked without a list (tools, tests of other things).
    assert TokenVerifier(keys.public_pem, "gateway").verify(token).id == "acme"


class Source:
    """A revocation log served page by page, as ListRevocations does."""

    def __init__(self, page_size: int = 2) -> None:
        self.entries: list[RevocationEntry] = []
        self.page_size = page_size
        self.asked: list[int] = []
        self.fail = False

    async def fetch(self, cursor: int) -> RevocationPage:
        self.asked.append(cursor)
        if self.fail:
            raise ConnectionError("the consent service is down")
        after = [e for e in self.entries if e.sequence > cursor]
        page = after[: self.page_size]
        last = page[-1].sequence if page else cursor
        return RevocationPage(page, last, more=len(after) > len(page))


async def test_the_watch_reads_every_page_marks_the_sync_and_wakes_at_once() -> None:
    source = Source()
    source.entries = [_entry(i, "token", f"t{i}") for i in range(1, 6)]
    revocations = Revocations()
    reloads: list[int] = []
    watch = AuthWatch(revocations, source.fetch, interval=3600, ticks=[lambda: reloads.append(1)])
    await watch.start()
    try:
        await asyncio.wait_for(watch.ready(), 5)
        assert revocations.cursor == 5 and len(revocations) == 5 and source.asked == [0, 2, 4]
        assert reloads == [1]
        source.entries.append(_entry(6, "subject", "alice", 9))
        watch.wake()  # no waiting for the hour-long interval
        for _ in range(100):
            if revocations.cursor == 6:
                break
            await asyncio.sleep(0.01)
        assert revocations.cursor == 6 and reloads == [1, 1]
    finally:
        await watch.stop()


async def test_a_failing_source_leaves_the_list_as_it_was_until_it_goes_stale() -> None:
    source = Source()
    source.entries = [_entry(1, "token", "t1")]
    mono = Clock()
    revocations = Revocations(max_staleness=3, monotonic=mono)
    watch = AuthWatch(revocations, source.fetch, interval=0.01)
    await watch.sync_once()
    source.fail = True
    with pytest.raises(ConnectionError):
        await watch.sync_once()
    assert _refusal(revocations, "t1", "client", "x", 0) == "TOKEN_REVOKED"
    assert _refusal(revocations, "t2", "client", "x", 0) is None
    mono.now += 3.5
    assert _refusal(revocations, "t2", "client", "x", 0) == "REVOCATIONS_STALE"
    # The loop keeps trying and recovers by itself.
    await watch.start()
    try:
        source.fail = False
        for _ in range(200):
            if _refusal(revocations, "t2", "client", "x", 0) is None:
                break
            await asyncio.sleep(0.01)
        assert _refusal(revocations, "t2", "client", "x", 0) is None
    finally:
        await watch.stop()


def test_settings_refuse_a_staleness_shorter_than_two_polls(tmp_path) -> None:
    import dataclasses

    from creditscore.runtime import SettingsError

    settings = TokenKeys.generate().settings(tmp_path)
    settings.check()
    for bad in (dict(revocation_poll_seconds=0), dict(revocation_max_staleness_seconds=1.5)):
        with pytest.raises(SettingsError):
            dataclasses.replace(settings, **bad).check()
    assert isinstance(settings.key_file().ring, KeyRing)
