"""Building a service's server: one ``ServiceBuilder`` acquires the engine, the
channels, the workers and the server, in that order, into one ``ServiceStack``
that the server's handle owns.

A service's ``build_server`` says only what is particular to it::

    async def build_server(settings, *, tracer_provider=None, meter_provider=None):
        auth = server_auth(settings.auth, AUDIENCE_INTERNAL, POLICY, service="feature_service")
        async with ServiceBuilder(settings.server, tls=settings.tls, tracer_provider=tracer_provider,
                                  meter_provider=meter_provider) as build:
            engine = await build.database(settings.database_url, MIGRATIONS, auto_migrate=settings.auto_migrate)
            store = FeatureStore(engine)
            build.callback(store.close)
            (consent, scoring), _ = build.channels(settings.auth, settings.consent_service_addr,
                                                  [settings.consent_service_addr, settings.scoring_service_addr],
                                                  settings.channel)
            refresher = ScoreRefresher(...)
            build.worker(refresher.start, refresher.stop)
            handle = build.server([RegisteredService(...)], domain=DOMAIN, auth=auth)
            build.keep_tokens_current(auth, settings.auth, consent)
        return handle

When anything in the block raises, everything acquired so far is released, last
first, and the error goes on. When the block ends, the stack belongs to the
handle: ``handle.start()`` starts the workers then the server, ``handle.stop()``
(or ``serve`` on SIGTERM) drains the server for ``GRPC_GRACE_SECONDS`` and releases
the rest in reverse order of acquisition (the workers, then the channels, the
stores, the engine), so that nothing stops while something still uses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import grpc

from ._auth import AuthInterceptor, AuthSettings, TokenSource
from ._channels import ChannelSettings, create_channel, direct_channel, service_channels
from ._revocation import AuthWatch, RevocationFetch
from ._server import RegisteredService, ServerHandle, ServerSettings, create_server, token_watch
from ._stack import Release, ServiceStack
from ._tls import TlsSettings

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ._migrations import Migrations

__all__ = ["ServiceBuilder"]


class ServiceBuilder:
    """Acquires what a server needs into one ``ServiceStack`` (``stack``) and builds
    the server that owns it (see the module's documentation). ``settings``, ``tls``
    and the providers are those of the server and of every channel made here."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        tls: TlsSettings | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.stack = ServiceStack()
        self._handle: ServerHandle | None = None

    # --- what the server uses ---------------------------------------------------

    def callback(self, release: Release) -> None:
        """Something to undo when the server stops (``store.close``), after
        everything acquired later."""
        self.stack.callback(release)

    async def database(
        self, url: str, migrations: Migrations, *, auto_migrate: bool, sqlite_synchronous: str = "NORMAL"
    ) -> AsyncEngine:
        """The engine of ``url`` (disposed of last, after every store and worker
        on it), its schema migrated to this build's or checked (``auto_migrate``);
        ``sqlite_synchronous`` as ``make_engine`` takes it."""
        from ._db import make_engine
        from ._migrations import prepare_schema

        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.stack.callback(engine.dispose, what="the database engine")
        await prepare_schema(engine, migrations, auto_migrate=auto_migrate)
        return engine

    def channels(
        self,
        auth: AuthSettings,
        consent_addr: str,
        addrs: Sequence[str],
        settings: ChannelSettings = ChannelSettings.default,
    ) -> tuple[list[grpc.aio.Channel], TokenSource | None]:
        """``service_channels``: one channel per address of ``addrs``, in order, every
        call carrying this service's own token, and the token source (None when
        auth is disabled). Every channel made (the one tokens are fetched on
        too) closes when the server stops."""
        made, tokens, owned = service_channels(
            auth, consent_addr, addrs, settings, tls=self.tls, tracer_provider=self.tracer_provider
        )
        for channel in owned:
            self.stack.callback(channel.close, what="a channel")
        return made, tokens

    def channel(
        self,
        target: str,
        settings: ChannelSettings = ChannelSettings.default,
        *,
        tokens: TokenSource | None = None,
    ) -> grpc.aio.Channel:
        """``create_channel`` (tracing and TLS as the server's), closed when the server stops."""
        made = create_channel(target, settings, tracer_provider=self.tracer_provider, tokens=tokens, tls=self.tls)
        self.stack.callback(made.close, what=f"the channel to {target}")
        return made

    def direct_channel(self, target: str, settings: ChannelSettings = ChannelSettings.default) -> grpc.aio.Channel:
        """``direct_channel`` (no interceptors; TLS as the server's), closed when the server stops."""
        made = direct_channel(target, settings, tls=self.tls)
        self.stack.callback(made.close, what=f"the channel to {target}")
        return made

    def worker(
        self,
        start: Callable[[], Awaitable[object]],
        stop: Callable[[], Awaitable[object]],
        *,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """A background worker, started with the server (before it listens) and
        stopped after it has drained, before what was acquired earlier is released;
        ``ready``: the services report SERVING only once it has returned."""
        self.stack.worker(start, stop, ready=ready)

    def task(self, run: Callable[[], Awaitable[object]], *, name: str) -> None:
        """A worker that is one asyncio task running ``run()`` until cancelled
        (``ServiceStack.task``)."""
        self.stack.task(run, name=name)

    # --- the server ---------------------------------------------------------------

    def server(
        self,
        services: Sequence[RegisteredService],
        *,
        domain: str,
        auth: AuthInterceptor | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> ServerHandle:
        """``create_server`` with this builder's settings, TLS and providers; the
        handle owns ``stack``. Build it last but for what needs the handle
        (``keep_tokens_current``): a ``grpc.aio`` server bound but never started
        keeps its port until the process ends."""
        if self._handle is not None:
            raise RuntimeError("this builder has built its server already")
        handle = create_server(
            services,
            self.settings,
            domain=domain,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            interceptors=interceptors,
            auth=auth,
            tls=self.tls,
        )
        handle.stack = self.stack
        self._handle = handle
        return handle

    def keep_tokens_current(
        self,
        auth: AuthInterceptor | None,
        settings: AuthSettings,
        fetch: RevocationFetch | grpc.aio.Channel,
    ) -> AuthWatch | None:
        """``keep_tokens_current``: a worker that keeps the verifier of ``auth``
        current (its key file, the revocation list from ``fetch``: a function of
        the cursor or a channel to the consent service), a gate of readiness.
        None, and nothing added, when ``auth`` is None."""
        watch = token_watch(auth, settings, fetch)
        if watch is not None:
            self.worker(watch.start, watch.stop, ready=watch.ready)
        return watch

    # --- the block ------------------------------------------------------------------

    async def release(self) -> None:
        """Undoes everything acquired so far (a build that failed): the server
        first if it was built, then the stack, last acquired first."""
        if self._handle is not None:
            await self._handle.stop(0)
        else:
            await self.stack.aclose()

    async def __aenter__(self) -> ServiceBuilder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self.release()
        elif self._handle is None:
            await self.release()
            raise RuntimeError("the build ended without a server: call ServiceBuilder.server")
