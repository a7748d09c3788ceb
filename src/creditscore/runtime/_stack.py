"""What a server owns besides itself, given back in reverse order of acquisition.

A service acquires, while it builds, the things its servicers use: an engine, the
stores on it, channels to other services, background workers (a dispatcher, a
refresher, the watch that keeps tokens current). ``ServiceStack`` records each
acquisition with the step that undoes it, like ``contextlib.AsyncExitStack`` (which
it runs on), and ``aclose`` undoes them last first::

    stack = ServiceStack()
    engine = make_engine(url);  stack.callback(engine.dispose)      # 1
    channel = create_channel(a); stack.callback(channel.close)       # 2
    stack.worker(refresher.start, refresher.stop)                    # 3
    await stack.start()         # starts the workers, in the order they were added
    ...
    await stack.aclose()        # 3 (if it started), then 2, then 1

So work that uses a channel or an engine (added after them) stops before they
close. A worker is started by ``start`` and stopped at its place in the stack, and
only if it started: a build that fails before the server starts releases what it
acquired without stopping what never ran. Each step runs once; one that fails is
logged and the others still run. ``ready`` gates are what must have happened
before the server's services report SERVING (``ServerHandle.start``).

``ServerHandle`` holds one (``handle.stack``); ``ServiceBuilder`` fills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TypeVar

__all__ = ["Release", "ServiceStack"]

log = logging.getLogger("creditscore.runtime")

T = TypeVar("T")

#: One undo step: an async function of no argument (``engine.dispose``, ``channel.close``).
Release = Callable[[], Awaitable[object]]


async def _run(run: Callable[[], Awaitable[T]]) -> T:
    return await run()


class ServiceStack:
    """Engines, stores, channels and workers, released in reverse order of
    acquisition (see the module's documentation)."""

    def __init__(self) -> None:
        self._exits = contextlib.AsyncExitStack()
        self._starts: list[Callable[[], Awaitable[None]]] = []
        #: Awaited (in order) before the server's services report SERVING.
        self.ready: list[Callable[[], Awaitable[object]]] = []
        self._started = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def callback(self, release: Release, *, what: str = "") -> None:
        """Adds ``release`` (awaited at ``aclose``, after everything added later)."""
        self._check_open()
        label = what or getattr(release, "__qualname__", repr(release))

        async def run() -> None:
            try:
                await release()
            except Exception:  # noqa: BLE001 - releasing goes on
                log.exception("releasing %s failed", label)

        self._exits.push_async_callback(run)

    async def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enters ``manager`` now and exits it at its place in the stack."""
        self._check_open()
        value = await manager.__aenter__()

        async def exit_() -> None:
            await manager.__aexit__(None, None, None)

        self.callback(exit_, what=type(manager).__qualname__)
        return value

    def worker(
        self,
        start: Callable[[], Awaitable[object]],
        stop: Callable[[], Awaitable[object]],
        *,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """A background worker: ``start`` runs at ``start()`` (after the workers
        added before it), ``stop`` at its place in the stack if ``start`` ran.
        ``ready`` (optional) is a gate of ``ready``. Workers may not be added once
        the stack has started."""
        self._check_open()
        if self._started:
            raise RuntimeError("a worker added after start would never start")
        started = False

        async def start_it() -> None:
            nonlocal started
            await start()
            started = True

        async def stop_it() -> None:
            if started:
                await stop()

        self._starts.append(start_it)
        self.callback(stop_it, what=getattr(stop, "__qualname__", repr(stop)))
        if ready is not None:
            self.ready.append(ready)

    def task(self, run: Callable[[], Awaitable[object]], *, name: str) -> None:
        """A worker that is one asyncio task running ``run()`` (a loop until
        cancelled): created at ``start``, cancelled and awaited when released."""
        running: list[asyncio.Task[object]] = []

        async def start() -> None:
            running.append(asyncio.create_task(_run(run), name=name))

        async def stop() -> None:
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            running.clear()

        self.worker(start, stop)

    async def start(self) -> None:
        """Starts the workers in the order they were added. A worker whose start
        fails raises here; those started before it stay started until ``aclose``."""
        self._check_open()
        if self._started:
            return
        self._started = True
        for start in self._starts:
            await start()

    async def aclose(self) -> None:
        """Undoes everything, last acquired first; once (later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        await self._exits.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this stack has been released")

    async def __aenter__(self) -> ServiceStack:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
