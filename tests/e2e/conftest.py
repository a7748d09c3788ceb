"""The whole suite in one process: five real servers on port 0, each with its own
database (SQLite files, or PostgreSQL databases when CI provides them) and its own
tracer provider, all exporting to one in-memory exporter."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from creditscore.demo import Suite
from creditscore.runtime import ServerSettings, configure_tracing, from_env
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

LOCAL = ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0)
PACKAGES = ("consent_service", "feature_service", "scoring_service", "ingest_service", "gateway")


@dataclasses.dataclass
class InProcessSuite:
    suite: Suite  # addresses, as the demo's helpers expect
    exporter: InMemorySpanExporter
    handles: dict


async def _start(database_urls: dict[str, str]) -> InProcessSuite:
    import consent_service.config, consent_service.server  # noqa: E401
    import feature_service.config, feature_service.server  # noqa: E401
    import gateway.config, gateway.server  # noqa: E401
    import ingest_service.config, ingest_service.server  # noqa: E401
    import scoring_service.config, scoring_service.server  # noqa: E401

    modules = {
        "consent_service": (consent_service.config, consent_service.server),
        "feature_service": (feature_service.config, feature_service.server),
        "scoring_service": (scoring_service.config, scoring_service.server),
        "ingest_service": (ingest_service.config, ingest_service.server),
        "gateway": (gateway.config, gateway.server),
    }
    exporter = InMemorySpanExporter()
    handles: dict = {}
    ports: dict[str, int] = {}
    for package in PACKAGES:
        config, server = modules[package]
        settings = from_env(config.Settings, {})
        changes: dict = {"server": LOCAL}
        if package in database_urls:
            changes["database_url"] = database_urls[package]
        for field in dataclasses.fields(settings):
            if field.name.endswith("_service_addr"):
                dep = field.name.removesuffix("_addr")
                changes[field.name] = f"127.0.0.1:{ports[dep]}"
        settings = dataclasses.replace(settings, **changes)
        provider = configure_tracing(package, {}, processor=SimpleSpanProcessor(exporter))
        handle = await server.build_server(settings, tracer_provider=provider)
        await handle.start()
        handles[package] = handle
        ports[package] = handle.port
    return InProcessSuite(Suite(data_dir=Path("."), ports=ports, procs={}), exporter, handles)


async def _stop(running: InProcessSuite) -> None:
    for package in reversed(PACKAGES):
        await running.handles[package].stop(0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def inprocess_suite(request, tmp_path) -> AsyncIterator[InProcessSuite]:
    databases = [p for p in PACKAGES if p != "gateway"]
    if request.param == "sqlite":
        urls = {p: f"sqlite:///{tmp_path}/{p}.db" for p in databases}
        created: list[str] = []
    else:
        if not POSTGRES_URL:
            pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
        created = [await create_pg_database() for _ in databases]
        urls = dict(zip(databases, created, strict=True))
    running = await _start(urls)
    try:
        yield running
    finally:
        await _stop(running)
        for url in created:
            await drop_pg_database(url)
