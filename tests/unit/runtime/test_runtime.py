"""The shared runtime on a real in-process server: errors, health, reflection, stop."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    CallError,
    ChannelSettings,
    InvalidArgument,
    NotFound,
    RegisteredService,
    ServerSettings,
    SettingsError,
    Violations,
    create_channel,
    create_server,
    decode_page_token,
    encode_page_token,
    env_field,
    from_env,
    normalize_database_url,
)


class _Servicer(consent_pb2_grpc.ConsentServiceServicer):
    async def GetSubject(self, request, context):
        if request.subject_id == "missing":
            raise NotFound("no such subject", reason="SUBJECT_NOT_FOUND", metadata={"k": "v"})
        if request.subject_id == "boom":
            raise RuntimeError("secret internals")
        v = Violations()
        v.check(request.subject_id != "", "subject_id", "must be set")
        v.raise_if_any("the request is not valid")
        return consent_pb2.GetSubjectResponse(subject=consent_pb2.Subject(subject_id=request.subject_id))


@pytest.fixture
async def served():
    handle = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, _Servicer())],
        ServerSettings(host="127.0.0.1", port=0),
        domain="test.creditscore",
    )
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        yield handle, channel
    finally:
        await channel.close()
        await handle.stop(0)


async def test_domain_errors_travel_as_rich_status(served):
    _, channel = served
    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id=""), timeout=2)
    err = CallError.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_ARGUMENT" and err.domain == "test.creditscore"
    assert [(v.field, v.description) for v in err.violations] == [("subject_id", "must be set")]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id="missing"), timeout=2)
    err = CallError.from_rpc_error(info.value)
    assert (err.code, err.reason, err.metadata) == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND", {"k": "v"})


async def test_unexpected_error_is_internal_without_its_text(served, caplog):
    _, channel = served
    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id="boom"), timeout=2)
    err = CallError.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INTERNAL and err.reason == "INTERNAL"
    assert "secret" not in err.message


async def test_health_and_reflection(served):
    handle, channel = served
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "creditscore.consent.v1.ConsentService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = [r async for r in refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=2)]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"creditscore.consent.v1.ConsentService", "grpc.health.v1.Health"} <= names
    await handle.stop(0)
    # After stop the port refuses: the call fails fast with UNAVAILABLE.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health.Check(health_pb2.HealthCheckRequest(), timeout=1,
                           wait_for_ready=False)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_settings_from_env():
    @dataclasses.dataclass(frozen=True)
    class S:
        server: ServerSettings = dataclasses.field(default_factory=lambda: ServerSettings(port=50051))
        name: str = env_field("NAME", "x")
        ratio: float = env_field("RATIO", 0.5)
        flag: bool = env_field("FLAG", False)
        items: tuple[str, ...] = env_field("ITEMS", ())

    assert from_env(S, {}).server.port == 50051
    s = from_env(S, {"GRPC_PORT": "7", "NAME": "y", "RATIO": "2", "FLAG": "yes", "ITEMS": "a, b"})
    assert (s.server.port, s.name, s.ratio, s.flag, s.items) == (7, "y", 2.0, True, ("a", "b"))
    with pytest.raises(SettingsError, match="GRPC_PORT"):
        from_env(S, {"GRPC_PORT": "seven"})
    with pytest.raises(SettingsError, match="FLAG"):
        from_env(S, {"FLAG": "maybe"})


def test_page_tokens_round_trip_and_reject_garbage():
    assert decode_page_token(encode_page_token({"after": "x", "n": 3})) == {"after": "x", "n": 3}
    assert decode_page_token("") is None
    with pytest.raises(InvalidArgument):
        decode_page_token("%%%not-a-token")


def test_database_urls_get_async_drivers():
    assert normalize_database_url("sqlite:///var/a.db") == "sqlite+aiosqlite:///var/a.db"
    assert normalize_database_url("postgresql://u@h/db").startswith("postgresql+asyncpg://")
    assert ChannelSettings.default.service_config().count("UNAVAILABLE") == 1


def test_nested_settings_with_unnamed_fields_read_the_real_environment(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class S:
        channel: ChannelSettings = dataclasses.field(default_factory=ChannelSettings)

    monkeypatch.setenv("GRPC_CLIENT_TIMEOUT_SECONDS", "1.5")
    assert from_env(S).channel.timeout_seconds == 1.5


async def test_a_call_without_timeout_gets_the_channel_default():
    seen: list[float | None] = []

    class Slow(consent_pb2_grpc.ConsentServiceServicer):
        async def GetSubject(self, request, context):
            seen.append(context.time_remaining())
            return consent_pb2.GetSubjectResponse()

    handle = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, Slow())],
        ServerSettings(host="127.0.0.1", port=0), domain="test.creditscore")
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}", ChannelSettings(timeout_seconds=0.75))
    try:
        stub = consent_pb2_grpc.ConsentServiceStub(channel)
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id="a"))
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id="a"), timeout=5)
    finally:
        await channel.close()
        await handle.stop(0)
    assert seen[0] is not None and 0 < seen[0] <= 0.75 + 0.02
    assert 0.75 + 0.02 < seen[1] <= 5.02


@pytest.mark.parametrize("value, ok", [
    ("sim-000001", True), ("a" * 64, True), ("A_b-9", True),
    ("", False), ("a" * 65, False), ("has space", False), ("trailing\n", False), ("é", False),
])
def test_subject_ids_are_checked_the_same_everywhere(value, ok):
    from creditscore.runtime import check_subject_id, is_subject_id

    assert is_subject_id(value) is ok
    v = Violations()
    check_subject_id(v, value)
    assert (not v.items) is ok


async def test_a_streaming_call_without_timeout_gets_the_channel_default_too():
    """grpc.aio files a multi-kind interceptor under one kind only: the default
    deadline must reach server-streaming calls as well."""
    handle = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, _Servicer())],
        ServerSettings(host="127.0.0.1", port=0), domain="test.creditscore")
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}", ChannelSettings(timeout_seconds=0.5))
    try:
        # Reflection is bidirectional streaming; health Watch is server streaming and
        # never ends on its own: without a default deadline it would wait forever.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in watch:
                pass
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await channel.close()
        await handle.stop(0)


async def test_sqlite_writes_take_turns_on_the_event_loop_not_in_sqlites_busy_handler(tmp_path):
    """Two write transactions at once on one SQLite file: the second waits for
    the first's commit on an asyncio lock (begin_write), so it starts the moment
    the first commits, not after a busy-handler sleep."""
    import asyncio
    import time

    from sqlalchemy import Column, Integer, MetaData, Table, insert, select

    from creditscore.runtime import begin_write, create_schema, make_engine

    metadata = MetaData()
    t = Table("t", metadata, Column("id", Integer, primary_key=True))
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    await create_schema(engine, metadata)
    order: list[str] = []

    async def write(name: str, hold: float) -> float:
        async with begin_write(engine) as conn:
            start = time.perf_counter()
            order.append(f"{name} in")
            await conn.execute(insert(t))
            await asyncio.sleep(hold)
            order.append(f"{name} out")
        return start

    try:
        first = asyncio.ensure_future(write("a", 0.2))
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        second_start = await write("b", 0.0)
        await first
        assert order == ["a in", "a out", "b in", "b out"]
        # b began within a few ms of a's commit (a busy handler sleeps up to 100 ms steps).
        assert second_start - t0 < 0.2 + 0.05
        async with engine.connect() as conn:
            assert len((await conn.execute(select(t))).all()) == 2
    finally:
        await engine.dispose()


async def test_service_channels_one_per_address_and_every_channel_to_close(tmp_path):
    from creditscore.runtime import service_channels
    from tests.authkit import NO_AUTH, TokenKeys

    addrs = ["127.0.0.1:1", "127.0.0.1:2"]
    made, tokens, owned = service_channels(NO_AUTH, "127.0.0.1:3", addrs)
    try:
        # Without auth: no tokens, and nothing to fetch them on.
        assert tokens is None and len(made) == 2 and owned == made
    finally:
        for channel in owned:
            await channel.close()
    auth = dataclasses.replace(TokenKeys.generate().settings(tmp_path), client_id="svc", client_secret="s")
    made, tokens, owned = service_channels(auth, "127.0.0.1:3", addrs)
    try:
        # With auth: the channel the tokens are fetched on is the caller's to close too.
        assert tokens is not None and len(made) == 2 and len(owned) == 3 and owned[1:] == made
    finally:
        for channel in owned:
            await channel.close()


class _Remaining:
    """A servicer context with ``seconds`` left of its caller's deadline (None: no deadline)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def time_remaining(self) -> float | None:
        return self.seconds


def test_a_deadline_from_the_caller_keeps_time_for_the_answer_to_travel_back():
    from creditscore.runtime import Deadline

    # A tenth of what is left, at least 50 ms, at most 250 ms: work bounded by it
    # fails before the caller gives up, so the caller reads our status and details.
    for left, kept in ((1.0, 0.1), (0.2, 0.05), (10.0, 0.25)):
        deadline = Deadline.from_context(_Remaining(left), default=3.0)  # type: ignore[arg-type]
        assert left - kept - 0.02 <= deadline.remaining() <= left - kept
    # No caller deadline: the default, whole; a cap still applies.
    assert 2.98 <= Deadline.from_context(_Remaining(None), default=3.0).remaining() <= 3.0  # type: ignore[arg-type]
    assert Deadline.from_context(_Remaining(None), 3.0, cap=1.0).remaining() <= 1.0  # type: ignore[arg-type]


def test_a_downstream_timeout_keeps_time_for_our_work_and_for_the_answer():
    from creditscore.runtime import DeadlineExceeded, derive_timeout

    # 1 s left: 50 ms for our work after the call, 100 ms for the answer to travel.
    assert derive_timeout(_Remaining(1.0), 3.0, reserve=0.05) == pytest.approx(0.85)  # type: ignore[arg-type]
    assert derive_timeout(_Remaining(None), 3.0, reserve=0.05) == 3.0  # type: ignore[arg-type]
    with pytest.raises(DeadlineExceeded):
        derive_timeout(_Remaining(0.06), 3.0, reserve=0.01)  # type: ignore[arg-type]


@pytest.mark.parametrize("code, status, reason", [
    (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED, "DOWNSTREAM_DEADLINE_EXCEEDED"),
    # The downstream's own failure is not the caller's bug: try again later.
    (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_ERROR"),
    (grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE, "DOWNSTREAM_ERROR"),
    # Our request refused: our bug or our configuration.
    (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL, "DOWNSTREAM_ERROR"),
    (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL, "DOWNSTREAM_ERROR"),
])
def test_a_failed_downstream_call_becomes_the_status_its_cause_calls_for(code, status, reason):
    from creditscore.runtime import DomainError, downstream_errors

    with pytest.raises(DomainError) as caught, downstream_errors("scoring_service"):
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="boom")
    assert (caught.value.code, caught.value.reason) == (status, reason)
    assert caught.value.metadata == {"service": "scoring_service", "code": code.name}
