"""The service builder alone: what a server owns is released in reverse order of
acquisition, a build that fails releases what it acquired, and ``serve`` stops
(and releases) a server whose start failed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import MetaData, event

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    ChannelSettings,
    Migrations,
    RegisteredService,
    SchemaError,
    ServerHandle,
    ServerSettings,
    ServiceBuilder,
    ServiceStack,
    create_server,
    serve,
)

LOCAL = ServerSettings(host="127.0.0.1", port=0, grace_seconds=0.25)


def _service() -> RegisteredService:
    return RegisteredService(
        consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
        consent_pb2_grpc.add_ConsentServiceServicer_to_server,
        consent_pb2_grpc.ConsentServiceServicer(),
    )


class Log:
    """What happened, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def step(self, name: str):
        async def run() -> None:
            self.events.append(name)

        return run

    def failing(self, name: str):
        async def run() -> None:
            self.events.append(name)
            raise RuntimeError(f"{name} failed")

        return run


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status


# --- the stack ----------------------------------------------------------------------


async def test_the_stack_releases_last_acquired_first_and_stops_workers_at_their_place():
    log = Log()
    stack = ServiceStack()
    stack.callback(log.step("engine disposed"))
    stack.callback(log.step("channel closed"))
    stack.worker(log.step("refresher started"), log.step("refresher stopped"))
    stack.callback(log.step("drained"))
    stack.worker(log.step("watch started"), log.step("watch stopped"))
    await stack.start()
    assert log.events == ["refresher started", "watch started"]
    await stack.aclose()
    assert log.events[2:] == ["watch stopped", "drained", "refresher stopped", "channel closed", "engine disposed"]
    await stack.aclose()  # once only
    assert len(log.events) == 7
    with pytest.raises(RuntimeError):
        stack.callback(log.step("too late"))


async def test_a_worker_that_never_started_is_not_stopped():
    log = Log()
    stack = ServiceStack()
    stack.worker(log.step("a started"), log.step("a stopped"))
    stack.worker(log.failing("b started"), log.step("b stopped"))
    stack.worker(log.step("c started"), log.step("c stopped"))
    with pytest.raises(RuntimeError, match="b started failed"):
        await stack.start()
    await stack.aclose()
    assert log.events == ["a started", "b started", "a stopped"]


async def test_a_release_that_fails_is_logged_and_the_others_still_run(caplog):
    log = Log()
    stack = ServiceStack()
    stack.callback(log.step("first"))
    stack.callback(log.failing("second"))
    stack.callback(log.step("third"))
    with caplog.at_level(logging.ERROR, logger="creditscore.runtime"):
        await stack.aclose()
    assert log.events == ["third", "second", "first"]
    assert "releasing" in caplog.text and "second failed" in caplog.text


async def test_a_task_runs_from_start_and_is_cancelled_at_its_place():
    log = Log()
    running = asyncio.Event()

    async def loop() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.events.append("task cancelled")
            raise

    stack = ServiceStack()
    stack.callback(log.step("engine disposed"))
    stack.task(loop, name="refresher")
    stack.callback(log.step("drained"))
    await stack.start()
    await asyncio.wait_for(running.wait(), 5)
    await stack.aclose()
    assert log.events == ["drained", "task cancelled", "engine disposed"]


async def test_a_context_manager_is_exited_at_its_place():
    log = Log()

    @contextlib.asynccontextmanager
    async def session() -> AsyncIterator[str]:
        log.events.append("opened")
        yield "session"
        log.events.append("closed")

    stack = ServiceStack()
    stack.callback(log.step("engine disposed"))
    assert await stack.enter(session()) == "session"
    stack.callback(log.step("drained"))
    await stack.aclose()
    assert log.events == ["opened", "drained", "closed", "engine disposed"]


async def test_no_worker_may_join_a_started_stack():
    stack = ServiceStack()
    await stack.start()
    with pytest.raises(RuntimeError):
        stack.worker(Log().step("start"), Log().step("stop"))
    await stack.aclose()


# --- the builder and the handle -------------------------------------------------------


async def test_a_built_server_starts_its_workers_first_and_stops_first_then_the_rest_in_reverse():
    log = Log()
    port_seen: list[int] = []

    async def worker_start() -> None:
        log.events.append("worker started")

    async def worker_stop() -> None:
        # The server has drained: it answers no more.
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(port_seen[0])
        log.events.append("worker stopped")

    async with ServiceBuilder(LOCAL) as build:
        build.callback(log.step("engine disposed"))
        channel = build.channel("127.0.0.1:1", ChannelSettings(timeout_seconds=0.5))
        build.worker(worker_start, worker_stop, ready=log.step("ready"))
        handle = build.server([_service()], domain="test.creditscore")
        port_seen.append(handle.port)
    assert handle.stack is build.stack and handle.grace_seconds == 0.25
    await handle.start()
    try:
        assert log.events == ["worker started", "ready"]
        assert await _health(handle.port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await handle.stop()
    assert log.events == ["worker started", "ready", "worker stopped", "engine disposed"]
    # The channel was closed on the way: a call on it fails at once.
    with pytest.raises(Exception):  # noqa: B017 - grpc raises UsageError on a closed channel
        await consent_pb2_grpc.ConsentServiceStub(channel).GetSubject(consent_pb2.GetSubjectRequest(), timeout=1)
    await handle.stop()  # a second stop does nothing


async def test_a_build_that_fails_releases_what_it_acquired_in_reverse():
    log = Log()
    with pytest.raises(ValueError, match="bad setting"):
        async with ServiceBuilder(LOCAL) as build:
            build.callback(log.step("engine disposed"))
            build.callback(log.step("channel closed"))
            build.worker(log.step("worker started"), log.step("worker stopped"))
            raise ValueError("bad setting")
    assert log.events == ["channel closed", "engine disposed"]  # the worker never started
    assert build.stack.closed


async def test_a_build_that_fails_after_the_server_stops_it_too():
    log = Log()
    with pytest.raises(ValueError):
        async with ServiceBuilder(LOCAL) as build:
            build.callback(log.step("engine disposed"))
            handle = build.server([_service()], domain="test.creditscore")
            raise ValueError("after the server")
    assert log.events == ["engine disposed"]
    assert handle.stack.closed


async def test_a_build_without_a_server_is_a_mistake_and_releases_too():
    log = Log()
    with pytest.raises(RuntimeError, match="without a server"):
        async with ServiceBuilder(LOCAL) as build:
            build.callback(log.step("engine disposed"))
    assert log.events == ["engine disposed"]


async def test_the_engine_is_disposed_of_when_its_schema_is_refused(tmp_path, monkeypatch):
    from creditscore.runtime import _db

    disposed: list[bool] = []
    make_engine = _db.make_engine

    def spying_make_engine(url: str, **kwargs):
        engine = make_engine(url, **kwargs)
        event.listen(engine.sync_engine, "engine_disposed", lambda _: disposed.append(True))
        return engine

    monkeypatch.setattr(_db, "make_engine", spying_make_engine)
    empty = Migrations("test", Path(tmp_path), MetaData())  # no scripts: no schema to check against
    with pytest.raises(SchemaError):
        async with ServiceBuilder(LOCAL) as build:
            await build.database(f"sqlite:///{tmp_path}/x.db", empty, auto_migrate=False)
    assert disposed == [True]


async def test_stop_drains_for_the_settings_grace_unless_told_otherwise():
    handle = create_server([_service()], LOCAL, domain="test.creditscore")
    assert handle.grace_seconds == 0.25
    graces: list[float | None] = []
    stop = handle.server.stop

    async def spy(grace: float | None) -> None:
        graces.append(grace)
        await stop(grace)

    handle.server.stop = spy  # type: ignore[method-assign]
    await handle.start()
    await handle.stop()
    assert graces == [0.25]

    other = create_server([_service()], LOCAL, domain="test.creditscore")
    await other.start()
    other_stop = other.server.stop

    async def other_spy(grace: float | None) -> None:
        graces.append(grace)
        await other_stop(grace)

    other.server.stop = other_spy  # type: ignore[method-assign]
    await other.stop(0)
    assert graces == [0.25, 0]


# --- serve ------------------------------------------------------------------------------


def _handle_with(log: Log, *, failing_start: bool) -> ServerHandle:
    handle = create_server([_service()], LOCAL, domain="test.creditscore")
    handle.stack.callback(log.step("channel closed"))
    handle.stack.worker(log.step("dispatcher started"), log.step("dispatcher stopped"))
    if failing_start:
        handle.stack.worker(log.failing("watch started"), log.step("watch stopped"))
    return handle


async def test_serve_stops_and_releases_a_server_whose_start_failed():
    log = Log()
    handle = _handle_with(log, failing_start=True)
    with pytest.raises(RuntimeError, match="watch started failed"):
        await serve(handle)
    assert log.events == ["dispatcher started", "watch started", "dispatcher stopped", "channel closed"]
    assert handle.stack.closed
    # serve gave the signals back.
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)


async def test_serve_runs_until_sigterm_then_stops_with_the_settings_grace():
    log = Log()
    handle = _handle_with(log, failing_start=False)
    graces: list[float | None] = []
    stop = handle.server.stop

    async def spy(grace: float | None) -> None:
        graces.append(grace)
        await stop(grace)

    handle.server.stop = spy  # type: ignore[method-assign]
    serving = asyncio.create_task(serve(handle))
    for _ in range(500):
        if "dispatcher started" in log.events and not serving.done():
            try:
                if await _health(handle.port) == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the server never reported SERVING")
    os.kill(os.getpid(), signal.SIGTERM)  # serve's handler is in place from before the start
    await asyncio.wait_for(serving, 10)
    assert graces == [0.25]
    assert log.events == ["dispatcher started", "dispatcher stopped", "channel closed"]

