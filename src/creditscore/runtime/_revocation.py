"""Revoked tokens, known to every service that checks tokens, without a call to
the consent service on any request's path.

The consent service keeps a log of revocations, each with a sequence number:

    token      one token, by its id (``jti``)
    subject    every token of a subject whose generation is lower than ``generation``
    client     every token of a partner, producer or service whose generation is lower

A token carries its principal's credential generation (claim ``gen``), which the
consent service raises whenever earlier tokens must end: a closed account, a
rotated secret, a re-enrollment of the same id, an operator's revocation. So one
entry per principal ends every token issued before it, and an entry can be
dropped once the longest token lifetime has passed (``expire_time``): every token
it refused has expired by then, and the log stays as small as a quarter of an
hour of revocations.

Every service holds the log in memory (``Revocations``) and a background task
(``AuthWatch``) asks the consent service for the entries after the last one it
has, every ``REVOCATION_POLL_SECONDS``. A check is two dictionary reads. When the
list could not be refreshed for ``REVOCATION_MAX_STALENESS_SECONDS``, every token
is refused (UNAVAILABLE, ``REVOCATIONS_STALE``): a revocation is then at most that
late, never lost. See ``docs/security.md`` for the bound and why polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import Unauthenticated, Unavailable

if TYPE_CHECKING:
    import grpc

__all__ = [
    "REVOCATION_KINDS",
    "AuthWatch",
    "RevocationEntry",
    "RevocationFetch",
    "RevocationPage",
    "Revocations",
    "grpc_fetch",
    "revoked",
]

log = logging.getLogger("creditscore.runtime")

#: Entry kinds: one token by id; every earlier token of a subject; of a client.
REVOKE_TOKEN, REVOKE_SUBJECT, REVOKE_CLIENT = "token", "subject", "client"
REVOCATION_KINDS = (REVOKE_TOKEN, REVOKE_SUBJECT, REVOKE_CLIENT)
#: How often expired entries are swept out of memory.
_SWEEP_SECONDS = 30.0


@dataclass(frozen=True)
class RevocationEntry:
    sequence: int
    kind: str
    #: The token id, the subject id or the client id.
    key: str
    #: subject / client: tokens of a lower generation are refused.
    generation: int
    #: Unix seconds after which no token this entry refuses can still be valid.
    expire_time: float


@dataclass(frozen=True)
class RevocationPage:
    """What one poll brought: entries after the cursor, in sequence order, and the
    new cursor. ``reset``: the source does not know the cursor (its log was reset):
    the entries are the whole live log, and what was held before is dropped.
    ``more``: another page follows at once."""

    entries: Sequence[RevocationEntry]
    last_sequence: int
    more: bool = False
    reset: bool = False


def revoked() -> Unauthenticated:
    """The answer to a revoked token, wherever it is checked."""
    return Unauthenticated("the token has been revoked", reason="TOKEN_REVOKED")


def _stale() -> Unavailable:
    return Unavailable(
        "this service cannot confirm that tokens are still valid (its revocation list is out of "
        "date); retry shortly",
        reason="REVOCATIONS_STALE",
    )


class Revocations:
    """The revocation log as one service knows it, and the check of a token
    against it (``check``: the token's id, its principal and its generation).

    Until the first ``apply`` and whenever the last one is older than
    ``max_staleness`` seconds (``monotonic`` clock), every check refuses with
    ``REVOCATIONS_STALE``. ``wall`` is the clock entries expire against."""

    def __init__(
        self,
        *,
        max_staleness: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_staleness <= 0:
            raise ValueError("REVOCATION_MAX_STALENESS_SECONDS must be positive")
        self.max_staleness = max_staleness
        self._monotonic = monotonic
        self._wall = wall
        self._tokens: dict[str, float] = {}
        self._minimum: dict[tuple[str, str], tuple[int, float]] = {}
        self.cursor = 0
        self._synced_at: float | None = None
        self._synced = asyncio.Event()
        self._swept_at = wall()

    @classmethod
    def always_fresh(cls) -> Revocations:
        """A list that is synced and never goes stale (a service that is itself the
        source, or a test with nothing revoked)."""
        made = cls(max_staleness=float("inf"))
        made.mark_synced()
        return made

    def __len__(self) -> int:
        return len(self._tokens) + len(self._minimum)

    @property
    def synced(self) -> bool:
        return self._synced_at is not None

    def age(self) -> float | None:
        """Seconds since the last successful sync (None: never)."""
        return None if self._synced_at is None else self._monotonic() - self._synced_at

    def mark_synced(self) -> None:
        self._synced_at = self._monotonic()
        self._synced.set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def apply(self, page: RevocationPage) -> None:
        """Takes in one poll's entries (the caller marks the sync when it has every page)."""
        if page.reset:
            self._tokens.clear()
            self._minimum.clear()
        for entry in page.entries:
            self.add(entry)
        self.cursor = page.last_sequence
        now = self._wall()
        if now - self._swept_at >= _SWEEP_SECONDS:
            self._sweep(now)

    def add(self, entry: RevocationEntry) -> None:
        if entry.kind == REVOKE_TOKEN:
            self._tokens[entry.key] = max(entry.expire_time, self._tokens.get(entry.key, 0.0))
        elif entry.kind in (REVOKE_SUBJECT, REVOKE_CLIENT):
            key = (entry.kind, entry.key)
            held = self._minimum.get(key)
            if held is None or entry.generation >= held[0]:
                self._minimum[key] = (entry.generation, max(entry.expire_time, held[1] if held else 0.0))
        else:  # a kind from a newer consent service: refuse nothing unknown, say so
            log.warning("unknown revocation kind %r ignored", entry.kind)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        self._tokens = {k: t for k, t in self._tokens.items() if t >= now}
        self._minimum = {k: v for k, v in self._minimum.items() if v[1] >= now}

    def check(self, token_id: str, kind: str, principal_id: str, generation: int) -> None:
        """Refuses a token that is revoked (``TOKEN_REVOKED``), or every token while
        the list is stale (``REVOCATIONS_STALE``). ``kind`` is ``"subject"`` for a
        subject's token and ``"client"`` for every other."""
        synced_at = self._synced_at
        if synced_at is None or self._monotonic() - synced_at > self.max_staleness:
            raise _stale()
        if token_id in self._tokens:
            raise revoked()
        held = self._minimum.get((kind, principal_id))
        if held is not None and generation < held[0]:
            raise revoked()


#: How an ``AuthWatch`` asks for the entries after a cursor.
RevocationFetch = Callable[[int], Awaitable[RevocationPage]]
Fetch = RevocationFetch


class AuthWatch:
    """Keeps one service's view of tokens current: every ``interval`` seconds it
    runs ``ticks`` (re-reading key files: cheap, a ``stat`` each) and asks ``fetch``
    for the revocations after its cursor, page after page, then marks the list
    synced. ``wake`` makes the next round start at once (the consent service, after
    writing a revocation). A failed round is logged and tried again next interval.
    """

    def __init__(
        self,
        revocations: Revocations,
        fetch: Fetch,
        *,
        interval: float = 1.0,
        ticks: Sequence[Callable[[], object]] = (),
    ) -> None:
        if interval <= 0:
            raise ValueError("REVOCATION_POLL_SECONDS must be positive")
        self.revocations = revocations
        self._fetch = fetch
        self._interval = interval
        self._ticks = list(ticks)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._stopping = False
        self.rounds = 0

    async def sync_once(self) -> None:
        """One round: ticks, then every page of new revocations."""
        for tick in self._ticks:
            result = tick()
            if asyncio.iscoroutine(result):
                await result
        while True:
            page = await self._fetch(self.revocations.cursor)
            self.revocations.apply(page)
            if not page.more:
                break
        self.revocations.mark_synced()
        self.rounds += 1

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.sync_once()
                if self._failing:
                    log.info("revocation list synced again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                if not self._failing:
                    log.warning("could not refresh the revocation list (%s); retrying every %.1fs",
                                exc, self._interval)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auth-watch")

    async def ready(self) -> None:
        """Returns once the revocation list has been synced at least once."""
        await self.revocations.wait_synced()

    async def stop(self, grace: float = 5.0) -> None:
        """Stops after the round in progress (a round cut off mid-query would leave
        its database connection to the garbage collector), or after ``grace``
        seconds at the most."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def grpc_fetch(channel: grpc.aio.Channel, *, timeout: float = 2.0) -> Fetch:
    """``ConsentService.ListRevocations`` on ``channel`` (one that carries the
    service's own token) as an ``AuthWatch`` fetch."""
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc

    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    kinds = {
        consent_pb2.REVOCATION_KIND_TOKEN: REVOKE_TOKEN,
        consent_pb2.REVOCATION_KIND_SUBJECT_TOKENS: REVOKE_SUBJECT,
        consent_pb2.REVOCATION_KIND_CLIENT_TOKENS: REVOKE_CLIENT,
    }

    async def fetch(cursor: int) -> RevocationPage:
        reply = await stub.ListRevocations(
            consent_pb2.ListRevocationsRequest(after_sequence=cursor), timeout=timeout
        )
        return RevocationPage(
            entries=[
                RevocationEntry(
                    sequence=r.sequence,
                    kind=kinds.get(r.kind, str(r.kind)),
                    key=r.key,
                    generation=r.generation,
                    expire_time=r.expire_time.seconds + r.expire_time.nanos / 1e9,
                )
                for r in reply.revocations
            ],
            last_sequence=reply.last_sequence,
            more=reply.more,
            reset=reply.reset,
        )

    return fetch
