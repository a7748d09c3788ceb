"""Metrics: the interceptor counts and times calls by method and status; meter
providers from OTEL_*; gauges read by async code."""

from __future__ import annotations

import asyncio
from concurrent import futures

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.runtime import (
    CALLS_METRIC,
    DURATION_METRIC,
    AsyncGauge,
    InvalidArgument,
    NotFound,
    RegisteredService,
    ServerSettings,
    configure_metrics,
    configure_tracing,
    create_channel,
    create_server,
)

GET_SUBJECT = "creditscore.consent.v1.ConsentService/GetSubject"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


class _Servicer(consent_pb2_grpc.ConsentServiceServicer):
    async def GetSubject(self, request, context):
        if request.subject_id == "missing":
            raise NotFound("no such subject", reason="SUBJECT_NOT_FOUND")
        if request.subject_id == "boom":
            raise RuntimeError("secret internals")
        if not request.subject_id:
            raise InvalidArgument("subject_id must be set")
        if request.subject_id == "slow":
            await asyncio.sleep(5)
        if request.subject_id == "nap":
            await asyncio.sleep(0.05)
        if request.subject_id == "set-code":
            context.set_code(grpc.StatusCode.ALREADY_EXISTS)
            return consent_pb2.GetSubjectResponse()
        return consent_pb2.GetSubjectResponse(subject=consent_pb2.Subject(subject_id=request.subject_id))


def _points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    found: dict[str, list] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _by_method_status(points) -> dict[tuple[str, str], object]:
    out = {}
    for p in points:
        attrs = dict(p.attributes)
        assert attrs["rpc.system.name"] == "grpc"
        out[(attrs["rpc.method"], attrs["rpc.response.status_code"])] = p
    return out


@pytest.fixture(params=["metrics", "metrics+tracing"])
async def served(request):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # With tracing on too, the status must still be the one the caller gets.
    tracer = configure_tracing("test", {}) if request.param == "metrics+tracing" else None
    handle = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, _Servicer())],
        ServerSettings(host="127.0.0.1", port=0),
        domain="test.creditscore",
        meter_provider=provider,
        tracer_provider=tracer,
    )
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        yield reader, consent_pb2_grpc.ConsentServiceStub(channel), channel
    finally:
        await channel.close()
        await handle.stop(0)
        provider.shutdown()


async def _call(stub, subject_id: str, timeout: float = 5.0) -> grpc.StatusCode:
    try:
        await stub.GetSubject(consent_pb2.GetSubjectRequest(subject_id=subject_id), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_calls_are_counted_by_method_and_status(served):
    reader, stub, _ = served
    got = [await _call(stub, s) for s in ("alice", "bob", "missing", "boom", "", "set-code")]
    assert got == [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND,
                   grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT,
                   grpc.StatusCode.ALREADY_EXISTS]
    points = _points(reader)
    calls = {key: p.value for key, p in _by_method_status(points[CALLS_METRIC]).items()}
    assert calls == {
        (GET_SUBJECT, "OK"): 2,
        (GET_SUBJECT, "NOT_FOUND"): 1,
        (GET_SUBJECT, "INTERNAL"): 1,
        (GET_SUBJECT, "INVALID_ARGUMENT"): 1,
        (GET_SUBJECT, "ALREADY_EXISTS"): 1,
    }
    durations = {key: p.count for key, p in _by_method_status(points[DURATION_METRIC]).items()}
    assert durations == calls


async def test_duration_covers_the_handler(served):
    reader, stub, _ = served
    assert await _call(stub, "nap") == grpc.StatusCode.OK
    [point] = _by_method_status(_points(reader)[DURATION_METRIC]).values()
    assert point.count == 1
    # The handler slept 50 ms: the duration is at least that (an upper bound
    # would depend on the machine), and it lands in a bucket above 50 ms.
    assert point.sum >= 0.05
    bounds = list(point.explicit_bounds)
    assert bounds[0] == 0.001 and bounds[-1] == 10.0
    first_bucket = next(i for i, n in enumerate(point.bucket_counts) if n)
    assert first_bucket > 0 and bounds[first_bucket - 1] >= 0.05


async def test_a_call_past_its_deadline_counts_as_deadline_exceeded(served):
    reader, stub, _ = served
    assert await _call(stub, "slow", timeout=0.1) == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server notices the deadline on its own side: wait for its record.
    for _ in range(200):
        points = _points(reader).get(CALLS_METRIC, [])
        if points:
            break
        await asyncio.sleep(0.01)
    assert {key: p.value for key, p in _by_method_status(points).items()} == {
        (GET_SUBJECT, "DEADLINE_EXCEEDED"): 1}


async def test_streaming_calls_are_recorded_and_unknown_methods_are_not(served):
    reader, _, channel = served
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                     timeout=5)
    replies = [reply async for reply in call]
    assert replies and replies[0].list_services_response.service
    unknown = channel.unary_unary("/nope.v1.NopeService/Nope")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await unknown(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    calls = {key: p.value for key, p in _by_method_status(_points(reader)[CALLS_METRIC]).items()}
    assert calls == {(REFLECTION, "OK"): 1}


class _Collector(metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC metrics receiver: what a collector would get."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.resources: list[dict[str, str]] = []

    def Export(self, request, context):
        for resource_metrics in request.resource_metrics:
            self.resources.append({a.key: a.value.string_value for a in resource_metrics.resource.attributes})
            for scope in resource_metrics.scope_metrics:
                self.names.extend(m.name for m in scope.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def collector():
    receiver = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 0)])
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        {"OTEL_METRICS_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        # Only the traces endpoint is set: metrics are not sent there.
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9"},
    ],
)
def test_no_meter_provider_when_nothing_would_be_exported(env):
    assert configure_metrics("svc", env) is None


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"])
def test_an_otlp_endpoint_sends_metrics_there(collector, monkeypatch, variable):
    receiver, endpoint = collector
    env = {variable: endpoint, "OTEL_SERVICE_NAME": "renamed"}
    for key, value in env.items():  # the OTLP exporter reads the process environment
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    provider = configure_metrics("svc", env)
    assert provider is not None
    provider.get_meter("t").create_counter("exported.calls").add(1)
    provider.shutdown()  # a last collection, exported
    assert "exported.calls" in receiver.names
    assert receiver.resources[0]["service.name"] == "renamed"


def test_console_exporter_prints_metrics(capsys):
    provider = configure_metrics("svc", {"OTEL_METRICS_EXPORTER": "console"})
    assert provider is not None
    provider.get_meter("t").create_counter("printed.calls").add(1)
    provider.shutdown()
    assert "printed.calls" in capsys.readouterr().out


def test_meter_provider_rejects_an_unknown_exporter():
    with pytest.raises(ValueError, match="OTEL_METRICS_EXPORTER='prometheus'"):
        configure_metrics("svc", {"OTEL_METRICS_EXPORTER": "prometheus"})


def test_meter_provider_takes_a_reader_and_the_service_name():
    reader = InMemoryMetricReader()
    provider = configure_metrics("svc", {"OTEL_SERVICE_NAME": "renamed"}, reader=reader)
    assert provider is not None
    provider.get_meter("t").create_counter("c").add(3)
    data = reader.get_metrics_data()
    [resource_metrics] = data.resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "renamed"
    provider.shutdown()


async def test_async_gauge_reads_on_the_loop_at_each_collection():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    value = {"n": 0, "reads": 0}

    async def read() -> int:
        value["reads"] += 1
        return value["n"]

    gauge = AsyncGauge(provider.get_meter("t"), "backlog", read, unit="{record}")

    async def collect() -> list[float]:
        # The reader collects from its own thread, as the periodic reader does.
        points = await asyncio.to_thread(lambda: _points(reader).get("backlog", []))
        return [p.value for p in points]

    assert await collect() == []  # not started: nothing reported, nothing read
    await gauge.start()
    value["n"] = 7
    assert await collect() == [7]
    value["n"] = 2
    assert await collect() == [2]
    assert value["reads"] == 2
    # From the loop's own thread it cannot wait for the loop: it reports nothing.
    assert [p.value for p in _points(reader).get("backlog", [])] == []
    await gauge.stop()
    assert await collect() == []
    assert value["reads"] == 2
    provider.shutdown()


async def test_async_gauge_reports_nothing_when_the_read_fails(caplog):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    async def read() -> int:
        raise ConnectionError("database down")

    gauge = AsyncGauge(provider.get_meter("t"), "backlog", read)
    await gauge.start()
    points = await asyncio.to_thread(lambda: _points(reader).get("backlog", []))
    assert points == []
    assert "reading the gauge backlog failed" in caplog.text
    await gauge.stop()
    provider.shutdown()
