"""Server bootstrap: health, reflection, error mapping, tracing, metrics, graceful stop.

A service's ``server.py`` builds its servicers and its server with a
``ServiceBuilder`` (``_builder``), which calls ``create_server``; its ``__main__``
calls ``run_main``, whose ``serve`` runs until SIGTERM or SIGINT:

    health -> NOT_SERVING, server.stop(grace), the server's stack released
    (workers, channels, stores, engine: last acquired first), tracer flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ._auth import AuthInterceptor, AuthSettings, TokenVerifier
from ._config import env_field
from ._interceptors import ErrorInterceptor
from ._metrics import MetricsInterceptor
from ._revocation import AuthWatch, Fetch
from ._stack import ServiceStack
from ._tls import TlsSettings

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "RegisteredService",
    "ServerHandle",
    "ServerSettings",
    "create_server",
    "keep_tokens_current",
    "run_main",
    "serve",
    "token_watch",
]

log = logging.getLogger("creditscore.runtime")


@dataclass(frozen=True)
class ServerSettings:
    """How a server listens and stops. Every service embeds these."""

    host: str = env_field("GRPC_HOST", "0.0.0.0", help="address to bind")
    port: int = env_field("GRPC_PORT", 0, help="port to bind; 0 picks a free one")
    grace_seconds: float = env_field("GRPC_GRACE_SECONDS", 10.0, help="drain time on SIGTERM")
    max_message_bytes: int = env_field("GRPC_MAX_MESSAGE_BYTES", 8 * 1024 * 1024)
    max_connection_age_ms: int = env_field(
        "GRPC_MAX_CONNECTION_AGE_MS", 300_000, help="clients reconnect after this, spreading load"
    )

    def server_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_connection_age_ms", self.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", 30_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]


@dataclass(frozen=True)
class RegisteredService:
    """A servicer and how to add it: ``(descriptor, add_XServicer_to_server, servicer)``."""

    descriptor: Any  # google.protobuf.descriptor.ServiceDescriptor
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any

    @property
    def name(self) -> str:
        return str(self.descriptor.full_name)


@dataclass
class ServerHandle:
    """A built server: what ``create_server`` (or ``ServiceBuilder.server``) returns
    and ``serve`` runs, with ``stack``, everything else the server owns (its
    engine, stores, channels, workers: ``_stack``).

    ``start``: the workers of ``stack`` (in the order they were added), then the
    server. ``stop``: NOT_SERVING, the server drains its calls for ``grace_seconds``
    (``GRPC_GRACE_SECONDS``), then ``stack`` is released, last acquired first: the
    server went up last and goes down first, since its calls use all the rest.

    Health: the server as a whole (service ``""``: what liveness and start-up
    probes ask) is SERVING once it listens; each of its services (what readiness
    probes and clients ask) is SERVING once everything in ``ready`` has happened
    (the first sync of the revocation list). ``start`` waits for that up to
    ``ready_wait`` seconds, then, if it is still pending, returns and lets the
    services turn SERVING once it is done: a pod that cannot reach the consent
    service is kept out of traffic, not restarted."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    tracer_provider: TracerProvider | None = None
    ready_wait: float = 5.0
    #: The verifier callers' tokens are checked with (None: authentication disabled).
    verifier: TokenVerifier | None = None
    #: How long ``stop`` lets calls in flight finish (``ServerSettings.grace_seconds``).
    grace_seconds: float = ServerSettings.grace_seconds
    stack: ServiceStack = field(default_factory=ServiceStack)
    _becoming_ready: asyncio.Task[None] | None = None
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def ready(self) -> list[Callable[[], Awaitable[object]]]:
        """What must have happened before the services report SERVING (``stack.ready``)."""
        return self.stack.ready

    async def _set_health(self, status: int, *, whole: bool = True) -> None:
        for name in ("", *self.service_names) if whole else self.service_names:
            await self.health.set(name, status)

    async def start(self) -> None:
        """The workers, then the server; health as the class says. On failure the
        caller stops the handle (``serve`` does), which releases what started."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.stack.start()
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

        async def become_ready() -> None:
            for gate in self.ready:
                await gate()
            await self._set_health(health_pb2.HealthCheckResponse.SERVING, whole=False)

        task = asyncio.create_task(become_ready())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.ready_wait)
        except TimeoutError:
            log.warning("not ready after %.1fs (%s): health stays NOT_SERVING until it is",
                        self.ready_wait, ", ".join(self.service_names))
            self._becoming_ready = task

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain calls in flight for ``grace`` seconds (default:
        ``grace_seconds``, from the settings), then release ``stack``. Stopping a
        handle that never started, or started only in part, releases what there
        is; stopping it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._becoming_ready is not None:
                self._becoming_ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._becoming_ready
            await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            await self.server.stop(self.grace_seconds if grace is None else grace)
        finally:
            await self.stack.aclose()
            if self.tracer_provider is not None:
                self.tracer_provider.force_flush()


def create_server(
    services: Sequence[RegisteredService],
    settings: ServerSettings,
    *,
    domain: str,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    auth: AuthInterceptor | None = None,
    tls: TlsSettings | None = None,
) -> ServerHandle:
    """Builds (does not start) a ``grpc.aio`` server with the given services, the
    health service, reflection, the error interceptor and, when a tracer provider
    is given, the OpenTelemetry server interceptor; when a meter provider is given,
    the metrics interceptor (calls, status codes, durations) comes first. Binds
    ``settings.port`` (0 picks a free port, returned in the handle).

    ``auth`` (see ``_auth``) authenticates every call but health and reflection and
    refuses methods its policy does not name; it runs inside the error interceptor,
    so its refusals travel as statuses with ``ErrorInfo``. ``tls`` enabled: the port
    serves TLS only, with client certificates required unless
    ``tls.require_client_auth`` is false; then callers authenticated as services
    must also present a service's certificate."""
    if tls is not None and tls.enabled:
        credentials = tls.server_credentials()  # a half setting fails here, before binding
        if auth is not None and tls.require_client_auth:
            auth = auth.requiring_service_certificates()
    else:
        credentials = None
    chain: list[grpc.aio.ServerInterceptor] = []
    if meter_provider is not None:
        chain.append(MetricsInterceptor(meter_provider))
    if tracer_provider is not None:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        # opentelemetry-instrumentation-grpc leaves this factory unannotated.
        tracing = cast("Callable[..., grpc.aio.ServerInterceptor]", aio_server_interceptor)
        chain.append(tracing(tracer_provider=tracer_provider))
    chain.append(ErrorInterceptor(domain))
    if auth is not None:
        chain.append(auth)
    chain.extend(interceptors)
    server = grpc.aio.server(interceptors=chain, options=settings.server_options())
    for service in services:
        service.add_to_server(service.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(s.name for s in services)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*names, health_name, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    return ServerHandle(
        server=server,
        port=port,
        health=health_servicer,
        service_names=names,
        tracer_provider=tracer_provider,
        verifier=auth.verifier if auth is not None else None,
        grace_seconds=settings.grace_seconds,
    )


def keep_tokens_current(
    handle: ServerHandle,
    auth: AuthInterceptor | None,
    settings: AuthSettings,
    fetch: Fetch | grpc.aio.Channel,
) -> AuthWatch | None:
    """Keeps the verifier of ``auth`` current while ``handle`` runs: an ``AuthWatch``
    that re-reads its key file and fetches revocations (``fetch``: a function of
    the cursor, or a channel to the consent service carrying this service's
    token) every ``REVOCATION_POLL_SECONDS``, a worker of ``handle.stack``, which
    reports SERVING once the list is first synced. None (and nothing attached)
    when ``auth`` is None (authentication disabled). ``ServiceBuilder`` has the
    same as a method."""
    watch = token_watch(auth, settings, fetch)
    if watch is not None:
        handle.stack.worker(watch.start, watch.stop, ready=watch.ready)
    return watch


def token_watch(
    auth: AuthInterceptor | None,
    settings: AuthSettings,
    fetch: Fetch | grpc.aio.Channel,
) -> AuthWatch | None:
    """The ``AuthWatch`` that ``keep_tokens_current`` attaches (None without ``auth``)."""
    if auth is None:
        return None
    verifier = auth.verifier
    if verifier.revocations is None:
        raise ValueError("the verifier has no revocation list to keep")
    if isinstance(fetch, grpc.aio.Channel):
        from ._revocation import grpc_fetch

        fetch = grpc_fetch(fetch, timeout=max(1.0, settings.revocation_poll_seconds * 2))
    return AuthWatch(
        verifier.revocations, fetch, interval=settings.revocation_poll_seconds, ticks=[verifier.reload_keys]
    )


async def serve(handle: ServerHandle) -> None:
    """Starts ``handle`` and runs until SIGTERM or SIGINT, then stops it: the
    server drains for its grace period (``GRPC_GRACE_SECONDS``) and everything it
    owns is released. A start that fails stops it as well (what had started is
    released) before the error goes on."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    try:
        await handle.start()
        log.info("serving %s on port %d", ", ".join(handle.service_names), handle.port)
        print(f"READY {','.join(handle.service_names)} port={handle.port}", flush=True)
        await stopping.wait()
        log.info("stopping: draining for up to %.1fs", handle.grace_seconds)
    finally:
        try:
            await handle.stop()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
    log.info("stopped")


def run_main(
    service_name: str,
    settings_cls: type[Any],
    build: Callable[..., Awaitable[ServerHandle]],
) -> None:
    """The whole ``python -m <service>``: settings from the environment, tracing
    and metrics from ``OTEL_*``, build, serve until SIGTERM. ``settings_cls`` has a
    ``server`` field of ``ServerSettings``; ``build(settings, tracer_provider=...,
    meter_provider=...)`` returns the handle."""
    import os

    from ._config import from_env
    from ._telemetry import configure_metrics, configure_tracing

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {service_name} %(levelname)s %(name)s: %(message)s",
    )
    settings = from_env(settings_cls)
    tracer_provider = configure_tracing(service_name)
    meter_provider = configure_metrics(service_name)

    async def _run() -> None:
        handle = await build(settings, tracer_provider=tracer_provider, meter_provider=meter_provider)
        await serve(handle)

    try:
        asyncio.run(_run())
    finally:
        # Shutting down exports what is left: the last spans and a last collection.
        if meter_provider is not None:
            meter_provider.shutdown()
        if tracer_provider is not None:
            tracer_provider.shutdown()
