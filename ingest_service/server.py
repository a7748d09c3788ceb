"""Builds the ingest server: store, channels to consent and feature, dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_INGEST,
    AUDIENCE_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVICE,
    AsyncGauge,
    RegisteredService,
    ServerHandle,
    ServiceBuilder,
    server_auth,
)

from .clients import GrpcConsentChecker, GrpcFeatureSink
from .config import Settings
from .dispatcher import Dispatcher
from .ingestion import Ingestor
from .migrations import MIGRATIONS
from .servicer import IngestServicer
from .store import RecordStore
from .subjects import SubjectData

__all__ = ["DOMAIN", "POLICY", "IngestApp", "build_ingest", "build_server"]

DOMAIN = "ingest.creditscore"

_METHOD = "/creditscore.ingest.v1.IngestService/"
#: Who may call what: producers send records (for their own sources, see
#: ``ingestion``); everything else reads or deletes subjects' data and is for
#: services only. A method not listed is refused.
POLICY = {
    _METHOD + "IngestRecords": {KIND_PRODUCER},
    _METHOD + "IngestRecordStream": {KIND_PRODUCER},
    _METHOD + "ListRecords": {KIND_SERVICE},
    _METHOD + "ExportTrainingRecords": {KIND_SERVICE},
    _METHOD + "PurgeSubject": {KIND_SERVICE},
    _METHOD + "ExportSubject": {KIND_SERVICE},
}

_REPLY_MARGIN_BYTES = 64 * 1024


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ServerHandle:
    """The ingest server, built but not started. Reads no environment: everything
    comes from ``settings``. Starting it starts the outbox dispatcher; stopping it
    stops the dispatcher, closes the channels and disposes of the engine.
    ``build_ingest`` does the same and also hands back the store and dispatcher."""
    app = await build_ingest(settings, tracer_provider=tracer_provider, meter_provider=meter_provider)
    return app.handle


@dataclass(frozen=True)
class IngestApp:
    """A built ingest server and the parts tests and the demo reach into
    (``await app.store.outbox_backlog()``, ``await app.dispatcher.drain(5)``)."""

    handle: ServerHandle
    store: RecordStore
    dispatcher: Dispatcher


async def build_ingest(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> IngestApp:
    """``build_server`` with the store and dispatcher handed back as well;
    ``settings.channel`` (retries, keepalive) applies to both dependency channels.
    With a meter provider, the outbox backlog is the gauge
    ``creditscore.ingest.outbox.backlog``."""
    auth = server_auth(
        settings.auth, (AUDIENCE_INGEST, AUDIENCE_INTERNAL), POLICY, service="ingest_service"
    )
    async with ServiceBuilder(
        settings.server, tls=settings.tls, tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as build:
        engine = await build.database(settings.database_url, MIGRATIONS, auto_migrate=settings.auto_migrate)
        store = RecordStore(engine)
        (consent_channel, feature_channel), _ = build.channels(
            settings.auth, settings.consent_service_addr,
            (settings.consent_service_addr, settings.feature_service_addr), settings.channel,
        )
        dispatcher = Dispatcher(
            store,
            GrpcFeatureSink(feature_pb2_grpc.FeatureServiceStub(feature_channel)),
            batch_size=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
            delivery_timeout=settings.outbox_delivery_timeout_seconds,
            lease_margin=settings.outbox_lease_margin_seconds,
            concurrency=settings.outbox_concurrency,
        )
        if settings.outbox_dispatch:
            build.worker(dispatcher.start, dispatcher.stop)
        if meter_provider is not None:
            backlog = AsyncGauge(
                meter_provider.get_meter("ingest_service"), "creditscore.ingest.outbox.backlog",
                store.outbox_backlog, unit="{record}",
                description="Accepted records not yet delivered to the feature service (whole outbox).",
            )
            build.worker(backlog.start, backlog.stop)
        ingestor = Ingestor(
            store,
            GrpcConsentChecker(consent_pb2_grpc.ConsentServiceStub(consent_channel)),
            on_enqueued=dispatcher.notify,
        )
        servicer = IngestServicer(
            ingestor,
            consent_timeout=settings.consent_timeout_seconds,
            # A stream's reply is one message: it keeps clear of the largest one.
            reply_budget=settings.server.max_message_bytes - _REPLY_MARGIN_BYTES,
            subjects=SubjectData(store),
        )
        handle = build.server(
            [
                RegisteredService(
                    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                    ingest_pb2_grpc.add_IngestServiceServicer_to_server,
                    servicer,
                )
            ],
            domain=DOMAIN,
            auth=auth,
        )
        build.keep_tokens_current(auth, settings.auth, consent_channel)
    return IngestApp(handle, store, dispatcher)
