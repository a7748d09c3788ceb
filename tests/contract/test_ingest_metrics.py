"""The ingest service's metrics on a real server: its RPCs are counted, and the
outbox backlog gauge reports the records not yet delivered to the feature service."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2 as r
from creditscore.runtime import (
    CALLS_METRIC,
    RegisteredService,
    ServerSettings,
    create_channel,
    create_server,
    to_timestamp,
    utcnow,
)
from ingest_service.config import Settings
from ingest_service.server import build_ingest
from tests.authkit import NO_AUTH

LOCAL = ServerSettings(host="127.0.0.1", port=0)
BACKLOG = "creditscore.ingest.outbox.backlog"


class GrantAll(consent_pb2_grpc.ConsentServiceServicer):
    async def CheckConsents(self, request, context):
        return consent_pb2.CheckConsentsResponse(decisions=[
            consent_pb2.ConsentDecision(subject_id=c.subject_id, source=c.source, granted=True)
            for c in request.checks])


class ClosedThenOpen(feature_pb2_grpc.FeatureServiceServicer):
    """UNAVAILABLE until ``open`` is set, then takes every record."""

    def __init__(self) -> None:
        self.open = False

    async def ApplyRecords(self, request, context):
        if not self.open:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "closed")
        return feature_pb2.ApplyRecordsResponse(applied_count=len(request.records))


def bill(record_id: str) -> r.Record:
    now = utcnow()
    money = r.Money(currency_code="USD", minor_units=4200)
    return r.Record(
        record_id=record_id, subject_id="alice", event_time=to_timestamp(now - timedelta(days=1)),
        bill=r.Bill(category=r.BILL_CATEGORY_UTILITY, amount_due=money,
                    issue_time=to_timestamp(now - timedelta(days=31)),
                    due_time=to_timestamp(now - timedelta(days=6)),
                    amount_paid=money, paid_time=to_timestamp(now - timedelta(days=1))))


def collected(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    found: dict[str, list] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_outbox_backlog_gauge_and_rpc_counts(sqlite_url):
    consent = create_server(
        [RegisteredService(consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                           consent_pb2_grpc.add_ConsentServiceServicer_to_server, GrantAll())],
        LOCAL, domain="fake.creditscore")
    feature_servicer = ClosedThenOpen()
    feature = create_server(
        [RegisteredService(feature_pb2.DESCRIPTOR.services_by_name["FeatureService"],
                           feature_pb2_grpc.add_FeatureServiceServicer_to_server, feature_servicer)],
        LOCAL, domain="fake.creditscore")
    await consent.start()
    await feature.start()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    settings = Settings(
        server=LOCAL, database_url=sqlite_url,
        consent_service_addr=f"127.0.0.1:{consent.port}", feature_service_addr=f"127.0.0.1:{feature.port}",
        outbox_poll_seconds=0.05, outbox_delivery_timeout_seconds=1.0, auth=NO_AUTH)
    app = await build_ingest(settings, meter_provider=provider)
    await app.handle.start()
    channel = create_channel(f"127.0.0.1:{app.handle.port}")
    stopped = False

    async def backlog() -> list[float]:
        # Collected from another thread, as the periodic exporter does.
        points = await asyncio.to_thread(lambda: collected(reader).get(BACKLOG, []))
        return [p.value for p in points]

    try:
        assert await backlog() == [0]
        reply = await ingest_pb2_grpc.IngestServiceStub(channel).IngestRecords(
            ingest_pb2.IngestRecordsRequest(request_id="q1", producer_id="wallet",
                                            records=[bill("b1"), bill("b2"), bill("b3")]), timeout=5)
        assert reply.accepted_count == 3
        assert await backlog() == [3]  # the feature service refuses them: they wait
        feature_servicer.open = True
        await app.dispatcher.drain(10)
        assert await backlog() == [0]
        calls = {
            (dict(p.attributes)["rpc.method"], dict(p.attributes)["rpc.response.status_code"]): p.value
            for p in collected(reader)[CALLS_METRIC]
        }
        assert calls == {("creditscore.ingest.v1.IngestService/IngestRecords", "OK"): 1}
        await app.handle.stop(0)
        stopped = True
        # Stopped: the gauge no longer reads the (disposed) store.
        assert await backlog() == []
    finally:
        await channel.close()
        if not stopped:
            await app.handle.stop(0)
        await consent.stop(0)
        await feature.stop(0)
        provider.shutdown()
