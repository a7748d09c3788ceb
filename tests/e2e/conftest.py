"""The whole suite in one process: five real servers on free ports, each with its
own database (SQLite files, or PostgreSQL databases when CI provides them) and its
own tracer provider, all exporting to one in-memory exporter; authentication
required everywhere, as ``creditscore run`` sets it up (``DemoAuth``)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from creditscore.cli.run import DemoAuth, Suite, _free_port
from creditscore.runtime import ServerSettings, configure_tracing, from_env
from tests.authkit import Ca
from tests.faultproxy import FaultProxy
from tests.pg import POSTGRES_URL, create_pg_database, drop_pg_database

LOCAL = ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0)
PACKAGES = ("consent_service", "feature_service", "scoring_service", "ingest_service", "gateway")
#: Settings that make tests quick: a purge's second pass (30 s after the first in
#: production, to catch what was in flight) comes due at once.
QUICK = {
    "consent_service": {"PURGE_SWEEP_SECONDS": "0.2", "PURGE_POLL_SECONDS": "0.05"},
    # The feature service learns the active model from every ScoreBatch answer and
    # otherwise checks it every MODEL_REFRESH_SECONDS: not during a test, so that
    # which rows a model change re-scores, and when, does not depend on timing.
    "feature_service": {"MODEL_REFRESH_SECONDS": "3600"},
}


@dataclasses.dataclass
class InProcessSuite:
    suite: Suite  # addresses, as the demo's helpers expect
    exporter: InMemorySpanExporter
    handles: dict
    # Each service's database (tests read the stores directly).
    database_urls: dict = dataclasses.field(default_factory=dict)
    # The fault proxies other services reach a proxied service through, by package.
    proxies: dict[str, FaultProxy] = dataclasses.field(default_factory=dict)


async def _start(
    database_urls: dict[str, str], folder: Path, ca: Ca | None = None, env: dict[str, str] | None = None,
    proxied: Collection[str] = (),
) -> InProcessSuite:
    """The five servers; with ``ca``, every service and the test's own calls speak
    mutual TLS with certificates of that CA (each naming its service); ``env``
    (variables for every service) over the defaults. The other services reach each
    package of ``proxied`` through a ``FaultProxy`` (``InProcessSuite.proxies``);
    the test's own calls (``suite.ports``) go straight to it."""
    import consent_service.config  # noqa: E401
    import consent_service.server
    import feature_service.config  # noqa: E401
    import feature_service.server
    import gateway.config  # noqa: E401
    import gateway.server
    import ingest_service.config  # noqa: E401
    import ingest_service.server
    import scoring_service.config  # noqa: E401
    import scoring_service.server

    modules = {
        "consent_service": (consent_service.config, consent_service.server),
        "feature_service": (feature_service.config, feature_service.server),
        "scoring_service": (scoring_service.config, scoring_service.server),
        "ingest_service": (ingest_service.config, ingest_service.server),
        "gateway": (gateway.config, gateway.server),
    }
    exporter = InMemorySpanExporter()
    handles: dict = {}
    auth = DemoAuth.create(folder)
    # Every port known up front: the consent service (started first, it makes the
    # token keys) calls the others to purge and export.
    ports = {package: _free_port() for package in PACKAGES}
    proxies = {package: await FaultProxy.start(ports[package]) for package in proxied}
    addrs = {package: f"127.0.0.1:{proxies[package].port if package in proxies else port}"
             for package, port in ports.items()}
    for package in PACKAGES:
        config, server = modules[package]
        service_env = {**auth.env_for(package), **QUICK.get(package, {}), **(env or {})}
        if ca is not None:
            tls = ca.issue(package)
            service_env.update(TLS_CERT_FILE=tls.cert_file, TLS_KEY_FILE=tls.key_file, TLS_CA_FILE=tls.ca_file)
        settings = from_env(config.Settings, service_env)
        changes: dict = {"server": dataclasses.replace(LOCAL, port=ports[package])}
        if package in database_urls:
            changes["database_url"] = database_urls[package]
        for field in dataclasses.fields(settings):
            if field.name.endswith("_service_addr"):
                dep = field.name.removesuffix("_addr")
                changes[field.name] = addrs[dep]
        settings = dataclasses.replace(settings, **changes)
        provider = configure_tracing(package, {}, processor=SimpleSpanProcessor(exporter))
        handle = await server.build_server(settings, tracer_provider=provider)
        await handle.start()
        handles[package] = handle
        ports[package] = handle.port
    suite = Suite(data_dir=folder, ports=ports, procs={}, auth=auth,
                  tls=ca.issue("operator") if ca is not None else None)
    return InProcessSuite(suite, exporter, handles, dict(database_urls), proxies)


async def _stop(running: InProcessSuite) -> None:
    for package in reversed(PACKAGES):
        await running.handles[package].stop(0)
    for proxy in running.proxies.values():
        await proxy.close()


SuiteFactory = Callable[..., Awaitable[InProcessSuite]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def suite_factory(request, tmp_path) -> AsyncIterator[SuiteFactory]:
    """Starts the suite, on SQLite or PostgreSQL, with the environment a test
    gives (``await suite_factory(TOKEN_TTL_SECONDS="4")``); stopped after the test."""
    databases = [p for p in PACKAGES if p != "gateway"]
    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    created: list[str] = []
    running: list[InProcessSuite] = []

    async def make(**env: str) -> InProcessSuite:
        assert not running, "one suite per test"
        if request.param == "sqlite":
            urls = {p: f"sqlite:///{tmp_path}/{p}.db" for p in databases}
        else:
            created.extend([await create_pg_database() for _ in databases])
            urls = dict(zip(databases, created, strict=True))
        running.append(await _start(urls, tmp_path, env=env))
        return running[0]

    try:
        yield make
    finally:
        for suite in running:
            await _stop(suite)
        for url in created:
            await drop_pg_database(url)


@pytest.fixture
async def inprocess_suite(suite_factory: SuiteFactory) -> InProcessSuite:
    return await suite_factory()


@pytest.fixture
async def mtls_suite(tmp_path) -> AsyncIterator[tuple[InProcessSuite, Ca]]:
    """The suite on SQLite, every service behind mutual TLS (``TLS_*``), and the CA."""
    ca = Ca(tmp_path / "pki")
    databases = [p for p in PACKAGES if p != "gateway"]
    running = await _start({p: f"sqlite:///{tmp_path}/{p}.db" for p in databases}, tmp_path, ca)
    try:
        yield running, ca
    finally:
        await _stop(running)
