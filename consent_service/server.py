"""Builds the consent server from its settings: token key, engine, store, the
purge worker and its channels, servicer, authentication, server."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2_grpc
from creditscore.runtime import (
    AUDIENCE_INTERNAL,
    KIND_SERVICE,
    PUBLIC,
    AuthWatch,
    KeyRingFile,
    RegisteredService,
    RevocationEntry,
    RevocationFetch,
    RevocationPage,
    Revocations,
    ServerHandle,
    ServiceBuilder,
    server_auth,
    utcnow,
)
from creditscore.scoring.v1 import scoring_pb2_grpc

from .clients import FeatureData, IngestData, ScoringData, purgers, self_token_source
from .config import Settings
from .export import Exporter, HeldData
from .migrations import MIGRATIONS
from .purge import Purger, PurgeWorker
from .registry import load_service_credentials
from .servicer import ConsentServicer
from .store import ConsentStore
from .tokens import CredentialDesk, SigningKeys, TokenIssuer, load_or_create_signing_key

__all__ = ["DOMAIN", "POLICY", "ConsentApp", "build_consent", "build_server"]

DOMAIN = "consent.creditscore"

_SERVICE = consent_pb2.DESCRIPTOR.services_by_name["ConsentService"].full_name
_SERVICES_ONLY = frozenset({KIND_SERVICE})

#: Who may call what (``AUTH_MODE=required``); a method not named is refused.
#: Subjects reach their own RPCs through a service (the gateway, which relays
#: them for a subject's token); partners, producers and subjects never call this
#: service but for their tokens (through the gateway's relay from outside).
POLICY: dict[str, frozenset[str]] = {
    f"/{_SERVICE}/{method}": kinds
    for method, kinds in {
        # Credentials -> token: the one RPC without a token.
        "IssueToken": PUBLIC,
        # The subject's own, through the gateway (or an operator's tool).
        "EnrollSubject": _SERVICES_ONLY,
        "RotateSubjectSecret": _SERVICES_ONLY,
        "GetSubject": _SERVICES_ONLY,
        "GrantConsent": _SERVICES_ONLY,
        "WithdrawConsent": _SERVICES_ONLY,
        "ListConsents": _SERVICES_ONLY,
        "WithdrawAllConsents": _SERVICES_ONLY,
        "CloseAccount": _SERVICES_ONLY,
        "GetDeletionReceipt": _SERVICES_ONLY,
        "ExportSubjectData": _SERVICES_ONLY,
        "GrantAuthorization": _SERVICES_ONLY,
        "RevokeAuthorization": _SERVICES_ONLY,
        "ListAuthorizations": _SERVICES_ONLY,
        "ListAccessLog": _SERVICES_ONLY,
        # Registering partners and producers: an operator's service identity.
        "RegisterPartner": _SERVICES_ONLY,
        "RegisterProducer": _SERVICES_ONLY,
        # Internal: ingest and the gateway.
        "CheckConsents": _SERVICES_ONLY,
        "CheckAuthorization": _SERVICES_ONLY,
        "RecordAccess": _SERVICES_ONLY,
        "RecordAccesses": _SERVICES_ONLY,
        "GetAccessByTransaction": _SERVICES_ONLY,
        # Revocation: an operator's service identity; every service polls the list.
        "RevokeToken": _SERVICES_ONLY,
        "RevokeTokens": _SERVICES_ONLY,
        "RevokeClient": _SERVICES_ONLY,
        "ListRevocations": _SERVICES_ONLY,
    }.items()
}


@dataclass(frozen=True)
class ConsentApp:
    """A built consent server and the parts tests reach into."""

    handle: ServerHandle
    store: ConsentStore
    worker: PurgeWorker
    issuer: TokenIssuer
    watch: AuthWatch


async def build_server(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ServerHandle:
    """A built, not yet started, consent server. Reads no environment. ``clock``
    (tests) is the time used for grants, withdrawals, expiry and purge steps
    (tokens always carry the real time: other services check them against it)."""
    app = await build_consent(settings, tracer_provider=tracer_provider, meter_provider=meter_provider, clock=clock)
    return app.handle


async def build_consent(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    clock: Callable[[], datetime] = utcnow,
    purgers_override: Mapping[str, Purger] | None = None,
    held_override: Mapping[str, HeldData] | None = None,
) -> ConsentApp:
    """``build_server`` with the store, worker and issuer handed back. Starting
    the server starts the purge worker (``PURGE_WORKER``); stopping it stops the
    worker, closes the channels and disposes of the engine. ``purgers_override``
    and ``held_override`` (tests) replace the gRPC adapters to the other services."""
    settings.auth.check()
    settings.tls.check()
    key = load_or_create_signing_key(
        settings.signing_key_file, generate=settings.key_generate, public_out=settings.public_key_out
    )
    issuer = TokenIssuer(
        key,
        ttl=timedelta(seconds=settings.token_ttl_seconds),
        subject_ttl=timedelta(seconds=settings.subject_token_ttl_seconds),
    )
    # This service verifies tokens with its own keys (the signing key, and the ring
    # every other service verifies with, when this one is told of it: SigningKeys
    # keeps the verifier's ring current) against its own revocation list.
    published = KeyRingFile(settings.auth.public_key_file) if settings.auth.public_key_file else None
    revocations = settings.auth.revocations() if settings.auth.required else Revocations.always_fresh()
    auth = server_auth(
        settings.auth, AUDIENCE_INTERNAL, POLICY, service="consent_service",
        keys=issuer.public_key_pem, revocations=revocations,
    )
    signing_keys = SigningKeys(
        issuer, auth.verifier if auth is not None else None,
        signing_file=settings.signing_key_file, published=published,
    )
    services = load_service_credentials(settings.service_credentials_file)
    async with ServiceBuilder(
        settings.server, tls=settings.tls, tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as build:
        # SQLITE_SYNCHRONOUS=FULL: a consent or an enrollment answered is on disk
        # (each group of concurrent writes pays one sync of the log); NORMAL, the
        # default, keeps the lookup's access-log write off the disk's sync time.
        engine = await build.database(
            settings.database_url, MIGRATIONS, auto_migrate=settings.auto_migrate,
            sqlite_synchronous=settings.sqlite_synchronous.upper(),
        )
        store = ConsentStore(
            engine,
            sweep_delay=timedelta(seconds=settings.purge_sweep_seconds),
            token_life=issuer.longest_ttl + timedelta(seconds=settings.auth.leeway_seconds),
        )
        build.callback(store.close)
        desk = CredentialDesk(issuer, services, store)
        # The services a purge or an export reaches, called with this service's own
        # tokens, signed here.
        tokens = self_token_source(desk)
        ingest = ingest_pb2_grpc.IngestServiceStub(
            build.channel(settings.ingest_service_addr, settings.channel, tokens=tokens))
        feature = feature_pb2_grpc.FeatureServiceStub(
            build.channel(settings.feature_service_addr, settings.channel, tokens=tokens))
        scoring = scoring_pb2_grpc.ScoringServiceStub(
            build.channel(settings.scoring_service_addr, settings.channel, tokens=tokens))
        worker = PurgeWorker(
            store,
            purgers_override or purgers(ingest, feature, scoring),
            timeout=settings.downstream_timeout_seconds,
            poll_seconds=settings.purge_poll_seconds,
            backoff_max=settings.purge_backoff_max_seconds,
            clock=clock,
        )
        if settings.purge_worker:
            build.worker(worker.start, worker.stop)
        exporter = Exporter(
            store,
            held_override or {
                "ingest_service": IngestData(ingest),
                "feature_service": FeatureData(feature),
                "scoring_service": ScoringData(scoring),
            },
            clock=clock,
        )
        # This service's own revocation list comes from its database (other
        # replicas write there too), re-read every REVOCATION_POLL_SECONDS and at
        # once after a revocation written here; expired entries are pruned.
        watch = AuthWatch(
            revocations,
            local_revocations(store, clock),
            interval=settings.auth.revocation_poll_seconds,
            ticks=[signing_keys.reload, _pruner(store, clock)],
        )
        build.worker(watch.start, watch.stop, ready=watch.ready)
        servicer = ConsentServicer(
            store,
            clock=clock,
            desk=desk,
            exporter=exporter,
            on_purge=worker.notify,
            export_timeout=settings.downstream_timeout_seconds,
            on_revoke=watch.wake,
            revocations=revocations,
        )
        handle = build.server(
            [
                RegisteredService(
                    consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
                    consent_pb2_grpc.add_ConsentServiceServicer_to_server,
                    servicer,
                )
            ],
            domain=DOMAIN,
            auth=auth,
        )
    return ConsentApp(handle, store, worker, issuer, watch)


def local_revocations(store: ConsentStore, clock: Callable[[], datetime]) -> RevocationFetch:
    """The revocation log read from this service's own database."""

    async def fetch(cursor: int) -> RevocationPage:
        records, last, more, reset = await store.revocations_after(cursor, now=clock())
        return RevocationPage(
            entries=[
                RevocationEntry(r.sequence, r.kind, r.key, r.generation, r.expire_time.timestamp())
                for r in records
            ],
            last_sequence=last, more=more, reset=reset,
        )

    return fetch


_PRUNE_SECONDS = 60.0


def _pruner(store: ConsentStore, clock: Callable[[], datetime]) -> Callable[[], Awaitable[None]]:
    """A tick that deletes expired revocations once a minute."""
    last = [0.0]

    async def prune() -> None:
        now = time.monotonic()
        if now - last[0] >= _PRUNE_SECONDS:
            last[0] = now
            await store.prune_revocations(clock())

    return prune
